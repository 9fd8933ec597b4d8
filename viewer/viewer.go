// Package viewer is the agent listener: sign-in, the dashboard of live
// sessions, the live session view, and the REST API (docs/api.md). Nothing
// here reaches the fronted site; everything an agent sees comes from the
// session hub.
package viewer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/cobrowse/cobrowse/audit"
	"github.com/cobrowse/cobrowse/browserpool"
	"github.com/cobrowse/cobrowse/internal/forwarded"
	"github.com/cobrowse/cobrowse/session"
	"github.com/cobrowse/cobrowse/web"
)

// Config configures the agent listener.
type Config struct {
	// Hub is the session hub agents watch. Required.
	Hub *session.Hub
	// Token is the agent token: a Bearer credential for the API and the
	// secret agents sign in with. Required; at least 16 characters.
	Token string
	// Logger receives structured logs; nil means slog.Default().
	Logger *slog.Logger
	// Audit receives sign-ins and agents joining and leaving sessions; nil
	// records nothing.
	Audit *audit.Log
	// Renderer gives the Rendered mode of the session view and screenshots;
	// nil means this server renders nothing and says so to agents.
	Renderer browserpool.Rendering
	// Assets answers GET /api/sessions/{id}/asset, from which DOM mode
	// loads the replayed page's images, fonts, stylesheets and media; nil
	// answers 503 there, and those do not load in DOM mode.
	Assets AssetSource
	// AssetCache serves the asset cache by hash under /assets/
	// (assets.Cache.Handler); nil serves nothing there.
	AssetCache http.Handler
	// Metrics serves GET /metrics (the Prometheus exposition) to callers
	// holding the agent token, like the API; nil serves nothing there.
	Metrics http.Handler
	// Ready reports whether the server takes traffic: GET /readyz answers
	// 200 when it returns nil and 503 with the error otherwise (and always
	// after Shutdown). Nil means ready. /readyz and /healthz need no token,
	// for load balancers and orchestrators.
	Ready func() error
	// TrustedProxies are the TLS-terminating proxies in front of the agent
	// listener (--trusted-proxy): behind them the sign-in cookie is Secure
	// when the agent's browser used https, and logs and the audit trail
	// name the agent's address rather than the proxy's. The zero value
	// trusts no one.
	TrustedProxies forwarded.Proxies
}

// MinTokenLength is the shortest agent token New accepts.
const MinTokenLength = 16

// Server serves the agent listener. It is an http.Handler.
type Server struct {
	hub      *session.Hub
	auth     auth
	log      *slog.Logger
	audit    *audit.Log
	renderer browserpool.Rendering
	trusted  forwarded.Proxies
	assets   AssetSource
	mux      *http.ServeMux
	static   http.Handler
	ready    func() error
	sockets  *sockets
}

// New returns the agent listener's handler.
func New(cfg Config) (*Server, error) {
	if cfg.Hub == nil {
		return nil, errors.New("viewer: a session hub is required")
	}
	if len(cfg.Token) < MinTokenLength {
		return nil, fmt.Errorf("the agent token must be at least %d characters (got %d); leave --agent-token empty to have one generated", MinTokenLength, len(cfg.Token))
	}
	if err := web.Check(); err != nil {
		return nil, err
	}
	s := &Server{
		hub:      cfg.Hub,
		auth:     newAuth(cfg.Token),
		log:      cfg.Logger,
		audit:    cfg.Audit,
		renderer: cfg.Renderer,
		trusted:  cfg.TrustedProxies,
		assets:   cfg.Assets,
		mux:      http.NewServeMux(),
		static:   http.StripPrefix("/static/", http.FileServerFS(filesOnly{web.Agent()})),
		ready:    cfg.Ready,
		sockets:  newSockets(),
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.routes()
	if cfg.AssetCache != nil {
		s.mux.Handle("GET /assets/", s.api(func(w http.ResponseWriter, r *http.Request) error {
			http.StripPrefix("/assets", cfg.AssetCache).ServeHTTP(w, r)
			return nil
		}))
	}
	if cfg.Metrics != nil {
		s.mux.Handle("GET /metrics", s.api(func(w http.ResponseWriter, r *http.Request) error {
			cfg.Metrics.ServeHTTP(w, r)
			return nil
		}))
	}
	return s, nil
}

func (s *Server) routes() {
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) })
	s.mux.HandleFunc("GET /readyz", s.readyz)
	s.mux.HandleFunc("GET /login", s.login)
	s.mux.HandleFunc("POST /login", s.login)
	s.mux.HandleFunc("POST /logout", s.logout)
	s.mux.Handle("GET /static/", s.static)

	s.mux.Handle("GET /{$}", s.page("dashboard.html"))
	s.mux.Handle("GET /sessions/{id}", s.page("session.html"))

	s.mux.Handle("GET /api/server", s.api(s.serverInfo))
	s.mux.Handle("GET /api/sessions", s.api(s.listSessions))
	s.mux.Handle("GET /api/sessions/stream", s.api(s.streamSessions))
	s.mux.Handle("GET /api/sessions/{id}", s.api(s.getSession))
	s.mux.Handle("GET /api/sessions/{id}/events", s.api(s.sessionEvents))
	s.mux.Handle("GET /api/sessions/{id}/live", s.api(s.live))
	s.mux.Handle("POST /api/join", s.api(s.joinByCode))
	s.mux.Handle("GET /api/sessions/{id}/render", s.api(s.render))
	s.mux.Handle("GET /api/sessions/{id}/screenshot.png", s.api(s.screenshot))
	s.mux.Handle("GET /api/sessions/{id}/rendered.html", s.api(s.renderedDocument))
	s.mux.Handle("GET /api/sessions/{id}/asset", s.api(s.asset))
}

// contentSecurityPolicy confines the agent console. The replayed page lives
// in an about:blank iframe that inherits this policy. Its styles are inline
// (rrweb inlines stylesheets); the player points its stylesheets, images,
// fonts and media at the asset route, and the asset route points a
// stylesheet's url()s at itself, so everything loads from here or from data:
// and blob: URLs. A URL the player missed does not load: the agent's browser
// never contacts the visitor's site or another origin. Scripts only ever
// come from here.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; " +
	"style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; " +
	"font-src 'self' data:; media-src 'self' data: blob:; connect-src 'self'; " +
	"frame-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

// ServeHTTP gives each request an id (RequestIDHeader), which its log
// lines carry, and logs it at debug level when it is answered.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	began := time.Now()
	h := w.Header()
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	r = withRequestID(w, r)
	rec := &statusRecorder{ResponseWriter: w}
	defer s.logRequest(r, rec, began)
	s.mux.ServeHTTP(rec, r)
}

// readyz answers 200 while the server takes traffic, and 503 before it is
// ready and once it shuts down, so that a load balancer sends new agents
// and visitors elsewhere.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	select {
	case <-s.sockets.stopping:
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	default:
	}
	if s.ready != nil {
		if err := s.ready(); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
	}
	w.Write([]byte("ok\n"))
}

// filesOnly hides directories, so /static/ serves files but lists nothing.
type filesOnly struct{ fs.FS }

func (f filesOnly) Open(name string) (fs.File, error) {
	file, err := f.FS.Open(name)
	if err != nil {
		return nil, err
	}
	if info, err := file.Stat(); err != nil || info.IsDir() {
		file.Close()
		return nil, fs.ErrNotExist
	}
	return file, nil
}

// page serves an agent page to a signed-in agent and sends anyone else to
// the sign-in page.
func (s *Server) page(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.auth.authenticated(r, time.Now()) {
			http.Redirect(w, r, loginURL(r.URL.RequestURI(), false), http.StatusSeeOther)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		s.serveFile(w, r, name)
	})
}

func (s *Server) serveFile(w http.ResponseWriter, r *http.Request, name string) {
	content, err := fs.ReadFile(web.Agent(), name)
	if err != nil {
		s.logFor(r).Error("agent page missing from the binary", "page", name, "err", err)
		http.Error(w, "page missing from this build", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(content))
}

// login signs an agent in with the token from the query (the URL that
// `cobrowse serve` prints) or from the sign-in form, then sends it to the
// page it asked for ("next", a local path) or the dashboard.
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	token := r.URL.Query().Get("token")
	if r.Method == http.MethodPost {
		r.Body = http.MaxBytesReader(w, r.Body, 4096)
		token = r.PostFormValue("token")
	}
	next := localPath(r.FormValue("next"))
	if token == "" {
		if s.auth.authenticated(r, time.Now()) {
			http.Redirect(w, r, next, http.StatusSeeOther)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		s.serveFile(w, r, "login.html")
		return
	}
	remote := s.trusted.Client(r)
	if !s.auth.tokenOK(token) {
		s.logFor(r).Warn("agent sign-in with a wrong token", "remote", remote)
		s.audit.Record("agent.login", "remote", remote, "ok", false)
		http.Redirect(w, r, loginURL(next, true), http.StatusSeeOther)
		return
	}
	s.audit.Record("agent.login", "remote", remote, "ok", true)
	http.SetCookie(w, s.auth.loginCookie(time.Now(), s.trusted.Scheme(r) == "https"))
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// loginURL is the sign-in page that returns to next afterwards.
func loginURL(next string, failed bool) string {
	q := url.Values{}
	if failed {
		q.Set("error", "1")
	}
	if next = localPath(next); next != "/" {
		q.Set("next", next)
	}
	if len(q) == 0 {
		return "/login"
	}
	return "/login?" + q.Encode()
}

// localPath returns p if it is a path on this server, and "/" otherwise, so
// that "next" can never send an agent to another site ("//evil.example",
// "https://…", "/\\evil.example").
func localPath(p string) string {
	u, err := url.Parse(p)
	if err != nil || u.Scheme != "" || u.Host != "" || !strings.HasPrefix(p, "/") ||
		strings.HasPrefix(p, "//") || strings.HasPrefix(p, "/\\") {
		return "/"
	}
	return p
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: agentCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// api wraps an API handler: the caller must hold the agent token (Bearer) or
// a login cookie, and errors are JSON.
func (s *Server) api(h func(http.ResponseWriter, *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.auth.authenticated(r, time.Now()) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="cobrowse"`)
			writeError(w, http.StatusUnauthorized, "sign in, or send the agent token as 'Authorization: Bearer <token>'")
			return
		}
		if err := h(w, r); err != nil {
			switch {
			case errors.Is(err, session.ErrNoSession):
				writeError(w, http.StatusNotFound, err.Error())
			default:
				s.logFor(r).Error("API request failed", "path", r.URL.Path, "err", err)
				writeError(w, http.StatusInternalServerError, "internal error; see the server log")
			}
		}
	})
}

func writeError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	return json.NewEncoder(w).Encode(v)
}

// serverInfo tells the console what this server offers: how agents join
// sessions (the dashboard shows the support-code field with "code") and
// whether it renders (the session view's Rendered mode).
func (s *Server) serverInfo(w http.ResponseWriter, r *http.Request) error {
	return writeJSON(w, map[string]any{"join": s.hub.JoinMode(), "render": s.renderer != nil})
}

func (s *Server) listSessions(w http.ResponseWriter, r *http.Request) error {
	return writeJSON(w, s.hub.Sessions())
}

func (s *Server) getSession(w http.ResponseWriter, r *http.Request) error {
	info, err := s.hub.Lookup(r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, info)
}

// sessionEvents returns the agent-visible events of the page the session's
// agents follow, as an rrweb-compatible JSON array (loadable by rrweb's
// Replayer or rrweb-player).
func (s *Server) sessionEvents(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	events, err := s.hub.Events(r.Context(), id)
	if errors.Is(err, session.ErrSessionMoved) {
		err = fmt.Errorf("session %q: %w (its node did not answer)", id, session.ErrNoSession)
	}
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Disposition", `inline; filename="`+id+`.events.json"`)
	buf := bytes.NewBuffer(make([]byte, 0, 64<<10))
	buf.WriteByte('[')
	for i, e := range events {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.Write(e)
	}
	buf.WriteString("]\n")
	_, err = w.Write(buf.Bytes())
	return err
}

// sessionsStreamInterval is the shortest time between two dashboard updates:
// a busy visitor changes LastActivity with every batch.
const sessionsStreamInterval = 250 * time.Millisecond

// streamSessions sends the session list as a server-sent event named
// "sessions" at once and after every change, at most once per
// sessionsStreamInterval, until the dashboard goes away or the server shuts
// down (the browser's EventSource reconnects).
func (s *Server) streamSessions(w http.ResponseWriter, r *http.Request) error {
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	changes, stop := s.hub.Watch()
	defer stop()
	keepAlive := time.NewTicker(15 * time.Second)
	defer keepAlive.Stop()
	for {
		list, err := json.Marshal(s.hub.Sessions())
		if err != nil {
			return err
		}
		if _, err := fmt.Fprintf(w, "event: sessions\ndata: %s\n\n", list); err != nil || rc.Flush() != nil {
			return nil // the dashboard went away
		}
		earliestNext := time.After(sessionsStreamInterval)
	wait:
		for {
			select {
			case <-r.Context().Done():
				return nil
			case <-s.sockets.stopping:
				return nil
			case <-keepAlive.C:
				if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil || rc.Flush() != nil {
					return nil
				}
			case <-changes:
				break wait
			}
		}
		select { // a change came: send it, but not sooner than the interval allows
		case <-r.Context().Done():
			return nil
		case <-s.sockets.stopping:
			return nil
		case <-earliestNext:
		}
	}
}
