package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// countingUpstream serves h on 127.0.0.1 and counts the connections it
// accepted and closed.
type countingUpstream struct {
	*httptest.Server
	url            *url.URL
	opened, closed atomic.Int32
}

// newCountingUpstream starts a countingUpstream serving http, or https with
// httptest's certificate.
func newCountingUpstream(t *testing.T, scheme string, h http.Handler) *countingUpstream {
	t.Helper()
	cu := &countingUpstream{Server: httptest.NewUnstartedServer(h)}
	cu.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			cu.opened.Add(1)
		case http.StateClosed, http.StateHijacked:
			cu.closed.Add(1)
		}
	}
	if scheme == "https" {
		// Records of up to 16 KiB from the start, as nginx writes them:
		// Go's server starts with small ones.
		cu.TLS = &tls.Config{DynamicRecordSizingDisabled: true}
		cu.StartTLS()
	} else {
		cu.Start()
	}
	t.Cleanup(cu.Close)
	var err error
	if cu.url, err = url.Parse(cu.URL); err != nil {
		t.Fatal(err)
	}
	return cu
}

// transport returns an upstreamTransport to cu (trusting its certificate,
// if it serves https) that closes its connections when the test ends.
func (cu *countingUpstream) transport(t *testing.T, timeouts upstreamTimeouts) *upstreamTransport {
	t.Helper()
	tr := newTestTransport(t, cu.url, timeouts)
	if tr.tlsConfig != nil {
		roots := cu.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
		tr.tlsConfig.RootCAs = roots
		tr.fallback.(*http.Transport).TLSClientConfig = &tls.Config{RootCAs: roots}
	}
	return tr
}

// forEachScheme runs test against an http upstream and against an https one:
// the transport keeps every promise over TLS too.
func forEachScheme(t *testing.T, test func(t *testing.T, scheme string)) {
	for _, scheme := range []string{"http", "https"} {
		t.Run(scheme, func(t *testing.T) { test(t, scheme) })
	}
}

// testTimeouts are short enough for tests to wait them out.
var testTimeouts = upstreamTimeouts{dial: time.Second, tlsHandshake: 200 * time.Millisecond, responseHeader: 200 * time.Millisecond, idle: time.Minute}

// newTestTransport returns an upstreamTransport to u that closes its
// connections when the test ends.
func newTestTransport(t *testing.T, u *url.URL, timeouts upstreamTimeouts) *upstreamTransport {
	t.Helper()
	tr := newUpstreamTransport(u, timeouts)
	if !tr.sendsItself {
		t.Fatalf("the transport to %s would not send requests itself", u)
	}
	t.Cleanup(tr.CloseIdleConnections)
	return tr
}

// rawUpstream listens on 127.0.0.1 until the test ends and hands every
// connection it accepts to handle, on a goroutine of its own; it returns the
// address and the count of connections accepted.
func rawUpstream(t *testing.T, handle func(net.Conn)) (addr string, accepted *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	accepted = new(atomic.Int32)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			go handle(c)
		}
	}()
	return ln.Addr().String(), accepted
}

// onlyReader and onlyWriter hide io.WriterTo and io.ReaderFrom, so that a
// copy goes through its buffer.
type onlyReader struct{ io.Reader }
type onlyWriter struct{ io.Writer }

// getVia sends a GET of path through tr and returns the status and whole body.
func getVia(t *testing.T, tr http.RoundTripper, u *url.URL, path string) (int, string) {
	t.Helper()
	return roundTripWith(t, tr, u, http.MethodGet, path, context.Background())
}

// roundTripWith sends a request through tr and returns the status and whole
// body, read through a 64 KiB buffer as the proxy reads (bufio then passes
// the reads through, which leaves bytes past the answer where they came).
func roundTripWith(t *testing.T, tr http.RoundTripper, u *url.URL, method, path string, ctx context.Context) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, u.String()+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	var sb strings.Builder
	_, err = io.CopyBuffer(onlyWriter{&sb}, onlyReader{resp.Body}, make([]byte, 64<<10))
	body := sb.String()
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, path, err)
	}
	return resp.StatusCode, body
}

// Answers with a body, without one (HEAD, 204, 304) and chunked with
// trailers all leave the connection reusable: one connection serves them all.
func TestUpstreamTransportReusesConnections(t *testing.T) {
	forEachScheme(t, func(t *testing.T, scheme string) {
		up := newCountingUpstream(t, scheme, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch r.URL.Path {
			case "/empty":
				w.WriteHeader(http.StatusNoContent)
			case "/unchanged":
				w.WriteHeader(http.StatusNotModified)
			case "/chunked":
				w.Header().Set("Trailer", "X-Sum")
				io.WriteString(w, "part one, ")
				w.(http.Flusher).Flush()
				io.WriteString(w, "part two")
				w.Header().Set("X-Sum", "42")
			default:
				io.WriteString(w, "hello "+r.URL.Path)
			}
		}))
		tr := up.transport(t, testTimeouts)
		for i := range 3 {
			if status, body := getVia(t, tr, up.url, "/page"); status != 200 || body != "hello /page" {
				t.Fatalf("request %d: %d %q", i, status, body)
			}
			if status, body := roundTripWith(t, tr, up.url, http.MethodHead, "/page", context.Background()); status != 200 || body != "" {
				t.Fatalf("HEAD %d: %d %q", i, status, body)
			}
			for _, path := range []string{"/empty", "/unchanged"} {
				if status, _ := getVia(t, tr, up.url, path); status != http.StatusNoContent && status != http.StatusNotModified {
					t.Fatalf("%s: status %d", path, status)
				}
			}
		}
		req, _ := http.NewRequest(http.MethodGet, up.URL+"/chunked", nil)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || string(body) != "part one, part two" || resp.Trailer.Get("X-Sum") != "42" {
			t.Fatalf("chunked: body %q, trailer %v, err %v", body, resp.Trailer, err)
		}
		if n := up.opened.Load(); n != 1 {
			t.Errorf("the upstream saw %d connections, want 1", n)
		}
	})
}

// The server ends every request's context once the handler returns: that
// must not abort the connection, which by then serves another request.
func TestUpstreamTransportReusesAfterContextEnds(t *testing.T) {
	forEachScheme(t, func(t *testing.T, scheme string) {
		up := newCountingUpstream(t, scheme, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/empty" {
				w.WriteHeader(http.StatusNoContent)
				return
			}
			io.WriteString(w, "ok")
		}))
		tr := up.transport(t, testTimeouts)
		for i := range 10 {
			path := []string{"/page", "/empty"}[i%2]
			ctx, cancel := context.WithCancel(context.Background())
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, up.URL+path, nil)
			resp, err := tr.RoundTrip(req)
			if err != nil {
				t.Fatalf("request %d: %v", i, err)
			}
			if _, err := io.ReadAll(resp.Body); err != nil {
				t.Fatalf("request %d: reading the body: %v", i, err)
			}
			cancel()
			resp.Body.Close()
			time.Sleep(time.Millisecond) // for an abort wrongly left armed to run
		}
		if n := up.opened.Load(); n != 1 {
			t.Errorf("the upstream saw %d connections, want 1", n)
		}
	})
}

// A kept-alive connection that the upstream closed while it was idle is
// retried on a new one; a new connection that fails is not retried.
func TestUpstreamTransportRetriesClosedIdleConnection(t *testing.T) {
	forEachScheme(t, func(t *testing.T, scheme string) {
		up := newCountingUpstream(t, scheme, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "ok")
		}))
		tr := up.transport(t, testTimeouts)
		for i := range 3 {
			if status, body := getVia(t, tr, up.url, "/"); status != 200 || body != "ok" {
				t.Fatalf("request %d: %d %q", i, status, body)
			}
			up.CloseClientConnections() // the idle connection the transport holds
		}
		if n := up.opened.Load(); n != 3 {
			t.Errorf("the upstream saw %d connections, want 3", n)
		}

		// An upstream that accepts and hangs up at once.
		addr, accepted := rawUpstream(t, func(c net.Conn) { c.Close() })
		rude := &url.URL{Scheme: scheme, Host: addr}
		req, _ := http.NewRequest(http.MethodGet, rude.String()+"/", nil)
		if _, err := newTestTransport(t, rude, testTimeouts).RoundTrip(req); err == nil {
			t.Fatal("no error from an upstream that hangs up")
		}
		if n := accepted.Load(); n != 1 {
			t.Errorf("the transport connected %d times, want 1 (no retry on a new connection)", n)
		}
	})
}

// Bytes that an upstream sends past the end of an answer (a body to a HEAD,
// more than its Content-Length) never reach the next request on the
// connection. Read along with the answer, they keep the connection out of the
// pool; arriving once it is back there, they make the next request go out
// again on a new connection. Either way the upstream sees a second one.
func TestUpstreamTransportStrayBytes(t *testing.T) {
	const next = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnext"
	tests := []struct {
		name, method string
		answer       string // to the first request, written at once
		late         string // written once the first answer is in and the connection pooled
		hangUp       bool   // after late: the upstream closes the connection
		body         string // want: the first answer's body
		pooled       bool   // want: the connection went back to the pool after the first answer
		tlsHolds     bool   // over TLS the stray bytes wait in the tls.Conn instead, which keeps it out of the pool
	}{
		{name: "body to a HEAD", method: http.MethodHead,
			answer: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"},
		{name: "more than Content-Length", method: http.MethodGet,
			answer: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello, world", body: "hello"},
		{name: "late body to a HEAD", method: http.MethodHead,
			answer: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", late: "hello", pooled: true},
		{name: "late rest past Content-Length", method: http.MethodGet,
			answer: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", late: ", world", body: "hello", pooled: true},
		{name: "late bytes, then a hang-up", method: http.MethodHead,
			answer: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", late: "he", hangUp: true, pooled: true},
		// An upstream that runs past its Content-Length with bytes that
		// form a whole answer (a length counted in characters, not bytes,
		// with a visitor's input at the end of the page): no other
		// visitor's request may get that answer.
		{name: "an answer past Content-Length", method: http.MethodGet,
			answer: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\npoison", body: "hello"},
		// The same after a long body: read in large pieces, as the proxy
		// reads, its end leaves the connection's reader empty, and the
		// answer waits in the socket (or, over TLS, in the tls.Conn).
		{name: "an answer past a long Content-Length", method: http.MethodGet,
			answer: "HTTP/1.1 200 OK\r\nContent-Length: 10000\r\n\r\n" + strings.Repeat("x", 10000) + "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\npoison",
			body:   strings.Repeat("x", 10000), pooled: true, tlsHolds: true},
		{name: "a late answer past Content-Length", method: http.MethodGet,
			answer: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
			late:   "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\npoison", body: "hello", pooled: true},
		{name: "a late answer to a HEAD", method: http.MethodHead,
			answer: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
			late:   "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\npoison", pooled: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			forEachScheme(t, func(t *testing.T, scheme string) {
				goLate, wroteLate := make(chan struct{}), make(chan struct{})
				writeLate := sync.OnceFunc(func() { close(goLate) })
				t.Cleanup(writeLate) // also when the test fails before
				up := newCountingUpstream(t, scheme, rawAnswers(func(c net.Conn, r *http.Request) bool {
					if r.URL.Path != "/first" {
						io.WriteString(c, next)
						return true
					}
					io.WriteString(c, tc.answer)
					if tc.late == "" {
						return true
					}
					<-goLate
					io.WriteString(c, tc.late)
					close(wroteLate)
					return !tc.hangUp
				}))
				tr := up.transport(t, testTimeouts)
				if status, body := roundTripWith(t, tr, up.url, tc.method, "/first", context.Background()); status != 200 || body != tc.body {
					t.Fatalf("first answer: %d %q, want 200 %q", status, body, tc.body)
				}
				want := tc.pooled && !(scheme == "https" && tc.tlsHolds)
				if pooled := len(tr.idle) == 1; pooled != want {
					t.Errorf("connection pooled after the first answer: %t, want %t", pooled, want)
				}
				writeLate()
				if tc.late != "" {
					<-wroteLate
					// On loopback the bytes are in the connection's
					// receive buffer once written; the pause covers a
					// slow scheduler.
					time.Sleep(20 * time.Millisecond)
				}
				for i := range 2 { // the second on the new connection
					if status, body := getVia(t, tr, up.url, "/next"); status != 200 || body != "next" {
						t.Fatalf("request %d after the stray bytes: %d %q", i, status, body)
					}
				}
				if n := up.opened.Load(); n != 2 {
					t.Errorf("the upstream saw %d connections, want 2", n)
				}
			})
		})
	}
}

// An upstream that does not speak HTTP gets an error saying so, and a new
// connection that starts with such bytes is not retried.
func TestUpstreamTransportNotHTTP(t *testing.T) {
	forEachScheme(t, func(t *testing.T, scheme string) {
		up := newCountingUpstream(t, scheme, rawAnswers(func(c net.Conn, _ *http.Request) bool {
			io.WriteString(c, "SSH-2.0-OpenSSH_9.6\r\n")
			return false
		}))
		req, _ := http.NewRequest(http.MethodGet, up.URL+"/", nil)
		if _, err := up.transport(t, testTimeouts).RoundTrip(req); !errors.Is(err, errNotAnAnswer) || !strings.Contains(err.Error(), `"SSH-2"`) {
			t.Errorf("err = %v, want errNotAnAnswer with the bytes", err)
		}
		if n := up.opened.Load(); n != 1 {
			t.Errorf("the upstream saw %d connections, want 1 (no retry on a new connection)", n)
		}
	})
}

// rawAnswers is an upstream handler that takes the connection over and
// writes each answer on it itself, as answer(c, r) writes it, until answer
// returns false or the client closes the connection: an upstream that gets
// HTTP/1.1's framing wrong, over http or https.
func rawAnswers(answer func(c net.Conn, r *http.Request) bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			panic(err) // HTTP/1.1 connections can always be taken over
		}
		defer c.Close()
		for answer(c, r) {
			if r, err = http.ReadRequest(brw.Reader); err != nil {
				return
			}
		}
	})
}

// hold keeps an upstream handler from answering r until release is closed
// or the client goes away.
func hold(r *http.Request, release <-chan struct{}) {
	select {
	case <-release:
	case <-r.Context().Done():
	}
}

// An upstream that does not answer within the response header timeout is
// an error saying so, and is not retried.
func TestUpstreamTransportResponseHeaderTimeout(t *testing.T) {
	forEachScheme(t, func(t *testing.T, scheme string) {
		release := make(chan struct{})
		defer close(release)
		up := newCountingUpstream(t, scheme, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/hang" {
				hold(r, release)
			}
		}))
		tr := up.transport(t, testTimeouts)
		getVia(t, tr, up.url, "/warm") // so that /hang goes out on a reused connection
		req, _ := http.NewRequest(http.MethodGet, up.URL+"/hang", nil)
		start := time.Now()
		_, err := tr.RoundTrip(req)
		if err == nil || !strings.Contains(err.Error(), "no response headers within 200ms") {
			t.Fatalf("err = %v, want one about the response header timeout", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("the timeout took %v", d)
		}
		if n := up.opened.Load(); n != 1 {
			t.Errorf("the upstream saw %d connections, want 1 (no retry after a timeout)", n)
		}
	})
}

// An upstream that stops sending in the middle of a page or of a body of
// known length for bodyStall ends that body with an error saying so (the
// visitor's response is cut off rather than left hanging), while an event
// stream may pause for longer; and a connection whose body came in time is
// reused after a pause longer than bodyStall (its deadline is gone).
func TestUpstreamTransportBodyStall(t *testing.T) {
	const stall = 100 * time.Millisecond
	forEachScheme(t, func(t *testing.T, scheme string) {
		release := make(chan struct{})
		defer close(release)
		up := newCountingUpstream(t, scheme, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch r.URL.Path {
			case "/page", "/download":
				if r.URL.Path == "/page" {
					w.Header().Set("Content-Type", "text/html")
				} else {
					w.Header().Set("Content-Length", "100")
				}
				io.WriteString(w, "first bytes")
				w.(http.Flusher).Flush()
				hold(r, release)
			case "/events":
				w.Header().Set("Content-Type", "text/event-stream")
				io.WriteString(w, "data: 1\n\n")
				w.(http.Flusher).Flush()
				time.Sleep(3 * stall)
				io.WriteString(w, "data: 2\n\n")
			case "/whole":
				w.Header().Set("Content-Length", "21")
				io.WriteString(w, "first bytes")
				w.(http.Flusher).Flush()
				time.Sleep(stall / 2) // not read with the first bytes
				io.WriteString(w, ", the rest")
			default:
				io.WriteString(w, "ok") // with a Content-Length
			}
		}))
		timeouts := testTimeouts
		timeouts.bodyStall = stall
		tr := up.transport(t, timeouts)
		// stalls sends req, a request for a body that stalls, and checks
		// that the body ends with an error saying so.
		stalls := func(req *http.Request) {
			t.Helper()
			resp, err := tr.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			type read struct {
				body []byte
				err  error
			}
			ended := make(chan read, 1)
			go func() {
				body, err := io.ReadAll(resp.Body)
				ended <- read{body, err}
			}()
			select {
			case r := <-ended:
				if r.err == nil || !strings.Contains(r.err.Error(), "sent nothing") || string(r.body) != "first bytes" {
					t.Errorf("%s %s: %q, err %v; want the first bytes, then an error saying the upstream stalled", req.Method, req.URL.Path, r.body, r.err)
				}
			case <-time.After(5 * time.Second):
				t.Errorf("%s %s: the stalled body did not end within 5 s", req.Method, req.URL.Path)
			}
		}
		// takesItsTime sends req, for a body that comes whole, and reads
		// it as a proxy does that waits for a slow visitor between reads:
		// only the time spent waiting for the upstream counts.
		takesItsTime := func(req *http.Request) {
			t.Helper()
			resp, err := tr.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			first := make([]byte, len("first bytes"))
			_, err = io.ReadFull(resp.Body, first)
			time.Sleep(3 * stall)
			rest, restErr := io.ReadAll(resp.Body)
			if got := string(first) + string(rest); err != nil || restErr != nil || got != "first bytes, the rest" {
				t.Errorf("%s %s, read slowly: %q, %v, %v", req.Method, req.URL.Path, got, err, restErr)
			}
		}
		for _, path := range []string{"/page", "/download"} {
			req, _ := http.NewRequest(http.MethodGet, up.URL+path, nil)
			stalls(req)
		}
		req, _ := http.NewRequest(http.MethodGet, up.URL+"/whole", nil)
		takesItsTime(req)
		if status, body := getVia(t, tr, up.url, "/events"); status != 200 || body != "data: 1\n\ndata: 2\n\n" {
			t.Errorf("event stream: %d %q", status, body)
		}
		for i := range 2 {
			if i > 0 {
				time.Sleep(3 * stall)
			}
			if status, body := getVia(t, tr, up.url, "/"); status != 200 || body != "ok" {
				t.Fatalf("request %d: %d %q", i, status, body)
			}
		}
		if n := up.opened.Load(); n != 3 {
			t.Errorf("the upstream saw %d connections, want 3 (two stalled, then one for the rest)", n)
		}

		// Requests with a body go through the fallback, with the same bound.
		for _, path := range []string{"/page", "/download"} {
			req, _ := http.NewRequest(http.MethodPost, up.URL+path, strings.NewReader("q=1"))
			stalls(req)
		}
		req, _ = http.NewRequest(http.MethodPost, up.URL+"/whole", strings.NewReader("q=1"))
		takesItsTime(req)
		req, _ = http.NewRequest(http.MethodPost, up.URL+"/events", strings.NewReader("q=1"))
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != "data: 1\n\ndata: 2\n\n" || err != nil {
			t.Errorf("event stream through the fallback: %q, %v", body, err)
		}
	})
}

// A request whose context ends stops at once, waiting for the headers or
// reading the body, and its connection is not reused.
func TestUpstreamTransportStopsWithContext(t *testing.T) {
	forEachScheme(t, func(t *testing.T, scheme string) {
		release := make(chan struct{})
		defer close(release)
		up := newCountingUpstream(t, scheme, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/body" {
				io.WriteString(w, "first bytes")
				w.(http.Flusher).Flush()
			}
			hold(r, release)
		}))
		timeouts := testTimeouts
		timeouts.responseHeader = time.Minute
		tr := up.transport(t, timeouts)

		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(50*time.Millisecond, cancel)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, up.URL+"/headers", nil)
		if _, err := tr.RoundTrip(req); !errors.Is(err, context.Canceled) {
			t.Errorf("waiting for headers: err = %v, want context.Canceled", err)
		}

		ctx, cancel = context.WithCancel(context.Background())
		req, _ = http.NewRequestWithContext(ctx, http.MethodGet, up.URL+"/body", nil)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		first := make([]byte, len("first bytes"))
		if _, err := io.ReadFull(resp.Body, first); err != nil {
			t.Fatal(err)
		}
		time.AfterFunc(50*time.Millisecond, cancel)
		if _, err := resp.Body.Read(make([]byte, 10)); !errors.Is(err, context.Canceled) {
			t.Errorf("reading the body: err = %v, want context.Canceled", err)
		}
		if n := len(tr.idle); n != 0 {
			t.Errorf("%d connections went back to the pool after a cancellation", n)
		}
	})
}

// A body closed before its end closes the connection at once, without
// reading the rest; the next request gets a new connection.
func TestUpstreamTransportCloseBeforeEnd(t *testing.T) {
	forEachScheme(t, func(t *testing.T, scheme string) {
		up := newCountingUpstream(t, scheme, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/endless" {
				io.WriteString(w, "short")
				return
			}
			chunk := []byte(strings.Repeat("x", 32<<10))
			for r.Context().Err() == nil {
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		}))
		tr := up.transport(t, testTimeouts)
		req, _ := http.NewRequest(http.MethodGet, up.URL+"/endless", nil)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := resp.Body.Read(make([]byte, 100)); err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if _, err := resp.Body.Read(make([]byte, 1)); !errors.Is(err, http.ErrBodyReadAfterClose) {
			t.Errorf("read after Close: err = %v, want http.ErrBodyReadAfterClose", err)
		}
		if status, body := getVia(t, tr, up.url, "/short"); status != 200 || body != "short" {
			t.Fatalf("next request: %d %q", status, body)
		}
		if n := up.opened.Load(); n != 2 {
			t.Errorf("the upstream saw %d connections, want 2", n)
		}
	})
}

// An answer with Connection: close, or to a request with it, does not leave
// its connection in the pool.
func TestUpstreamTransportHonoursConnectionClose(t *testing.T) {
	forEachScheme(t, func(t *testing.T, scheme string) {
		up := newCountingUpstream(t, scheme, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/last" {
				w.Header().Set("Connection", "close")
			}
			io.WriteString(w, "ok")
		}))
		tr := up.transport(t, testTimeouts)
		getVia(t, tr, up.url, "/last")
		if n := len(tr.idle); n != 0 {
			t.Errorf("%d connections pooled after Connection: close", n)
		}
		req, _ := http.NewRequest(http.MethodGet, up.URL+"/", nil)
		req.Close = true
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if n := len(tr.idle); n != 0 {
			t.Errorf("%d connections pooled after a request with Connection: close", n)
		}
	})
}

// 1xx answers go to the request's ClientTrace (ReverseProxy forwards 103
// Early Hints from there) and the final answer is returned.
func TestUpstreamTransportInformationalAnswers(t *testing.T) {
	forEachScheme(t, func(t *testing.T, scheme string) {
		up := newCountingUpstream(t, scheme, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Link", "</style.css>; rel=preload; as=style")
			w.WriteHeader(http.StatusEarlyHints)
			w.Header().Del("Link")
			io.WriteString(w, "page")
		}))
		tr := up.transport(t, testTimeouts)
		var hints []string
		ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
			Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
				hints = append(hints, http.StatusText(code)+": "+h.Get("Link"))
				return nil
			},
		})
		status, body := roundTripWith(t, tr, up.url, http.MethodGet, "/", ctx)
		if status != 200 || body != "page" {
			t.Errorf("answer: %d %q", status, body)
		}
		if want := "Early Hints: </style.css>; rel=preload; as=style"; len(hints) != 1 || hints[0] != want {
			t.Errorf("1xx seen: %q, want [%q]", hints, want)
		}
	})
}

// Response headers past maxResponseHeaderBytes are an error, not a growing
// buffer.
func TestUpstreamTransportBoundsResponseHeaders(t *testing.T) {
	addr, _ := rawUpstream(t, func(c net.Conn) {
		defer c.Close()
		bufio.NewReader(c).ReadString('\n')
		io.WriteString(c, "HTTP/1.1 200 OK\r\n")
		line := "X-Filler: " + strings.Repeat("y", 1000) + "\r\n"
		for range maxResponseHeaderBytes/len(line) + 10 {
			if _, err := io.WriteString(c, line); err != nil {
				return
			}
		}
	})
	u := &url.URL{Scheme: "http", Host: addr}
	req, _ := http.NewRequest(http.MethodGet, u.String()+"/", nil)
	if _, err := newTestTransport(t, u, testTimeouts).RoundTrip(req); !errors.Is(err, errHeadersTooLarge) {
		t.Errorf("err = %v, want errHeadersTooLarge", err)
	}
}

// An idle connection is closed once it has been idle for the idle timeout.
func TestUpstreamTransportClosesIdleConnections(t *testing.T) {
	forEachScheme(t, func(t *testing.T, scheme string) {
		up := newCountingUpstream(t, scheme, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "ok")
		}))
		timeouts := testTimeouts
		timeouts.idle = 50 * time.Millisecond
		tr := up.transport(t, timeouts)
		for round := range 2 { // the second after the janitor has found nothing left
			getVia(t, tr, up.url, "/")
			deadline := time.Now().Add(5 * time.Second)
			for up.closed.Load() != int32(round+1) && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if n := up.closed.Load(); n != int32(round+1) {
				t.Fatalf("round %d: %d connections closed, want %d", round, n, round+1)
			}
		}
	})
}

// Over TLS the transport asks for HTTP/1.1, also from an upstream that
// offers HTTP/2; verifies the upstream's certificate as http.Transport does;
// resumes its TLS session on a new connection; and gives up on a handshake
// that does not finish within the handshake timeout, without a retry.
func TestUpstreamTransportTLS(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s resumed=%t", r.Proto, r.TLS.DidResume)
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	up := &countingUpstream{Server: srv}
	up.url, _ = url.Parse(srv.URL)
	if resp, err := srv.Client().Get(srv.URL); err != nil || resp.ProtoMajor != 2 {
		t.Fatalf("the test upstream does not speak HTTP/2 to a client that asks (%v)", err)
	}

	t.Run("HTTP/1.1 and resumption", func(t *testing.T) {
		tr := up.transport(t, testTimeouts)
		if _, body := getVia(t, tr, up.url, "/"); body != "HTTP/1.1 resumed=false" {
			t.Errorf("first connection: %q, want HTTP/1.1 resumed=false", body)
		}
		srv.CloseClientConnections()
		if _, body := getVia(t, tr, up.url, "/"); body != "HTTP/1.1 resumed=true" {
			t.Errorf("second connection: %q, want HTTP/1.1 resumed=true", body)
		}
	})

	t.Run("unknown authority", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/", nil)
		_, err := newTestTransport(t, up.url, testTimeouts).RoundTrip(req)
		if !errors.As(err, new(x509.UnknownAuthorityError)) || !strings.Contains(err.Error(), "TLS handshake with the upstream") {
			t.Errorf("err = %v, want an x509.UnknownAuthorityError from the TLS handshake", err)
		}
	})

	t.Run("handshake timeout", func(t *testing.T) {
		// An upstream that accepts and never answers the ClientHello.
		addr, accepted := rawUpstream(t, func(c net.Conn) {
			io.Copy(io.Discard, c) // until the transport gives up
			c.Close()
		})
		silent := &url.URL{Scheme: "https", Host: addr}
		req, _ := http.NewRequest(http.MethodGet, silent.String()+"/", nil)
		start := time.Now()
		_, err := newTestTransport(t, silent, testTimeouts).RoundTrip(req)
		if err == nil || !strings.Contains(err.Error(), "no TLS handshake with the upstream within 200ms") {
			t.Errorf("err = %v, want one about the handshake timeout", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("the timeout took %v", d)
		}
		if n := accepted.Load(); n != 1 {
			t.Errorf("the transport connected %d times, want 1", n)
		}
	})
}

// Requests the transport does not send itself go to its fallback: bodies,
// methods other than GET and HEAD, upgrades, requests to another origin
// than the upstream's, and any request when the upstream is reached through
// a proxy.
func TestUpstreamTransportFallback(t *testing.T) {
	plain := &url.URL{Scheme: "http", Host: "127.0.0.1:9"}
	secure := &url.URL{Scheme: "https", Host: "127.0.0.1:9"}
	tests := []struct {
		name     string
		upstream *url.URL
		req      func() *http.Request
	}{
		{"POST with a body", plain, func() *http.Request {
			r, _ := http.NewRequest(http.MethodPost, plain.String()+"/form", strings.NewReader("a=1"))
			return r
		}},
		{"DELETE", plain, func() *http.Request {
			r, _ := http.NewRequest(http.MethodDelete, plain.String()+"/item", nil)
			return r
		}},
		{"GET with a body", plain, func() *http.Request {
			r, _ := http.NewRequest(http.MethodGet, plain.String()+"/", strings.NewReader("odd"))
			return r
		}},
		{"upgrade", plain, func() *http.Request {
			r, _ := http.NewRequest(http.MethodGet, plain.String()+"/ws", nil)
			r.Header.Set("Connection", "Upgrade")
			r.Header.Set("Upgrade", "websocket")
			return r
		}},
		{"POST to an https upstream", secure, func() *http.Request {
			r, _ := http.NewRequest(http.MethodPost, secure.String()+"/form", strings.NewReader("a=1"))
			return r
		}},
		{"another scheme", secure, func() *http.Request {
			r, _ := http.NewRequest(http.MethodGet, "http://"+secure.Host+"/", nil)
			return r
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := newUpstreamTransport(tc.upstream, testTimeouts)
			var fellBack bool
			tr.fallback = roundTripper(func(*http.Request) (*http.Response, error) {
				fellBack = true
				return nil, errors.New("fallback")
			})
			tr.RoundTrip(tc.req())
			if !fellBack {
				t.Error("the request did not go to the fallback")
			}
		})
	}
	t.Run("proxy from the environment", func(t *testing.T) {
		defer func(saved func(*http.Request) (*url.URL, error)) { proxyFromEnvironment = saved }(proxyFromEnvironment)
		proxyFromEnvironment = http.ProxyURL(&url.URL{Scheme: "http", Host: "proxy.example:3128"})
		if tr := newUpstreamTransport(&url.URL{Scheme: "http", Host: "shop.example"}, testTimeouts); tr.sendsItself {
			t.Error("the transport would bypass HTTP_PROXY")
		}
	})
}

// Many requests at once, on the pool, each get their own whole answer.
func TestUpstreamTransportConcurrent(t *testing.T) {
	forEachScheme(t, func(t *testing.T, scheme string) {
		up := newCountingUpstream(t, scheme, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, strings.Repeat(r.URL.Path, 1000))
		}))
		tr := up.transport(t, testTimeouts)
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Go(func() {
				for i := range 50 {
					path := "/" + string(rune('a'+g)) + string(rune('a'+i%26))
					req, _ := http.NewRequest(http.MethodGet, up.URL+path, nil)
					resp, err := tr.RoundTrip(req)
					if err != nil {
						t.Error(err)
						return
					}
					body, err := io.ReadAll(resp.Body)
					resp.Body.Close()
					if err != nil || string(body) != strings.Repeat(path, 1000) {
						t.Errorf("%s: wrong body (%d bytes), err %v", path, len(body), err)
						return
					}
				}
			})
		}
		wg.Wait()
		if n := up.opened.Load(); n > 8 {
			t.Errorf("the upstream saw %d connections for 8 concurrent clients", n)
		}
	})
}

// BenchmarkUpstreamTransport fetches benchPage (100 KiB) from a loopback
// upstream, 8 requests at a time, with the proxy's own transport and with
// the http.Transport it falls back to, from an http upstream and from an
// https one that offers HTTP/2 (which http.Transport then speaks): the
// difference is the hand-over between http.Transport's connection
// goroutines and the caller, and over TLS HTTP/2's framing. cpu-ns/op is
// the whole process's CPU time (upstream included) per request.
func BenchmarkUpstreamTransport(b *testing.B) {
	page := benchPage()
	for _, scheme := range []string{"http", "https"} {
		up := httptest.NewUnstartedServer(serve(200, page, "Content-Type", "text/html"))
		up.EnableHTTP2 = true
		if scheme == "https" {
			up.StartTLS()
		} else {
			up.Start()
		}
		b.Cleanup(up.Close)
		u, err := url.Parse(up.URL)
		if err != nil {
			b.Fatal(err)
		}
		own := newUpstreamTransport(u, defaultUpstreamTimeouts)
		b.Cleanup(own.CloseIdleConnections)
		if scheme == "https" {
			roots := up.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
			own.tlsConfig.RootCAs = roots
			own.fallback.(*http.Transport).TLSClientConfig = &tls.Config{RootCAs: roots}
		}
		for _, tc := range []struct {
			name string
			tr   http.RoundTripper
		}{{"own", own}, {"http.Transport", own.fallback}} {
			b.Run(scheme+"/"+tc.name, func(b *testing.B) {
				b.SetBytes(int64(len(page)))
				b.SetParallelism(4)
				cpu := processCPU(b)
				b.RunParallel(func(pb *testing.PB) {
					buf := make([]byte, copyBufferSize)
					for pb.Next() {
						req, _ := http.NewRequest(http.MethodGet, up.URL+"/", nil)
						req.Header["Accept-Encoding"] = []string{"identity"}
						resp, err := tc.tr.RoundTrip(req)
						if err != nil {
							b.Error(err)
							return
						}
						n, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{resp.Body}, buf)
						resp.Body.Close()
						if err != nil || n != int64(len(page)) {
							b.Errorf("read %d bytes, err %v", n, err)
							return
						}
					}
				})
				b.ReportMetric(float64(processCPU(b)-cpu)/float64(b.N), "cpu-ns/op")
			})
		}
	}
}
