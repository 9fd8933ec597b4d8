package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/cobrowse/cobrowse/assets"
	"github.com/cobrowse/cobrowse/browserpool"
	"github.com/cobrowse/cobrowse/session"
)

// renderOptions are the flags of Rendered mode: the Chromium pool and the
// screencast.
type renderOptions struct {
	enabled  bool
	chrome   string
	browsers int
	tabs     int
	queue    int
	wait     time.Duration
	quality  int
	maxSize  frameSize
}

// frameSize is a --render-max-size WIDTHxHEIGHT.
type frameSize struct{ width, height int }

func (f *frameSize) String() string { return fmt.Sprintf("%dx%d", f.width, f.height) }

func (f *frameSize) Set(v string) error {
	w, h, ok := strings.Cut(strings.ToLower(v), "x")
	width, errW := strconv.Atoi(w)
	height, errH := strconv.Atoi(h)
	if !ok || errW != nil || errH != nil || width < 16 || height < 16 || width > 7680 || height > 4320 {
		return fmt.Errorf("%q is not WIDTHxHEIGHT in pixels (16x16 to 7680x4320), e.g. 1280x720", v)
	}
	f.width, f.height = width, height
	return nil
}

// assetOptions are the flags of the server-side fetching of the replayed
// pages' assets, which both modes use.
type assetOptions struct {
	allow        listFlag
	deny         listFlag
	allowPrivate listFlag
	cacheMiB     int
}

// listFlag is a flag that may be repeated and takes comma-separated values.
type listFlag []string

func (*listFlag) repeatable() {}

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	for item := range strings.SplitSeq(v, ",") {
		if item = strings.TrimSpace(item); item != "" {
			*l = append(*l, item)
		}
	}
	return nil
}

func (o *renderOptions) register(fs *flag.FlagSet) {
	fs.BoolVar(&o.enabled, "render", false, "offer agents the Rendered mode: replay sessions in headless Chromium on this server and stream its pixels (needs Chromium: see --chrome); in a cluster (--nats) without it, the cluster's render workers do")
	o.registerPool(fs)
}

// registerPool adds the flags of the Chromium pool and the screencast.
func (o *renderOptions) registerPool(fs *flag.FlagSet) {
	fs.StringVar(&o.chrome, "chrome", "", "Chromium `binary` for --render (default $CHROME_PATH, else "+browserpool.DefaultChromePath+"; never downloaded)")
	fs.IntVar(&o.browsers, "render-browsers", 1, "Chromium `processes` for --render")
	fs.IntVar(&o.tabs, "render-tabs", 4, "rendered sessions per Chromium process (`tabs`)")
	fs.IntVar(&o.queue, "render-queue", 8, "rendered views that may wait for a free tab when all are busy (`n`)")
	fs.DurationVar(&o.wait, "render-wait", 5*time.Second, "how long a rendered view waits for a free tab before the agent is told that capacity is full (`duration`)")
	fs.IntVar(&o.quality, "render-quality", 70, "JPEG `quality` (1-100) of the rendered view's frames")
	o.maxSize = frameSize{1920, 1080}
	fs.Var(&o.maxSize, "render-max-size", "largest rendered frame, `WIDTHxHEIGHT` in pixels; larger viewports are scaled down to fit")
}

func (o *assetOptions) register(fs *flag.FlagSet) {
	fs.Var(&o.allow, "asset-allow", "`hosts` (globs, comma-separated, repeatable) whose assets the server may fetch for a replayed page besides the fronted site, in DOM and Rendered mode; default any public host")
	fs.Var(&o.deny, "asset-deny", "`hosts` (globs, comma-separated, repeatable) whose assets the server never fetches")
	fs.Var(&o.allowPrivate, "asset-allow-private", "`host:port` destinations (comma-separated, repeatable) at loopback or private addresses that the server may fetch assets from anyway (intranet CDNs); cloud metadata addresses never")
	fs.IntVar(&o.cacheMiB, "asset-cache-mib", 256, "size of the asset cache shared by all sessions, in `MiB`")
}

// assetService fetches the replayed pages' subresources on the server, as
// each session's visitor gets them: for agents' browsers in DOM mode
// (viewer.AssetSource) and for the renderer's tabs (browserpool.Resolver).
// It always runs: neither mode lets an agent's browser contact the site.
type assetService struct {
	fetcher *assets.Fetcher
	cache   *assets.Cache
	cookies *assets.Cookies
	// remote, in a cluster, fetches the assets of sessions other nodes
	// hold from those nodes, which have their visitors' cookies
	// (natsbus.Bus.Asset); ok false means this node holds the session.
	remote func(ctx context.Context, req assets.Request) (a *assets.Asset, ok bool, err error)
}

// newAssetService starts the asset fetcher. site is the fronting handler
// (the proxy): a page's same-origin assets are fetched through it, as the
// visitor's browser did.
func newAssetService(o assetOptions, site http.Handler, logger *slog.Logger) (*assetService, error) {
	if o.cacheMiB <= 0 {
		return nil, fmt.Errorf("--asset-cache-mib is %d; it must be 1 or more", o.cacheMiB)
	}
	cache := assets.NewCache(int64(o.cacheMiB) << 20)
	fetcher, err := assets.New(assets.Config{
		Local:        site,
		Allow:        o.allow,
		Deny:         o.deny,
		AllowPrivate: o.allowPrivate,
		Cache:        cache,
		Logger:       logger.With("component", "assets"),
	})
	if err != nil {
		return nil, fmt.Errorf("--asset-allow/--asset-deny/--asset-allow-private: %w", err)
	}
	return &assetService{fetcher: fetcher, cache: cache, cookies: assets.NewCookies(0)}, nil
}

// Forget drops what the service keeps for a session that ended: the
// visitor's cookies and the session's cache index (and the bodies only it
// used).
func (s *assetService) Forget(sessionID string) {
	s.cookies.Forget(sessionID)
	s.cache.ForgetSession(sessionID)
}

// RememberCookie records the Cookie header a visitor's browser sent to the
// fronted site host, so that the visitor's assets are fetched as that
// visitor (frontVisitors calls it for every request).
func (s *assetService) RememberCookie(sessionID, host, cookieHeader string) {
	s.cookies.Remember(sessionID, host, cookieHeader)
}

// Asset fetches req as the session's visitor would get it: from the node
// holding the session if another does, else here (Local).
func (s *assetService) Asset(ctx context.Context, req assets.Request) (*assets.Asset, error) {
	if s.remote != nil {
		if a, ok, err := s.remote(ctx, req); ok {
			return a, err
		}
	}
	return s.Local(ctx, req)
}

// Local fetches req with the visitor's remembered Cookie header for the
// URL's host (sent only to the visitor's own site; see assets.Request).
func (s *assetService) Local(ctx context.Context, req assets.Request) (*assets.Asset, error) {
	if u, err := url.Parse(req.URL); err == nil {
		req.Cookie = s.cookies.Lookup(req.SessionID, u.Host)
	}
	return s.fetcher.Fetch(ctx, req)
}

// Resolve answers the renderer's subresource requests.
func (s *assetService) Resolve(ctx context.Context, req browserpool.Subresource) (*browserpool.Resource, error) {
	return resolveWith(ctx, req, s.Asset)
}

// resolveWith answers a renderer's subresource request with fetch.
func resolveWith(ctx context.Context, req browserpool.Subresource, fetch func(context.Context, assets.Request) (*assets.Asset, error)) (*browserpool.Resource, error) {
	a, err := fetch(ctx, assets.Request{
		URL:       req.URL,
		PageURL:   req.PageURL,
		Header:    req.Header,
		SessionID: req.SessionID,
	})
	if err != nil {
		return nil, err
	}
	return &browserpool.Resource{Status: a.Status, Header: a.Header, Body: a.Body}, nil
}

// renderService is what Rendered mode runs: nil when --render is off.
type renderService struct {
	pool     *browserpool.Pool
	renderer *browserpool.Renderer
}

// startRendering starts the Chromium pool and the renderer, whose tabs get
// their subresources from resolver.
func startRendering(ctx context.Context, o renderOptions, hub *session.Hub, resolver browserpool.Resolver, logger *slog.Logger) (*renderService, error) {
	pool, err := browserpool.New(ctx, browserpool.Config{
		ChromePath:     o.chrome,
		Browsers:       o.browsers,
		TabsPerBrowser: o.tabs,
		QueueLength:    o.queue,
		WaitTimeout:    o.wait,
		Logger:         logger,
	})
	if err != nil {
		return nil, err
	}
	renderer, err := browserpool.NewRenderer(browserpool.RenderConfig{
		Pool: pool,
		Open: func(sessionID string) (browserpool.Feed, error) {
			return hub.Join(ctx, sessionID, "", false)
		},
		Resolver: resolver,
		SessionEnded: func(err error) bool {
			return errors.Is(err, session.ErrSessionEnded) || errors.Is(err, session.ErrNoSession)
		},
		JPEGQuality: o.quality,
		MaxWidth:    o.maxSize.width,
		MaxHeight:   o.maxSize.height,
		Logger:      logger.With("component", "renderer"),
	})
	if err != nil {
		pool.Close()
		return nil, err
	}
	return &renderService{pool: pool, renderer: renderer}, nil
}

// Close stops every rendering and the browsers.
func (s *renderService) Close() error {
	if s == nil {
		return nil
	}
	s.renderer.Close()
	return s.pool.Close()
}

// Rendering is the renderer, or nil when this process renders nothing.
func (s *renderService) Rendering() browserpool.Rendering {
	if s == nil {
		return nil
	}
	return s.renderer.Rendering()
}
