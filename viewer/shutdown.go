package viewer

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// closeServiceRestart is the close code (1012) agents' sockets get when the
// server shuts down: the console reconnects, to this address, which a
// load balancer may send to another instance.
const closeServiceRestart = websocket.CloseServiceRestart

// sockets are the agents' open WebSockets, which Shutdown closes: the
// http.Server does not track a connection after the WebSocket upgrade
// took it over.
type sockets struct {
	mu       sync.Mutex
	conns    map[*websocket.Conn]struct{}
	stopping chan struct{} // closed by Shutdown
	stopped  bool
	handlers sync.WaitGroup // the handlers of the sockets in conns
}

func newSockets() *sockets {
	return &sockets{conns: map[*websocket.Conn]struct{}{}, stopping: make(chan struct{})}
}

// upgrade upgrades r to a WebSocket that Shutdown closes, until r's handler
// returns. After Shutdown the socket is closed at once with 1012.
func (s *Server) upgrade(u *websocket.Upgrader, w http.ResponseWriter, r *http.Request) (*websocket.Conn, error) {
	conn, err := u.Upgrade(w, r, nil)
	if err != nil {
		return nil, err
	}
	ss := s.sockets
	ss.mu.Lock()
	if ss.stopped {
		ss.mu.Unlock()
		closeForRestart(conn)
		return conn, nil
	}
	ss.conns[conn] = struct{}{}
	ss.handlers.Add(1)
	ss.mu.Unlock()
	context.AfterFunc(r.Context(), func() { // the handler returned
		ss.mu.Lock()
		delete(ss.conns, conn)
		ss.mu.Unlock()
		ss.handlers.Done()
	})
	return conn, nil
}

// Shutdown closes every agent WebSocket with code 1012 ("service
// restart"), ends the dashboards' event streams and makes /readyz fail,
// so that an http.Server.Shutdown of the agent listener has only short
// requests left to drain (that server does not wait for WebSockets). It
// then waits, until ctx is done, for the sockets' handlers to return, so
// that what they record on the way out (agents leaving, in the audit log)
// is written before the caller closes the log. It is safe to call more
// than once.
func (s *Server) Shutdown(ctx context.Context) error {
	ss := s.sockets
	ss.mu.Lock()
	if !ss.stopped {
		ss.stopped = true
		close(ss.stopping)
	}
	conns := make([]*websocket.Conn, 0, len(ss.conns))
	for c := range ss.conns {
		conns = append(conns, c)
	}
	ss.mu.Unlock()
	for _, c := range conns {
		closeForRestart(c)
	}
	done := make(chan struct{})
	go func() {
		ss.handlers.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("agent sockets still closing: %w", ctx.Err())
	}
}

// closeForRestart sends the close frame that tells the agent's console to
// reconnect, then closes the connection, which ends its handler's loops.
func closeForRestart(conn *websocket.Conn) {
	conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(closeServiceRestart, "service restart"), time.Now().Add(time.Second))
	conn.Close()
}
