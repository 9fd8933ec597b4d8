package assets

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"sync"
)

// serveLocal answers a request for t, one of the Local origins, by calling
// Local.ServeHTTP in-process: no connection is opened. The handler sees what
// net/http's server would give it for a browser's GET: a URL with path and
// query only, Host, RequestURI,
// RemoteAddr "127.0.0.1:0", TLS set for an https origin (so the proxy keeps
// its redirects on that origin), and in its context http.ServerContextKey
// (like net/http, serveLocal recovers the handler's panics, and
// httputil.ReverseProxy aborts with http.ErrAbortHandler only when it sees
// one). cookie, if not empty, is sent as the Cookie header.
//
// The body is kept up to maxBytes; past that the handler's writes fail, its
// context is cancelled and serveLocal returns ErrTooLarge. If ctx ends first,
// serveLocal returns at once; the handler goroutine finishes on its own, its
// writes failing.
func (f *Fetcher) serveLocal(ctx context.Context, t target, h http.Header, cookie string) (*response, error) {
	ctx, cancel := context.WithCancel(context.WithValue(ctx, http.ServerContextKey, f.localServer))
	defer cancel()
	r, err := http.NewRequestWithContext(ctx, http.MethodGet, t.String(), nil)
	if err != nil {
		return nil, err
	}
	// As net/http's server: the URL of an origin-form request has a path
	// and query only; the host is in Host.
	r.URL.Scheme, r.URL.Host = "", ""
	r.Host = t.url.Host
	r.RequestURI = t.url.RequestURI()
	r.RemoteAddr = "127.0.0.1:0"
	r.Header = h
	if cookie != "" {
		r.Header.Set("Cookie", cookie)
	}
	if t.url.Scheme == "https" {
		r.TLS = &tls.ConnectionState{Version: tls.VersionTLS13, HandshakeComplete: true, ServerName: t.host}
	}

	rec := &recorder{header: http.Header{}, max: f.maxBytes, cancel: cancel}
	done := make(chan any, 1)
	go func() {
		defer func() { done <- recover() }()
		f.local.ServeHTTP(rec, r)
	}()
	select {
	case <-ctx.Done():
		if rec.abandon() {
			return nil, fmt.Errorf("%w: the body is over %d bytes", ErrTooLarge, f.maxBytes)
		}
		return nil, ctx.Err()
	case panicked := <-done:
		resp, tooLarge := rec.finish()
		switch {
		case tooLarge:
			return nil, fmt.Errorf("%w: the body is over %d bytes", ErrTooLarge, f.maxBytes)
		case panicked == http.ErrAbortHandler:
			return nil, errors.New("the local handler aborted the response (the upstream's body was cut short?)")
		case panicked != nil:
			f.log.Error("assets: the local handler panicked", "url", redact(t), "panic", panicked)
			return nil, fmt.Errorf("the local handler panicked: %v", panicked)
		}
		return resp, nil
	}
}

// response is one HTTP response as the Fetcher read it, body included.
type response struct {
	status int
	header http.Header
	body   []byte
}

// recorder is the http.ResponseWriter that the Local handler writes to. It
// keeps the body up to max bytes and fails writes past it, or after finish.
// Like net/http's, it takes a snapshot of the header map at WriteHeader.
type recorder struct {
	header http.Header // the handler's; touched by the handler goroutine only
	max    int64
	cancel context.CancelFunc

	mu       sync.Mutex
	resp     *response // set by WriteHeader
	tooLarge bool
	finished bool
}

func (rec *recorder) Header() http.Header { return rec.header }

func (rec *recorder) WriteHeader(code int) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	rec.writeHeaderLocked(code)
}

func (rec *recorder) writeHeaderLocked(code int) {
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code)) // as net/http does
	}
	if rec.resp != nil || rec.finished || code < 200 {
		return // a second call, or an informational response such as 103 Early Hints
	}
	rec.resp = &response{status: code, header: rec.header.Clone()}
}

// errRecorderDone fails the writes of a handler whose response is no
// longer wanted.
var errRecorderDone = errors.New("assets: the response is no longer wanted")

func (rec *recorder) Write(p []byte) (int, error) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.finished || rec.tooLarge {
		return 0, errRecorderDone
	}
	rec.writeHeaderLocked(http.StatusOK)
	if int64(len(rec.resp.body))+int64(len(p)) > rec.max {
		rec.tooLarge = true
		rec.cancel()
		return 0, ErrTooLarge
	}
	rec.resp.body = append(rec.resp.body, p...)
	return len(p), nil
}

// Flush does nothing: the response is read once the handler returns. It is
// there because handlers (the proxy among them) flush through
// http.ResponseController, which fails without it.
func (rec *recorder) Flush() {}

// abandon stops the recording of a handler that is still running, and
// returns whether the body went over max.
func (rec *recorder) abandon() bool {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	rec.finished = true
	return rec.tooLarge
}

// finish stops the recording once the handler has returned, and returns the
// response (200 with no body if the handler wrote nothing), and whether the
// body went over max.
func (rec *recorder) finish() (*response, bool) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	rec.writeHeaderLocked(http.StatusOK)
	rec.finished = true
	return rec.resp, rec.tooLarge
}
