package proxy

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// A Proxy counts what its operator needs to see (Stats): requests, pages
// with and without the visitor script, its own 502s, and responses cut off
// in the middle.
func TestProxyStats(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/page":
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			io.WriteString(w, "<!DOCTYPE html><title>Shop</title><p>Hi")
		case "/utf16":
			w.Header().Set("Content-Type", "text/html; charset=utf-16le")
			io.WriteString(w, "<\x00p\x00>\x00")
		case "/compressed":
			w.Header().Set("Content-Type", "text/html")
			w.Header().Set("Content-Encoding", "compress") // which the proxy cannot decode
			io.WriteString(w, "\x1f\x9d")
		case "/image":
			w.Header().Set("Content-Type", "image/png")
			io.WriteString(w, "\x89PNG")
		case "/cut":
			w.Header().Set("Content-Length", "100")
			io.WriteString(w, "ten bytes.")
			w.(http.Flusher).Flush()
			conn, _, _ := http.NewResponseController(w).Hijack()
			conn.Close()
		}
	}))
	t.Cleanup(up.Close)
	upstream, _ := url.Parse(up.URL)
	p, _ := newTestProxy(t, upstream, Config{})
	front := httptest.NewServer(p)
	t.Cleanup(front.Close)
	for _, path := range []string{"/page", "/page", "/utf16", "/compressed", "/image", "/cut"} {
		resp, err := client(t).Get(front.URL + path)
		if err != nil {
			if path == "/cut" {
				continue // the 10 bytes may not have gone out with the headers
			}
			t.Fatalf("%s: %v", path, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}

	// An upstream that is gone: a listener closed at once.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	gone, _ := newTestProxy(t, &url.URL{Scheme: "http", Host: ln.Addr().String()}, Config{})
	rec := httptest.NewRecorder()
	gone.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if rec.Code != http.StatusBadGateway || !strings.Contains(rec.Body.String(), "could not be reached") {
		t.Fatalf("the gone upstream: %d %q", rec.Code, rec.Body)
	}

	want := Stats{Requests: 6, Pages: 2, PagesWithoutSnippet: 2, ResponsesCut: 1}
	if got := p.Stats(); got != want {
		t.Errorf("Stats() = %+v, want %+v", got, want)
	}
	wantGone := Stats{Requests: 1, UpstreamErrors: 1}
	if got := gone.Stats(); got != wantGone {
		t.Errorf("the gone upstream's Stats() = %+v, want %+v", got, wantGone)
	}
}
