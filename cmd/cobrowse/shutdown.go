package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/cobrowse/cobrowse/session"
	"github.com/cobrowse/cobrowse/viewer"
)

// listening is an http.Server with its listener.
type listening struct {
	name string // for the log and errors: "visitor listener"
	srv  *http.Server
	ln   net.Listener
}

// serve serves on the listener (with TLS if srv.TLSConfig is set) until
// the server is shut down, which is not an error.
func (l *listening) serve() error {
	var err error
	if l.srv.TLSConfig != nil {
		err = l.srv.ServeTLS(l.ln, "", "") // with this config (and no file names) also HTTP/2
	} else {
		err = l.srv.Serve(l.ln)
	}
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return fmt.Errorf("%s on %s: %w", l.name, l.ln.Addr(), err)
}

// drain stops accepting and waits until ctx is done for the requests in
// flight; the ones still running then are cut.
func (l *listening) drain(ctx context.Context, logger *slog.Logger) {
	if err := l.srv.Shutdown(ctx); err != nil {
		l.srv.Close()
		logger.Warn("requests still in flight at the shutdown deadline were cut", "listener", l.name, "err", err)
	}
}

// shutdown is what a graceful shutdown stops, in order (run).
type shutdown struct {
	timeout time.Duration
	logger  *slog.Logger
	// servers are drained together; upstream (the demo shop, may be nil)
	// after them, since the visitor listener's requests in flight use it.
	servers   []*listening
	upstream  *listening
	agents    *viewer.Server
	hub       *session.Hub
	rendering *renderService // nil without --render
	cluster   *cluster       // nil for a single node
}

// listening returns every server the process runs.
func (s *shutdown) listening() []*listening {
	if s.upstream == nil {
		return s.servers
	}
	return append(s.servers[:len(s.servers):len(s.servers)], s.upstream)
}

// closeReserve is the part of --shutdown-timeout kept for closing the
// renderer and the browsers after the listeners drained.
func closeReserve(timeout time.Duration) time.Duration {
	return min(5*time.Second, timeout/4)
}

// run shuts the server down within s.timeout:
//
//  1. the listeners stop accepting (and /readyz fails), and at the same
//     time the visitors' sockets close with 1012 "service restart" (the
//     visitor script reconnects with backoff and resends what the server
//     did not acknowledge), and so do the agents' (the console
//     reconnects); the dashboards' event streams end;
//  2. requests in flight drain, until the deadline less closeReserve;
//  3. the node leaves the cluster (--nats), and its embedded NATS server
//     stops (--nats-embed);
//  4. the renderer and the Chromium pool close (every browser killed, its
//     profile deleted);
//
// and the caller closes the audit log on its way out, after everything
// that records into it. It returns an error, which makes the process exit
// non-zero, only if the deadline passed before the browsers were closed.
func (s *shutdown) run() error {
	began := time.Now()
	s.logger.Info("shutting down", "deadline", s.timeout)
	deadline, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	drainBy, cancelDrain := context.WithTimeout(deadline, s.timeout-closeReserve(s.timeout))
	defer cancelDrain()

	var drained sync.WaitGroup
	for _, l := range s.servers {
		drained.Go(func() { l.drain(drainBy, s.logger) })
	}
	s.hub.Shutdown()
	if err := s.agents.Shutdown(drainBy); err != nil {
		s.logger.Warn("agents' sockets did not all close before the drain deadline", "err", err)
	}
	drained.Wait()
	if s.upstream != nil {
		s.upstream.drain(drainBy, s.logger)
	}
	// The visitors have reconnected to other nodes, which took their
	// sessions over (this node answered their release requests while it
	// drained); now the node leaves the cluster.
	s.cluster.Close()

	closed := make(chan error, 1)
	go func() { closed <- s.rendering.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			s.logger.Error("closing the renderer", "err", err)
		}
	case <-deadline.Done():
		// The browsers die with the process anyway (parent-death signal).
		return fmt.Errorf("shutdown: the browsers were not closed within --shutdown-timeout %v; exiting anyway", s.timeout)
	}
	s.logger.Info("stopped", "took", time.Since(began).Round(time.Millisecond))
	return nil
}
