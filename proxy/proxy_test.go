package proxy

import (
	"bufio"
	"bytes"
	"cmp"
	"compress/gzip"
	"context"
	"crypto/tls"
	"encoding/xml"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cobrowse/cobrowse/internal/forwarded"
	"github.com/cobrowse/cobrowse/internal/logtest"
	"github.com/cobrowse/cobrowse/rewrite"
)

// scriptPath and testNonce make the snippet the proxy inserts in tests.
const (
	scriptPath = "/__cobrowse/visitor.js"
	testNonce  = "dGVzdC1ub25jZQ=="
	snippet    = `<script src="/__cobrowse/visitor.js" nonce="dGVzdC1ub25jZQ==" defer=""></script>`
)

const page = "<!DOCTYPE html><html><head><title>Shop</title></head><body><h1>Hi</h1></body></html>"

// injected is page as the proxy must serve it.
var injected = strings.Replace(page, "<head>", "<head>"+snippet, 1)

// start serves upstream on 127.0.0.1 and a Proxy in front of it. cfg's
// ScriptPath and Logger are filled in if empty, and the proxy's nonces are
// testNonce; the log is returned.
func start(t testing.TB, upstream http.Handler, cfg Config) (proxyURL string, logs *logtest.Buffer) {
	t.Helper()
	up := httptest.NewServer(upstream)
	t.Cleanup(up.Close)
	u, err := url.Parse(up.URL)
	if err != nil {
		t.Fatal(err)
	}
	return startFor(t, u, cfg)
}

func startFor(t testing.TB, upstream *url.URL, cfg Config) (proxyURL string, logs *logtest.Buffer) {
	t.Helper()
	p, logs := newTestProxy(t, upstream, cfg)
	front := httptest.NewServer(p)
	t.Cleanup(front.Close)
	return front.URL, logs
}

// newTestProxy returns a Proxy to upstream, set up as start says, and its log.
func newTestProxy(t testing.TB, upstream *url.URL, cfg Config) (*Proxy, *logtest.Buffer) {
	t.Helper()
	logs := new(logtest.Buffer)
	if cfg.ScriptPath == "" {
		cfg.ScriptPath = scriptPath
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	p, err := New(upstream, cfg)
	if err != nil {
		t.Fatal(err)
	}
	p.newNonce = func() string { return testNonce }
	return p, logs
}

// fetch sends req with client and returns the response and its whole body.
func fetch(t testing.TB, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	resp, err := client(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the body: %v", err)
	}
	return resp, body
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
	utf16Page := []byte("<\x00h\x00e\x00a\x00d\x00>\x00<\x00/\x00h\x00e\x00a\x00d\x00>\x00") // "<head></head>", UTF-16LE without a BOM

	tests := []struct {
		name           string
		upstream       http.HandlerFunc
		method         string
		acceptEncoding string
		header         []string // more request headers: pairs of name and value
		wantStatus     int
		wantBody       []byte
		// wantHeader lists headers that must have exactly these values;
		// an empty value means the header must be absent.
		wantHeader map[string]string
		wantLog    string
	}{
		{
			name:       "HTML gets the snippet",
			upstream:   serve(200, []byte(page), "Content-Type", "text/html; charset=utf-8", "ETag", `"v1"`, "Accept-Ranges", "bytes"),
			wantStatus: 200,
			wantBody:   []byte(injected),
			// Another client would get the page compressed.
			wantHeader: map[string]string{"Content-Length": "", "Etag": `W/"v1"`, "Vary": "Sec-Fetch-Dest, Accept-Encoding", "Accept-Ranges": ""},
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
			name:           "gzip HTML for a client that only accepts deflate",
			upstream:       serve(200, gzPage, "Content-Type", "text/html", "Content-Encoding", "gzip", "ETag", `"v1"`, "Vary", "Cookie"),
			acceptEncoding: "deflate",
			wantStatus:     200,
			wantBody:       []byte(injected),
			wantHeader:     map[string]string{"Content-Encoding": "", "Content-Length": "", "Etag": `W/"v1"`, "Vary": "Cookie, Sec-Fetch-Dest, Accept-Encoding"},
		},
		{
			name:       "gzip HTML for a client without gzip",
			upstream:   serve(200, gzPage, "Content-Type", "text/html", "Content-Encoding", "x-gzip", "Vary", "Accept-Encoding"),
			wantStatus: 200,
			wantBody:   []byte(injected),
			wantHeader: map[string]string{"Content-Encoding": "", "Vary": "Accept-Encoding, Sec-Fetch-Dest"},
		},
		{
			name:           "HTML in a coding the proxy cannot decode passes through",
			upstream:       serve(200, []byte("compressed"), "Content-Type", "text/html", "Content-Encoding", "compress", "ETag", `"v1"`),
			acceptEncoding: "compress",
			wantStatus:     200,
			wantBody:       []byte("compressed"),
			wantHeader:     map[string]string{"Content-Encoding": "compress", "Content-Length": "10", "Etag": `"v1"`},
			wantLog:        "content_encoding=compress",
		},
		{
			name:           "HTML in two codings passes through",
			upstream:       serve(200, gzPage, "Content-Type", "text/html", "Content-Encoding", "gzip, br"),
			acceptEncoding: "gzip, br",
			wantStatus:     200,
			wantBody:       gzPage,
			wantHeader:     map[string]string{"Content-Encoding": "gzip, br", "Content-Length": strconv.Itoa(len(gzPage))},
			wantLog:        `content_encoding="gzip, br"`,
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
			name:       "206 in a coding the client does not accept is untouched",
			upstream:   serve(206, gzJSON[:8], "Content-Type", "application/json", "Content-Encoding", "gzip", "Content-Range", "bytes 0-7/99"),
			wantStatus: 206,
			wantBody:   gzJSON[:8],
			wantHeader: map[string]string{"Content-Length": "8", "Content-Encoding": "gzip"},
		},
		{
			name:       "HTML too large to parse passes through with a warning",
			upstream:   serve(200, hugeComment, "Content-Type", "text/html"),
			wantStatus: 200,
			wantBody:   hugeComment,
			wantLog:    "token too large",
		},
		{
			name:       "HTML declared UTF-16 passes through with a warning",
			upstream:   serve(200, utf16Page, "Content-Type", "text/html; charset=UTF-16LE"),
			wantStatus: 200,
			wantBody:   utf16Page,
			wantLog:    "UTF-16 page",
		},
		{
			// The charset is read as mime.ParseMediaType reads it, RFC 2231
			// percent-encoding included.
			name:       "HTML declared UTF-16 percent-encoded passes through",
			upstream:   serve(200, utf16Page, "Content-Type", "text/html; charset*=us-ascii''utf-%31%36be"),
			wantStatus: 200,
			wantBody:   utf16Page,
			wantLog:    "UTF-16 page",
		},
		{
			name:       "corrupt gzip HTML is a 502",
			upstream:   serve(200, []byte(page), "Content-Type", "text/html", "Content-Encoding", "gzip"),
			wantStatus: http.StatusBadGateway,
			wantLog:    "gzip: invalid header",
		},
		{
			name:       "corrupt brotli HTML is a 502",
			upstream:   serve(200, []byte("not really brotli, but an HTML page"), "Content-Type", "text/html", "Content-Encoding", "br"),
			wantStatus: http.StatusBadGateway,
			wantLog:    "decoding the upstream's br response body for /shop: brotli:",
		},
		{
			name:       "corrupt zstd HTML is a 502",
			upstream:   serve(200, []byte(page), "Content-Type", "text/html", "Content-Encoding", "zstd"),
			wantStatus: http.StatusBadGateway,
			wantLog:    "does not start with a zstd frame",
		},
		{
			name:       "corrupt deflate HTML is a 502",
			upstream:   serve(200, []byte{0x78, 0x9c, 0xff, 0xff, 0xff, 0xff}, "Content-Type", "text/html", "Content-Encoding", "deflate"),
			wantStatus: http.StatusBadGateway,
			wantLog:    "decoding the upstream's deflate response body",
		},
		{
			name:       "zstd HTML needing a window over 8 MB is a 502",
			upstream:   serve(200, zstdBigWindow(t, []byte(page)), "Content-Type", "text/html", "Content-Encoding", "zstd"),
			wantStatus: http.StatusBadGateway,
			wantLog:    "decoding the upstream's zstd response body",
		},
		{
			name:       "a navigation gets the snippet",
			upstream:   serve(200, []byte(page), "Content-Type", "text/html"),
			header:     []string{"Sec-Fetch-Dest", "document"},
			wantStatus: 200,
			wantBody:   []byte(injected),
			wantHeader: map[string]string{"Vary": "Sec-Fetch-Dest, Accept-Encoding"},
		},
		{
			name:       "a frame gets the snippet",
			upstream:   serve(200, []byte(page), "Content-Type", "text/html"),
			header:     []string{"Sec-Fetch-Dest", "iframe"},
			wantStatus: 200,
			wantBody:   []byte(injected),
		},
		{
			// htmx, Turbo, jQuery's load(), or a PHP endpoint that
			// answers JSON as text/html: a snippet would break them.
			// (TestProxyFragments has its URLs.)
			name:       "HTML fetched by a script gets no snippet",
			upstream:   serve(200, []byte(page), "Content-Type", "text/html", "Content-Security-Policy", "script-src 'self'", "Cache-Control", "public"),
			header:     []string{"Sec-Fetch-Dest", "empty"},
			wantStatus: 200,
			wantBody:   []byte(page),
			wantHeader: map[string]string{"Vary": "Sec-Fetch-Dest, Accept-Encoding", "Content-Security-Policy": "script-src 'self'", "Cache-Control": "public"},
		},
		{
			name:           "gzip HTML fetched by a script for a client without gzip is only decoded",
			upstream:       serve(200, gzPage, "Content-Type", "text/html", "Content-Encoding", "gzip"),
			acceptEncoding: "identity",
			header:         []string{"Sec-Fetch-Dest", "empty"},
			wantStatus:     200,
			wantBody:       []byte(page),
			wantHeader:     map[string]string{"Content-Encoding": "", "Vary": "Sec-Fetch-Dest, Accept-Encoding"},
		},
		{
			name:       "an HTML download keeps its bytes",
			upstream:   serve(200, []byte(page), "Content-Type", "text/html", "Content-Disposition", `Attachment; filename="page.html"`, "ETag", `"v1"`),
			header:     []string{"Sec-Fetch-Dest", "document"},
			wantStatus: 200,
			wantBody:   []byte(page),
			wantHeader: map[string]string{"Content-Length": strconv.Itoa(len(page)), "Etag": `"v1"`},
		},
		{
			name:       "a page with the snippet is kept out of shared caches",
			upstream:   serve(200, []byte(page), "Content-Type", "text/html", "Cache-Control", "public, max-age=60, s-maxage=600"),
			wantStatus: 200,
			wantBody:   []byte(injected),
			wantHeader: map[string]string{"Cache-Control": "max-age=60, private"},
		},
		{
			// The browser would copy the upstream's policy onto the page it
			// cached, whose snippet has the nonce of the edited policy.
			name: "a 304 leaves the cached page's policy in place",
			upstream: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/html")
				w.Header().Set("Content-Security-Policy", "script-src 'self'")
				w.Header().Set("Content-Security-Policy-Report-Only", "script-src 'none'")
				w.Header().Set("ETag", `W/"v1"`)
				http.ServeContent(w, r, "", time.Time{}, strings.NewReader(page))
			}),
			header:     []string{"If-None-Match", `W/"v1"`},
			wantStatus: http.StatusNotModified,
			wantHeader: map[string]string{"Content-Security-Policy": "", "Content-Security-Policy-Report-Only": "", "Etag": `W/"v1"`},
		},
		{
			name:       "gzip HTML that is empty stays empty",
			upstream:   emptyChunked("Content-Type", "text/html", "Content-Encoding", "gzip"),
			wantStatus: 200,
			wantBody:   []byte{},
			wantHeader: map[string]string{"Content-Encoding": ""},
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
			for i := 0; i < len(tc.header); i += 2 {
				req.Header.Set(tc.header[i], tc.header[i+1])
			}
			resp, body := fetch(t, req)
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

// TestProxyXHTMLStaysXML checks that an XHTML page, which browsers parse as
// XML, is still well-formed with the snippet in it.
func TestProxyXHTMLStaysXML(t *testing.T) {
	const doc = `<?xml version="1.0" encoding="utf-8"?>` + "\n" +
		`<html xmlns="http://www.w3.org/1999/xhtml"><head><title>Shop</title></head><body><p>Hi</p></body></html>`
	proxyURL, _ := start(t, serve(200, []byte(doc), "Content-Type", "application/xhtml+xml"), Config{})
	req, err := http.NewRequest(http.MethodGet, proxyURL+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	_, body := fetch(t, req)
	scripts := 0
	for d := xml.NewDecoder(bytes.NewReader(body)); ; {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed XML: %v\n%s", err, body)
		}
		if el, ok := tok.(xml.StartElement); ok && el.Name.Local == "script" {
			scripts++
		}
	}
	if scripts != 1 {
		t.Errorf("%d <script> elements, want the snippet's:\n%s", scripts, body)
	}
}

// TestProxyFragments checks the HTML that a script fetches: it gets no
// snippet, its URLs to the upstream point at the proxy's origin as a
// page's do, and when there are none to rewrite (the visitor reached the
// proxy on the upstream's origin) it passes through as the upstream sent it.
func TestProxyFragments(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fragment := fmt.Sprintf(`<li><a href="http://%s/cart">Cart</a></li>`, r.Host) // the proxy sends the upstream's Host
		w.Header().Set("Content-Type", "text/html")
		w.Header().Set("Content-Length", strconv.Itoa(len(fragment)))
		w.Header().Set("ETag", `"v1"`)
		io.WriteString(w, fragment)
	}))
	defer up.Close()
	upURL, err := url.Parse(up.URL)
	if err != nil {
		t.Fatal(err)
	}
	proxyURL, _ := startFor(t, upURL, Config{})
	for _, tc := range []struct {
		host, wantBody, wantLength, wantETag string
	}{
		{upURL.Host, `<li><a href="` + up.URL + `/cart">Cart</a></li>`, strconv.Itoa(len(`<li><a href="` + up.URL + `/cart">Cart</a></li>`)), `"v1"`},
		{"shop.example", `<li><a href="http://shop.example/cart">Cart</a></li>`, "", `W/"v1"`},
	} {
		req, err := http.NewRequest(http.MethodGet, proxyURL+"/menu", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = tc.host
		req.Header.Set("Sec-Fetch-Dest", "empty")
		resp, body := fetch(t, req)
		if string(body) != tc.wantBody {
			t.Errorf("Host %s: body %s, want %s", tc.host, body, tc.wantBody)
		}
		if got := resp.Header.Get("Content-Length"); got != tc.wantLength {
			t.Errorf("Host %s: Content-Length %q, want %q", tc.host, got, tc.wantLength)
		}
		if got := resp.Header.Get("ETag"); got != tc.wantETag {
			t.Errorf("Host %s: ETag %q, want %q", tc.host, got, tc.wantETag)
		}
	}
}

// TestProxyEarlyHints checks that a 103 Early Hints answer reaches the
// visitor with its Link headers on the public origin, as the final answer's
// are: the upstream's own address must not leak, nor be preloaded from.
func TestProxyEarlyHints(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "<http://"+r.Host+"/style.css>; rel=preload; as=style")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "ok")
	}))
	defer up.Close()
	upURL, err := url.Parse(up.URL)
	if err != nil {
		t.Fatal(err)
	}
	proxyURL, _ := startFor(t, upURL, Config{})
	conn, err := net.Dial("tcp", strings.TrimPrefix(proxyURL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "GET /product HTTP/1.1\r\nHost: shop.example\r\nConnection: close\r\n\r\n")
	answer, err := io.ReadAll(conn)
	if err != nil {
		t.Fatal(err)
	}
	const want = "HTTP/1.1 103 Early Hints\r\nLink: <http://shop.example/style.css>; rel=preload; as=style\r\n\r\n"
	if !bytes.HasPrefix(answer, []byte(want)) || bytes.Contains(answer, []byte(upURL.Host)) {
		t.Errorf("answer:\n%s\nwant it to start with:\n%s", answer, want)
	}
}

// TestProxyContactsOnlyItsUpstream sends the request forms that name another
// server: a CONNECT to it is refused (the proxy opens no tunnels) without
// the upstream hearing of it, and an absolute-form request for it goes to
// the upstream.
func TestProxyContactsOnlyItsUpstream(t *testing.T) {
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("another server got %s %s", r.Method, r.RequestURI)
	}))
	defer other.Close()
	otherHost := strings.TrimPrefix(other.URL, "http://")
	var mu sync.Mutex
	var got []string // the upstream's requests
	proxyURL, _ := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.Method+" "+r.RequestURI)
		mu.Unlock()
		io.WriteString(w, "upstream")
	}), Config{})
	for _, tc := range []struct {
		request      string
		wantStatus   int
		wantBody     string
		wantUpstream []string
	}{
		{"CONNECT " + otherHost + " HTTP/1.1\r\nHost: " + otherHost + "\r\n\r\n", http.StatusNotImplemented, "not a forward proxy", nil},
		{"GET " + other.URL + "/page HTTP/1.1\r\nHost: " + otherHost + "\r\n\r\n", http.StatusOK, "upstream", []string{"GET /page"}},
	} {
		mu.Lock()
		got = nil
		mu.Unlock()
		conn, err := net.Dial("tcp", strings.TrimPrefix(proxyURL, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(conn, tc.request)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("%q: %v", tc.request, err)
		}
		body, _ := io.ReadAll(resp.Body)
		conn.Close()
		mu.Lock()
		upstreamGot := got
		mu.Unlock()
		if resp.StatusCode != tc.wantStatus || !strings.Contains(string(body), tc.wantBody) || !slices.Equal(upstreamGot, tc.wantUpstream) {
			t.Errorf("%q: %d %q, the upstream got %q; want %d with %q, the upstream %q",
				tc.request, resp.StatusCode, body, upstreamGot, tc.wantStatus, tc.wantBody, tc.wantUpstream)
		}
	}
}

// TestProxyStopsLoops checks CDN-Loop (RFC 8586): a proxy whose upstream is
// itself answers 508 on the request's second visit, rather than forwarding
// it to itself without end, and a chain of two proxies behind a CDN passes
// the header on with each one's pseudonym appended.
func TestProxyStopsLoops(t *testing.T) {
	t.Run("upstream is the proxy itself", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p, logs := newTestProxy(t, &url.URL{Scheme: "http", Host: ln.Addr().String()}, Config{})
		front := httptest.NewUnstartedServer(p)
		front.Listener.Close()
		front.Listener = ln
		front.Start()
		defer front.Close()
		req, err := http.NewRequest(http.MethodGet, front.URL+"/", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, body := fetch(t, req)
		if resp.StatusCode != http.StatusLoopDetected || !strings.Contains(string(body), "is this cobrowse server itself") {
			t.Errorf("got %d %q, want 508 saying the upstream is cobrowse", resp.StatusCode, body)
		}
		if got, want := p.Stats(), (Stats{Requests: 2, UpstreamErrors: 1, Pages: 1}); got != want {
			t.Errorf("Stats() = %+v, want %+v", got, want)
		}
		if !strings.Contains(logs.String(), "came back to this proxy") {
			t.Errorf("log: %s; want the loop explained", logs)
		}
	})

	t.Run("a chain of proxies", func(t *testing.T) {
		var mu sync.Mutex
		var got []string
		up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			got = r.Header["Cdn-Loop"]
			mu.Unlock()
			io.WriteString(w, "ok")
		}))
		defer up.Close()
		upURL, _ := url.Parse(up.URL)
		second, _ := newTestProxy(t, upURL, Config{})
		secondFront := httptest.NewServer(second)
		defer secondFront.Close()
		secondURL, _ := url.Parse(secondFront.URL)
		first, _ := newTestProxy(t, secondURL, Config{})
		firstFront := httptest.NewServer(first)
		defer firstFront.Close()
		req, err := http.NewRequest(http.MethodGet, firstFront.URL+"/", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("CDN-Loop", "cloudflare")
		resp, body := fetch(t, req)
		mu.Lock()
		defer mu.Unlock()
		want := []string{"cloudflare", first.loopID, second.loopID}
		if resp.StatusCode != http.StatusOK || string(body) != "ok" || !slices.Equal(got, want) {
			t.Errorf("got %d %q, the upstream's CDN-Loop %q; want 200 \"ok\", %q", resp.StatusCode, body, got, want)
		}
	})
}

// trustedProxies returns the Proxies of a --trusted-proxy list; "" trusts no
// one.
func trustedProxies(t testing.TB, list string) forwarded.Proxies {
	t.Helper()
	if list == "" {
		return forwarded.Proxies{}
	}
	p, err := forwarded.ParseProxies(list)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestProxyForwarding checks what the upstream receives, from a client on
// 127.0.0.1 that sends X-Forwarded-* headers: spoofed, unless 127.0.0.1 is a
// trusted proxy.
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
	upURL, err := url.Parse(up.URL)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		trusted  string
		xff, xfp string // what the upstream must see
	}{
		{"", "127.0.0.1", "http"},               // the client's address only
		{"::1,10.0.0.0/8", "127.0.0.1", "http"}, // another proxy is trusted
		{"127.0.0.1", "203.0.113.9, 127.0.0.1", "https"},
	} {
		proxyURL, _ := startFor(t, upURL, Config{TrustedProxies: trustedProxies(t, tc.trusted)})

		req, err := http.NewRequest(http.MethodGet, proxyURL+"/cart?id=7", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = "shop.example"
		req.Header.Set("X-Forwarded-For", "203.0.113.9")
		req.Header.Set("X-Forwarded-Proto", "https")
		req.Header.Set("X-Forwarded-Host", "evil.example") // never believed
		req.Header.Set("Accept-Encoding", "zstd, br")
		resp, err := client(t).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		want := seen{
			host:   upURL.Host, // not the client's Host
			uri:    "/cart?id=7",
			accept: "zstd, br", // the client's codings, in the proxy's order among equals
			xff:    tc.xff,
			xfh:    "shop.example",
			xfp:    tc.xfp,
		}
		if s := <-got; s != want {
			t.Errorf("trusted proxies %q: upstream saw %+v\nwant %+v", tc.trusted, s, want)
		}
	}
}

// TestProxyBehindTrustedProxy checks a Proxy behind a TLS-terminating load
// balancer: the balancer connects over plain http and says https in
// X-Forwarded-Proto. From a trusted peer the public origin is https, so the
// upstream's https URLs, redirects, Secure cookies and the CSP's socket stay
// https; from any other peer the same headers are ignored and the public
// origin is http, as it is without a balancer. httptest's requests come
// from 192.0.2.1.
func TestProxyBehindTrustedProxy(t *testing.T) {
	const client = "203.0.113.7"
	tests := []struct {
		name       string
		trusted    string // --trusted-proxy; "" trusts no one
		proto, xff []string
		overTLS    bool // the request came over TLS to the proxy itself
		wantScheme string
		wantXFF    string
		wantRealIP string // X-Real-IP: the client as Proxies.Client finds it
	}{
		{"trusted, https", "192.0.2.0/24", []string{"https"}, []string{client}, false, "https", client + ", 192.0.2.1", client},
		{"trusted address, https", "10.0.0.0/8,192.0.2.1", []string{"https"}, []string{client}, false, "https", client + ", 192.0.2.1", client},
		{"trusted, a chain of proxies", "192.0.2.0/24", []string{"https"}, []string{client + ", 198.51.100.2", "198.51.100.3"}, false, "https", client + ", 198.51.100.2, 198.51.100.3, 192.0.2.1", "198.51.100.3"},
		{"trusted, http over TLS", "192.0.2.0/24", []string{"http"}, nil, true, "http", "192.0.2.1", "192.0.2.1"},
		{"trusted, no proto", "192.0.2.0/24", nil, []string{client}, false, "http", client + ", 192.0.2.1", client},
		{"trusted, no proto, TLS", "192.0.2.0/24", nil, nil, true, "https", "192.0.2.1", "192.0.2.1"},
		{"trusted, bad proto", "192.0.2.0/24", []string{"wss"}, []string{client}, false, "http", client + ", 192.0.2.1", client},
		{"trusted, bad proto, TLS", "192.0.2.0/24", []string{"ftp"}, nil, true, "https", "192.0.2.1", "192.0.2.1"},
		{"trusted, a list of protos", "192.0.2.0/24", []string{"https, http"}, nil, false, "http", "192.0.2.1", "192.0.2.1"},
		{"untrusted peer", "10.0.0.0/8,127.0.0.1", []string{"https"}, []string{client}, false, "http", "192.0.2.1", "192.0.2.1"},
		{"untrusted peer, http over TLS", "10.0.0.0/8", []string{"http"}, nil, true, "https", "192.0.2.1", "192.0.2.1"},
		{"no trusted proxies", "", []string{"https"}, []string{client}, false, "http", "192.0.2.1", "192.0.2.1"},
	}
	for _, upstream := range []string{"https://shop.example", "https://backend.internal"} {
		for _, tt := range tests {
			t.Run(upstream+" "+tt.name, func(t *testing.T) {
				cfg := Config{TrustedProxies: trustedProxies(t, tt.trusted)}
				var sent http.Header // what the upstream got
				cfg.Transport = roundTripper(func(r *http.Request) (*http.Response, error) {
					sent = r.Header
					body := `<!DOCTYPE html><html><head><script src="` + upstream + `/app.js"></script></head><body></body></html>`
					return &http.Response{StatusCode: http.StatusOK, Request: r, ContentLength: int64(len(body)), Body: io.NopCloser(strings.NewReader(body)),
						Header: http.Header{
							"Content-Type":            {"text/html"},
							"Content-Security-Policy": {"script-src 'nonce-abc'; connect-src 'self'"},
							"Location":                {upstream + "/new"},
							"Set-Cookie":              {"sid=1; Secure; SameSite=None; Path=/"},
							"Alt-Svc":                 {`h3=":443"; ma=86400, h3="edge.cdn.example:443"`},
						}}, nil
				})
				u, err := url.Parse(upstream)
				if err != nil {
					t.Fatal(err)
				}
				p, _ := newTestProxy(t, u, cfg)
				req := httptest.NewRequest(http.MethodGet, "http://shop.example/", nil)
				if tt.overTLS {
					req.TLS = &tls.ConnectionState{}
				}
				req.Header["X-Forwarded-Proto"] = tt.proto
				req.Header["X-Forwarded-For"] = tt.xff
				req.Header["X-Forwarded-Host"] = []string{"evil.example"} // never believed
				// Believed only from a trusted proxy: the site may take
				// the client's address from them.
				req.Header["X-Real-Ip"] = []string{"198.18.0.66"}
				req.Header["True-Client-Ip"] = []string{"198.18.0.66"}
				wantTrueClient := ""
				if strings.HasPrefix(tt.name, "trusted") {
					wantTrueClient = "198.18.0.66"
				}
				rec := httptest.NewRecorder()
				p.ServeHTTP(rec, req)

				public := tt.wantScheme + "://shop.example"
				ws := map[string]string{"https": "wss", "http": "ws"}[tt.wantScheme] + "://shop.example"
				wantCookie := "sid=1; Secure; SameSite=None; Path=/"
				if tt.wantScheme == "http" {
					wantCookie = "sid=1; SameSite=Lax; Path=/"
				}
				for _, c := range []struct{ what, got, want string }{
					{"page", rec.Body.String(), `<!DOCTYPE html><html><head>` + snippet + `<script src="` + public + `/app.js"></script></head><body></body></html>`},
					{"Location", rec.Header().Get("Location"), public + "/new"},
					{"Set-Cookie", rec.Header().Get("Set-Cookie"), wantCookie},
					{"CSP", rec.Header().Get("Content-Security-Policy"), "script-src 'nonce-abc' 'nonce-" + testNonce + "'; connect-src 'self' " + ws},
					{"upstream's X-Forwarded-For", strings.Join(sent["X-Forwarded-For"], " | "), tt.wantXFF},
					{"upstream's X-Forwarded-Proto", strings.Join(sent["X-Forwarded-Proto"], " | "), tt.wantScheme},
					{"upstream's X-Forwarded-Host", strings.Join(sent["X-Forwarded-Host"], " | "), "shop.example"},
					{"upstream's X-Real-IP", strings.Join(sent["X-Real-Ip"], " | "), tt.wantRealIP},
					{"upstream's True-Client-IP", strings.Join(sent["True-Client-Ip"], " | "), wantTrueClient},
					{"Alt-Svc", rec.Header().Get("Alt-Svc"), ""},
				} {
					if c.got != c.want {
						t.Errorf("%s:\n got %q\nwant %q", c.what, c.got, c.want)
					}
				}
			})
		}
	}
}

// TestProxyHTTPSUpstream checks a Proxy in front of an https upstream that
// offers HTTP/2: a page comes over the proxy's own transport in HTTP/1.1,
// gets the snippet, and its absolute URLs on the upstream's https origin
// move to the proxy's http one; a POST goes through the fallback, which
// speaks HTTP/2.
func TestProxyHTTPSUpstream(t *testing.T) {
	seen := make(chan string, 2)
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- r.Method + " " + r.Proto
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!DOCTYPE html><html><head><title>Shop</title></head><body><a href="https://%s/cart">cart</a></body></html>`, r.Host)
	}))
	up.EnableHTTP2 = true
	up.StartTLS()
	t.Cleanup(up.Close)
	upURL, err := url.Parse(up.URL)
	if err != nil {
		t.Fatal(err)
	}
	p, logs := newTestProxy(t, upURL, Config{})
	roots := up.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	tr := p.rp.Transport.(hintsTransport).next.(*upstreamTransport)
	tr.tlsConfig.RootCAs = roots
	tr.fallback.(*http.Transport).TLSClientConfig = &tls.Config{RootCAs: roots}
	front := httptest.NewServer(p)
	t.Cleanup(front.Close)

	for _, method := range []string{http.MethodGet, http.MethodPost} {
		req, _ := http.NewRequest(method, front.URL+"/", strings.NewReader(""))
		resp, body := fetch(t, req)
		want := `<!DOCTYPE html><html><head>` + snippet + `<title>Shop</title></head><body><a href="` + front.URL + `/cart">cart</a></body></html>`
		if resp.StatusCode != http.StatusOK || string(body) != want {
			t.Errorf("%s: %d %q\nwant 200 %q\nlog: %s", method, resp.StatusCode, body, want, logs)
		}
	}
	if got := []string{<-seen, <-seen}; got[0] != "GET HTTP/1.1" || got[1] != "POST HTTP/2.0" {
		t.Errorf("the upstream saw %q, want GET over HTTP/1.1 and POST over HTTP/2.0", got)
	}
}

// TestProxyAcceptEncoding checks the codings the proxy asks the upstream
// for: those it can decode that the client accepts too, best first, or
// identity; whatever the method and Range.
func TestProxyAcceptEncoding(t *testing.T) {
	asked := make(chan string, 1)
	proxyURL, _ := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked <- r.Header.Get("Accept-Encoding")
	}), Config{})
	tests := []struct {
		method, rangeHeader, acceptEncoding string
		want                                string
	}{
		{"GET", "", "gzip, deflate, br, zstd", "zstd, br, gzip, deflate"}, // Chrome
		{"GET", "", "gzip, deflate, br", "br, gzip, deflate"},
		{"GET", "", "br", "br"},
		{"GET", "", "x-gzip", "gzip"},
		{"GET", "", "gzip;q=0.5, zstd", "zstd, gzip"},
		{"GET", "", "*", "zstd, br, gzip, deflate"},
		{"GET", "", "*, br;q=0", "zstd, gzip, deflate"},
		{"GET", "", "compress, identity", "identity"},
		{"GET", "", "", "identity"},
		{"POST", "", "", "identity"},
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
// reaches the client while the upstream is still producing the rest, for
// every coding of the upstream and of the client, and whether the upstream
// declares its length.
//
// The upstream first pauses inside the <title>, in the part of the head
// that the proxy lexes for <meta> policies (rewrite.WithMetaCSP): all it
// sent, the title's text included, must arrive at once. The upstream then
// sends the end of the title and part of the body and pauses again, right
// after: those bytes, which come within the proxy's coalescing window of the
// first ones (coalesce.go), must arrive during that pause too.
func TestProxyStreamsHTML(t *testing.T) {
	const first, second, rest = "<!DOCTYPE html><html><head><title>Slow", "</title></head><body><p>one</p>", "<p>done</p></body></html>"
	wantFirst := strings.Replace(first, "<head>", "<head>"+snippet, 1)
	type upstream struct {
		name          string
		coding        upstreamCoding
		contentLength bool
	}
	var upstreams []upstream
	for _, c := range upstreamCodings() {
		upstreams = append(upstreams, upstream{c.name + " chunked", c, false})
	}
	upstreams = append(upstreams,
		upstream{"identity with Content-Length", upstreamCodings()[0], true},
		upstream{"gzip with Content-Length", upstreamCodings()[1], true})

	for _, up := range upstreams {
		parts := encodeParts(t, up.coding, first, second, rest)
		release := make(chan struct{}, 2)
		proxyURL, _ := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			if up.coding.header != "" {
				w.Header().Set("Content-Encoding", up.coding.header)
			}
			if up.contentLength {
				w.Header().Set("Content-Length", strconv.Itoa(len(parts[0])+len(parts[1])+len(parts[2])))
			}
			for i, part := range parts {
				w.Write(part)
				if i == len(parts)-1 {
					return
				}
				http.NewResponseController(w).Flush()
				select {
				case <-release:
				case <-r.Context().Done():
					return
				}
			}
		}), Config{})

		for _, out := range []string{"", "gzip", "br", "zstd"} {
			t.Run(up.name+" to "+cmp.Or(out, "identity"), func(t *testing.T) {
				// The deadline only turns a buffering proxy into a
				// failure instead of a hung test; it does not
				// synchronise anything.
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				resp := open(t, ctx, proxyURL, out)
				defer resp.Body.Close()
				if got := resp.Header.Get("Content-Encoding"); got != out {
					t.Fatalf("Content-Encoding %q, want %q", got, out)
				}
				body := decodeAs(t, out, resp.Body)

				got := make([]byte, len(wantFirst))
				if _, err := io.ReadFull(body, got); err != nil {
					t.Fatalf("after %q: %v", got, err)
				}
				if string(got) != wantFirst {
					t.Fatalf("first bytes %q, want %q", got, wantFirst)
				}
				release <- struct{}{} // the upstream sends the second part at once, and pauses
				got = make([]byte, len(second))
				if _, err := io.ReadFull(body, got); err != nil {
					t.Fatalf("after %q: %v", got, err)
				}
				if string(got) != second {
					t.Fatalf("next bytes %q, want %q", got, second)
				}
				release <- struct{}{}
				tail, err := io.ReadAll(body)
				if err != nil {
					t.Fatal(err)
				}
				if string(tail) != rest {
					t.Errorf("rest %q, want %q", tail, rest)
				}
			})
		}
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
		io.Copy(io.Discard, r.Body) // then net/http watches for the client going away
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

	timeouts := upstreamTimeouts{dial: time.Second, responseHeader: 50 * time.Millisecond, idle: time.Minute}
	tests := []struct {
		name       string
		upstream   *url.URL
		cfg        Config
		method     string
		wantStatus int
		wantSays   []string
	}{
		{"connection refused", deadURL, Config{}, http.MethodGet,
			http.StatusBadGateway, []string{"502 Bad Gateway", "could not be reached", "--upstream"}},
		{"response header timeout", hungURL, Config{Transport: newUpstreamTransport(hungURL, timeouts)}, http.MethodGet,
			http.StatusGatewayTimeout, []string{"504 Gateway Timeout", "did not answer in time"}},
		{"response header timeout, through http.Transport", hungURL, Config{Transport: newUpstreamTransport(hungURL, timeouts)}, http.MethodPost,
			http.StatusGatewayTimeout, []string{"504 Gateway Timeout", "did not answer in time"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			proxyURL, logs := startFor(t, tc.upstream, tc.cfg)
			var form io.Reader // a GET without one goes through the own transport
			if tc.method == http.MethodPost {
				form = strings.NewReader("q=1")
			}
			req, _ := http.NewRequest(tc.method, proxyURL+"/page", form)
			resp, err := client(t).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.wantStatus {
				t.Errorf("status = %d, want %d", resp.StatusCode, tc.wantStatus)
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
				t.Errorf("Content-Type = %q, want text/html", ct)
			}
			for _, want := range append(tc.wantSays, "upstream site at <code>"+tc.upstream.Host+"</code>") {
				if !strings.Contains(string(body), want) {
					t.Errorf("the page does not say %q:\n%s", want, body)
				}
			}
			if l := logs.String(); !strings.Contains(l, "level=ERROR") || !strings.Contains(l, tc.upstream.Host) {
				t.Errorf("error not logged with the upstream host:\n%s", l)
			}
		})
	}
}

func TestNewRejectsBadUpstream(t *testing.T) {
	for _, raw := range []string{"", "/relative/path", "localhost:3000", "ftp://files.example/", "http://", "//host.example", "http://host.example:99999", "http://ho!st.example", "http://shop~1.example",
		"http://127.0.0.1:3000/app", "http://127.0.0.1:3000/?q=1", "http://127.0.0.1:3000?", "http://127.0.0.1:3000/#top"} {
		t.Run(raw, func(t *testing.T) {
			u, err := url.Parse(raw)
			if err != nil {
				t.Fatal(err)
			}
			_, err = New(u, Config{ScriptPath: scriptPath})
			if err == nil || !strings.Contains(err.Error(), "such as http://127.0.0.1:3000") {
				t.Errorf("New(%q) error = %v, want one that says what to pass", raw, err)
			}
		})
	}
	for _, raw := range []string{"http://127.0.0.1:3000", "http://127.0.0.1:3000/", "https://shop.example"} {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := New(u, Config{ScriptPath: scriptPath}); err != nil {
			t.Errorf("New(%q): %v", raw, err)
		}
	}
	t.Run("nil", func(t *testing.T) {
		if _, err := New(nil, Config{ScriptPath: scriptPath}); err == nil {
			t.Error("New(nil) succeeded")
		}
	})
	for _, path := range []string{"", "visitor.js", `/x.js" onload="alert(1)`, "/a b.js"} {
		t.Run("script path "+path, func(t *testing.T) {
			if _, err := New(&url.URL{Scheme: "http", Host: "127.0.0.1:3000"}, Config{ScriptPath: path}); err == nil {
				t.Errorf("New with ScriptPath %q succeeded", path)
			}
		})
	}
}

// BenchmarkProxyHTML measures a 100 KB HTML page (benchPage) through the
// proxy, over loopback, against an upstream that serves it unencoded from
// memory, for a client that accepts each coding the proxy produces: the
// difference from identity is the cost of compressing the page. wire-B/op
// is the size of the body the client receives; cpu-ns/op the CPU time of
// the whole process (client, proxy and upstream), steadier than ns/op on a
// busy machine.
func BenchmarkProxyHTML(b *testing.B) {
	body := benchPage()
	proxyURL, _ := start(b, serve(200, body, "Content-Type", "text/html"), Config{Logger: slog.New(slog.DiscardHandler)})
	c := client(b)
	for _, coding := range []string{"identity", "gzip", "br", "zstd"} {
		b.Run(coding, func(b *testing.B) {
			req, err := http.NewRequest(http.MethodGet, proxyURL, nil)
			if err != nil {
				b.Fatal(err)
			}
			req.Header.Set("Accept-Encoding", coding)
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			var wire int64
			cpu := processCPU(b)
			for b.Loop() {
				resp, err := c.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				n, err := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err != nil || resp.Header.Get("Content-Encoding") != strings.TrimPrefix(coding, "identity") {
					b.Fatalf("read %d bytes in %q, err %v", n, resp.Header.Get("Content-Encoding"), err)
				}
				wire += n
			}
			b.ReportMetric(float64(processCPU(b)-cpu)/float64(b.N), "cpu-ns/op")
			b.ReportMetric(float64(wire)/float64(b.N), "wire-B/op")
		})
	}
}

// processCPU returns the CPU time (user and system) the process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchPage returns a 100 KB HTML page whose head has the usual tags, as the
// page of bench/proxy.sh does: the Injector, which edits <meta> policies,
// hands the head on one tag per read.
func benchPage() []byte {
	var pg strings.Builder
	pg.WriteString(`<!DOCTYPE html><html lang="en"><head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Shop</title>
<meta name="description" content="A shop.">
<link rel="stylesheet" href="/static/site.css">
<link rel="icon" href="/favicon.ico">
<script src="/static/app.js" defer></script>
</head><body>`)
	for i := 0; pg.Len() < 100<<10; i++ {
		pg.WriteString(`<article class="card"><a href="/p/` + strconv.Itoa(i) + `"><img src="/i.jpg" alt=""></a><h2>Product</h2><p class="price">9.99</p></article>` + "\n")
	}
	pg.WriteString("</body></html>")
	return []byte(pg.String())
}

// BenchmarkProxyPage measures the proxy's own cost per page: benchPage
// served by ServeHTTP from an in-memory upstream (whose body ends as
// net/http's body of known length does) to an in-memory client,
// with no network, client or upstream to share the CPU with. Each case is
// "upstream coding to client coding"; gzip to gzip is the work of the
// html-gzip page of bench/proxy.sh (decoded, injected, encoded again). In
// the "in 512 B pieces" cases the upstream's body comes 512 bytes per read,
// as from a server that flushes small chunks (streamed server-side
// rendering), all within one coalescing window.
func BenchmarkProxyPage(b *testing.B) {
	body := benchPage()
	gz := gzipped(b, body)
	for _, tc := range []struct {
		upstream, client string
		piece            int  // the most the upstream's body returns per read; 0 for no limit
		tagOnly          bool // the request's Host is the upstream's: no URL to rewrite (cob-inject in bench/proxy.sh)
	}{
		{"identity", "identity", 0, false},
		{"identity", "identity", 0, true},
		{"identity", "gzip", 0, false},
		{"gzip", "gzip", 0, false},
		{"identity", "br", 0, false},
		{"identity", "zstd", 0, false},
		{"identity", "identity", 512, false},
		{"identity", "gzip", 512, false},
		{"identity", "br", 512, false},
		{"identity", "zstd", 512, false},
	} {
		name := tc.upstream + " to " + tc.client
		if tc.piece > 0 {
			name += " in " + strconv.Itoa(tc.piece) + " B pieces"
		}
		host := "shop.test"
		if tc.tagOnly {
			name += ", tag only"
			host = "upstream.test"
		}
		b.Run(name, func(b *testing.B) {
			sent := body
			if tc.upstream == "gzip" {
				sent = gz
			}
			p, err := New(&url.URL{Scheme: "http", Host: "upstream.test"}, Config{
				ScriptPath: scriptPath,
				Logger:     slog.New(slog.DiscardHandler),
				Transport: roundTripper(func(r *http.Request) (*http.Response, error) {
					h := http.Header{"Content-Type": {"text/html; charset=utf-8"}}
					if tc.upstream != "identity" {
						h.Set("Content-Encoding", tc.upstream)
					}
					var body io.Reader = &endsWithLast{bytes.NewReader(sent)}
					if tc.piece > 0 {
						body = &pieceReader{body, tc.piece}
					}
					return &http.Response{
						StatusCode: 200, Header: h, Request: r,
						Body: io.NopCloser(body), ContentLength: int64(len(sent)),
					}, nil
				}),
			})
			if err != nil {
				b.Fatal(err)
			}
			req := httptest.NewRequest(http.MethodGet, "http://"+host+"/", nil)
			req.Header.Set("Accept-Encoding", tc.client)
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			var wire int64
			cpu := processCPU(b)
			for b.Loop() {
				w := &discardResponse{header: http.Header{}}
				p.ServeHTTP(w, req)
				if w.header.Get("Content-Encoding") != strings.TrimPrefix(tc.client, "identity") {
					b.Fatalf("Content-Encoding %q", w.header.Get("Content-Encoding"))
				}
				wire += w.n
			}
			b.ReportMetric(float64(processCPU(b)-cpu)/float64(b.N), "cpu-ns/op")
			b.ReportMetric(float64(wire)/float64(b.N), "wire-B/op")
		})
	}
}

// pieceReader returns at most n bytes of r per Read.
// endsWithLast returns the end of r (io.EOF) with its last bytes, as
// net/http's body of known length does.
type endsWithLast struct{ r *bytes.Reader }

func (e *endsWithLast) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err == nil && e.r.Len() == 0 {
		err = io.EOF
	}
	return n, err
}

type pieceReader struct {
	r io.Reader
	n int
}

func (p *pieceReader) Read(b []byte) (int, error) { return p.r.Read(b[:min(len(b), p.n)]) }

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// discardResponse is an http.ResponseWriter and http.Flusher that counts
// the body bytes written and drops them.
type discardResponse struct {
	header http.Header
	n      int64
}

func (w *discardResponse) Header() http.Header         { return w.header }
func (w *discardResponse) WriteHeader(int)             {}
func (w *discardResponse) Flush()                      {}
func (w *discardResponse) Write(p []byte) (int, error) { w.n += int64(len(p)); return len(p), nil }

// TestProxyEditsPolicies checks that a page's policies, in its headers and
// in its head's <meta>, allow the visitor script and its socket on the
// origin the visitor used, whether that is the upstream's own (no URL to
// rewrite) or another (the upstream's URLs rewritten too).
func TestProxyEditsPolicies(t *testing.T) {
	var upstreamOrigin string
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.Header().Set("Content-Security-Policy", "script-src 'nonce-abc'; connect-src 'self'")
		w.Header().Add("Content-Security-Policy", "default-src 'self'")
		w.Header().Set("Content-Security-Policy-Report-Only", "script-src 'strict-dynamic' 'nonce-xyz'")
		fmt.Fprintf(w, `<!DOCTYPE html><html><head><meta http-equiv="Content-Security-Policy" content="connect-src 'self'">`+
			`<title>Shop</title></head><body><a href="%s/cart">Cart</a><meta http-equiv="Content-Security-Policy" content="connect-src 'none'"></body></html>`, upstreamOrigin)
	}))
	defer up.Close()
	upstreamOrigin = up.URL
	upURL, err := url.Parse(up.URL)
	if err != nil {
		t.Fatal(err)
	}
	proxyURL, logs := startFor(t, upURL, Config{})

	for _, host := range []string{upURL.Host, "shop.example"} {
		req, err := http.NewRequest(http.MethodGet, proxyURL+"/", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = host
		resp, body := fetch(t, req)
		origin := "http://" + host
		connect := "connect-src 'self' ws://" + host // 'self' already allows origin
		// Every policy, each field on its own, enforced or reported.
		wantHeader := []string{"script-src 'nonce-abc' 'nonce-" + testNonce + "'; " + connect,
			"default-src 'self'; script-src 'self' 'nonce-" + testNonce + "'; " + connect}
		wantReportOnly := []string{"script-src 'strict-dynamic' 'nonce-xyz' 'nonce-" + testNonce + "'"}
		if got := resp.Header.Values("Content-Security-Policy"); !slices.Equal(got, wantHeader) {
			t.Errorf("Host %s: header policies %q, want %q", host, got, wantHeader)
		}
		if got := resp.Header.Values("Content-Security-Policy-Report-Only"); !slices.Equal(got, wantReportOnly) {
			t.Errorf("Host %s: report-only policies %q, want %q", host, got, wantReportOnly)
		}
		want := `<!DOCTYPE html><html><head>` + snippet + `<meta http-equiv="Content-Security-Policy" content="` + connect + `">` +
			`<title>Shop</title></head><body><a href="` + origin + `/cart">Cart</a><meta http-equiv="Content-Security-Policy" content="connect-src 'none'"></body></html>`
		if string(body) != want {
			t.Errorf("Host %s: page\n%s\nwant\n%s", host, body, want)
		}
	}
	if l := logs.String(); strings.Contains(l, "level=WARN") {
		t.Errorf("warnings logged:\n%s", l)
	}
}

func TestKeepPrivate(t *testing.T) {
	for _, tc := range []struct {
		in   []string // the Cache-Control fields; nil for none
		want string
	}{
		{nil, "private"},
		{[]string{"public, max-age=60"}, "max-age=60, private"},
		{[]string{"max-age=60", "S-Maxage=600, must-revalidate"}, "max-age=60, must-revalidate, private"},
		{[]string{"PUBLIC,, no-cache"}, "no-cache, private"},
		{[]string{"private, max-age=60"}, "private, max-age=60"},
		{[]string{"max-age=0", "no-store"}, "max-age=0, no-store"},
	} {
		h := http.Header{}
		for _, v := range tc.in {
			h.Add("Cache-Control", v)
		}
		keepPrivate(h)
		if got := strings.Join(h.Values("Cache-Control"), ", "); got != tc.want {
			t.Errorf("keepPrivate(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// A charset declaration that the snippet would push out of the first 1024
// bytes, where browsers look for one, keeps its place (the snippet goes
// after it) unless the Content-Type header names UTF-8, which browsers use
// whatever the page says.
func TestProxyKeepsCharsetInWindow(t *testing.T) {
	head, tail := "<html><head><title>", "</title><meta charset=windows-1252>"
	page := head + strings.Repeat("x", 1000-len(head)-len(tail)) + tail + "<body>caf\xe9"
	for _, tc := range []struct {
		contentType, want string
	}{
		{"text/html", strings.Replace(page, "<body>", snippet+"<body>", 1)},
		{"text/html; charset=windows-1252", strings.Replace(page, "<body>", snippet+"<body>", 1)},
		{"text/html; charset=UTF-8", strings.Replace(page, "<head>", "<head>"+snippet, 1)},
	} {
		proxyURL, _ := start(t, serve(200, []byte(page), "Content-Type", tc.contentType), Config{})
		resp, err := client(t).Get(proxyURL + "/")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != tc.want {
			t.Errorf("Content-Type %q: snippet at %d, want %d", tc.contentType, strings.Index(string(body), snippet), strings.Index(tc.want, snippet))
		}
	}
}

func TestNamesUTF8(t *testing.T) {
	for contentType, want := range map[string]bool{
		"text/html; charset=utf-8":              true,
		"text/html;CHARSET=UTF-8":               true,
		"text/html; charset=utf8":               true,
		`text/html; charset="utf-8"`:            true,
		"text/html; level=1; charset=utf-8":     true,
		"text/html":                             false,
		"text/html; charset=windows-1252":       false,
		"text/html; charset=utf-16":             false,
		`text/html; x="a; charset=utf-8"`:       false,
		"text/html; charset*=utf-8''":           false,
		"text/html; charset=utf-8; charset=x":   true,  // browsers read the first
		`text/html; charset="utf-8"; charset=x`: false, // refused by the full parser: a look-ahead more
	} {
		if got := namesUTF8(contentType); got != want {
			t.Errorf("namesUTF8(%q) = %v, want %v", contentType, got, want)
		}
	}
}
