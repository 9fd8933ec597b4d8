package browserpool

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Feed is a session's stream of redacted hub messages ("reset", "events",
// "info"; docs/protocol.md), the same stream an agent's DOM-mode view reads.
// *session.Subscriber implements it. Next returns ErrFeedEnded (or an error
// wrapping it) once the session is over.
type Feed interface {
	Next(ctx context.Context) ([][]byte, error)
	Close()
}

// Resource is what a Resolver answers for one subresource of a replayed page.
type Resource struct {
	Status int
	Header http.Header
	Body   []byte
}

// Subresource is a GET of an image, stylesheet, font or media file that a
// replayed page asks for.
type Subresource struct {
	SessionID string
	// PageURL is the visitor's page as its events describe it (rrweb's Meta
	// href): a URL of the proxy's public origin, unless the visitor's script
	// lies. Same-origin subresources come from the fronted site with the
	// visitor's cookies.
	PageURL string
	URL     string      // absolute
	Header  http.Header // the tab's request headers (Accept, User-Agent, ...)
}

// Resolver fetches the subresources that a replayed page asks for, on the
// server, as the visitor's browser would have (package assets does it with
// the visitor's cookies, its SSRF rules and its cache). The renderer asks
// only for GETs of images, stylesheets, fonts and media; it decides nothing
// about what is allowed.
type Resolver interface {
	Resolve(ctx context.Context, req Subresource) (*Resource, error)
}

// RenderConfig configures a Renderer. A zero field takes the default that its
// comment names.
type RenderConfig struct {
	// Pool provides the tabs. Required.
	Pool *Pool

	// Open returns the redacted feed of a session, starting with a "reset"
	// (session.Session.Subscribe). The renderer opens a new feed whenever it
	// rebuilds a session's tab. Required.
	Open func(sessionID string) (Feed, error)

	// Resolver answers the replayed page's subresource requests. Required.
	Resolver Resolver

	// SessionEnded reports whether an error of Open or Feed.Next means that
	// the session is over (rather than a failure worth a retry).
	SessionEnded func(error) bool

	// JPEGQuality of screencast frames, 1 to 100. Default 70.
	JPEGQuality int

	// MaxWidth and MaxHeight bound a screencast frame in pixels; larger
	// viewports are scaled down. Default 1920×1080.
	MaxWidth, MaxHeight int

	// Linger is how long a session's tab keeps rendering after its last
	// viewer left, so that an agent who switches back or reloads gets the
	// view at once. Default 20s.
	Linger time.Duration

	// ResolveTimeout bounds the answer to one subresource request. Default 15s.
	ResolveTimeout time.Duration

	// Logger receives the renderer's logs. Nil means the pool's logger.
	Logger *slog.Logger
}

func (c RenderConfig) withDefaults() (RenderConfig, error) {
	var errs []error
	if c.Pool == nil {
		errs = append(errs, errors.New("Pool is required"))
	}
	if c.Open == nil {
		errs = append(errs, errors.New("Open is required"))
	}
	if c.Resolver == nil {
		errs = append(errs, errors.New("Resolver is required"))
	}
	if c.SessionEnded == nil {
		c.SessionEnded = func(error) bool { return false }
	}
	if c.JPEGQuality < 0 || c.JPEGQuality > 100 {
		errs = append(errs, fmt.Errorf("JPEGQuality is %d; it must be 1 to 100 (or 0 for the default, 70)", c.JPEGQuality))
	}
	if c.JPEGQuality == 0 {
		c.JPEGQuality = 70
	}
	if c.MaxWidth < 0 || c.MaxHeight < 0 {
		errs = append(errs, fmt.Errorf("MaxWidth×MaxHeight is %d×%d; both must be positive (or 0 for the default, 1920×1080)", c.MaxWidth, c.MaxHeight))
	}
	if c.MaxWidth <= 0 {
		c.MaxWidth = 1920
	}
	if c.MaxHeight <= 0 {
		c.MaxHeight = 1080
	}
	if c.Linger <= 0 {
		c.Linger = 20 * time.Second
	}
	if c.ResolveTimeout <= 0 {
		c.ResolveTimeout = 15 * time.Second
	}
	if c.Logger == nil && c.Pool != nil {
		c.Logger = c.Pool.cfg.Logger
	}
	if len(errs) > 0 {
		return c, fmt.Errorf("browserpool: invalid RenderConfig: %w", errors.Join(errs...))
	}
	return c, nil
}

// Renderer replays sessions in leased tabs and screencasts them: the
// Rendered mode of the agent view. One tab renders a session for all of its
// viewers; it is leased when the first viewer comes, rebuilt from a fresh
// feed (the hub's snapshot and tail) when its tab or browser is lost, and
// released Linger after the last viewer left.
type Renderer struct {
	cfg RenderConfig
	log *slog.Logger

	mu         sync.Mutex
	renderings map[string]*rendering
	closed     bool
	wg         sync.WaitGroup

	started atomic.Uint64 // renderings started
	frames  atomic.Uint64 // screencast frames received, all renderings
}

// RenderStats are the Renderer's counters since NewRenderer, and its
// renderings now.
type RenderStats struct {
	Sessions int    // sessions rendering now (watched, or lingering after the last viewer)
	Started  uint64 // renderings started
	Frames   uint64 // screencast frames received from the tabs (rate() of it is the fps)
}

// Stats returns the Renderer's counters.
func (r *Renderer) Stats() RenderStats {
	return RenderStats{Sessions: r.Sessions(), Started: r.started.Load(), Frames: r.frames.Load()}
}

// NewRenderer returns a Renderer that leases its tabs from cfg.Pool.
func NewRenderer(cfg RenderConfig) (*Renderer, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Renderer{cfg: cfg, log: cfg.Logger, renderings: map[string]*rendering{}}, nil
}

// ErrRendererClosed is returned by Watch after Close.
var ErrRendererClosed = errors.New("browserpool: the renderer is closed")

// Watch returns a viewer of the session's rendered view, starting its
// rendering if none runs. The viewer's first update says how the rendering
// stands; frames follow.
func (r *Renderer) Watch(sessionID string) (*Viewer, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, ErrRendererClosed
	}
	rd := r.renderings[sessionID]
	if rd == nil {
		rd = r.startLocked(sessionID)
	}
	return rd.addViewer(), nil
}

// Close stops every rendering, releases their tabs and waits for that. The
// pool stays open: its owner closes it.
func (r *Renderer) Close() {
	r.mu.Lock()
	r.closed = true
	for _, rd := range r.renderings {
		rd.stop()
	}
	r.mu.Unlock()
	r.wg.Wait()
}

// Sessions returns how many sessions are rendering now.
func (r *Renderer) Sessions() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.renderings)
}

func (r *Renderer) startLocked(sessionID string) *rendering {
	ctx, cancel := context.WithCancel(context.Background())
	rd := &rendering{
		r:       r,
		id:      sessionID,
		log:     r.log.With("session", sessionID),
		stop:    cancel,
		viewers: map[*Viewer]struct{}{},
		status:  Status{State: StateStarting},
		taken:   make(chan struct{}, 1),
	}
	r.renderings[sessionID] = rd
	r.started.Add(1)
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		rd.run(ctx)
		r.mu.Lock()
		if r.renderings[sessionID] == rd {
			delete(r.renderings, sessionID)
		}
		r.mu.Unlock()
		rd.finish()
	}()
	return rd
}

// Screenshot returns the session's rendered view as a PNG, starting a
// rendering if none runs and waiting (within ctx) for its first frame. It
// fails at once, with the reason, when no tab is available.
func (r *Renderer) Screenshot(ctx context.Context, sessionID string) ([]byte, error) {
	tab, done, err := r.shownTab(ctx, sessionID)
	if err != nil {
		return nil, err
	}
	defer done()
	return tab.screenshot(ctx)
}

// Document returns the document the session's rendered view shows (the
// replayed page, as HTML), like Screenshot: what the server's Chromium
// built from the redacted events, for an export or a check.
func (r *Renderer) Document(ctx context.Context, sessionID string) (string, error) {
	tab, done, err := r.shownTab(ctx, sessionID)
	if err != nil {
		return "", err
	}
	defer done()
	return tab.document(ctx)
}

// shownTab watches the session until its rendering shows a frame, and
// returns its tab and the func that stops watching.
func (r *Renderer) shownTab(ctx context.Context, sessionID string) (*replayTab, func(), error) {
	v, err := r.Watch(sessionID)
	if err != nil {
		return nil, nil, err
	}
	for {
		u, err := v.Next(ctx)
		if err != nil {
			v.Close()
			return nil, nil, fmt.Errorf("waiting for the rendered view: %w", err)
		}
		if s := u.Status; s != nil && (s.State == StateUnavailable || s.State == StateEnded) {
			v.Close()
			return nil, nil, &RenderError{Status: *s}
		}
		if u.Frame == nil {
			continue
		}
		v.rd.mu.Lock()
		tab := v.rd.tab
		v.rd.mu.Unlock()
		if tab != nil { // else the tab was lost meanwhile; the next one sends frames
			return tab, v.Close, nil
		}
	}
}

// RenderError is a rendering that cannot give a view, with its status.
type RenderError struct{ Status Status }

func (e *RenderError) Error() string {
	return "rendered view " + string(e.Status.State) + ": " + e.Status.Reason
}

// Rendering is the Rendered mode as the agent listener uses it: a
// Renderer in this process (Renderer.Rendering), or the render workers of
// a cluster (natsbus.RenderClient).
type Rendering interface {
	// Watch returns a view of the session's rendering, starting it if
	// none runs; its first update says how the rendering stands.
	Watch(sessionID string) (View, error)
	Screenshot(ctx context.Context, sessionID string) ([]byte, error)
	Document(ctx context.Context, sessionID string) (string, error)
}

// View is one agent's view of a session's rendering (*Viewer in this
// process): every change of status, and the newest frame.
type View interface {
	Next(ctx context.Context) (Update, error)
	Close()
}

// Rendering returns r as a Rendering.
func (r *Renderer) Rendering() Rendering { return localRendering{r} }

type localRendering struct{ *Renderer }

func (l localRendering) Watch(sessionID string) (View, error) {
	v, err := l.Renderer.Watch(sessionID)
	if err != nil {
		return nil, err // not a nil *Viewer in a non-nil View
	}
	return v, nil
}

// SessionIDs returns the sessions rendering now, watched or lingering.
func (r *Renderer) SessionIDs() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	ids := make([]string, 0, len(r.renderings))
	for id := range r.renderings {
		ids = append(ids, id)
	}
	return ids
}
