// Package assets fetches a session's subresources on the server, the way the
// visitor's browser would, and keeps them in a content-addressed cache shared
// by all sessions.
//
// The renderer intercepts every subresource request of a replay tab and calls
// Fetcher.Fetch to answer it; in DOM mode the agent's console asks the agent
// listener (/api/sessions/{id}/asset), which calls Fetch too; the agent
// listener also serves cached bodies by hash with Cache.Handler. So an
// agent's browser never contacts the customer's site. Cookies remembers the Cookie header each visitor's browser
// sent, for same-origin fetches made as that visitor.
//
// What a Fetch may reach is the heart of the package (DESIGN.md, security
// rule 5): only GET, only http and https; the visitor's own origins
// (Config.Origins) are answered in-process by Config.Local, never dialled;
// other hosts only if Config.Allow and Config.Deny let them, and never at a
// loopback, private, link-local, reserved or cloud metadata address, which is
// checked on the address actually dialled after DNS resolution. Every
// redirect hop is checked again. See docs/assets.md.
package assets

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sync/singleflight"
)

// Defaults of the Config fields left zero.
const (
	DefaultMaxBytes     = 32 << 20
	DefaultTimeout      = 15 * time.Second
	DefaultMaxRedirects = 5
)

var (
	// ErrMethod is returned for a request whose method is not GET.
	ErrMethod = errors.New("method not allowed")
	// ErrNotAllowed is returned for a URL, or a redirect, that the rules
	// refuse; the wrapping error says which rule.
	ErrNotAllowed = errors.New("not allowed")
	// ErrTooLarge is returned for a response body over Config.MaxBytes.
	ErrTooLarge = errors.New("response too large")
)

// Config configures a Fetcher. Zero fields take the defaults named.
type Config struct {
	// Local answers same-origin requests in-process: a request whose
	// origin (scheme://host[:port]) is one of Origins is served by calling
	// Local.ServeHTTP (the rewriting proxy, which only contacts configured
	// upstreams) with the visitor's Cookie header, never by dialling.
	// Required if Origins is not empty. Allow, Deny and the address guard
	// do not apply to Local origins.
	Local   http.Handler
	Origins []string

	// Cross-origin requests are fetched directly over the network, without
	// cookies, when allowed. Allow and Deny are host globs in path.Match
	// syntax, matched against the URL's host name in lower case without a
	// port ("*.example.com" does not match example.com itself: list both).
	// Deny is checked first; an empty Allow allows any host.
	Allow []string
	Deny  []string

	// AllowPrivate lists "host:port" or "IP:port" destinations ("[::1]:8080"
	// for IPv6) that may be at a loopback, private or other non-public
	// address, which the guard refuses by default (intranet CDNs, tests).
	// A host:port entry matches URLs with that host and port, whatever they
	// resolve to; an IP:port entry matches connections to that address.
	// Cloud metadata addresses are refused even if listed (New rejects an
	// entry that names one).
	AllowPrivate []string

	MaxBytes     int64         // per response body, after decoding; default DefaultMaxBytes
	Timeout      time.Duration // per Fetch, redirects included; default DefaultTimeout
	MaxRedirects int           // default DefaultMaxRedirects; a negative value follows none
	Cache        *Cache        // optional; nil keeps nothing
	Logger       *slog.Logger  // optional; cookie values, query strings and bodies are never logged
}

// Fetcher fetches subresources for replayed sessions. It is safe for
// concurrent use.
type Fetcher struct {
	local        http.Handler
	localServer  *http.Server // the http.ServerContextKey value of Local's requests
	origins      map[string]bool
	allow, deny  []string
	transport    *http.Transport
	maxBytes     int64
	timeout      time.Duration
	maxRedirects int
	cache        *Cache
	log          *slog.Logger
	flights      singleflight.Group
}

// New returns a Fetcher for cfg, or an error naming the Config entry that is
// wrong and what it should look like.
func New(cfg Config) (*Fetcher, error) {
	f := &Fetcher{
		local:        cfg.Local,
		localServer:  &http.Server{},
		maxBytes:     cfg.MaxBytes,
		timeout:      cfg.Timeout,
		maxRedirects: cfg.MaxRedirects,
		cache:        cfg.Cache,
		log:          cfg.Logger,
	}
	var err error
	if f.origins, err = parseOrigins(cfg.Origins); err != nil {
		return nil, err
	}
	if len(f.origins) > 0 && f.local == nil {
		return nil, errors.New("assets: Config.Origins needs Config.Local, the handler that serves them (the proxy)")
	}
	if f.allow, err = parseGlobs("Allow", cfg.Allow); err != nil {
		return nil, err
	}
	if f.deny, err = parseGlobs("Deny", cfg.Deny); err != nil {
		return nil, err
	}
	g := &guard{dialTimeout: 10 * time.Second}
	if g.allowPrivate, err = parseAllowPrivate(cfg.AllowPrivate); err != nil {
		return nil, err
	}
	switch {
	case f.maxBytes < 0 || f.timeout < 0:
		return nil, fmt.Errorf("assets: Config.MaxBytes (%d) and Config.Timeout (%v) must not be negative", f.maxBytes, f.timeout)
	case f.maxBytes == 0:
		f.maxBytes = DefaultMaxBytes
	}
	if f.timeout == 0 {
		f.timeout = DefaultTimeout
	}
	switch {
	case f.maxRedirects == 0:
		f.maxRedirects = DefaultMaxRedirects
	case f.maxRedirects < 0:
		f.maxRedirects = 0
	}
	if f.log == nil {
		f.log = slog.New(slog.DiscardHandler)
	}
	f.transport = &http.Transport{
		Proxy:                  nil, // never a proxy from the environment: it would dial for us, unchecked
		DialContext:            g.dialContext,
		ForceAttemptHTTP2:      true,
		MaxIdleConns:           100,
		MaxIdleConnsPerHost:    8,
		IdleConnTimeout:        90 * time.Second,
		TLSHandshakeTimeout:    10 * time.Second,
		MaxResponseHeaderBytes: 1 << 20,
	}
	return f, nil
}

// Request is a subresource request of a replayed page.
type Request struct {
	// URL is the absolute URL the replayed page asked for.
	URL string
	// Method must be GET, or "" meaning GET; anything else is ErrMethod.
	Method string
	// Header holds the replay browser's request headers. Only Accept,
	// Accept-Language and User-Agent are passed on, and Referer when it is
	// on the URL's origin; Cookie, Authorization, Range and everything else
	// are dropped.
	Header http.Header
	// PageURL is the replayed page's URL (rrweb's Meta href). Its origin is
	// the proxy's public origin as the visitor reached it, so URLs on it are
	// served by Local like Config.Origins, with Cookie. It comes from the
	// visitor's events: a lying visitor can only make Local (which contacts
	// nothing but the configured upstreams) serve its own session, so what
	// Local answers for a PageURL origin is kept for the session only,
	// never in the shared index. Ignored when Config.Local is nil.
	PageURL string
	// SessionID says whose cache index the response goes to.
	SessionID string
	// Cookie is the visitor's Cookie header for the URL's host (see
	// Cookies.Lookup). It is sent only to Local, and only while the request
	// stays on the URL's own origin, which must be one of Config.Origins or
	// PageURL's.
	Cookie string
}

// Asset is a fetched response.
type Asset struct {
	URL    string      // the final URL, after redirects
	Status int         // the final status; redirects are followed, other statuses returned
	Header http.Header // Content-Type, Content-Language, Cache-Control, Last-Modified, ETag, and Access-Control-Allow-Origin: *; never Set-Cookie
	Body   []byte      // decoded; shared with the cache, must not be modified
	Hash   string      // lower-case hex sha256 of Body
}

// Fetch answers a subresource request the way the visitor's browser would,
// within the rules of the Config: from the cache if it can, else from Local
// or the network, following redirects. Every status is returned as an
// Asset; an error means there is no response to give the page (refused, too
// large, unreachable, timed out), and wraps ErrMethod, ErrNotAllowed,
// ErrTooLarge or the network's or ctx's error.
//
// Concurrent Fetches of one URL for one session share one request. That
// request runs for at most Config.Timeout, whatever the callers' contexts:
// a caller whose ctx ends gets ctx's error at once, and the others still get
// the response.
func (f *Fetcher) Fetch(ctx context.Context, req Request) (*Asset, error) {
	if req.Method != "" && req.Method != http.MethodGet {
		return nil, fmt.Errorf("assets: %.20q %s: %w: only GET requests are fetched for a replay", req.Method, rawForError(req.URL), ErrMethod)
	}
	t, err := parseTarget(req.URL)
	if err != nil {
		return nil, fmt.Errorf("assets: %s: %w: %v", rawForError(req.URL), ErrNotAllowed, err)
	}
	page := f.pageOrigin(req.PageURL)
	if err := f.checkTarget(t, page); err != nil {
		f.log.Info("assets: refused", "session", req.SessionID, "url", redact(t), "reason", err)
		return nil, fmt.Errorf("assets: %s: %w: %v", redact(t), ErrNotAllowed, err)
	}
	cookie := ""
	if f.isLocal(t.origin, page) {
		cookie = req.Cookie
	}
	if f.cache != nil {
		// A request that carries the visitor's cookie must get the
		// visitor's answer, not the anonymous one in the shared index.
		if a, ok := f.cache.lookup(req.SessionID, t.String(), cookie == "", time.Now()); ok {
			return a, nil
		}
	}
	key := strconv.Itoa(len(req.SessionID)) + ":" + req.SessionID + t.String()
	results := f.flights.DoChan(key, func() (any, error) {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), f.timeout)
		defer cancel()
		return f.fetch(fctx, t, req, page, cookie)
	})
	select {
	case <-ctx.Done():
		return nil, fmt.Errorf("assets: %s: %w", redact(t), ctx.Err())
	case r := <-results:
		if r.Err != nil {
			return nil, r.Err
		}
		a := *r.Val.(*Asset)
		a.Header = a.Header.Clone()
		return &a, nil
	}
}

// pageOrigin returns the origin of a request's PageURL that Local serves,
// or "" when there is none.
func (f *Fetcher) pageOrigin(pageURL string) string {
	if f.local == nil || pageURL == "" {
		return ""
	}
	t, err := parseTarget(pageURL)
	if err != nil {
		return ""
	}
	return t.origin
}

// isLocal reports whether Local serves origin: one of Config.Origins, or
// page, the origin of the request's PageURL ("" for none).
func (f *Fetcher) isLocal(origin, page string) bool {
	return f.origins[origin] || (page != "" && origin == page)
}

// checkTarget returns why t may not be fetched, or nil. Local origins (see
// isLocal) are always allowed; other URLs must pass Deny, Allow and the port
// check (the address guard runs when dialling).
func (f *Fetcher) checkTarget(t target, page string) error {
	if f.isLocal(t.origin, page) {
		return nil
	}
	if g := matchGlob(f.deny, t.host); g != "" {
		return fmt.Errorf("%s matches the deny rule %q", t.host, g)
	}
	if len(f.allow) > 0 && matchGlob(f.allow, t.host) == "" {
		return fmt.Errorf("%s matches no allow rule", t.host)
	}
	if badPorts[t.port] {
		return fmt.Errorf("port %d is one that browsers refuse to fetch from", t.port)
	}
	return nil
}

// fetch makes the request for t, following redirects, and stores the
// response in the cache. page is the origin of the request's PageURL (see
// isLocal); cookie is the visitor's Cookie for t's origin if that origin is
// Local, else "".
func (f *Fetcher) fetch(ctx context.Context, t target, req Request, page, cookie string) (*Asset, error) {
	start := time.Now()
	cur := t
	onOrigin := true // every hop so far was on t's origin
	// personal: a hop sent the visitor's cookie or went to Local for the
	// visitor's word (PageURL), or a response set a cookie.
	personal := false
	for hop := 0; ; hop++ {
		h := requestHeader(req.Header, cur)
		local := f.isLocal(cur.origin, page)
		hopCookie := ""
		if local && onOrigin {
			hopCookie = cookie
		}
		personal = personal || hopCookie != "" || (local && !f.origins[cur.origin])
		var resp *response
		var err error
		if local {
			resp, err = f.serveLocal(ctx, cur, h, hopCookie)
		} else {
			resp, err = f.roundTrip(ctx, cur, h)
		}
		if err != nil {
			return nil, f.fetchError(t, cur, err)
		}
		personal = personal || len(resp.header.Values("Set-Cookie")) > 0

		loc := resp.header.Get("Location")
		if !isRedirect(resp.status) || loc == "" {
			if ce := resp.header.Get("Content-Encoding"); ce != "" && ce != "identity" {
				return nil, fmt.Errorf("assets: %s: the response is in Content-Encoding %q, which was not asked for", redact(cur), ce)
			}
			return f.finish(req.SessionID, t, cur, resp, personal, start), nil
		}
		if hop >= f.maxRedirects {
			return nil, fmt.Errorf("assets: %s: more than %d redirects", redact(t), f.maxRedirects)
		}
		next, err := f.redirectTarget(cur, loc, page)
		if err != nil {
			f.log.Info("assets: refused redirect", "session", req.SessionID, "url", redact(t), "from", redact(cur), "reason", err)
			return nil, fmt.Errorf("assets: %s: redirect from %s: %w: %v", redact(t), redact(cur), ErrNotAllowed, err)
		}
		onOrigin = onOrigin && next.origin == t.origin
		cur = next
	}
}

// redirectTarget resolves a Location header against the URL that sent it
// and checks the result like a new request.
func (f *Fetcher) redirectTarget(from target, location, page string) (target, error) {
	ref, err := from.url.Parse(location)
	if err != nil {
		return target{}, fmt.Errorf("Location %s is not a valid URL", rawForError(location))
	}
	next, err := parseTarget(ref.String())
	if err != nil {
		return target{}, err
	}
	if err := f.checkTarget(next, page); err != nil {
		return target{}, fmt.Errorf("to %s: %w", redact(next), err)
	}
	return next, nil
}

// finish turns the final response into an Asset and stores it.
func (f *Fetcher) finish(session string, asked, final target, resp *response, personal bool, start time.Time) *Asset {
	sum := sha256.Sum256(resp.body)
	a := &Asset{
		URL:    final.String(),
		Status: resp.status,
		Header: responseHeader(resp.header),
		Body:   resp.body,
		Hash:   hex.EncodeToString(sum[:]),
	}
	sc, expires := cachePolicy(resp.status, resp.header, personal, start)
	if f.cache != nil {
		f.cache.store(session, asked.String(), a, sc, expires)
	}
	f.log.Debug("assets: fetched", "session", session, "url", redact(asked), "final", redact(final),
		"status", a.Status, "bytes", len(a.Body),
		"cache", [...]string{uncached: "none", private: "session", shared: "shared"}[sc],
		"duration", time.Since(start))
	return a
}

// fetchError turns an error of the hop to cur into the error Fetch returns.
func (f *Fetcher) fetchError(asked, cur target, err error) error {
	var refused *refusedError
	switch {
	case errors.As(err, &refused):
		f.log.Info("assets: refused", "url", redact(asked), "hop", redact(cur), "reason", refused.reason)
		return fmt.Errorf("assets: %s: %w: %s", redact(cur), ErrNotAllowed, refused.reason)
	case errors.Is(err, ErrTooLarge):
		return fmt.Errorf("assets: %s: %w", redact(cur), err)
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("assets: %s: no complete answer within %v: %w", redact(asked), f.timeout, err)
	}
	return fmt.Errorf("assets: %s: %w", redact(cur), err)
}

// roundTrip makes one request for t over the network. The body of a redirect
// is not read.
func (f *Fetcher) roundTrip(ctx context.Context, t target, h http.Header) (*response, error) {
	r, err := http.NewRequestWithContext(ctx, http.MethodGet, t.String(), nil)
	if err != nil {
		return nil, err
	}
	r.Header = h
	resp, err := f.transport.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := &response{status: resp.StatusCode, header: resp.Header}
	if isRedirect(resp.StatusCode) && resp.Header.Get("Location") != "" {
		return out, nil
	}
	if resp.ContentLength > f.maxBytes {
		return nil, fmt.Errorf("%w: Content-Length %d is over %d bytes", ErrTooLarge, resp.ContentLength, f.maxBytes)
	}
	out.body, err = io.ReadAll(io.LimitReader(resp.Body, f.maxBytes+1))
	if err != nil {
		return nil, err
	}
	if int64(len(out.body)) > f.maxBytes {
		return nil, fmt.Errorf("%w: the body is over %d bytes", ErrTooLarge, f.maxBytes)
	}
	return out, nil
}

func isRedirect(status int) bool {
	switch status {
	case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther,
		http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		return true
	}
	return false
}

// redact returns t for logs and errors: its origin and path, without the
// query, which may hold a token.
func redact(t target) string {
	s := t.origin + t.url.EscapedPath()
	if t.url.RawQuery != "" || t.url.ForceQuery {
		s += "?…"
	}
	return s
}

// rawForError quotes a URL that did not parse, for an error: without its
// query and at most 200 bytes.
func rawForError(raw string) string {
	s, _, cut := strings.Cut(raw, "?")
	if len(s) > 200 {
		s, cut = s[:200], true
	}
	if cut {
		return strconv.Quote(s) + "…"
	}
	return strconv.Quote(s)
}
