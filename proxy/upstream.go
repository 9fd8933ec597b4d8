package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// upstreamTransport is the default Config.Transport. It sends the requests
// that make up nearly all of a site's traffic itself: GET and HEAD without a
// body and without an Upgrade, to an http or https upstream reached without
// an HTTP proxy. It writes each one and reads its answer on the goroutine
// that serves the visitor, over a pool of kept-alive HTTP/1.1 connections
// (over TLS for an https upstream, verified as http.Transport verifies it).
// Every other request (bodies, upgrades, proxies from the environment) goes
// to an http.Transport.
//
// Why not http.Transport for all: it runs a reading and a writing goroutine
// per connection and hands each request and answer between them and the
// caller over channels. For a 100 KiB page on loopback that hand-over cost
// about a third of a bare httputil.ReverseProxy's user CPU, and it was what
// kept the proxy below nginx. To an https upstream that offers HTTP/2,
// http.Transport speaks it, and its framing and flow control cost more
// again: the proxy served 40-60 % more pages a second from such an upstream
// once this transport fetched them over HTTP/1.1, as nginx does
// (docs/benchmarks.md).
//
// It keeps http.Transport's guarantees for the requests it sends: a response
// whose headers take longer than the response header timeout is an error (the
// visitor gets a 504), as is a TLS handshake longer than the handshake
// timeout, and so are response headers over maxResponseHeaderBytes (a 502);
// a request whose context ends (the visitor went away) stops at once, body
// included; a kept-alive connection that the upstream closed while it was
// idle is retried on another, as GET and HEAD may be; 1xx answers are
// reported to the request's httptrace.ClientTrace (ReverseProxy forwards 103
// Early Hints that way) and skipped. A connection goes back to the pool only once its
// body has been read to the end, and idle ones are closed after the idle
// timeout (upstreamTimeouts). Beyond http.Transport, a page or a body of
// known length whose upstream sends nothing for bodyStall in the middle
// ends with an error, as nginx's proxy_read_timeout ends it: the visitor's
// response is cut off rather than left hanging (flowsWithoutPauses). That
// holds for the fallback's answers too (roundTripFallback).
//
// An upstream that sends more than its answer (a body to a HEAD, more bytes
// than its Content-Length) does not get them to the next request on the
// connection either, which may be another visitor's: they may form a whole
// answer (response queue poisoning). A connection that holds bytes past the
// answer's end, in its reader or inside its tls.Conn (drained), is closed
// rather than pooled; one whose socket received bytes, or its end, while it
// was idle is closed when it is taken from the pool (idleProbe: a
// non-blocking read, one system call per reused connection). http.Transport
// closes such connections too (its reading goroutine watches idle ones), as
// does nginx (it watches idle upstream connections for reads). What no
// HTTP/1.1 client can tell apart from the answer are bytes that arrive
// between that read and the request; those that cannot start an HTTP/1.x
// answer (errNotAnAnswer) send the request again on another connection, as
// if the upstream had closed this one.
type upstreamTransport struct {
	fallback http.RoundTripper
	// scheme and host are the upstream's URL.Scheme and URL.Host, addr
	// what is dialled for it; sendsItself is false when the upstream is
	// reached through a proxy, and everything goes to fallback.
	scheme, host, addr string
	sendsItself        bool
	// tlsConfig is nil for an http upstream. For an https one it asks for
	// HTTP/1.1 (ALPN) and verifies the upstream's certificate for its host
	// against the system's roots, as the fallback does.
	tlsConfig *tls.Config
	dial      func(ctx context.Context, network, addr string) (net.Conn, error)
	timeouts  upstreamTimeouts

	mu      sync.Mutex
	idle    []*upstreamConn // most recently used last
	janitor *time.Timer     // closes idle connections past the idle timeout; nil until the first is pooled
	armed   bool            // janitor will run: a connection is idle
}

// upstreamTimeouts are the limits of an upstreamTransport, and of the
// http.Transport it falls back to (bodyStall, which http.Transport does not
// have, through roundTripFallback; 0 means none).
type upstreamTimeouts struct {
	dial, tlsHandshake, responseHeader, idle, bodyStall time.Duration
}

// defaultUpstreamTimeouts: 10 s to connect, 10 s more for a TLS handshake,
// 30 s for the response headers (then the visitor gets a 504 rather than a
// hang), 60 s without a byte in the middle of a body that does not wait
// (see flowsWithoutPauses; nginx's proxy_read_timeout), 90 s before an idle connection
// is closed.
var defaultUpstreamTimeouts = upstreamTimeouts{dial: 10 * time.Second, tlsHandshake: 10 * time.Second, responseHeader: 30 * time.Second, idle: 90 * time.Second, bodyStall: 60 * time.Second}

const (
	// maxIdleUpstreamConns is how many idle connections to the upstream
	// are kept.
	maxIdleUpstreamConns = 100
	// maxResponseHeaderBytes bounds the response headers (1xx answers
	// included) that the upstream may send: 1 MiB, where nginx's default
	// is 4–8 KiB and http.Transport's 10 MiB.
	maxResponseHeaderBytes = 1 << 20
)

// proxyFromEnvironment is the fallback's Proxy, which also decides whether
// the upstream is reached directly. A variable for tests: it reads the
// environment once per process.
var proxyFromEnvironment = http.ProxyFromEnvironment

// newUpstreamTransport returns the transport to upstream.
func newUpstreamTransport(upstream *url.URL, timeouts upstreamTimeouts) *upstreamTransport {
	dialer := &net.Dialer{Timeout: timeouts.dial, KeepAlive: 30 * time.Second}
	t := &upstreamTransport{
		fallback: &http.Transport{
			Proxy:                 proxyFromEnvironment,
			DialContext:           dialer.DialContext,
			ForceAttemptHTTP2:     true,
			MaxIdleConns:          maxIdleUpstreamConns,
			MaxIdleConnsPerHost:   maxIdleUpstreamConns, // every request goes to the one upstream
			IdleConnTimeout:       timeouts.idle,
			TLSHandshakeTimeout:   timeouts.tlsHandshake,
			ResponseHeaderTimeout: timeouts.responseHeader,
			ExpectContinueTimeout: 1 * time.Second,
		},
		scheme:   upstream.Scheme,
		host:     upstream.Host,
		dial:     dialer.DialContext,
		timeouts: timeouts,
	}
	viaProxy, err := proxyFromEnvironment(&http.Request{URL: upstream})
	t.sendsItself = viaProxy == nil && err == nil
	port := upstream.Port()
	switch {
	case upstream.Scheme == "https":
		if port == "" {
			port = "443"
		}
		// Resumed sessions make new connections cheaper under load,
		// when the pool grows.
		t.tlsConfig = &tls.Config{
			ServerName:         upstream.Hostname(),
			NextProtos:         []string{"http/1.1"},
			ClientSessionCache: tls.NewLRUClientSessionCache(0),
		}
	case port == "":
		port = "80"
	}
	t.addr = net.JoinHostPort(upstream.Hostname(), port)
	return t
}

// RoundTrip sends req, itself or through the fallback (see upstreamTransport).
func (t *upstreamTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !t.sendsItself || req.URL.Scheme != t.scheme || req.URL.Host != t.host ||
		(req.Method != http.MethodGet && req.Method != http.MethodHead) ||
		(req.Body != nil && req.Body != http.NoBody) || req.Header["Upgrade"] != nil {
		return t.roundTripFallback(req)
	}
	ctx := req.Context()
	for {
		uc, reused, err := t.conn(ctx)
		if err != nil {
			return nil, err
		}
		resp, err := t.exchange(uc, req)
		if err == nil {
			return resp, nil
		}
		uc.conn.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if !reused || !errors.Is(err, errNoAnswer) && !errors.Is(err, errNotAnAnswer) {
			return nil, err
		}
		// The upstream closed the kept-alive connection before this
		// request reached it (or without answering it), or the
		// connection carried stray bytes from an earlier answer: GET
		// and HEAD may be sent again.
	}
}

// errNoAnswer marks a connection that ended before a byte of the answer.
var errNoAnswer = errors.New("proxy: the upstream closed the connection without answering")

// errNotAnAnswer marks a connection on which the answer does not start as
// an HTTP/1.x answer. On a kept-alive connection these are bytes that the
// upstream sent after its previous answer.
var errNotAnAnswer = errors.New("proxy: the upstream sent bytes that do not start an HTTP/1.x answer")

// exchange writes req on uc and reads the answer's headers. The answer's
// body keeps uc until it is read to the end or closed.
func (t *upstreamTransport) exchange(uc *upstreamConn, req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	// The deadline is set before the AfterFunc, which may set another at
	// once; it is cleared below only after checking ctx.
	uc.conn.SetReadDeadline(time.Now().Add(t.timeouts.responseHeader))
	stop := context.AfterFunc(ctx, uc.abort)
	fail := func(err error) (*http.Response, error) {
		stop()
		return nil, err
	}
	if err := req.Write(uc.bw); err != nil {
		return fail(fmt.Errorf("%w: %v", errNoAnswer, err))
	}
	if err := uc.bw.Flush(); err != nil {
		return fail(fmt.Errorf("%w: %v", errNoAnswer, err))
	}
	uc.headerBudget.left = maxResponseHeaderBytes
	if _, err := uc.br.Peek(1); err != nil {
		if isTimeout(err) && ctx.Err() == nil {
			return fail(timeoutError(fmt.Sprintf("proxy: the upstream sent no response headers within %v", t.timeouts.responseHeader)))
		}
		return fail(fmt.Errorf("%w: %v", errNoAnswer, err))
	}
	// Bytes that cannot start an answer are none to req: on a reused
	// connection, what the upstream sent after its previous answer. The
	// first read nearly always brings five bytes, and Peek then costs
	// nothing; fewer, with an error, that may still start an answer are
	// left to ReadResponse, which reports the error.
	if start, _ := uc.br.Peek(len("HTTP/")); string(start) != "HTTP/"[:len(start)] {
		return fail(fmt.Errorf("%w: %q", errNotAnAnswer, start))
	}
	resp, err := readFinalAnswer(uc.br, req)
	switch {
	case isTimeout(err) && ctx.Err() == nil:
		return fail(timeoutError(fmt.Sprintf("proxy: the upstream sent no complete response headers within %v", t.timeouts.responseHeader)))
	case err != nil:
		return fail(fmt.Errorf("proxy: reading the upstream's response: %w", err))
	case resp.StatusCode == http.StatusSwitchingProtocols:
		return fail(errors.New("proxy: the upstream switched protocols on a request that asked for no upgrade"))
	}
	uc.headerBudget.left = unlimited
	uc.conn.SetReadDeadline(time.Time{})
	if ctx.Err() != nil { // abort may have run before the deadline was cleared
		return fail(ctx.Err())
	}
	keep := !resp.Close && !req.Close
	if resp.Body == http.NoBody {
		stopped := stop()
		t.release(uc, keep && stopped)
		return resp, nil
	}
	body := &upstreamBody{body: resp.Body, ctx: ctx, t: t, uc: uc, keep: keep, stop: stop}
	if flowsWithoutPauses(resp) {
		body.stall = t.timeouts.bodyStall
	}
	resp.Body = body
	return resp, nil
}

// readFinalAnswer reads the answer to req from br: 1xx answers are reported
// to req's httptrace.ClientTrace and skipped, except 101 Switching
// Protocols, which is final.
func readFinalAnswer(br *bufio.Reader, req *http.Request) (*http.Response, error) {
	for {
		resp, err := http.ReadResponse(br, req)
		if err != nil || resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			return resp, err
		}
		if trace := httptrace.ContextClientTrace(req.Context()); trace != nil && trace.Got1xxResponse != nil {
			if err := trace.Got1xxResponse(resp.StatusCode, textproto.MIMEHeader(resp.Header)); err != nil {
				return nil, err
			}
		}
	}
}

// conn returns an idle connection to the upstream (reused) or a new one.
func (t *upstreamTransport) conn(ctx context.Context) (uc *upstreamConn, reused bool, err error) {
	t.mu.Lock()
	for n := len(t.idle); n > 0; n = len(t.idle) {
		uc = t.idle[n-1]
		t.idle[n-1] = nil
		t.idle = t.idle[:n-1]
		t.mu.Unlock()
		if !uc.probe.sentWhileIdle() {
			return uc, true, nil
		}
		uc.conn.Close()
		t.mu.Lock()
	}
	t.mu.Unlock()
	conn, err := t.dial(ctx, "tcp", t.addr)
	if err != nil {
		return nil, false, err
	}
	if t.tlsConfig != nil {
		if conn, err = t.handshake(ctx, conn); err != nil {
			return nil, false, err
		}
	}
	uc = &upstreamConn{conn: conn, headerBudget: headerBudget{r: conn, left: unlimited}, probe: newIdleProbe(conn)}
	uc.br = bufio.NewReader(&uc.headerBudget)
	uc.bw = bufio.NewWriter(conn)
	return uc, false, nil
}

// handshake runs the TLS handshake on conn, a new connection to an https
// upstream, and returns the TLS connection. It gives up after the handshake
// timeout or when ctx ends, closing conn.
func (t *upstreamTransport) handshake(ctx context.Context, conn net.Conn) (net.Conn, error) {
	tc := tls.Client(conn, t.tlsConfig)
	conn.SetDeadline(time.Now().Add(t.timeouts.tlsHandshake))
	err := tc.HandshakeContext(ctx)
	switch {
	case isTimeout(err) && ctx.Err() == nil:
		err = timeoutError(fmt.Sprintf("proxy: no TLS handshake with the upstream within %v", t.timeouts.tlsHandshake))
	case err != nil && ctx.Err() == nil:
		err = fmt.Errorf("proxy: TLS handshake with the upstream: %w", err)
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	conn.SetDeadline(time.Time{})
	return tc, nil
}

// release puts uc back in the pool if keep is true, and closes it otherwise,
// when the pool is full, or when bytes past the answer are buffered (see
// drained): the answer is over, and the upstream sent more than it.
func (t *upstreamTransport) release(uc *upstreamConn, keep bool) {
	if keep && uc.drained() {
		uc.idleSince = time.Now()
		t.mu.Lock()
		if len(t.idle) < maxIdleUpstreamConns {
			t.idle = append(t.idle, uc)
			switch {
			case t.janitor == nil:
				t.janitor = time.AfterFunc(t.timeouts.idle, t.closeExpired)
			case !t.armed:
				t.janitor.Reset(t.timeouts.idle)
			}
			t.armed = true
			t.mu.Unlock()
			return
		}
		t.mu.Unlock()
	}
	uc.conn.Close()
}

// closeExpired closes the connections idle for longer than the idle
// timeout, and runs again when the next one expires.
func (t *upstreamTransport) closeExpired() {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := time.Now()
	n := 0 // the oldest come first
	for n < len(t.idle) && now.Sub(t.idle[n].idleSince) >= t.timeouts.idle {
		t.idle[n].conn.Close()
		n++
	}
	t.idle = append(t.idle[:0], t.idle[n:]...)
	clear(t.idle[len(t.idle):cap(t.idle)])
	if len(t.idle) == 0 {
		t.armed = false
		return
	}
	t.janitor.Reset(t.timeouts.idle - now.Sub(t.idle[0].idleSince))
}

// CloseIdleConnections closes the idle connections to the upstream, the
// fallback's too.
func (t *upstreamTransport) CloseIdleConnections() {
	t.mu.Lock()
	for i, uc := range t.idle {
		uc.conn.Close()
		t.idle[i] = nil
	}
	t.idle = t.idle[:0]
	t.mu.Unlock()
	if c, ok := t.fallback.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// upstreamConn is one HTTP/1.1 connection to the upstream.
type upstreamConn struct {
	conn         net.Conn
	headerBudget headerBudget // what br reads through
	br           *bufio.Reader
	bw           *bufio.Writer
	idleSince    time.Time  // when it went back to the pool
	probe        *idleProbe // looks for bytes that came while it was idle; nil where it cannot
}

// drained reports whether nothing is buffered on the proxy's side of the
// connection at the end of an answer: not in its reader, nor, over TLS,
// inside the tls.Conn. There a record that ends the answer may also hold
// what follows it, and the answer's last bytes are then read straight into
// the caller's buffer (bufio passes large reads through), leaving the rest
// in the tls.Conn. A read past its deadline returns what the tls.Conn
// holds, decrypted, without reading the socket.
func (uc *upstreamConn) drained() bool {
	if uc.br.Buffered() > 0 {
		return false
	}
	if _, ok := uc.conn.(*tls.Conn); !ok {
		return true
	}
	uc.conn.SetReadDeadline(time.Unix(1, 0))
	_, err := uc.br.Peek(1)
	uc.conn.SetReadDeadline(time.Time{}) // for the idleProbe, which a deadline would stop
	return isTimeout(err)                // not bytes, nor the upstream's close_notify
}

// abort makes the connection's pending and future reads and writes fail at
// once: the request's context ended.
func (uc *upstreamConn) abort() { uc.conn.SetDeadline(time.Unix(1, 0)) }

// headerBudget is the reader under a connection's bufio.Reader. While left
// is not unlimited, reads fail once left bytes have been read: the bound on
// the response headers.
type headerBudget struct {
	r    io.Reader
	left int64
}

const unlimited = -1

var errHeadersTooLarge = fmt.Errorf("proxy: the upstream's response headers exceed %d bytes", maxResponseHeaderBytes)

func (hb *headerBudget) Read(p []byte) (int, error) {
	if hb.left == unlimited {
		return hb.r.Read(p)
	}
	if hb.left == 0 {
		return 0, errHeadersTooLarge
	}
	if int64(len(p)) > hb.left {
		p = p[:hb.left]
	}
	n, err := hb.r.Read(p)
	hb.left -= int64(n)
	return n, err
}

// upstreamBody is the body of an answer from an upstreamConn. Read to its
// end, it gives the connection back to the pool; closed before, it closes
// the connection (rather than draining what may be a long download).
type upstreamBody struct {
	body io.ReadCloser // http.ReadResponse's: framing, trailers
	ctx  context.Context
	t    *upstreamTransport
	uc   *upstreamConn // nil once given back or closed
	done error         // what Read returns once uc is nil
	keep bool          // the answer allows the connection to be reused
	stop func() bool   // unregisters the abort on the request's context

	// stall, if not 0, bounds each wait for the body's next bytes
	// (bodyStall). by is the read deadline set for it, moved only once
	// less than half of stall is left: setting it costs a timer.
	stall time.Duration
	by    time.Time
}

func (b *upstreamBody) Read(p []byte) (int, error) {
	if b.uc == nil {
		return 0, b.done
	}
	if b.stall > 0 {
		if now := time.Now(); b.by.Sub(now) < b.stall/2 {
			b.by = now.Add(b.stall)
			b.uc.conn.SetReadDeadline(b.by)
			// The abort's deadline may just have been replaced.
			if err := b.ctx.Err(); err != nil {
				return 0, err
			}
		}
	}
	n, err := b.body.Read(p)
	switch {
	case err == io.EOF:
		if b.stall > 0 {
			b.uc.conn.SetReadDeadline(time.Time{}) // not for the next answer, nor the idleProbe
		}
		stopped := b.stop()
		b.t.release(b.uc, b.keep && stopped)
		b.uc, b.done = nil, io.EOF
	case err != nil && b.ctx.Err() != nil:
		// The abort's deadline; ReverseProxy does not log a cancellation.
		err = b.ctx.Err()
	case b.stall > 0 && isTimeout(err):
		err = stalledError(b.stall)
	}
	return n, err
}

func (b *upstreamBody) Close() error {
	if b.uc != nil {
		b.stop()
		b.uc.conn.Close()
		b.uc, b.done = nil, http.ErrBodyReadAfterClose
	}
	return nil
}

// stalledError is the error of a body whose upstream sent nothing for stall.
func stalledError(stall time.Duration) error {
	return fmt.Errorf("proxy: the upstream sent nothing for %v in the middle of the body", stall)
}

// roundTripFallback sends req through the fallback. A page or body of known
// length that it answers with gets the own transport's stall bound
// (bodyStall): its bytes come through the fallback's connection, which the
// proxy cannot set a read deadline on, so a timer ends req's context
// instead (stallGuard). An upgrade is sent as it is: its context must not
// end with its response.
func (t *upstreamTransport) roundTripFallback(req *http.Request) (*http.Response, error) {
	if t.timeouts.bodyStall == 0 || req.Header["Upgrade"] != nil {
		return t.fallback.RoundTrip(req)
	}
	ctx, cancel := context.WithCancelCause(req.Context())
	resp, err := t.fallback.RoundTrip(req.WithContext(ctx))
	if err != nil || resp.Body == http.NoBody {
		cancel(nil)
		return resp, err
	}
	guard := &stallGuard{body: resp.Body, ctx: ctx, cancel: cancel}
	if flowsWithoutPauses(resp) {
		guard.stall = t.timeouts.bodyStall
	}
	resp.Body = guard
	return resp, nil
}

// stallGuard is the body of an answer through the fallback. If stall is not
// 0, a read that waits for the body's next bytes for stall (lazily: at
// least half of it, as upstreamBody's deadline) ends the request's context,
// and the body with an error saying so; only time spent in Read counts, not
// the time the proxy takes to pass the bytes on to a slow visitor. The
// context ends, releasing the timer, when the body is read to its end or
// closed.
type stallGuard struct {
	body    io.ReadCloser
	ctx     context.Context
	cancel  context.CancelCauseFunc
	stall   time.Duration
	timer   *time.Timer // nil until the first Read
	by      time.Time   // when the timer fires, moved only once less than half of stall is left
	inRead  atomic.Bool // a Read waits: the timer ends the request
	stalled atomic.Bool // the timer ended it
}

// errStalled is the cause with which a stallGuard ends its request's
// context.
var errStalled = errors.New("proxy: the upstream's body stalled")

func (g *stallGuard) Read(p []byte) (int, error) {
	if g.stall > 0 {
		if now := time.Now(); g.by.Sub(now) < g.stall/2 {
			g.by = now.Add(g.stall)
			if g.timer == nil {
				g.timer = time.AfterFunc(g.stall, g.expire)
			} else {
				g.timer.Reset(g.stall)
			}
		}
		g.inRead.Store(true)
		defer g.inRead.Store(false)
	}
	n, err := g.body.Read(p)
	switch {
	case g.stalled.Load():
		// Whatever the read returned: an upstream may end its
		// response cleanly when the request is cancelled (over TLS
		// the fallback's close_notify reaches it first), and a
		// stalled body must not look complete.
		err = stalledError(g.stall)
	case err == io.EOF:
		g.end()
	}
	return n, err
}

// expire is the timer's: it ends the request if a Read is waiting.
func (g *stallGuard) expire() {
	if g.inRead.Load() {
		g.stalled.Store(true)
		g.cancel(errStalled)
	}
}

// end stops the timer and ends the request's context.
func (g *stallGuard) end() {
	if g.timer != nil {
		g.timer.Stop()
	}
	g.cancel(nil)
}

func (g *stallGuard) Close() error {
	err := g.body.Close()
	g.end()
	return err
}

// timeoutError is an upstream that took longer than one of the transport's
// timeouts. It is a net.Error whose Timeout is true, as http.Transport's
// and net.Dialer's timeouts are: isTimeout tells them all apart from other
// failures (the proxy answers 504 rather than 502).
type timeoutError string

func (e timeoutError) Error() string { return string(e) }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

// isTimeout reports whether err is a deadline or timeout.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
