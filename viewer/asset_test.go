package viewer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/cobrowse/cobrowse/assets"
	"github.com/cobrowse/cobrowse/session"
)

// fakeAssets is an AssetSource that answers from a table by URL and notes
// the requests it got.
type fakeAssets struct {
	mu       sync.Mutex
	requests []assets.Request
	answers  map[string]fakeAnswer
}

type fakeAnswer struct {
	asset *assets.Asset
	err   error
}

func (f *fakeAssets) Asset(ctx context.Context, req assets.Request) (*assets.Asset, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, req)
	a, ok := f.answers[req.URL]
	if !ok {
		return nil, fmt.Errorf("fake: no answer for %s", req.URL)
	}
	return a.asset, a.err
}

func (f *fakeAssets) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.requests)
}

func (f *fakeAssets) last() assets.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests[len(f.requests)-1]
}

// okAsset is a 200 answer for u with a Content-Type.
func okAsset(u, contentType, body string) fakeAnswer {
	h := http.Header{}
	if contentType != "" {
		h.Set("Content-Type", contentType)
	}
	return fakeAnswer{asset: &assets.Asset{URL: u, Status: http.StatusOK, Header: h, Body: []byte(body)}}
}

// withAssets makes a fixture's server answer the asset route from src.
func withAssets(src AssetSource) func(*session.Config, *Config) {
	return func(_ *session.Config, c *Config) { c.Assets = src }
}

func assetRoute(id, u string) string {
	return "/api/sessions/" + id + "/asset?url=" + url.QueryEscape(u)
}

func errorOf(t *testing.T, body []byte) string {
	t.Helper()
	var e struct{ Error string }
	if err := json.Unmarshal(body, &e); err != nil || e.Error == "" {
		t.Fatalf("body %q is not a JSON error (%v)", body, err)
	}
	return e.Error
}

func TestAssetRoute(t *testing.T) {
	png := "\x89PNG\r\n\x1a\nfake"
	src := &fakeAssets{answers: map[string]fakeAnswer{
		"https://shop.example/img/a.png":   okAsset("https://shop.example/img/a.png", "image/png", png),
		"https://shop.example/fonts/f":     okAsset("https://cdn.example/fonts/f.woff2", "application/octet-stream", "wOF2"),
		"https://cdn.example/v.webm":       okAsset("https://cdn.example/v.webm", "video/webm", "0123456789"),
		"https://shop.example/account":     okAsset("https://shop.example/account", "text/html; charset=utf-8", "<h1>Account 42</h1>"),
		"https://shop.example/api/me":      okAsset("https://shop.example/api/me", "application/json", `{"iban":"x"}`),
		"https://shop.example/statement":   okAsset("https://shop.example/statement", "application/octet-stream", "%PDF"),
		"https://shop.example/missing.png": {asset: &assets.Asset{URL: "https://shop.example/missing.png", Status: 404, Header: http.Header{"Content-Type": {"text/html"}}, Body: []byte("<p>secret 404 page")}},
		"https://shop.example/loop.png":    {asset: &assets.Asset{URL: "https://shop.example/loop.png", Status: 302, Header: http.Header{}}},
		"http://169.254.169.254/x.png":     {err: fmt.Errorf("assets: http://169.254.169.254/x.png: %w: 169.254.169.254 is a cloud metadata address", assets.ErrNotAllowed)},
		"https://down.example/a.png":       {err: errors.New("assets: https://down.example/a.png: dial tcp: connection refused")},
	}}
	f := newFixture(t, withAssets(src))
	f.visit(t, "s1", "https://shop.example/account", "Account", 0)
	ranged := bearer(testToken)
	ranged.Set("Range", "bytes=2-5")

	tests := []struct {
		name, path   string
		header       http.Header
		status       int
		contentType  string
		body         string // exact, for 2xx
		errorHas     string // in the JSON error, for the others
		noSourceCall bool
	}{
		{name: "image", path: assetRoute("s1", "https://shop.example/img/a.png"), status: 200, contentType: "image/png", body: png},
		{name: "font typed octet-stream, named .woff2 after a redirect", path: assetRoute("s1", "https://shop.example/fonts/f"), status: 200, contentType: "application/octet-stream", body: "wOF2"},
		{name: "media range", path: assetRoute("s1", "https://cdn.example/v.webm"), header: ranged, status: 206, contentType: "video/webm", body: "2345"},
		{name: "page of the visitor's", path: assetRoute("s1", "https://shop.example/account"), status: 403, errorHas: `"text/html; charset=utf-8", not a stylesheet, image, font or media file`},
		{name: "API answer of the visitor's", path: assetRoute("s1", "https://shop.example/api/me"), status: 403, errorHas: "application/json"},
		{name: "download without a media name", path: assetRoute("s1", "https://shop.example/statement"), status: 403, errorHas: "application/octet-stream"},
		{name: "site's 404, body not passed on", path: assetRoute("s1", "https://shop.example/missing.png"), status: 404, errorHas: "the site answered 404 Not Found"},
		{name: "site's redirect without end", path: assetRoute("s1", "https://shop.example/loop.png"), status: 502, errorHas: "the site answered 302"},
		{name: "refused", path: assetRoute("s1", "http://169.254.169.254/x.png"), status: 403, errorHas: "cloud metadata address"},
		{name: "fetch failed", path: assetRoute("s1", "https://down.example/a.png"), status: 502, errorHas: "fetching the asset failed: assets: https://down.example/a.png: dial tcp: connection refused"},
		{name: "unknown session", path: assetRoute("nope", "https://shop.example/img/a.png"), status: 404, noSourceCall: true},
		{name: "relative url", path: assetRoute("s1", "/img/a.png"), status: 400, errorHas: "absolute http or https URL", noSourceCall: true},
		{name: "scheme-relative url", path: assetRoute("s1", "//shop.example/img/a.png"), status: 400, noSourceCall: true},
		{name: "file url", path: assetRoute("s1", "file:///etc/passwd"), status: 400, noSourceCall: true},
		{name: "data url", path: assetRoute("s1", "data:image/png;base64,AAAA"), status: 400, noSourceCall: true},
		{name: "no url", path: "/api/sessions/s1/asset", status: 400, noSourceCall: true},
		{name: "no credentials", path: assetRoute("s1", "https://shop.example/img/a.png"), header: http.Header{}, status: 401, noSourceCall: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			header := tc.header
			if header == nil {
				header = bearer(testToken)
			}
			before := src.count()
			resp, body := f.do(t, request{path: tc.path, header: header})
			if resp.StatusCode != tc.status {
				t.Fatalf("status %s, want %d; body %q", resp.Status, tc.status, body)
			}
			if called := src.count() > before; called == tc.noSourceCall {
				t.Errorf("the asset source was called: %v, want %v", called, !tc.noSourceCall)
			}
			if tc.status/100 != 2 {
				if msg := errorOf(t, body); !strings.Contains(msg, tc.errorHas) {
					t.Errorf("error %q, want it to contain %q", msg, tc.errorHas)
				}
				return
			}
			if string(body) != tc.body {
				t.Errorf("body %q, want %q", body, tc.body)
			}
			for k, want := range map[string]string{
				"Content-Type":            tc.contentType,
				"X-Content-Type-Options":  "nosniff",
				"Content-Security-Policy": "sandbox",
				"Cache-Control":           "private, max-age=300",
			} {
				if got := resp.Header.Get(k); got != want {
					t.Errorf("%s %q, want %q", k, got, want)
				}
			}
		})
	}

	// What the source was asked: the session, its page, and only the
	// agent browser's content negotiation, never the agent's credentials.
	h := bearer(testToken)
	h.Set("Cookie", agentCookie+"=secret")
	h.Set("Accept", "image/avif,image/webp,*/*")
	h.Set("User-Agent", "agent-browser")
	h.Set("Referer", "http://agent.example/sessions/s1")
	if resp, body := f.do(t, request{path: assetRoute("s1", "https://shop.example/img/a.png"), header: h}); resp.StatusCode != 200 {
		t.Fatalf("status %s: %s", resp.Status, body)
	}
	req := src.last()
	if req.URL != "https://shop.example/img/a.png" || req.PageURL != "https://shop.example/account" || req.SessionID != "s1" || req.Cookie != "" || req.Method != "" {
		t.Errorf("the source got %+v; want the URL, the session's page URL and id, and no cookie", req)
	}
	want := http.Header{"Accept": {"image/avif,image/webp,*/*"}, "User-Agent": {"agent-browser"}}
	if fmt.Sprint(req.Header) != fmt.Sprint(want) {
		t.Errorf("the source got the header %v, want %v", req.Header, want)
	}
}

// A stylesheet's url()s and @imports are resolved against its final URL
// (after redirects) and point at the asset route; local references, data:
// URLs and strings that are not URLs stay as they were.
func TestAssetRouteRewritesStylesheets(t *testing.T) {
	css := `@import "more.css" screen;
@font-face { font-family: F; src: url(../fonts/f.woff2?v=1) format("woff2"), url("data:font/woff2;base64,AAAA"); }
.a { background: url( 'img/a b.png' ) , image-set("x.png" 1x); content: "url(not-a-url.png)"; }
.b { mask: url(#m); filter: url(sprite.svg#blur); cursor: url(https://other.example/c.cur), auto; }
/* url(commented.png) */`
	src := &fakeAssets{answers: map[string]fakeAnswer{
		"https://shop.example/site.css": okAsset("https://cdn.example/css/v2/site.css", "text/css; charset=utf-8", css),
	}}
	f := newFixture(t, withAssets(src))
	f.visit(t, "s 1", "https://shop.example/", "Shop", 0)
	resp, body := f.do(t, request{path: assetRoute(url.PathEscape("s 1"), "https://shop.example/site.css"), header: bearer(testToken)})
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/css; charset=utf-8" {
		t.Fatalf("%s %q: %s", resp.Status, resp.Header.Get("Content-Type"), body)
	}
	route := func(u string) string { return "/api/sessions/s%201/asset?url=" + url.QueryEscape(u) }
	want := `@import "` + route("https://cdn.example/css/v2/more.css") + `" screen;
@font-face { font-family: F; src: url("` + route("https://cdn.example/css/fonts/f.woff2?v=1") + `") format("woff2"), url("data:font/woff2;base64,AAAA"); }
.a { background: url( "` + route("https://cdn.example/css/v2/img/a%20b.png") + `" ) , image-set("` + route("https://cdn.example/css/v2/x.png") + `" 1x); content: "url(not-a-url.png)"; }
.b { mask: url(#m); filter: url("` + route("https://cdn.example/css/v2/sprite.svg") + `#blur"); cursor: url("` + route("https://other.example/c.cur") + `"), auto; }
/* url(commented.png) */`
	if string(body) != want {
		t.Errorf("rewritten stylesheet\n got %s\nwant %s", body, want)
	}
}

// Before the visitor accepted agents, the route fetches nothing with the
// visitor's cookies.
func TestAssetRouteWaitsForConsent(t *testing.T) {
	src := &fakeAssets{answers: map[string]fakeAnswer{
		"https://shop.example/a.png": okAsset("https://shop.example/a.png", "image/png", "png"),
	}}
	f := newFixture(t, withAssets(src), func(h *session.Config, _ *Config) { h.Join = session.JoinConsent })
	f.visit(t, "s1", "https://shop.example/", "Shop", 0)
	resp, body := f.do(t, request{path: assetRoute("s1", "https://shop.example/a.png"), header: bearer(testToken)})
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(errorOf(t, body), "not accepted") {
		t.Errorf("%s %s; want 403 that says the visitor has not accepted", resp.Status, body)
	}
	if n := src.count(); n != 0 {
		t.Errorf("the source was asked %d times before consent", n)
	}
}

func TestAssetRouteWithoutSource(t *testing.T) {
	f := newFixture(t)
	f.visit(t, "s1", "https://shop.example/", "Shop", 0)
	resp, body := f.do(t, request{path: assetRoute("s1", "https://shop.example/a.png"), header: bearer(testToken)})
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(errorOf(t, body), "fetches no assets") {
		t.Errorf("%s %s; want 503 that says the server fetches no assets", resp.Status, body)
	}
}
