package main

import (
	"context"
	"crypto/rand"
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
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/cobrowse/cobrowse/demo"
	"github.com/cobrowse/cobrowse/proxy"
	"github.com/cobrowse/cobrowse/session"
	"github.com/cobrowse/cobrowse/viewer"
	"github.com/cobrowse/cobrowse/web"
)

// snippet is what the proxy injects into every HTML page. defer: the page
// never waits for it, and rrweb starts once the document is parsed.
const snippet = `<script src="/__cobrowse/visitor.js" defer></script>`

// options are the flags shared by serve and demo.
type options struct {
	upstream    string
	listen      string
	agentListen string
	agentToken  string
	logLevel    slog.Level
}

func (o *options) register(fs *flag.FlagSet, defaultListen string) {
	fs.StringVar(&o.listen, "listen", defaultListen, "visitor listener `address`: the fronted site, the visitor script and its WebSocket")
	fs.StringVar(&o.agentListen, "agent-listen", "127.0.0.1:8081", "agent listener `address`: console, REST API (keep it private)")
	fs.StringVar(&o.agentToken, "agent-token", os.Getenv("COBROWSE_AGENT_TOKEN"), "agent `token` for sign-in and the API (default $COBROWSE_AGENT_TOKEN; generated and printed if empty)")
	fs.TextVar(&o.logLevel, "log-level", slog.LevelInfo, "log `level`: debug, info, warn or error")
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
	fs := newFlagSet("serve", "Usage: cobrowse serve --upstream URL [flags]\n\nFronts the site at URL: visitors browse it through --listen, agents watch them on --agent-listen.", stderr)
	fs.StringVar(&o.upstream, "upstream", "", "`URL` of the site to front, e.g. https://www.example.com (required)")
	o.register(fs, ":8080")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.upstream == "" {
		fs.Usage()
		return errors.New("--upstream is required: the URL of the site to front")
	}
	return start(ctx, o, stdout, stderr, nil)
}

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o options
	fs := newFlagSet("demo", "Usage: cobrowse demo [flags]\n\nStarts the built-in demo shop on a loopback port and fronts it.", stderr)
	o.register(fs, "127.0.0.1:8080")
	if err := fs.Parse(args); err != nil {
		return err
	}
	shop, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("starting the demo shop: %w", err)
	}
	o.upstream = "http://" + shop.Addr().String()
	shopServer := &http.Server{Handler: demo.New(), ReadHeaderTimeout: 10 * time.Second}
	return start(ctx, o, stdout, stderr, func(g *errgroup.Group) {
		g.Go(func() error { return serveUntilDone(ctx, shopServer, shop) })
	})
}

// start wires the hub, the proxy and the agent console, listens, prints
// where to go, and serves until ctx is done. extra adds servers to run
// alongside (the demo shop).
func start(ctx context.Context, o options, stdout, stderr io.Writer, extra func(*errgroup.Group)) error {
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: o.logLevel}))
	upstream, err := url.Parse(o.upstream)
	if err != nil {
		return fmt.Errorf("--upstream %q is not a URL: %w", o.upstream, err)
	}
	generated := o.agentToken == ""
	if generated {
		o.agentToken = randomToken()
	}

	hub := session.NewHub(session.Config{Logger: logger})
	identity, err := session.NewIdentity(randomKey())
	if err != nil {
		return err
	}
	front, err := proxy.New(upstream, proxy.Config{Snippet: []byte(snippet), Logger: logger})
	if err != nil {
		return err
	}
	visitorScript, err := web.VisitorScriptHandler()
	if err != nil {
		return err
	}
	agents, err := viewer.New(viewer.Config{Hub: hub, Token: o.agentToken, Logger: logger})
	if err != nil {
		return err
	}

	visitorMux := http.NewServeMux()
	visitorMux.Handle("GET /__cobrowse/visitor.js", visitorScript)
	visitorMux.Handle("GET "+session.VisitorPath, &session.VisitorHandler{Hub: hub, Identity: identity, Logger: logger})
	visitorMux.Handle("/__cobrowse/", http.NotFoundHandler())
	visitorMux.Handle("/", front)

	visitorLn, err := net.Listen("tcp", o.listen)
	if err != nil {
		return fmt.Errorf("visitor listener: %w (choose another --listen address)", err)
	}
	agentLn, err := net.Listen("tcp", o.agentListen)
	if err != nil {
		visitorLn.Close()
		return fmt.Errorf("agent listener: %w (choose another --agent-listen address)", err)
	}

	visitorURL := "http://" + displayAddr(visitorLn.Addr())
	agentURL := "http://" + displayAddr(agentLn.Addr())
	fmt.Fprintf(stdout, "cobrowse %s fronting %s\n", version, upstream)
	fmt.Fprintf(stdout, "  visitor URL:   %s/\n", visitorURL)
	if generated {
		fmt.Fprintf(stdout, "  agent sign-in: %s/login?token=%s   (generated token; pass --agent-token to choose one)\n", agentURL, o.agentToken)
	} else {
		fmt.Fprintf(stdout, "  agent sign-in: %s/login   (with your --agent-token)\n", agentURL)
	}

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { hub.Run(gctx); return nil })
	g.Go(func() error {
		return serveUntilDone(gctx, &http.Server{Handler: visitorMux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)}, visitorLn)
	})
	g.Go(func() error {
		return serveUntilDone(gctx, &http.Server{Handler: agents, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)}, agentLn)
	})
	if extra != nil {
		extra(g)
	}
	err = g.Wait()
	logger.Info("stopped")
	return err
}

// serveUntilDone serves on ln until ctx is done, then shuts down gracefully:
// requests in flight get a few seconds; hijacked WebSockets are closed with
// the listener's process.
func serveUntilDone(ctx context.Context, srv *http.Server, ln net.Listener) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serving on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		srv.Close()
	}
	return nil
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
