package proxy

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/url"
	"testing"
	"time"
)

// A visitor that stops reading does not hold its response, and with it the
// upstream's connection, for good: once a write to it has waited
// Config.SendTimeout, the proxy gives up, and the upstream's writes fail.
// Both a body passed through and a rewritten page.
func TestProxySendTimeout(t *testing.T) {
	for _, contentType := range []string{"application/octet-stream", "text/html"} {
		t.Run(contentType, func(t *testing.T) {
			upstreamDone := make(chan error, 1)
			chunk := bytes.Repeat([]byte("<p>0123456789abcdef</p>\n"), 2000) // 48 KB
			proxyURL, _ := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", contentType)
				for { // a body with no end, until the proxy goes away
					if _, err := w.Write(chunk); err != nil {
						upstreamDone <- err
						return
					}
				}
			}), Config{SendTimeout: 100 * time.Millisecond})
			u, _ := url.Parse(proxyURL)
			conn, err := net.Dial("tcp", u.Host)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { conn.Close() }) // before the servers close, if the test fails
			conn.(*net.TCPConn).SetReadBuffer(4 << 10)
			fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", u.Host) // and never read
			select {
			case <-upstreamDone:
			case <-time.After(10 * time.Second):
				t.Fatal("the upstream still sends, 10 s after the visitor stopped reading")
			}
		})
	}
}

// The write deadline of a proxied response does not outlive it (net/http
// clears it once the response is finished): the next request on the
// connection, served by another handler (as cobrowse's own routes are)
// after the deadline has passed, is answered.
func TestProxySendTimeoutEndsWithResponse(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		io.WriteString(w, "<!DOCTYPE html><title>Shop</title><p>Hi")
	}))
	t.Cleanup(up.Close)
	upstream, _ := url.Parse(up.URL)
	p, _ := newTestProxy(t, upstream, Config{SendTimeout: 50 * time.Millisecond})
	mux := http.NewServeMux()
	mux.Handle("/", p)
	mux.HandleFunc("/own", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "own") })
	front := httptest.NewServer(mux)
	t.Cleanup(front.Close)

	client := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1}}
	t.Cleanup(client.CloseIdleConnections)
	var conns []string
	for i, path := range []string{"/", "/own"} {
		if i > 0 {
			time.Sleep(150 * time.Millisecond) // past the first response's deadline
		}
		req, _ := http.NewRequest(http.MethodGet, front.URL+path, nil)
		var local string
		req = req.WithContext(withConnTrace(req.Context(), &local))
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d %q, %v", path, resp.StatusCode, body, err)
		}
		conns = append(conns, local)
	}
	if conns[0] != conns[1] {
		t.Fatalf("the requests went over two connections (%s, %s): the test shows nothing", conns[0], conns[1])
	}
}

// withConnTrace returns ctx with a trace that records, in local, the local
// address of the connection a request goes out on.
func withConnTrace(ctx context.Context, local *string) context.Context {
	return httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		GotConn: func(info httptrace.GotConnInfo) { *local = info.Conn.LocalAddr().String() },
	})
}
