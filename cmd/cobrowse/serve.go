package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/cobrowse/cobrowse/audit"
	"github.com/cobrowse/cobrowse/demo"
	"github.com/cobrowse/cobrowse/internal/forwarded"
	"github.com/cobrowse/cobrowse/internal/gcfloor"
	"github.com/cobrowse/cobrowse/metrics"
	"github.com/cobrowse/cobrowse/policies"
	"github.com/cobrowse/cobrowse/proxy"
	"github.com/cobrowse/cobrowse/session"
	"github.com/cobrowse/cobrowse/viewer"
	"github.com/cobrowse/cobrowse/web"
)

// visitorScriptPath is where the visitor listener serves the visitor
// script, which the proxy inserts into every HTML page (deferred: the page
// never waits for it, and rrweb starts once the document is parsed).
const visitorScriptPath = "/__cobrowse/visitor.js"

// options are the flags shared by serve and demo.
type options struct {
	configFile  *string // --config
	upstream    string
	routes      routes
	listen      string
	agentListen string
	agentToken  string
	tlsCert     string
	tlsKey      string
	policy      string
	auditFile   string
	logLevel    slog.Level
	logFormat   string
	join        session.JoinMode
	sessionIdle time.Duration
	labels      visitorLabels
	webhook     webhookOptions
	// shutdownTimeout bounds a graceful shutdown (SIGTERM, SIGINT).
	shutdownTimeout time.Duration
	render          renderOptions
	assets          assetOptions
	cluster         clusterOptions
	// trustedProxies are the --trusted-proxy networks: reverse proxies
	// whose X-Forwarded-Proto and X-Forwarded-For both listeners believe.
	trustedProxies trustedProxies
}

// route is one --route host=URL: requests for host go to URL.
type route struct {
	host     string
	upstream string
}

// routes are the --route flags.
type routes []route

func (r *routes) String() string {
	var s []string
	for _, rt := range *r {
		s = append(s, rt.host+"="+rt.upstream)
	}
	return strings.Join(s, ",")
}

// Set adds one host=URL, or several separated by commas.
func (r *routes) Set(v string) error {
	for item := range strings.SplitSeq(v, ",") {
		host, upstream, ok := strings.Cut(strings.TrimSpace(item), "=")
		if !ok || host == "" || upstream == "" {
			return fmt.Errorf("%q is not host=URL", item)
		}
		*r = append(*r, route{host: host, upstream: upstream})
	}
	return nil
}

func (*routes) repeatable() {}

// trustedProxies is --trusted-proxy: IP addresses and CIDR networks,
// repeatable or comma-separated.
type trustedProxies struct{ forwarded.Proxies }

func (*trustedProxies) repeatable() {}

// register adds the flags of serve and demo to fs, --config included.
func (o *options) register(fs *flag.FlagSet, defaultListen string) {
	o.configFile = registerConfig(fs)
	fs.StringVar(&o.listen, "listen", defaultListen, "visitor listener `address`: the fronted site, the visitor script and its WebSocket")
	fs.StringVar(&o.tlsCert, "tls-cert", "", "PEM certificate `file` for the visitor listener (with --tls-key): serves HTTPS and HTTP/2")
	fs.StringVar(&o.tlsKey, "tls-key", "", "PEM private key `file` for --tls-cert")
	fs.Var(&o.trustedProxies, "trusted-proxy", "`networks` (IP addresses or CIDRs, comma-separated, repeatable) of the TLS-terminating proxies or load balancers in front of the visitor and agent listeners: their X-Forwarded-Proto gives the scheme browsers used (https URLs, Secure cookies, wss: in CSP) and their X-Forwarded-For is passed on and names agents in the audit log; nobody else's X-Forwarded-* headers are believed")
	fs.StringVar(&o.agentListen, "agent-listen", "127.0.0.1:8081", "agent listener `address`: console, REST API (keep it private)")
	fs.StringVar(&o.agentToken, "agent-token", "", "agent `token` for sign-in and the API, 16 characters or more (better given as $COBROWSE_AGENT_TOKEN, which other users cannot see; generated and printed if empty)")
	fs.StringVar(&o.auditFile, "audit", "", "audit log `file` (JSON lines, appended; see docs/audit.md): sign-ins, agents joining and leaving, the policy in force, what it hid on each page")
	fs.StringVar(&o.policy, "policy", "", "redaction policy `file` (YAML, see docs/policies.md), reloaded when it changes or on SIGHUP; default: the built-in policy (passwords, card and one-time-code fields masked, detectors on)")
	registerLogFlags(fs, &o.logLevel, &o.logFormat)
	fs.DurationVar(&o.shutdownTimeout, "shutdown-timeout", 20*time.Second, "on SIGTERM or SIGINT, how long to drain requests and close sockets and browsers before exiting (`duration`)")
	o.join = session.JoinConsent
	fs.Func("join", "what it takes for agents to see a session (`mode`): consent (the visitor accepts each session; default), code (the visitor reads a 6-digit support code to the agent) or none (no prompt: for internal tools whose users agreed beforehand)", func(v string) error {
		m, err := session.ParseJoinMode(v)
		o.join = m
		return err
	})
	fs.DurationVar(&o.sessionIdle, "session-idle", 30*time.Minute, "end a session after this long without any activity of the visitor (`duration`; 0: never); both sides are told")
	o.labels.register(fs)
	o.webhook.register(fs)
	o.render.register(fs)
	o.assets.register(fs)
	o.cluster.register(fs)
}

func newFlagSet(name, summary string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "%s\n\nFlags:\n", summary)
		fs.PrintDefaults()
	}
	return fs
}

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o options
	fs := newFlagSet("serve", "Usage: cobrowse serve --upstream URL [flags]\n\nFronts the site at URL: visitors browse it through --listen, agents watch them on --agent-listen.\n\n"+configHelp, stderr)
	fs.StringVar(&o.upstream, "upstream", "", "`URL` of the site to front, e.g. https://www.example.com (for every host without a --route)")
	fs.Var(&o.routes, "route", "front several sites: `host=URL` sends requests for host to URL (repeatable, or comma-separated), e.g. shop.example.com=https://shop-backend.internal")
	o.register(fs, ":8080")
	if err := parseFlags(fs, args, o.configFile, os.LookupEnv); err != nil {
		return err
	}
	if o.upstream == "" && len(o.routes) == 0 {
		fs.Usage()
		return errors.New("--upstream (or at least one --route) is required: the site to front")
	}
	return start(ctx, o, stdout, stderr, nil)
}

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o options
	fs := newFlagSet("demo", "Usage: cobrowse demo [flags]\n\nStarts the built-in demo shop on a loopback port and fronts it.\n\n"+configHelp, stderr)
	o.register(fs, "127.0.0.1:8080")
	if err := parseFlags(fs, args, o.configFile, os.LookupEnv); err != nil {
		return err
	}
	shop, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("starting the demo shop: %w", err)
	}
	o.upstream = "http://" + shop.Addr().String()
	shopServer := &http.Server{Handler: demo.New(), ReadHeaderTimeout: 10 * time.Second}
	return start(ctx, o, stdout, stderr, &listening{name: "demo shop", srv: shopServer, ln: shop})
}

// registerLogFlags adds --log-level and --log-format to fs.
func registerLogFlags(fs *flag.FlagSet, level *slog.Level, format *string) {
	fs.TextVar(level, "log-level", slog.LevelInfo, "log `level`: debug, info, warn or error")
	*format = "text"
	fs.Func("log-format", "log `format` on stderr: text (logfmt-style key=value; default) or json (one JSON object a line, for log collectors)", func(v string) error {
		if v != "text" && v != "json" {
			return fmt.Errorf("%q is neither text nor json", v)
		}
		*format = v
		return nil
	})
}

// newLogger returns the server's logger: format is "text" or "json".
func newLogger(w io.Writer, format string, level slog.Level) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// gcHeapFloor is the heap size below which the garbage collector does not
// run (internal/gcfloor): collecting a heap of a few MiB 25 times a second
// under proxy load cost 10–15 % of the CPU.
const gcHeapFloor = 32 << 20

// start wires the hub, the proxy and the agent console, listens, prints
// where to go, and serves until ctx is done; then it shuts down within
// o.shutdownTimeout (shutdown.go). upstream, if not nil, is a server to run
// alongside that the proxy fronts (the demo shop): it stops after the
// visitor listener drained.
func start(ctx context.Context, o options, stdout, stderr io.Writer, upstream *listening) error {
	logger := newLogger(stderr, o.logFormat, o.logLevel)
	if upstream != nil {
		defer upstream.ln.Close() // if start fails before serving it
	}
	if o.shutdownTimeout <= 0 {
		return fmt.Errorf("--shutdown-timeout is %v; give a positive duration such as 20s", o.shutdownTimeout)
	}
	if (o.tlsCert == "") != (o.tlsKey == "") {
		return errors.New("--tls-cert and --tls-key go together: give both, or neither for plain HTTP")
	}
	if gcfloor.Start(gcHeapFloor) {
		logger.Debug("gc: the collector lets the heap reach a floor before it runs; set GOGC or GOMEMLIMIT to choose otherwise", "floor_mib", gcHeapFloor>>20)
	}
	generated := o.agentToken == ""
	if generated {
		o.agentToken = randomToken()
	}

	var auditLog *audit.Log // nil records nothing
	if o.auditFile != "" {
		var err error
		if auditLog, err = audit.Open(o.auditFile, logger); err != nil {
			return fmt.Errorf("--audit: %w", err)
		}
		defer auditLog.Close() // also on the way out of a shutdown, after everything that records
	}
	policy, err := policies.NewSource(o.policy, logger)
	if err != nil {
		return fmt.Errorf("--policy: %w", err)
	}
	recordPolicy := func() {
		p := policy.Policy()
		auditLog.Record("policy.loaded", "file", o.policy, "version", p.Version(), "rules", p.Rules())
	}
	recordPolicy()
	// The visitor cookie is cobrowse's credential for the visitor's
	// session: the fronted sites never get it.
	const visitorCookie = session.DefaultCookieName
	sites, err := fronting(o, logger, visitorCookie)
	if err != nil {
		return err
	}
	assetService, err := newAssetService(o.assets, sites.handler, logger)
	if err != nil {
		return err
	}
	stats := metrics.New()
	stats.AddAssetCache(assetService.cache)
	stats.AddProxy(sites.stats)
	hook, err := startWebhook(o.webhook, logger)
	if err != nil {
		return err
	}
	defer closeWebhook(hook)
	toWebhook := sessionEvents(hook)
	record := func(event string, fields ...any) {
		auditLog.Record(event, fields...)
		toWebhook(event, fields...)
	}
	identityKey, err := o.cluster.identityKey()
	if err != nil {
		return err
	}
	cl, err := joinCluster(ctx, o.cluster, logger)
	if err != nil {
		return err
	}
	defer cl.Close() // if start fails before serving; a shutdown closes it in order
	hub := session.NewHub(session.Config{Logger: logger, Bus: cl.Bus(), Join: o.join, SessionIdle: o.sessionIdle, Record: record, OnSessionEnd: assetService.Forget, OnDeliver: stats.ObserveFanout, NewRedactor: func(sessionID, tabID string) session.Redactor {
		r := policies.NewRedactor(policy.Policy)
		r.OnPageEnd(func(page policies.PageReport) {
			stats.CountRedactions(page.Counts)
			auditLog.Record("page.redactions", "session", sessionID, "tab", tabID, "url", page.URL,
				"policy_version", page.PolicyVersion, "rules", page.Rules, "counts", page.Counts)
		})
		return r
	}})
	stats.AddHub(hub)
	if err := cl.serve(ctx, hub, assetService, stats); err != nil {
		return fmt.Errorf("--nats: %w", err)
	}
	identity, err := session.NewIdentity(identityKey)
	if err != nil {
		return err
	}
	visitorScript, err := web.VisitorScriptHandler()
	if err != nil {
		return err
	}
	visitors := &session.VisitorHandler{Hub: hub, Identity: identity, Logger: logger, TrustedProxies: o.trustedProxies.Proxies, CookieName: visitorCookie}
	var rendering *renderService // nil: this process runs no browsers
	if o.render.enabled {
		if rendering, err = startRendering(ctx, o.render, hub, assetService, logger); err != nil {
			return fmt.Errorf("--render: %w", err)
		}
		defer rendering.Close() // if start fails before serving; a shutdown closes it in order
		stats.AddPool(rendering.pool)
		stats.AddRenderer(rendering.renderer)
	}
	shown, err := cl.rendering(ctx, rendering)
	if err != nil {
		return err
	}
	// ready says whether /readyz answers 200: from when both listeners
	// are up (the policy is loaded by then) until the shutdown starts,
	// which the viewer knows of itself.
	var ready atomic.Bool
	agents, err := viewer.New(viewer.Config{
		Hub:            hub,
		Token:          o.agentToken,
		Logger:         logger,
		Audit:          auditLog,
		Renderer:       shown,
		Assets:         assetService,
		AssetCache:     assetService.cache.Handler(),
		Metrics:        stats.Handler(logger),
		TrustedProxies: o.trustedProxies.Proxies,
		Ready: func() error {
			if !ready.Load() {
				return errors.New("starting")
			}
			return nil
		},
	})
	if err != nil {
		return err
	}

	// cobrowse's own routes on the visitor listener, all under ownPrefix;
	// any other path there is 404, never the site's.
	own := http.NewServeMux()
	own.Handle("GET "+visitorScriptPath, visitorScript)
	own.Handle("GET "+session.VisitorPath, visitors)
	own.Handle("GET "+policies.ClientPath, policies.ClientHandler(policy.Policy))
	own.Handle(ownPrefix, http.NotFoundHandler())
	visitorRouter := visitorRoutes(own, frontVisitors(sites.handler, visitors, assetService, o.labels, hub))

	visitorServer := listenerServer(visitorRouter, logger)
	scheme := "http"
	if o.tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(o.tlsCert, o.tlsKey)
		if err != nil {
			return fmt.Errorf("loading --tls-cert/--tls-key: %w", err)
		}
		// ServeTLS with this config (and no file names) also offers HTTP/2.
		visitorServer.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		scheme = "https"
	}
	visitorLn, err := net.Listen("tcp", o.listen)
	if err != nil {
		return fmt.Errorf("visitor listener: %w (choose another --listen address)", err)
	}
	agentLn, err := net.Listen("tcp", o.agentListen)
	if err != nil {
		visitorLn.Close()
		return fmt.Errorf("agent listener: %w (choose another --agent-listen address)", err)
	}

	visitorURL := scheme + "://" + displayAddr(visitorLn.Addr())
	agentURL := "http://" + displayAddr(agentLn.Addr())

	stop := &shutdown{
		timeout: o.shutdownTimeout,
		logger:  logger,
		servers: []*listening{
			{name: "visitor listener", srv: visitorServer, ln: visitorLn},
			{name: "agent listener", srv: listenerServer(agents, logger), ln: agentLn},
		},
		upstream:  upstream,
		agents:    agents,
		hub:       hub,
		rendering: rendering,
		cluster:   cl,
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { hub.Run(gctx); return nil })
	policy.OnReload(func() {
		recordPolicy()
		hub.Resnapshot() // the new policy decides from now on
	})
	g.Go(func() error { return reloadPolicy(gctx, policy) })
	for _, l := range stop.listening() {
		g.Go(l.serve)
	}
	ready.Store(true)
	// The URLs go out once the server is ready: whoever reads them (a
	// person, a test, a script) finds /readyz answering 200.
	fmt.Fprintf(stdout, "cobrowse %s fronting %s\n", version, strings.Join(sites.names, ", "))
	fmt.Fprintf(stdout, "  visitor URL:   %s/\n", visitorURL)
	if generated {
		fmt.Fprintf(stdout, "  agent sign-in: %s/login?token=%s   (generated token; pass --agent-token to choose one)\n", agentURL, o.agentToken)
	} else {
		fmt.Fprintf(stdout, "  agent sign-in: %s/login   (with your --agent-token)\n", agentURL)
	}
	logger.Info("serving", "visitor_listener", visitorLn.Addr().String(), "agent_listener", agentLn.Addr().String())
	// A signal, or a listener that failed, starts the shutdown.
	g.Go(func() error {
		<-gctx.Done()
		return stop.run()
	})
	return g.Wait()
}

// reloadPolicy reloads the policy file when it changes and on SIGHUP, until
// ctx is done. A file that does not parse keeps the current policy (the
// Source logs why).
func reloadPolicy(ctx context.Context, policy *policies.Source) error {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				policy.Reload() // logged by the Source
			}
		}
	}()
	return policy.Watch(ctx)
}

// frontedSites is what fronts the configured sites: --upstream for every
// host, --route for the hosts named.
type frontedSites struct {
	handler http.Handler
	names   []string // a description of each site
	// stats has the Stats method of each site's proxy, by the value of the
	// metrics' site label: the host of its --route, or upstreamSiteLabel.
	stats map[string]func() proxy.Stats
}

// upstreamSiteLabel is the metrics' site label of --upstream, which fronts
// every host without a --route.
const upstreamSiteLabel = "*"

// fronting returns what fronts the configured sites; the sites never get
// the cookie named visitorCookie.
func fronting(o options, logger *slog.Logger, visitorCookie string) (frontedSites, error) {
	cfg := proxy.Config{ScriptPath: visitorScriptPath, Logger: logger, TrustedProxies: o.trustedProxies.Proxies, OwnCookies: []string{visitorCookie}}
	f := frontedSites{stats: make(map[string]func() proxy.Stats)}
	newProxy := func(flagName, raw, site string) (*proxy.Proxy, error) {
		u, err := url.Parse(raw)
		if err != nil {
			return nil, fmt.Errorf("%s %q is not a URL: %w", flagName, raw, err)
		}
		p, err := proxy.New(u, cfg)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", flagName, err)
		}
		f.stats[site] = p.Stats
		return p, nil
	}
	var fallback http.Handler
	if o.upstream != "" {
		p, err := newProxy("--upstream", o.upstream, upstreamSiteLabel)
		if err != nil {
			return frontedSites{}, err
		}
		fallback = p
		f.names = append(f.names, o.upstream)
	}
	if len(o.routes) == 0 {
		f.handler = fallback
		return f, nil
	}
	routes := make(map[string]http.Handler, len(o.routes))
	for _, r := range o.routes {
		host, err := proxy.RouteHost(r.host)
		if err != nil {
			return frontedSites{}, fmt.Errorf("--route: %w", err)
		}
		if _, dup := routes[host]; dup {
			return frontedSites{}, fmt.Errorf("--route: host %s is given twice", r.host)
		}
		p, err := newProxy("--route "+r.host, r.upstream, host)
		if err != nil {
			return frontedSites{}, err
		}
		routes[host] = p
		f.names = append(f.names, r.host+" → "+r.upstream)
	}
	router, err := proxy.NewRouter(routes, fallback)
	if err != nil {
		return frontedSites{}, fmt.Errorf("--route: %w", err)
	}
	f.handler = router
	return f, nil
}

// Limits of the visitor and agent listeners' servers, on connections that
// browsers (or anyone) open: the headers of a request must arrive within
// listenerHeaderTimeout, and a kept-alive connection without a request
// for listenerIdleTimeout is closed (nginx's keepalive_timeout is 75 s).
// Without the latter, idle connections, a goroutine and buffers each, were
// never closed. Neither bounds a request in progress (a long download, a
// server-sent event stream) or a WebSocket. An HTTP/2 connection whose
// client takes no byte for proxy.DefaultSendTimeout is closed
// (WriteByteTimeout), as the proxy ends an HTTP/1.x response whose write
// waits that long (proxy.Config.SendTimeout).
const (
	listenerHeaderTimeout = 10 * time.Second
	listenerIdleTimeout   = 2 * time.Minute
)

// listenerServer returns the server of a listener for h, with the limits
// above, logging net/http's errors to logger as warnings.
func listenerServer(h http.Handler, logger *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: listenerHeaderTimeout,
		IdleTimeout:       listenerIdleTimeout,
		HTTP2:             &http.HTTP2Config{WriteByteTimeout: proxy.DefaultSendTimeout},
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
}

// displayAddr turns a listener address into one a browser can open:
// an unspecified host (":8080", "[::]:8080") becomes localhost.
func displayAddr(addr net.Addr) string {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return addr.String()
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}

func randomToken() string {
	b := make([]byte, 18)
	rand.Read(b) // never fails (crypto/rand)
	return strings.TrimRight(base64.RawURLEncoding.EncodeToString(b), "=")
}

// randomKey signs visitor cookies for this process's lifetime; a restart
// starts new sessions.
func randomKey() []byte {
	b := make([]byte, session.MinKeyBytes)
	rand.Read(b)
	return b
}
