package main

import (
	"context"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"

	"github.com/nats-io/nats.go"

	"github.com/cobrowse/cobrowse/browserpool"
	"github.com/cobrowse/cobrowse/metrics"
	"github.com/cobrowse/cobrowse/natsbus"
	"github.com/cobrowse/cobrowse/session"
)

// clusterOptions are the flags that make this process one node of a
// cluster sharing sessions over NATS (docs/deploy.md).
type clusterOptions struct {
	nats       string
	embed      string
	storeDir   string
	node       string
	visitorKey string
	creds      string
}

func (c *clusterOptions) register(fs *flag.FlagSet) {
	fs.StringVar(&c.nats, "nats", "", "NATS server `URL`s (comma-separated, JetStream enabled) of a cluster of cobrowse nodes: every node lists every session, agents watch sessions of any node, and a visitor that reconnects to another node resumes there (docs/deploy.md); default: one node, nothing shared")
	fs.StringVar(&c.embed, "nats-embed", "", "run a NATS server with JetStream inside this process, listening on `address` (e.g. 0.0.0.0:4222), for a small cluster without other software: this node uses it unless --nats is given, the others connect with --nats nats://THIS-HOST:4222; the cluster's state lives as long as this process")
	fs.StringVar(&c.storeDir, "nats-store", "", "`directory` of the embedded NATS server's JetStream files (default: a temporary directory, removed at exit)")
	fs.StringVar(&c.creds, "nats-creds", "", "NATS credentials `file` (JWT and NKey seed) for --nats; a user and password can go in the URL instead (nats://user:pass@host:4222), TLS with tls://")
	fs.StringVar(&c.node, "node", "", "this node's `name` in the cluster (letters, digits, - and _); default: the host name and a random suffix")
	fs.StringVar(&c.visitorKey, "visitor-key", "", "secret `key` (base64, 32 bytes or more) that signs visitor cookies; every node of a cluster needs the same one (better given as $COBROWSE_VISITOR_KEY); default: random for this process, so a restart starts new sessions")
}

// identityKey returns the key that signs visitor cookies: --visitor-key, or
// a random one for a single node.
func (c *clusterOptions) identityKey() ([]byte, error) {
	if c.visitorKey == "" {
		if c.clustered() {
			return nil, errors.New("--visitor-key: the nodes of a cluster must sign visitor cookies with the same key; generate one with: head -c 32 /dev/urandom | base64")
		}
		return randomKey(), nil
	}
	key, err := base64.StdEncoding.DecodeString(c.visitorKey)
	if err != nil {
		key, err = base64.RawURLEncoding.DecodeString(c.visitorKey)
	}
	if err != nil {
		return nil, fmt.Errorf("--visitor-key is not base64: %w", err)
	}
	if len(key) < session.MinKeyBytes {
		return nil, fmt.Errorf("--visitor-key has %d bytes; give %d or more (head -c 32 /dev/urandom | base64)", len(key), session.MinKeyBytes)
	}
	return key, nil
}

// natsOptions are the connection options the flags ask for.
func (c *clusterOptions) natsOptions() []nats.Option {
	if c.creds == "" {
		return nil
	}
	return []nats.Option{nats.UserCredentials(c.creds)}
}

func (c *clusterOptions) clustered() bool { return c.nats != "" || c.embed != "" }

// cluster is this node's part of a cluster: its Bus, and the NATS server
// it runs, if any. A nil *cluster is a single node.
type cluster struct {
	bus      *natsbus.Bus
	server   *natsbus.Server
	storeDir string // removed at exit: a temporary directory made for the server
}

// joinCluster starts the embedded NATS server if asked and connects the
// node's Bus; nil, nil for a single node.
func joinCluster(ctx context.Context, c clusterOptions, logger *slog.Logger) (*cluster, error) {
	if !c.clustered() {
		return nil, nil
	}
	cl := &cluster{}
	url := c.nats
	if c.embed != "" {
		dir := c.storeDir
		if dir == "" {
			tmp, err := os.MkdirTemp("", "cobrowse-nats-")
			if err != nil {
				return nil, fmt.Errorf("--nats-embed: %w", err)
			}
			dir, cl.storeDir = tmp, tmp
		}
		srv, err := natsbus.RunServer(c.embed, dir, logger)
		if err != nil {
			cl.Close()
			return nil, err
		}
		cl.server = srv
		if url == "" {
			url = srv.ClientURL()
		}
		logger.Info("embedded NATS server running", "url", srv.ClientURL(), "store", dir)
	}
	bus, err := natsbus.Open(ctx, natsbus.Config{URL: url, Node: c.node, Logger: logger, Options: c.natsOptions()})
	if err != nil {
		cl.Close()
		return nil, fmt.Errorf("--nats: %w", err)
	}
	cl.bus = bus
	logger.Info("joined the cluster", "nats", url, "node", bus.Node())
	return cl, nil
}

// Bus is the session.Bus of the hub: nil (the in-process bus) for a
// single node.
func (cl *cluster) Bus() session.Bus {
	if cl == nil || cl.bus == nil {
		return nil
	}
	return cl.bus
}

// serve shares the hub with the cluster, and the asset service (this
// node fetches its sessions' assets for the other nodes, and theirs from
// them), and adds the cluster's series to the metrics.
func (cl *cluster) serve(ctx context.Context, hub *session.Hub, assets *assetService, stats *metrics.Metrics) error {
	if cl == nil {
		return nil
	}
	stats.AddCluster(cl.bus)
	cl.bus.ServeAssets(assets.Local)
	assets.remote = cl.bus.Asset
	return cl.bus.Serve(ctx, hub)
}

// rendering is what shows this node's agents the Rendered mode: its own
// browsers if it runs some, else the cluster's render workers; nil for a
// single node without browsers.
func (cl *cluster) rendering(ctx context.Context, own *renderService) (browserpool.Rendering, error) {
	if own != nil {
		return own.Rendering(), nil
	}
	if cl == nil {
		return nil, nil
	}
	client, err := cl.bus.RenderClient(ctx)
	if err != nil {
		return nil, fmt.Errorf("--nats: %w", err)
	}
	return client, nil
}

// Close leaves the cluster, then stops the embedded server. Safe on nil
// and more than once.
func (cl *cluster) Close() {
	if cl == nil {
		return
	}
	if cl.bus != nil {
		cl.bus.Close()
		cl.bus = nil
	}
	if cl.server != nil {
		cl.server.Shutdown()
		cl.server = nil
	}
	if cl.storeDir != "" {
		os.RemoveAll(cl.storeDir)
		cl.storeDir = ""
	}
}
