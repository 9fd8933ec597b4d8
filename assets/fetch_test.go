package assets

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestNewErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"origins without Local", Config{Origins: []string{"https://shop.example.com"}}, "needs Config.Local"},
		{"origin with path", Config{Local: http.NotFoundHandler(), Origins: []string{"https://shop.example.com/shop"}}, "no path"},
		{"origin not http", Config{Local: http.NotFoundHandler(), Origins: []string{"ftp://shop.example.com"}}, "only http and https"},
		{"origin without scheme", Config{Local: http.NotFoundHandler(), Origins: []string{"shop.example.com"}}, "scheme://host"},
		{"bad allow glob", Config{Allow: []string{"[a-"}}, "Allow entry"},
		{"allow glob with port", Config{Allow: []string{"cdn.example.com:443"}}, "without a port"},
		{"allow glob as URL", Config{Allow: []string{"https://cdn.example.com"}}, "not URLs"},
		{"empty deny glob", Config{Deny: []string{""}}, "Deny entry"},
		{"negative MaxBytes", Config{MaxBytes: -1}, "must not be negative"},
	}
	for _, tt := range tests {
		_, err := New(tt.cfg)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: New: %v, want an error with %q", tt.name, err, tt.want)
		}
	}
	if _, err := New(Config{Local: http.NotFoundHandler(), Origins: []string{"HTTPS://Shop.Example.COM:443/", "http://[::1]:8080"},
		Allow: []string{"*.example.com", "fonts.gstatic.com", "2001:db8::1"}, Deny: []string{"ads.*"}}); err != nil {
		t.Errorf("New with a good Config: %v", err)
	}
}

func TestCheckTarget(t *testing.T) {
	f := newFetcher(t, Config{
		Local:   http.NotFoundHandler(),
		Origins: []string{"https://shop.example.com"},
		Allow:   []string{"*.example.com", "fonts.gstatic.com"},
		Deny:    []string{"ads.example.com", "*.tracker.example.com"},
	})
	tests := []struct {
		url  string
		want string // "" if allowed
	}{
		{"https://shop.example.com/a.css", ""},
		{"https://SHOP.example.com.:443/a.css", ""},
		{"https://cdn.example.com/a.css", ""},
		{"https://fonts.gstatic.com/s/a.woff2", ""},
		{"http://cdn.example.com:8080/a.css", ""},
		{"https://example.com/a.css", "matches no allow rule"}, // *.example.com needs a label
		{"https://fonts.googleapis.com/css", "matches no allow rule"},
		{"https://ads.example.com/pixel.gif", `deny rule "ads.example.com"`},
		{"https://x.tracker.example.com/t.js", `deny rule "*.tracker.example.com"`},
		{"https://evil.com/?x=.example.com", "matches no allow rule"},
		{"https://cdn.example.com:25/", "port 25"},
	}
	for _, tt := range tests {
		tg, err := parseTarget(tt.url)
		if err != nil {
			t.Fatalf("parseTarget(%s): %v", tt.url, err)
		}
		err = f.checkTarget(tg, "")
		if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("checkTarget(%s) = %v, want %q", tt.url, err, tt.want)
		}
	}
}

func TestFetchMethods(t *testing.T) {
	srv, hits := countingServer(t, hello)
	f := newFetcher(t, Config{AllowPrivate: []string{srv.Listener.Addr().String()}})
	for _, m := range []string{"", "GET"} {
		if _, err := f.Fetch(context.Background(), Request{URL: srv.URL, Method: m}); err != nil {
			t.Errorf("Fetch with method %q: %v", m, err)
		}
	}
	for _, m := range []string{"POST", "HEAD", "PUT", "DELETE", "OPTIONS", "CONNECT", "get", "TRACE"} {
		_, err := f.Fetch(context.Background(), Request{URL: srv.URL, Method: m})
		if !errors.Is(err, ErrMethod) {
			t.Errorf("Fetch with method %q: err = %v, want ErrMethod", m, err)
		}
	}
	if hits.Load() != 2 {
		t.Errorf("server got %d requests, want 2", hits.Load())
	}
}

// recorded is what a test handler saw of a request.
type recorded struct {
	host, requestURI, remoteAddr, cookie, url string
	tls                                       bool
	header                                    http.Header
	serverCtx                                 bool
}

func recordingHandler(mu *sync.Mutex, seen *[]recorded, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		*seen = append(*seen, recorded{
			host: r.Host, requestURI: r.RequestURI, url: r.URL.String(), remoteAddr: r.RemoteAddr, cookie: r.Header.Get("Cookie"),
			tls: r.TLS != nil, header: r.Header.Clone(), serverCtx: r.Context().Value(http.ServerContextKey) != nil,
		})
		mu.Unlock()
		h(w, r)
	}
}

func TestFetchLocal(t *testing.T) {
	var mu sync.Mutex
	var seen []recorded
	local := recordingHandler(&mu, &seen, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/css")
		w.Header().Set("Set-Cookie", "sid=new")
		w.Header().Set("X-Secret", "s3cret")
		w.Header().Set("ETag", `"v1"`)
		w.Header().Add("Cache-Control", "public")
		w.Header().Add("Cache-Control", "max-age=60")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		fmt.Fprint(w, "body{}")
	})
	f := newFetcher(t, Config{Local: local, Origins: []string{"https://shop.example.com"}})
	a, err := f.Fetch(context.Background(), Request{
		URL:       "https://Shop.Example.com/css/a.css?v=1#frag",
		SessionID: "s1",
		Cookie:    "sid=visitor",
		Header: http.Header{
			"accept":          {"text/css,*/*;q=0.1"},
			"Accept-Language": {"de-CH"},
			"User-Agent":      {"HeadlessChrome"},
			"Referer":         {"https://shop.example.com/products?id=3"},
			"Cookie":          {"sid=from-header"},
			"Authorization":   {"Bearer x"},
			"Range":           {"bytes=0-1"},
			"If-None-Match":   {`"v0"`},
			"Origin":          {"https://shop.example.com"},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != 1 {
		t.Fatalf("Local got %d requests, want 1", len(seen))
	}
	r := seen[0]
	if r.host != "shop.example.com" || r.requestURI != "/css/a.css?v=1" || r.url != "/css/a.css?v=1" || r.remoteAddr != "127.0.0.1:0" || !r.tls || !r.serverCtx {
		t.Errorf("Local saw %+v", r)
	}
	if r.cookie != "sid=visitor" {
		t.Errorf("Local got Cookie %q, want the visitor's", r.cookie)
	}
	wantHeader := http.Header{
		"Accept":          {"text/css,*/*;q=0.1"},
		"Accept-Language": {"de-CH"},
		"User-Agent":      {"HeadlessChrome"},
		"Referer":         {"https://shop.example.com/products?id=3"},
		"Cookie":          {"sid=visitor"},
	}
	if fmt.Sprint(r.header) != fmt.Sprint(wantHeader) {
		t.Errorf("Local got headers %v, want %v", r.header, wantHeader)
	}

	sum := sha256.Sum256([]byte("body{}"))
	if a.URL != "https://shop.example.com/css/a.css?v=1" || a.Status != 200 || string(a.Body) != "body{}" || a.Hash != hex.EncodeToString(sum[:]) {
		t.Errorf("Asset = %+v", a)
	}
	wantResp := http.Header{
		"Content-Type":                {"text/css"},
		"Etag":                        {`"v1"`},
		"Cache-Control":               {"public, max-age=60"},
		"Access-Control-Allow-Origin": {"*"},
	}
	if fmt.Sprint(a.Header) != fmt.Sprint(wantResp) {
		t.Errorf("Asset.Header = %v, want %v", a.Header, wantResp)
	}
}

func TestFetchCrossOriginNeverGetsCookies(t *testing.T) {
	var mu sync.Mutex
	var seen []recorded
	srv := httptest.NewServer(recordingHandler(&mu, &seen, hello))
	t.Cleanup(srv.Close)
	f := newFetcher(t, Config{
		Local:        http.NotFoundHandler(),
		Origins:      []string{"https://shop.example.com"},
		AllowPrivate: []string{srv.Listener.Addr().String()},
	})
	_, err := f.Fetch(context.Background(), Request{
		URL: srv.URL + "/font.woff2", SessionID: "s1", Cookie: "sid=visitor",
		Header: http.Header{
			"Cookie":        {"sid=visitor"},
			"Authorization": {"Basic eDp5"},
			"Referer":       {"https://shop.example.com/page"}, // another origin: dropped
			"Accept":        {"*/*"},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	h := seen[0].header
	if h.Get("Cookie") != "" || h.Get("Authorization") != "" || h.Get("Referer") != "" || h.Get("Accept") != "*/*" {
		t.Errorf("cross-origin request headers: %v", h)
	}
}

func TestFetchRedirects(t *testing.T) {
	var mu sync.Mutex
	var localSeen []recorded
	const shop = "https://shop.example.com"
	var target atomic.Value // the URL /external redirects to
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/external":
			http.Redirect(w, r, target.Load().(string), http.StatusFound)
		case "/loop":
			http.Redirect(w, r, "/loop", http.StatusMovedPermanently)
		case "/ok":
			w.Write([]byte("external"))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	other := httptest.NewServer(http.HandlerFunc(hello)) // on loopback, not in AllowPrivate
	t.Cleanup(other.Close)

	local := recordingHandler(&mu, &localSeen, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/moved":
			http.Redirect(w, r, "/img/new.png", http.StatusMovedPermanently)
		case "/away-and-back":
			http.Redirect(w, r, srv.URL+"/external", http.StatusFound)
		default:
			w.Write([]byte("local " + r.URL.Path))
		}
	})
	f := newFetcher(t, Config{
		Local:        local,
		Origins:      []string{shop},
		AllowPrivate: []string{srv.Listener.Addr().String()},
		Deny:         []string{"denied.example"},
	})

	tests := []struct {
		name       string
		url        string
		target     string // where /external redirects
		wantBody   string
		wantURL    string
		wantErr    error
		errText    string
		wantCookie []string // the Cookie headers Local saw, in order
	}{
		{name: "external to external", url: srv.URL + "/external", target: srv.URL + "/ok", wantBody: "external", wantURL: srv.URL + "/ok"},
		{name: "external to loopback", url: srv.URL + "/external", target: other.URL + "/x", wantErr: ErrNotAllowed, errText: "is a loopback address"},
		{name: "external to metadata", url: srv.URL + "/external", target: "http://169.254.169.254/latest/meta-data/", wantErr: ErrNotAllowed, errText: "cloud metadata"},
		{name: "external to denied", url: srv.URL + "/external", target: "https://denied.example/", wantErr: ErrNotAllowed, errText: "deny rule"},
		{name: "external to file", url: srv.URL + "/external", target: "file:///etc/passwd", wantErr: ErrNotAllowed, errText: "only http and https"},
		{name: "external to bad port", url: srv.URL + "/external", target: "http://example.com:22/", wantErr: ErrNotAllowed, errText: "port 22"},
		{name: "too many", url: srv.URL + "/loop", errText: "more than 5 redirects"},
		// Local: the cookie goes with every hop on the visitor's origin...
		{name: "local to local", url: shop + "/moved", wantBody: "local /img/new.png", wantURL: shop + "/img/new.png", wantCookie: []string{"sid=v", "sid=v"}},
		// ...a cross-origin URL redirected to Local gets no cookie...
		{name: "external to local", url: srv.URL + "/external", target: shop + "/img/a.png", wantBody: "local /img/a.png", wantURL: shop + "/img/a.png", wantCookie: []string{""}},
		// ...and neither does Local once the chain has left the origin.
		{name: "local away and back", url: shop + "/away-and-back", target: shop + "/img/b.png", wantBody: "local /img/b.png", wantURL: shop + "/img/b.png", wantCookie: []string{"sid=v", ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mu.Lock()
			localSeen = nil
			mu.Unlock()
			target.Store(tt.target)
			a, err := f.Fetch(context.Background(), Request{URL: tt.url, SessionID: "s", Cookie: "sid=v"})
			if tt.errText != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errText) || tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v with %q", err, tt.wantErr, tt.errText)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(a.Body) != tt.wantBody || a.URL != tt.wantURL {
				t.Errorf("got %q from %s, want %q from %s", a.Body, a.URL, tt.wantBody, tt.wantURL)
			}
			mu.Lock()
			defer mu.Unlock()
			var cookies []string
			for _, r := range localSeen {
				cookies = append(cookies, r.cookie)
			}
			if fmt.Sprint(cookies) != fmt.Sprint(tt.wantCookie) {
				t.Errorf("Local saw cookies %q, want %q", cookies, tt.wantCookie)
			}
		})
	}
}

func TestFetchTooLarge(t *testing.T) {
	// A server that streams 33 MiB without a Content-Length: over the
	// default cap of 32 MiB.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(w, io.LimitReader(zeros{}, 33<<20))
	}))
	t.Cleanup(srv.Close)
	f := newFetcher(t, Config{AllowPrivate: []string{srv.Listener.Addr().String()}})
	_, err := f.Fetch(context.Background(), Request{URL: srv.URL + "/big.bin"})
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "over 33554432 bytes") {
		t.Fatalf("err = %v, want ErrTooLarge", err)
	}

	// A server that never stops: the Fetcher must stop reading at the cap
	// and close the connection, which the server sees as a failed write.
	writeErr := make(chan error, 1)
	endless := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.Copy(w, zeros{})
		writeErr <- err
	}))
	t.Cleanup(endless.Close)
	f = newFetcher(t, Config{AllowPrivate: []string{endless.Listener.Addr().String()}, MaxBytes: 1 << 20})
	if _, err := f.Fetch(context.Background(), Request{URL: endless.URL}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("endless body: err = %v, want ErrTooLarge", err)
	}
	select {
	case err := <-writeErr:
		if err == nil {
			t.Fatal("the endless server's copy ended without an error")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the server is still writing: the connection was not closed")
	}

	// With a Content-Length over the cap, nothing is read.
	big := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(1<<30))
		w.WriteHeader(200)
	}))
	t.Cleanup(big.Close)
	f = newFetcher(t, Config{AllowPrivate: []string{big.Listener.Addr().String()}, MaxBytes: 1 << 20})
	_, err = f.Fetch(context.Background(), Request{URL: big.URL})
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "Content-Length") {
		t.Fatalf("err = %v, want ErrTooLarge for the Content-Length", err)
	}

	// Exactly the cap is fine.
	exact := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(make([]byte, 1000))
	}))
	t.Cleanup(exact.Close)
	f = newFetcher(t, Config{AllowPrivate: []string{exact.Listener.Addr().String()}, MaxBytes: 1000})
	if a, err := f.Fetch(context.Background(), Request{URL: exact.URL}); err != nil || len(a.Body) != 1000 {
		t.Fatalf("a body of exactly MaxBytes: %v", err)
	}
}

func TestFetchLocalTooLarge(t *testing.T) {
	handlerErr := make(chan error, 1)
	local := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		chunk := make([]byte, 4096)
		for {
			if _, err := w.Write(chunk); err != nil {
				handlerErr <- err
				return
			}
		}
	})
	f := newFetcher(t, Config{Local: local, Origins: []string{"http://shop.test"}, MaxBytes: 1 << 20})
	_, err := f.Fetch(context.Background(), Request{URL: "http://shop.test/endless"})
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %v, want ErrTooLarge", err)
	}
	if err := <-handlerErr; err == nil {
		t.Fatal("the handler's write past the cap succeeded")
	}
}

func TestFetchTimeout(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(slow.Close)
	stubborn := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }) // ignores its context
	f := newFetcher(t, Config{
		Local:        stubborn,
		Origins:      []string{"http://shop.test"},
		AllowPrivate: []string{slow.Listener.Addr().String()},
		Timeout:      200 * time.Millisecond,
	})
	for _, u := range []string{slow.URL + "/slow", "http://shop.test/stubborn"} {
		start := time.Now()
		_, err := f.Fetch(context.Background(), Request{URL: u})
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "within 200ms") {
			t.Errorf("Fetch(%s): err = %v, want a timeout", u, err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("Fetch(%s) took %v with a 200ms timeout", u, d)
		}
	}

	// The caller's context ends first.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	f = newFetcher(t, Config{Local: stubborn, Origins: []string{"http://shop.test"}})
	start := time.Now()
	if _, err := f.Fetch(ctx, Request{URL: "http://shop.test/stubborn"}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want the caller's deadline", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Fetch took %v after the caller's context ended", d)
	}
}

func TestFetchLocalPanics(t *testing.T) {
	tests := []struct {
		name    string
		handler http.HandlerFunc
		want    string
	}{
		{"panic", func(w http.ResponseWriter, r *http.Request) { panic("boom") }, "panicked: boom"},
		{"abort", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("part")); panic(http.ErrAbortHandler) }, "aborted"},
		{"bad status", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(7) }, "invalid WriteHeader code"},
	}
	for _, tt := range tests {
		f := newFetcher(t, Config{Local: tt.handler, Origins: []string{"http://shop.test"}})
		_, err := f.Fetch(context.Background(), Request{URL: "http://shop.test/x"})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want %q", tt.name, err, tt.want)
		}
	}
}

func TestFetchLocalStatuses(t *testing.T) {
	local := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/early":
			w.WriteHeader(http.StatusEarlyHints)
			w.Write([]byte("after hints"))
		case "/nothing":
		case "/missing":
			http.NotFound(w, r)
		case "/late-header":
			w.WriteHeader(201)
			w.Header().Set("Content-Type", "text/late") // after WriteHeader: not sent
		case "/gzip":
			w.Header().Set("Content-Encoding", "gzip")
			w.Write([]byte{0x1f, 0x8b})
		}
	})
	f := newFetcher(t, Config{Local: local, Origins: []string{"http://shop.test"}})
	tests := []struct {
		path   string
		status int
		body   string
		err    string
	}{
		{"/early", 200, "after hints", ""},
		{"/nothing", 200, "", ""},
		{"/missing", 404, "404 page not found\n", ""},
		{"/late-header", 201, "", ""},
		{"/gzip", 0, "", `Content-Encoding "gzip"`},
	}
	for _, tt := range tests {
		a, err := f.Fetch(context.Background(), Request{URL: "http://shop.test" + tt.path})
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s: err = %v, want %q", tt.path, err, tt.err)
			}
			continue
		}
		if err != nil || a.Status != tt.status || string(a.Body) != tt.body {
			t.Errorf("%s: %+v, %v; want %d %q", tt.path, a, err, tt.status, tt.body)
			continue
		}
		if tt.path == "/late-header" && a.Header.Get("Content-Type") != "" {
			t.Errorf("a header set after WriteHeader was kept")
		}
	}
}

func TestFetchCoalesces(t *testing.T) {
	gate := make(chan struct{})
	srv, hits := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		<-gate
		w.Header().Set("Cache-Control", "no-store") // so that only coalescing can save requests
		w.Write([]byte("once"))
	})
	f := newFetcher(t, Config{AllowPrivate: []string{srv.Listener.Addr().String()}})
	const n = 8
	var wg sync.WaitGroup
	errs := make(chan error, n+1)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a, err := f.Fetch(context.Background(), Request{URL: srv.URL + "/a.js", SessionID: "s"})
			if err == nil && string(a.Body) != "once" {
				err = fmt.Errorf("body %q", a.Body)
			}
			errs <- err
		}()
	}
	// One more caller, whose context ends while it waits: it gets its own
	// error, and the others still get the response.
	ctx, cancel := context.WithCancel(context.Background())
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, err := f.Fetch(ctx, Request{URL: srv.URL + "/a.js", SessionID: "s"})
		if !errors.Is(err, context.Canceled) {
			errs <- fmt.Errorf("cancelled caller: err = %v", err)
		}
	}()
	for hits.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond) // let the other callers join the flight
	cancel()
	time.Sleep(20 * time.Millisecond)
	close(gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if hits.Load() != 1 {
		t.Errorf("%d concurrent Fetches made %d requests, want 1", n, hits.Load())
	}
}

// TestFetchBodyNotReadForRedirect checks that the body of a redirect is not
// what the caller gets, nor counted against MaxBytes.
func TestFetchBodyNotReadForRedirect(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/r" {
			w.Header().Set("Location", "/final")
			w.WriteHeader(http.StatusTemporaryRedirect)
			io.Copy(w, io.LimitReader(zeros{}, 2<<20))
			return
		}
		w.Write([]byte("final"))
	}))
	t.Cleanup(srv.Close)
	f := newFetcher(t, Config{AllowPrivate: []string{srv.Listener.Addr().String()}, MaxBytes: 1 << 20})
	a, err := f.Fetch(context.Background(), Request{URL: srv.URL + "/r"})
	if err != nil || string(a.Body) != "final" {
		t.Fatalf("%v, %v", a, err)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// The page's own origin is served by Local with the visitor's cookie, and
// what Local answers for it stays with the session: the PageURL comes from
// the visitor, who must not be able to fill the shared index for a URL of
// another site.
func TestFetchPageOrigin(t *testing.T) {
	var mu sync.Mutex
	var seen []recorded
	local := recordingHandler(&mu, &seen, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "image/png")
		w.Header().Set("Cache-Control", "public, max-age=600")
		fmt.Fprint(w, "png from the fronted site")
	})
	cache := NewCache(1 << 20)
	f := newFetcher(t, Config{Local: local, Cache: cache})
	fetch := func(session, path, pageURL, cookie string) (*Asset, error) {
		return f.Fetch(context.Background(), Request{
			URL: "http://fonts.example.net" + path, PageURL: pageURL, SessionID: session, Cookie: cookie,
		})
	}

	a, err := fetch("s1", "/logo.png", "http://fonts.example.net/account?x=1", "")
	if err != nil || string(a.Body) != "png from the fronted site" {
		t.Fatalf("a URL on the page's origin: %v, %v; want it from Local", a, err)
	}
	a, err = fetch("s1", "/private.png", "http://fonts.example.net/", "sid=visitor")
	if err != nil || len(seen) != 2 || seen[1].cookie != "sid=visitor" || seen[1].host != "fonts.example.net" {
		t.Fatalf("with the visitor's cookie: %v, %v; Local saw %+v", a, err, seen)
	}
	// Another session whose page is elsewhere must not get it from the
	// cache: its request goes to the network, where the guard refuses it
	// (nothing resolves here) or it fails, but never to s1's answer.
	if a, err := fetch("s2", "/logo.png", "http://shop.example.com/", ""); err == nil {
		t.Errorf("session s2 got %q for a URL that only s1's page origin served", a.Body)
	}
	if st := cache.Stats(); st.Hits != 0 {
		t.Errorf("cache hits %d; the page-origin answer must not be shared", st.Hits)
	}
	// Without Local, PageURL means nothing.
	g := newFetcher(t, Config{})
	if _, err := g.Fetch(context.Background(), Request{URL: "http://127.0.0.1:1/x.png", PageURL: "http://127.0.0.1:1/"}); !errors.Is(err, ErrNotAllowed) {
		t.Errorf("PageURL without Local: %v, want ErrNotAllowed (the loopback guard)", err)
	}
}
