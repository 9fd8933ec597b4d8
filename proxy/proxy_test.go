package proxy

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cobrowse/cobrowse/rewrite"
)

const snippet = `<script src="/__cobrowse/visitor.js" defer></script>`

const page = "<!DOCTYPE html><html><head><title>Shop</title></head><body><h1>Hi</h1></body></html>"

// injected is page as the proxy must serve it.
var injected = strings.Replace(page, "<head>", "<head>"+snippet, 1)

// logBuffer collects log output from the servers' goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// start serves upstream on 127.0.0.1 and a Proxy in front of it. cfg's
// Snippet and Logger are filled in if empty; the log is returned.
func start(t testing.TB, upstream http.Handler, cfg Config) (proxyURL string, logs *logBuffer) {
	t.Helper()
	up := httptest.NewServer(upstream)
	t.Cleanup(up.Close)
	u, err := url.Parse(up.URL)
	if err != nil {
		t.Fatal(err)
	}
	return startFor(t, u, cfg)
}

func startFor(t testing.TB, upstream *url.URL, cfg Config) (proxyURL string, logs *logBuffer) {
	t.Helper()
	logs = new(logBuffer)
	if cfg.Snippet == nil {
		cfg.Snippet = []byte(snippet)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	p, err := New(upstream, cfg)
	if err != nil {
		t.Fatal(err)
	}
	front := httptest.NewServer(p)
	t.Cleanup(front.Close)
	return front.URL, logs
}

// client returns a client that sends and receives bodies exactly as they
// are, so that tests control Accept-Encoding.
func client(t testing.TB) *http.Client {
	tr := &http.Transport{DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

func gzipped(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// serve returns an upstream handler that answers with status, headers
// (pairs of name and value) and body, setting Content-Length.
func serve(status int, body []byte, headers ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i < len(headers); i += 2 {
			w.Header().Set(headers[i], headers[i+1])
		}
		if status != http.StatusNotModified && status != http.StatusNoContent {
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		}
		w.WriteHeader(status)
		if r.Method != http.MethodHead {
			w.Write(body)
		}
	}
}

func TestProxyResponses(t *testing.T) {
	image := []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01<head></head>\x00\xff\xfe")
	json := []byte(`{"items":[1,2,3],"html":"<head></head>"}`)
	gzPage, gzJSON := gzipped(t, []byte(page)), gzipped(t, json)
	hugeComment := []byte("<!--" + strings.Repeat("-", rewrite.MaxTokenSize) + "-->" + page)

	tests := []struct {
		name           string
		upstream       http.HandlerFunc
		method         string
		acceptEncoding string
		wantStatus     int
		wantBody       []byte
		// wantHeader lists headers that must have exactly these values;
		// an empty value means the header must be absent.
		wantHeader map[string]string
		wantLog    string
	}{
		{
			name:       "HTML gets the snippet",
			upstream:   serve(200, []byte(page), "Content-Type", "text/html; charset=utf-8", "ETag", `"v1"`),
			wantStatus: 200,
			wantBody:   []byte(injected),
			wantHeader: map[string]string{"Content-Length": "", "Etag": `W/"v1"`, "Vary": ""},
		},
		{
			name:       "XHTML gets the snippet",
			upstream:   serve(200, []byte(page), "Content-Type", "application/xhtml+xml", "ETag", `W/"v1"`),
			wantStatus: 200,
			wantBody:   []byte(injected),
			wantHeader: map[string]string{"Content-Length": "", "Etag": `W/"v1"`},
		},
		{
			name:       "HTML error page gets the snippet",
			upstream:   serve(404, []byte(page), "Content-Type", "TEXT/HTML"),
			wantStatus: 404,
			wantBody:   []byte(injected),
		},
		{
			name:           "gzip HTML is decoded and injected",
			upstream:       serve(200, gzPage, "Content-Type", "text/html", "Content-Encoding", "gzip", "ETag", `"v1"`),
			acceptEncoding: "gzip, deflate, br",
			wantStatus:     200,
			wantBody:       []byte(injected),
			wantHeader:     map[string]string{"Content-Encoding": "", "Content-Length": "", "Etag": `W/"v1"`, "Vary": "Accept-Encoding"},
		},
		{
			name:       "gzip HTML for a client without gzip",
			upstream:   serve(200, gzPage, "Content-Type", "text/html", "Content-Encoding", "x-gzip", "Vary", "Accept-Encoding"),
			wantStatus: 200,
			wantBody:   []byte(injected),
			wantHeader: map[string]string{"Content-Encoding": "", "Vary": "Accept-Encoding"},
		},
		{
			name:           "HTML in an encoding we cannot decode passes through",
			upstream:       serve(200, []byte("not really brotli"), "Content-Type", "text/html", "Content-Encoding", "br", "ETag", `"v1"`),
			acceptEncoding: "br",
			wantStatus:     200,
			wantBody:       []byte("not really brotli"),
			wantHeader:     map[string]string{"Content-Encoding": "br", "Content-Length": "17", "Etag": `"v1"`},
			wantLog:        "content_encoding=br",
		},
		{
			name:           "image passes through untouched",
			upstream:       serve(200, image, "Content-Type", "image/png", "ETag", `"img"`, "Cache-Control", "max-age=60"),
			acceptEncoding: "gzip",
			wantStatus:     200,
			wantBody:       image,
			wantHeader:     map[string]string{"Content-Type": "image/png", "Content-Length": strconv.Itoa(len(image)), "Etag": `"img"`, "Cache-Control": "max-age=60"},
		},
		{
			name:           "gzip JSON stays gzip for a client that accepts it",
			upstream:       serve(200, gzJSON, "Content-Type", "application/json", "Content-Encoding", "gzip", "ETag", `"j"`),
			acceptEncoding: "deflate, gzip;q=0.5",
			wantStatus:     200,
			wantBody:       gzJSON,
			wantHeader:     map[string]string{"Content-Encoding": "gzip", "Content-Length": strconv.Itoa(len(gzJSON)), "Etag": `"j"`},
		},
		{
			name:       "gzip JSON is decoded for a client without Accept-Encoding",
			upstream:   serve(200, gzJSON, "Content-Type", "application/json", "Content-Encoding", "gzip", "ETag", `"j"`),
			wantStatus: 200,
			wantBody:   json,
			wantHeader: map[string]string{"Content-Encoding": "", "Content-Length": "", "Etag": `W/"j"`, "Vary": "Accept-Encoding"},
		},
		{
			name:           "gzip JSON is decoded for a client that refuses gzip",
			upstream:       serve(200, gzJSON, "Content-Type", "application/json", "Content-Encoding", "gzip"),
			acceptEncoding: "*, gzip;q=0",
			wantStatus:     200,
			wantBody:       json,
			wantHeader:     map[string]string{"Content-Encoding": ""},
		},
		{
			name:       "HEAD is untouched",
			upstream:   serve(200, []byte(page), "Content-Type", "text/html", "ETag", `"v1"`),
			method:     http.MethodHead,
			wantStatus: 200,
			wantBody:   []byte{},
			wantHeader: map[string]string{"Content-Length": strconv.Itoa(len(page)), "Etag": `"v1"`},
		},
		{
			name:       "304 is untouched",
			upstream:   serve(304, nil, "Content-Type", "text/html", "ETag", `"v1"`),
			wantStatus: 304,
			wantBody:   []byte{},
			wantHeader: map[string]string{"Etag": `"v1"`},
		},
		{
			name:       "206 is untouched",
			upstream:   serve(206, []byte("<head>"), "Content-Type", "text/html", "Content-Range", "bytes 0-5/99", "ETag", `"v1"`),
			wantStatus: 206,
			wantBody:   []byte("<head>"),
			wantHeader: map[string]string{"Content-Length": "6", "Etag": `"v1"`},
		},
		{
			name:       "HTML too large to parse passes through with a warning",
			upstream:   serve(200, hugeComment, "Content-Type", "text/html"),
			wantStatus: 200,
			wantBody:   hugeComment,
			wantLog:    "token too large",
		},
		{
			name:       "corrupt gzip HTML is a 502",
			upstream:   serve(200, []byte(page), "Content-Type", "text/html", "Content-Encoding", "gzip"),
			wantStatus: http.StatusBadGateway,
			wantLog:    "gzip: invalid header",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			proxyURL, logs := start(t, tc.upstream, Config{})
			method := tc.method
			if method == "" {
				method = http.MethodGet
			}
			req, err := http.NewRequest(method, proxyURL+"/shop", nil)
			if err != nil {
				t.Fatal(err)
			}
			if tc.acceptEncoding != "" {
				req.Header.Set("Accept-Encoding", tc.acceptEncoding)
			}
			resp, err := client(t).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatalf("reading body: %v", err)
			}
			if resp.StatusCode != tc.wantStatus {
				t.Errorf("status = %d, want %d", resp.StatusCode, tc.wantStatus)
			}
			if tc.wantBody != nil && !bytes.Equal(body, tc.wantBody) {
				t.Errorf("body\n got: %q\nwant: %q", body, tc.wantBody)
			}
			if n := bytes.Count(body, []byte(snippet)); n > 1 {
				t.Errorf("snippet injected %d times", n)
			}
			for name, want := range tc.wantHeader {
				if got := strings.Join(resp.Header.Values(name), ", "); got != want {
					t.Errorf("header %s = %q, want %q", name, got, want)
				}
			}
			if !strings.Contains(logs.String(), tc.wantLog) {
				t.Errorf("log does not mention %q:\n%s", tc.wantLog, logs)
			}
		})
	}
}

// TestProxyForwarding checks what the upstream receives.
func TestProxyForwarding(t *testing.T) {
	type seen struct {
		host, uri, accept, xff, xfh, xfp string
	}
	got := make(chan seen, 1)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- seen{r.Host, r.URL.RequestURI(), r.Header.Get("Accept-Encoding"),
			r.Header.Get("X-Forwarded-For"), r.Header.Get("X-Forwarded-Host"), r.Header.Get("X-Forwarded-Proto")}
	}))
	defer up.Close()
	upURL, err := url.Parse(up.URL + "/base")
	if err != nil {
		t.Fatal(err)
	}
	proxyURL, _ := startFor(t, upURL, Config{})

	req, err := http.NewRequest(http.MethodGet, proxyURL+"/cart?id=7", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "shop.example"
	req.Header.Set("X-Forwarded-For", "203.0.113.9") // spoofed by the client
	req.Header.Set("X-Forwarded-Host", "evil.example")
	req.Header.Set("Accept-Encoding", "br, zstd")
	resp, err := client(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	want := seen{
		host:   upURL.Host, // not the client's Host
		uri:    "/base/cart?id=7",
		accept: "gzip",
		xff:    "127.0.0.1", // the client's address only
		xfh:    "shop.example",
		xfp:    "http",
	}
	if s := <-got; s != want {
		t.Errorf("upstream saw %+v\nwant %+v", s, want)
	}
}

// TestProxyAcceptEncoding checks the coding the proxy asks the upstream for:
// gzip, which it can decode, except for answers it passes on as they are to a
// client that cannot read gzip.
func TestProxyAcceptEncoding(t *testing.T) {
	asked := make(chan string, 1)
	proxyURL, _ := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked <- r.Header.Get("Accept-Encoding")
	}), Config{})
	tests := []struct {
		method, rangeHeader, acceptEncoding string
		want                                string
	}{
		{"GET", "", "gzip, deflate, br, zstd", "gzip"},
		{"GET", "", "br", "gzip"},
		{"GET", "", "", "gzip"},
		{"POST", "", "", "gzip"},
		{"GET", "bytes=0-99", "gzip", "gzip"},
		{"GET", "bytes=0-99", "identity;q=1, *;q=0", "identity"}, // what browsers send for media
		{"HEAD", "", "gzip", "gzip"},
		{"HEAD", "", "", "identity"},
	}
	for _, tc := range tests {
		req, err := http.NewRequest(tc.method, proxyURL, nil)
		if err != nil {
			t.Fatal(err)
		}
		if tc.rangeHeader != "" {
			req.Header.Set("Range", tc.rangeHeader)
		}
		if tc.acceptEncoding != "" {
			req.Header.Set("Accept-Encoding", tc.acceptEncoding)
		}
		resp, err := client(t).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := <-asked; got != tc.want {
			t.Errorf("%s with Range %q, Accept-Encoding %q: upstream asked for %q, want %q",
				tc.method, tc.rangeHeader, tc.acceptEncoding, got, tc.want)
		}
	}
}

// TestProxyStreamsHTML checks that the start of a page, snippet included,
// reaches the client while the upstream is still producing the rest, whether
// the upstream compresses the page and whether it declares its length.
func TestProxyStreamsHTML(t *testing.T) {
	const first, rest = "<!DOCTYPE html><html><head><title>Slow", "</title></head><body>done</body></html>"
	plain := [2][]byte{[]byte(first), []byte(rest)}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	io.WriteString(zw, first)
	zw.Flush() // a sync flush: the decoder can produce first from these bytes
	split := gz.Len()
	io.WriteString(zw, rest)
	zw.Close()
	gzParts := [2][]byte{gz.Bytes()[:split], gz.Bytes()[split:]}

	tests := []struct {
		name          string
		parts         [2][]byte
		encoding      string
		contentLength bool
	}{
		{"chunked", plain, "", false},
		{"with Content-Length", plain, "", true},
		{"gzip chunked", gzParts, "gzip", false},
		{"gzip with Content-Length", gzParts, "gzip", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			release := make(chan struct{})
			proxyURL, _ := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/html")
				if tc.encoding != "" {
					w.Header().Set("Content-Encoding", tc.encoding)
				}
				if tc.contentLength {
					w.Header().Set("Content-Length", strconv.Itoa(len(tc.parts[0])+len(tc.parts[1])))
				}
				w.Write(tc.parts[0])
				http.NewResponseController(w).Flush()
				select {
				case <-release:
					w.Write(tc.parts[1])
				case <-r.Context().Done():
				}
			}), Config{})

			// The deadline only turns a buffering proxy into a failure
			// instead of a hung test; it does not synchronise anything.
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, proxyURL, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := client(t).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()

			wantFirst := strings.Replace(first, "<head>", "<head>"+snippet, 1)
			var got []byte
			buf := make([]byte, 1024)
			for len(got) < len(wantFirst) {
				n, err := resp.Body.Read(buf)
				got = append(got, buf[:n]...)
				if err != nil {
					t.Fatalf("after %q: %v", got, err)
				}
			}
			if string(got) != wantFirst {
				t.Fatalf("first bytes %q, want %q", got, wantFirst)
			}
			close(release)
			tail, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if string(tail) != rest {
				t.Errorf("rest %q, want %q", tail, rest)
			}
		})
	}
}

func TestProxyUpstreamDown(t *testing.T) {
	// A port that refuses connections: a server's, once it is closed.
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL, err := url.Parse(dead.URL)
	if err != nil {
		t.Fatal(err)
	}
	dead.Close()

	// An upstream that accepts the request but never answers.
	stuck := make(chan struct{})
	defer close(stuck)
	hung := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-stuck:
		case <-r.Context().Done():
		}
	}))
	defer hung.Close()
	hungURL, err := url.Parse(hung.URL)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name     string
		upstream *url.URL
		cfg      Config
	}{
		{"connection refused", deadURL, Config{}},
		{"response header timeout", hungURL, Config{Transport: &http.Transport{ResponseHeaderTimeout: 50 * time.Millisecond}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			proxyURL, logs := startFor(t, tc.upstream, tc.cfg)
			resp, err := client(t).Get(proxyURL + "/page")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadGateway {
				t.Errorf("status = %d, want 502", resp.StatusCode)
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
				t.Errorf("Content-Type = %q, want text/html", ct)
			}
			for _, want := range []string{"upstream site at <code>" + tc.upstream.Host + "</code> could not be reached", "--upstream"} {
				if !strings.Contains(string(body), want) {
					t.Errorf("502 page does not say %q:\n%s", want, body)
				}
			}
			if l := logs.String(); !strings.Contains(l, "level=ERROR") || !strings.Contains(l, tc.upstream.Host) {
				t.Errorf("error not logged with the upstream host:\n%s", l)
			}
		})
	}
}

func TestNewRejectsBadUpstream(t *testing.T) {
	for _, raw := range []string{"", "/relative/path", "localhost:3000", "ftp://files.example/", "http://", "//host.example"} {
		t.Run(raw, func(t *testing.T) {
			u, err := url.Parse(raw)
			if err != nil {
				t.Fatal(err)
			}
			_, err = New(u, Config{Snippet: []byte(snippet)})
			if err == nil || !strings.Contains(err.Error(), "such as http://127.0.0.1:3000") {
				t.Errorf("New(%q) error = %v, want one that says what to pass", raw, err)
			}
		})
	}
	t.Run("nil", func(t *testing.T) {
		if _, err := New(nil, Config{Snippet: []byte(snippet)}); err == nil {
			t.Error("New(nil) succeeded")
		}
	})
	t.Run("no snippet", func(t *testing.T) {
		if _, err := New(&url.URL{Scheme: "http", Host: "127.0.0.1:3000"}, Config{}); err == nil {
			t.Error("New without a snippet succeeded")
		}
	})
}

// BenchmarkProxyHTML measures a 100 KB HTML page through the proxy, over
// loopback, against an upstream that serves it from memory.
func BenchmarkProxyHTML(b *testing.B) {
	var pg strings.Builder
	pg.WriteString("<!DOCTYPE html><html><head><meta charset=utf-8><title>Shop</title></head><body>")
	for i := 0; pg.Len() < 100<<10; i++ {
		pg.WriteString(`<article class="card"><a href="/p/` + strconv.Itoa(i) + `"><img src="/i.jpg" alt=""></a><h2>Product</h2><p class="price">9.99</p></article>` + "\n")
	}
	pg.WriteString("</body></html>")
	body := []byte(pg.String())
	proxyURL, _ := start(b, serve(200, body, "Content-Type", "text/html"), Config{Logger: slog.New(slog.DiscardHandler)})
	c := client(b)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		resp, err := c.Get(proxyURL)
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || n != int64(len(body)+len(snippet)) {
			b.Fatalf("read %d bytes, err %v", n, err)
		}
	}
}
