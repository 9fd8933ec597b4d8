package viewer

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// RequestIDHeader carries a request's id: taken from the request when a
// proxy in front set a usable one, generated otherwise, and always echoed
// in the response, so that an operator can find an agent's request in the
// log.
const RequestIDHeader = "X-Request-Id"

type requestIDKey struct{}

// requestID returns the id ServeHTTP gave r, or "" for a request that did
// not pass through it.
func requestID(r *http.Request) string {
	id, _ := r.Context().Value(requestIDKey{}).(string)
	return id
}

// withRequestID returns r carrying its id, and sets the id on w.
func withRequestID(w http.ResponseWriter, r *http.Request) *http.Request {
	id := r.Header.Get(RequestIDHeader)
	if !usableRequestID(id) {
		var b [12]byte
		rand.Read(b[:]) // never fails (crypto/rand)
		id = hex.EncodeToString(b[:])
	}
	w.Header().Set(RequestIDHeader, id)
	return r.WithContext(context.WithValue(r.Context(), requestIDKey{}, id))
}

// usableRequestID accepts the ids proxies and tracing systems send (UUIDs,
// hex, base64url, dotted or colon-separated trace ids) and nothing that
// could make a log line misleading.
func usableRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for _, c := range []byte(id) {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9',
			c == '-', c == '_', c == '.', c == ':', c == '+', c == '/', c == '=':
		default:
			return false
		}
	}
	return true
}

// logFor returns the server's logger with r's request id.
func (s *Server) logFor(r *http.Request) *slog.Logger {
	return s.log.With("request_id", requestID(r))
}

// logRequest logs a finished request at debug level: its method and path
// (never the query, which may hold the agent token or an asset's URL), the
// status and how long it took.
func (s *Server) logRequest(r *http.Request, rec *statusRecorder, began time.Time) {
	s.logFor(r).Debug("agent listener request", "method", r.Method, "path", r.URL.Path,
		"status", rec.status, "duration", time.Since(began))
}

// statusRecorder remembers the status a handler answered with. It hands
// WebSocket upgrades (Hijack) and server-sent events (Flush, and whatever
// http.ResponseController reaches through Unwrap) to the writer it wraps.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (w *statusRecorder) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusRecorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusRecorder) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h, ok := w.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("viewer: the connection cannot be taken over")
	}
	if w.status == 0 {
		w.status = http.StatusSwitchingProtocols
	}
	return h.Hijack()
}

func (w *statusRecorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }
