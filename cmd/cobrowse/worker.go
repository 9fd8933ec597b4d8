package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/cobrowse/cobrowse/assets"
	"github.com/cobrowse/cobrowse/browserpool"
	"github.com/cobrowse/cobrowse/natsbus"
	"github.com/cobrowse/cobrowse/session"
)

// renderWorker runs `cobrowse render-worker`: a Chromium pool on its own
// host that renders the Rendered mode of a cluster's sessions for its
// nodes (docs/deploy.md, "Render workers"). It fronts no site and holds no
// session: each session's feed comes from the node holding it, already
// redacted, and so do its assets, fetched there with the visitor's
// cookies.
func renderWorker(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var (
		cluster   clusterOptions
		render    renderOptions
		logLevel  slog.Level
		logFormat string
	)
	fs := newFlagSet("render-worker", "Usage: cobrowse render-worker --nats URL [flags]\n\nRenders the Rendered mode of a cluster's sessions in headless Chromium, for the cobrowse nodes that use the same NATS.\n\n"+configHelp, stderr)
	configFile := registerConfig(fs)
	fs.StringVar(&cluster.nats, "nats", "", "NATS server `URL`s (comma-separated) of the cluster; required")
	fs.StringVar(&cluster.creds, "nats-creds", "", "NATS credentials `file` (JWT and NKey seed)")
	fs.StringVar(&cluster.node, "node", "", "this worker's `name` in the cluster (letters, digits, - and _); default: the host name and a random suffix")
	render.registerPool(fs)
	registerLogFlags(fs, &logLevel, &logFormat)
	if err := parseFlags(fs, args, configFile, os.LookupEnv); err != nil {
		return err
	}
	if cluster.nats == "" {
		fs.Usage()
		return errors.New("--nats is required: the cluster whose sessions this worker renders")
	}
	logger := newLogger(stderr, logFormat, logLevel)

	bus, err := natsbus.Open(ctx, natsbus.Config{URL: cluster.nats, Node: cluster.node, Logger: logger, Options: cluster.natsOptions()})
	if err != nil {
		return fmt.Errorf("--nats: %w", err)
	}
	defer bus.Close()
	// A hub of no visitor: it knows the cluster's sessions and joins them
	// through their nodes.
	hub := session.NewHub(session.Config{Bus: bus, Logger: logger})
	if err := bus.Serve(ctx, hub); err != nil {
		return fmt.Errorf("--nats: %w", err)
	}
	rendering, err := startRendering(ctx, render, hub, remoteAssets{bus}, logger)
	if err != nil {
		return err
	}
	defer rendering.Close()
	capacity := render.browsers * render.tabs
	if err := bus.ServeRendering(ctx, rendering.renderer, capacity); err != nil {
		return fmt.Errorf("--nats: %w", err)
	}
	fmt.Fprintf(stdout, "cobrowse %s render worker %s: %d sessions at a time, for the cluster at %s\n", version, bus.Node(), capacity, cluster.nats)
	<-ctx.Done()
	logger.Info("render worker stopping")
	return nil
}

// remoteAssets resolves a render worker's subresources through the node
// holding each session.
type remoteAssets struct{ bus *natsbus.Bus }

func (r remoteAssets) Resolve(ctx context.Context, req browserpool.Subresource) (*browserpool.Resource, error) {
	return resolveWith(ctx, req, func(ctx context.Context, areq assets.Request) (*assets.Asset, error) {
		a, ok, err := r.bus.Asset(ctx, areq)
		if !ok {
			return nil, fmt.Errorf("session %s: %w", areq.SessionID, session.ErrNoSession)
		}
		return a, err
	})
}
