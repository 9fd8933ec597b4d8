package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/cobrowse/cobrowse/assets"
	"github.com/cobrowse/cobrowse/browserpool"
	"github.com/cobrowse/cobrowse/session"
)

// renderOptions are the flags of Rendered mode: the Chromium pool, the
// screencast, and the server-side fetching of the replayed pages' assets.
type renderOptions struct {
	enabled      bool
	chrome       string
	browsers     int
	tabs         int
	queue        int
	wait         time.Duration
	quality      int
	allow        listFlag
	deny         listFlag
	allowPrivate listFlag
	cacheMiB     int
}

// listFlag is a flag that may be repeated and takes comma-separated values.
type listFlag []string

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
	fs.BoolVar(&o.enabled, "render", false, "offer agents the Rendered mode: replay sessions in headless Chromium on this server and stream its pixels (needs Chromium: see --chrome)")
	fs.StringVar(&o.chrome, "chrome", "", "Chromium `binary` for --render (default $CHROME_PATH, else "+browserpool.DefaultChromePath+"; never downloaded)")
	fs.IntVar(&o.browsers, "render-browsers", 1, "Chromium `processes` for --render")
	fs.IntVar(&o.tabs, "render-tabs", 4, "rendered sessions per Chromium process (`tabs`)")
	fs.IntVar(&o.queue, "render-queue", 8, "rendered views that may wait for a free tab when all are busy (`n`)")
	fs.DurationVar(&o.wait, "render-wait", 5*time.Second, "how long a rendered view waits for a free tab before the agent is told that capacity is full (`duration`)")
	fs.IntVar(&o.quality, "render-quality", 70, "JPEG `quality` (1-100) of the rendered view's frames")
	fs.Var(&o.allow, "render-allow", "`hosts` (globs, comma-separated, repeatable) whose assets the renderer may fetch for a replayed page besides the fronted site; default any public host")
	fs.Var(&o.deny, "render-deny", "`hosts` (globs, comma-separated, repeatable) whose assets the renderer never fetches")
	fs.Var(&o.allowPrivate, "render-allow-private", "`host:port` destinations (comma-separated, repeatable) at loopback or private addresses that the renderer may fetch assets from anyway (intranet CDNs); cloud metadata addresses never")
	fs.IntVar(&o.cacheMiB, "asset-cache-mib", 256, "size of the asset cache shared by all rendered sessions, in `MiB`")
}

// renderService is what Rendered mode runs: nil when --render is off.
type renderService struct {
	pool     *browserpool.Pool
	renderer *browserpool.Renderer
	cache    *assets.Cache
	cookies  *assets.Cookies
	visitors *session.VisitorHandler
}

// startRendering starts the Chromium pool and the renderer. site is the
// fronting handler (the proxy): the renderer fetches a page's same-origin
// assets through it, as the visitor's browser did.
func startRendering(ctx context.Context, o renderOptions, site http.Handler, hub *session.Hub, visitors *session.VisitorHandler, logger *slog.Logger) (*renderService, error) {
	if !o.enabled {
		return nil, nil
	}
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
		return nil, fmt.Errorf("--render-allow/--render-deny/--render-allow-private: %w", err)
	}
	pool, err := browserpool.New(ctx, browserpool.Config{
		ChromePath:     o.chrome,
		Browsers:       o.browsers,
		TabsPerBrowser: o.tabs,
		QueueLength:    o.queue,
		WaitTimeout:    o.wait,
		Logger:         logger,
	})
	if err != nil {
		return nil, fmt.Errorf("--render: %w", err)
	}
	cookies := assets.NewCookies(0)
	renderer, err := browserpool.NewRenderer(browserpool.RenderConfig{
		Pool: pool,
		Open: func(sessionID string) (browserpool.Feed, error) {
			sess, err := hub.Session(sessionID)
			if err != nil {
				return nil, err
			}
			return sess.Subscribe()
		},
		Resolver: assetResolver{fetcher: fetcher, cookies: cookies},
		SessionEnded: func(err error) bool {
			return errors.Is(err, session.ErrSessionEnded) || errors.Is(err, session.ErrNoSession)
		},
		JPEGQuality: o.quality,
		Logger:      logger.With("component", "renderer"),
	})
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("--render: %w", err)
	}
	return &renderService{pool: pool, renderer: renderer, cache: cache, cookies: cookies, visitors: visitors}, nil
}

// Close stops every rendering and the browsers.
func (s *renderService) Close() error {
	if s == nil {
		return nil
	}
	s.renderer.Close()
	return s.pool.Close()
}

// Forget drops what the service keeps for a session that ended: the
// visitor's cookies and the session's cache index (and the bodies only it
// used).
func (s *renderService) Forget(sessionID string) {
	if s == nil {
		return
	}
	s.cookies.Forget(sessionID)
	s.cache.ForgetSession(sessionID)
}

// Renderer is the renderer, or nil when Rendered mode is off.
func (s *renderService) Renderer() *browserpool.Renderer {
	if s == nil {
		return nil
	}
	return s.renderer
}

// AssetHandler serves the asset cache, or is nil when Rendered mode is off.
func (s *renderService) AssetHandler() http.Handler {
	if s == nil {
		return nil
	}
	return s.cache.Handler()
}

// RememberCookies wraps the fronting handler: it remembers, in memory, the
// Cookie header each visitor's browser sends to the fronted site, so that
// the renderer fetches that visitor's assets as that visitor. A visitor is
// identified from its very first request (the page that loads the visitor
// script, and that page's images, come before the script's socket).
func (s *renderService) RememberCookies(site http.Handler) http.Handler {
	if s == nil {
		return site
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.cookies.Remember(s.visitors.Identify(w, r), r.Host, r.Header.Get("Cookie"))
		site.ServeHTTP(w, r)
	})
}

// assetResolver answers the renderer's subresource requests with the asset
// fetcher, with the visitor's cookies for the page's own site.
type assetResolver struct {
	fetcher *assets.Fetcher
	cookies *assets.Cookies
}

func (a assetResolver) Resolve(ctx context.Context, req browserpool.Subresource) (*browserpool.Resource, error) {
	u, err := url.Parse(req.URL)
	if err != nil {
		return nil, err
	}
	asset, err := a.fetcher.Fetch(ctx, assets.Request{
		URL:       req.URL,
		PageURL:   req.PageURL,
		Header:    req.Header,
		SessionID: req.SessionID,
		Cookie:    a.cookies.Lookup(req.SessionID, u.Host),
	})
	if err != nil {
		return nil, err
	}
	return &browserpool.Resource{Status: asset.Status, Header: asset.Header, Body: asset.Body}, nil
}
