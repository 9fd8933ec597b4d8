package proxy

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"
)

// testSendTimeout is the Config.SendTimeout of these tests.
const testSendTimeout = 100 * time.Millisecond

// startFrontFor serves p on 127.0.0.1 until the test ends, over HTTP/1.1
// or, with TLS, HTTP/2.
func startFrontFor(t *testing.T, p http.Handler, http2 bool) *httptest.Server {
	t.Helper()
	front := httptest.NewUnstartedServer(p)
	if http2 {
		front.EnableHTTP2 = true
		front.StartTLS()
	} else {
		front.Start()
	}
	t.Cleanup(front.Close)
	return front
}

// A visitor that stops reading does not hold its response, and with it the
// upstream's connection, for good: once a write to it has waited
// Config.SendTimeout, the proxy gives up, and the upstream's writes fail.
// A body passed through, a rewritten page and an event stream, over
// HTTP/1.1 (a client that reads nothing) and HTTP/2 (one that grants no
// more flow-control window: only the stream's deadline ends it, as the
// test server has no HTTP2Config.WriteByteTimeout).
func TestProxySendTimeout(t *testing.T) {
	for _, http2 := range []bool{false, true} {
		for _, contentType := range []string{"application/octet-stream", "text/html", "text/event-stream"} {
			t.Run(fmt.Sprintf("HTTP2=%t/%s", http2, contentType), func(t *testing.T) {
				upstreamDone := make(chan error, 1)
				chunk := bytes.Repeat([]byte("<p>0123456789abcdef</p>\n"), 2000) // 48 KB
				up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Content-Type", contentType)
					if contentType == "application/octet-stream" {
						w.Header().Set("Content-Length", strconv.Itoa(1<<40))
					}
					for { // until the proxy goes away
						if _, err := w.Write(chunk); err != nil {
							upstreamDone <- err
							return
						}
					}
				}))
				t.Cleanup(up.Close)
				upstream, _ := url.Parse(up.URL)
				p, _ := newTestProxy(t, upstream, Config{SendTimeout: testSendTimeout})
				front := startFrontFor(t, p, http2)
				if http2 {
					client := front.Client()
					// Uncompressed, the page fills the client's 4 MiB
					// window at once.
					client.Transport.(*http.Transport).DisableCompression = true
					resp, err := client.Get(front.URL) // its body is never read
					if err != nil {
						t.Fatal(err)
					}
					t.Cleanup(func() { resp.Body.Close() })
					if resp.ProtoMajor != 2 {
						t.Fatalf("the client spoke %s", resp.Proto)
					}
				} else {
					conn, err := net.Dial("tcp", front.Listener.Addr().String())
					if err != nil {
						t.Fatal(err)
					}
					t.Cleanup(func() { conn.Close() }) // before the servers close, if the test fails
					conn.(*net.TCPConn).SetReadBuffer(4 << 10)
					fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", front.Listener.Addr()) // and never read
				}
				select {
				case <-upstreamDone:
				case <-time.After(10 * time.Second):
					t.Fatal("the upstream still sends, 10 s after the visitor stopped reading")
				}
			})
		}
	}
}

// A visitor on a slow link that keeps reading is not cut off, even when
// one of the proxy's copy buffers (256 KiB) takes it far longer than
// Config.SendTimeout: the timeout bounds each piece of a write (see
// writeClient). The visitor reads at most 300 KB a second over a
// connection without buffers (pipeListener): 256 KiB take it about 870 ms,
// the first piece about 220 ms, against a timeout of 500 ms.
func TestProxySendTimeoutSparesSlowReaders(t *testing.T) {
	const (
		sendTimeout = 500 * time.Millisecond
		readRate    = 300_000 // bytes a second, at most
	)
	download := bytes.Repeat([]byte("0123456789abcdef"), 24<<10) // 384 KiB
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.Itoa(len(download)))
		w.Write(download)
	}))
	t.Cleanup(up.Close)
	upstream, _ := url.Parse(up.URL)
	p, _ := newTestProxy(t, upstream, Config{SendTimeout: sendTimeout})
	front := newPipeListener()
	go (&http.Server{Handler: p}).Serve(front)
	t.Cleanup(func() { front.Close() })

	conn := front.dial()
	t.Cleanup(func() { conn.Close() })
	go io.WriteString(conn, "GET / HTTP/1.1\r\nHost: shop.test\r\nConnection: close\r\n\r\n")
	conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	var got bytes.Buffer
	buf := make([]byte, 4<<10)
	for {
		n, err := conn.Read(buf)
		got.Write(buf[:n])
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("after %d bytes: %v", got.Len(), err)
		}
		time.Sleep(time.Duration(n) * time.Second / readRate)
	}
	resp, err := http.ReadResponse(bufio.NewReader(&got), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	if !bytes.Equal(body, download) {
		t.Fatalf("the visitor got %d of the %d bytes of the body (%v)", len(body), len(download), err)
	}
}

// pipeListener is a net.Listener whose connections are net.Pipes: a write
// to one returns only once the other end has read all of it, as a TCP
// connection whose buffers are full does.
type pipeListener struct {
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newPipeListener() *pipeListener {
	return &pipeListener{conns: make(chan net.Conn), closed: make(chan struct{})}
}

// dial returns the client's end of a new connection to l.
func (l *pipeListener) dial() net.Conn {
	server, client := net.Pipe()
	l.conns <- loopbackConn{server}
	return client
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case conn := <-l.conns:
		return conn, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return loopbackAddr }

// loopbackConn gives a net.Pipe the addresses of a TCP connection, as the
// proxy expects of its visitors.
type loopbackConn struct{ net.Conn }

var loopbackAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}

func (loopbackConn) LocalAddr() net.Addr  { return loopbackAddr }
func (loopbackConn) RemoteAddr() net.Addr { return loopbackAddr }

// An event stream that waits longer than Config.SendTimeout between two
// events is not cut: only a write that waits counts (over HTTP/2, its
// stream gets no deadline at all).
func TestProxySendTimeoutSparesWaitingStreams(t *testing.T) {
	for _, http2 := range []bool{false, true} {
		t.Run(fmt.Sprintf("HTTP2=%t", http2), func(t *testing.T) {
			up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/event-stream")
				io.WriteString(w, "data: 1\n\n")
				w.(http.Flusher).Flush()
				time.Sleep(3 * testSendTimeout)
				io.WriteString(w, "data: 2\n\n")
			}))
			t.Cleanup(up.Close)
			upstream, _ := url.Parse(up.URL)
			p, _ := newTestProxy(t, upstream, Config{SendTimeout: testSendTimeout})
			front := startFrontFor(t, p, http2)
			resp, err := front.Client().Get(front.URL)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if want := "data: 1\n\ndata: 2\n\n"; err != nil || string(body) != want {
				t.Fatalf("%s: %q, %v; want %q", resp.Proto, body, err, want)
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
	p, _ := newTestProxy(t, upstream, Config{SendTimeout: testSendTimeout})
	mux := http.NewServeMux()
	mux.Handle("/", p)
	mux.HandleFunc("/own", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "own") })
	front := startFrontFor(t, mux, false)

	client := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1}}
	t.Cleanup(client.CloseIdleConnections)
	var conns []string
	for i, path := range []string{"/", "/own"} {
		if i > 0 {
			time.Sleep(3 * testSendTimeout / 2) // past the first response's deadline
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
