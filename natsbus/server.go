package natsbus

import (
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Server is a NATS server with JetStream run inside a cobrowse process
// (--nats-embed), so that a small cluster needs no other software: the
// other nodes connect to it with --nats. It is one server, not a NATS
// cluster: the cluster's sessions and stored batches live as long as the
// process that runs it.
type Server struct {
	ns *server.Server
}

// RunServer starts a NATS server with JetStream listening on addr
// (host:port), storing under storeDir, and waits until it takes
// connections.
func RunServer(addr, storeDir string, logger *slog.Logger) (*Server, error) {
	host, portText, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("--nats-embed %q: want host:port: %w", addr, err)
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		return nil, fmt.Errorf("--nats-embed %q: the port is not a number", addr)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	ns, err := server.NewServer(&server.Options{
		ServerName: "cobrowse",
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   storeDir,
		// Room for a large page's snapshot in one message; bigger ones
		// are split (records.go).
		MaxPayload: 8 << 20,
		NoSigs:     true,
	})
	if err != nil {
		return nil, fmt.Errorf("embedded NATS server: %w", err)
	}
	ns.SetLoggerV2(serverLogger{logger.With("component", "nats-server")}, false, false, false)
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return nil, fmt.Errorf("embedded NATS server on %s did not start within 10 s", addr)
	}
	return &Server{ns: ns}, nil
}

// ClientURL is the URL nodes connect to.
func (s *Server) ClientURL() string { return s.ns.ClientURL() }

// Shutdown stops the server.
func (s *Server) Shutdown() {
	s.ns.Shutdown()
	s.ns.WaitForShutdown()
}

// serverLogger passes the NATS server's log to slog: its notices at Info,
// debug and trace lines dropped.
type serverLogger struct{ log *slog.Logger }

func (l serverLogger) Noticef(format string, v ...any) { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l serverLogger) Warnf(format string, v ...any)   { l.log.Warn(fmt.Sprintf(format, v...)) }
func (l serverLogger) Fatalf(format string, v ...any)  { l.log.Error(fmt.Sprintf(format, v...)) }
func (l serverLogger) Errorf(format string, v ...any)  { l.log.Error(fmt.Sprintf(format, v...)) }
func (l serverLogger) Debugf(string, ...any)           {}
func (l serverLogger) Tracef(string, ...any)           {}
