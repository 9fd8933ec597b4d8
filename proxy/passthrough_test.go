package proxy

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// A WebSocket to the upstream passes through the proxy: the upstream sees
// its own Host and, for a page of the public origin, its own Origin (which
// upstreams check against cross-site WebSocket hijacking), and messages flow
// both ways.
func TestProxyWebSocketUpgradePassesThrough(t *testing.T) {
	var upstreamURL *url.URL
	upgrader := websocket.Upgrader{CheckOrigin: func(r *http.Request) bool {
		return r.Header.Get("Origin") == "http://"+upstreamURL.Host // the upstream's own check
	}}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Host != upstreamURL.Host {
			http.Error(w, "wrong Host "+r.Host, http.StatusMisdirectedRequest)
			return
		}
		conn, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			return // Upgrade answered 403 for a foreign Origin
		}
		defer conn.Close()
		for {
			kind, msg, err := conn.ReadMessage()
			if err != nil {
				return
			}
			conn.WriteMessage(kind, append([]byte("echo: "), msg...))
		}
	}))
	t.Cleanup(up.Close)
	upstreamURL, _ = url.Parse(up.URL)
	proxyURL, _ := startFor(t, upstreamURL, Config{})

	dialer := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	socket := "ws" + strings.TrimPrefix(proxyURL, "http") + "/socket"
	conn, resp, err := dialer.Dial(socket, http.Header{"Origin": {proxyURL}})
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("WebSocket through the proxy: %v (HTTP %d)", err, status)
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if err := conn.WriteMessage(websocket.TextMessage, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	if _, msg, err := conn.ReadMessage(); err != nil || string(msg) != "echo: hello" {
		t.Fatalf("read %q, %v; want the upstream's echo", msg, err)
	}

	// A page of another site is still another site to the upstream.
	if _, _, err := dialer.Dial(socket, http.Header{"Origin": {"http://evil.example"}}); err == nil {
		t.Fatal("the upstream accepted a foreign Origin through the proxy")
	}
}

// Redirects and cookies of the upstream's origin are rewritten on the way
// through the real handler, every Set-Cookie kept, when visitors reach the
// proxy under another name (shop.example) than the upstream's.
func TestProxyRewritesRedirectsAndCookies(t *testing.T) {
	var upstream string
	proxyURL, logs := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		upstream = "http://" + r.Host
		w.Header().Add("Set-Cookie", "session=abc; Domain="+strings.Split(r.Host, ":")[0]+"; Path=/; HttpOnly")
		w.Header().Add("Set-Cookie", "theme=dark; Path=/")
		w.Header().Add("Set-Cookie", "__Host-id=1; Path=/; Secure")
		http.Redirect(w, r, upstream+"/checkout?step=2", http.StatusFound)
	}), Config{})
	noRedirects := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest("GET", proxyURL+"/cart", nil)
	req.Host = "shop.example"
	resp, err := noRedirects.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got, want := resp.Header.Get("Location"), "http://shop.example/checkout?step=2"; got != want {
		t.Errorf("Location %q, want %q (the upstream sent %s/checkout?step=2)", got, want, upstream)
	}
	cookies := resp.Header.Values("Set-Cookie")
	want := []string{"session=abc; Path=/; HttpOnly", "theme=dark; Path=/", "__Host-id=1; Path=/; Secure"}
	if strings.Join(cookies, "\n") != strings.Join(want, "\n") {
		t.Errorf("Set-Cookie\n got %q\nwant %q", cookies, want)
	}
	if !strings.Contains(logs.String(), "__Host-id") {
		t.Errorf("the __Host- cookie browsers refuse over http was not logged:\n%s", logs.String())
	}
}

// Absolute URLs to the upstream in a page's attributes are rewritten to the
// origin the visitor used, so that links, forms and images keep the visitor
// on the proxy; other URLs, and text, are left as they are.
func TestProxyRewritesSelfURLsInPages(t *testing.T) {
	var upstream string
	proxyURL, _ := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		upstream = "http://" + r.Host
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, `<html><head><title>%[1]s</title></head><body>`+
			`<a href="%[1]s/cart">cart</a><img srcset="%[1]s/a.png 1x, https://cdn.example/b.png 2x">`+
			`<form action="%[1]s/order"></form><p>%[1]s/text</p><a href="https://other.example/">x</a></body></html>`, upstream)
	}), Config{})
	req, _ := http.NewRequest("GET", proxyURL+"/", nil)
	req.Host = "shop.example"
	resp, err := client(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	want := fmt.Sprintf(`<html><head>%[2]s<title>%[1]s</title></head><body>`+
		`<a href="http://shop.example/cart">cart</a><img srcset="http://shop.example/a.png 1x, https://cdn.example/b.png 2x">`+
		`<form action="http://shop.example/order"></form><p>%[1]s/text</p><a href="https://other.example/">x</a></body></html>`, upstream, snippet)
	if string(body) != want {
		t.Errorf("page\n got %s\nwant %s", body, want)
	}
}

// Digests vouch for the upstream's bytes: a page the proxy changed must not
// carry them, a body it passes through keeps them.
func TestProxyDropsDigestsOfChangedBodies(t *testing.T) {
	digests := []string{"Content-Digest", "Repr-Digest", "Digest", "Content-MD5"}
	proxyURL, _ := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, d := range digests {
			w.Header().Set(d, "sha-256=:AAAA:")
		}
		if r.URL.Path == "/page" {
			w.Header().Set("Content-Type", "text/html")
			io.WriteString(w, page)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write([]byte("bytes"))
	}), Config{})
	for path, kept := range map[string]bool{"/page": false, "/file": true} {
		resp, err := client(t).Get(proxyURL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		for _, d := range digests {
			if got := resp.Header.Get(d) != ""; got != kept {
				t.Errorf("%s: %s present = %v, want %v", path, d, got, kept)
			}
		}
	}
}
