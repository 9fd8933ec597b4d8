// Package natsbus is the session.Bus of a cluster of cobrowse nodes on NATS
// (docs/architecture.md, "Several nodes"):
//
//   - the session registry is a JetStream key-value bucket: one entry per
//     session, written by the node that holds it (its session.SessionState,
//     and where each tab's log starts in the event stream), so every node's
//     dashboard lists every session and any node can take one over;
//   - every batch a node accepts is stored, redacted, in a JetStream stream
//     (one subject per tab) before the visitor is acknowledged;
//   - agents on other nodes are served over core NATS subjects: a relay
//     per agent carries the hub's messages to the agent's node and the
//     agent's messages back;
//   - node liveness is a key per node in a bucket whose entries expire.
//
// What is stored and relayed is what agents may see: the hub stores batches
// after its Redactor, never the visitor's raw events.
package natsbus

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cobrowse/cobrowse/assets"
	"github.com/cobrowse/cobrowse/session"
)

// Names of the JetStream stream and buckets, and the subjects' prefix. Every
// node of a cluster must use the same NATS account.
const (
	eventStream   = "COBROWSE_EVENTS"
	eventSubjects = "cobrowse.events." // + session id + "." + tab id
	sessionBucket = "cobrowse-sessions"
	nodeBucket    = "cobrowse-nodes"
)

// Timing of the cluster's bookkeeping.
const (
	// heartbeat is how often a node says it is alive; a node silent for
	// nodeTTL is dead.
	heartbeat = 2 * time.Second
	nodeTTL   = 3 * heartbeat
	// syncInterval is how often a node writes the registry entries of its
	// sessions that changed; refreshInterval, how often it rewrites them
	// all (LastActivity, and that they are still held).
	syncInterval    = 200 * time.Millisecond
	refreshInterval = 10 * time.Second
	// requestTimeout bounds one request to another node.
	requestTimeout = 3 * time.Second
)

// Config configures a node's Bus.
type Config struct {
	// URL is the NATS server (or comma-separated servers) to connect to.
	URL string
	// Node names this node in the cluster; unique, and made of letters,
	// digits, '-' and '_'. Default: the host name and a random suffix.
	Node string
	// Retention bounds how long a session's stored batches are kept; a
	// session that ends sooner has its batches deleted then. Default 24 h.
	Retention time.Duration
	// IdleTimeout is the hubs' (session.Config.IdleTimeout): a registry
	// entry its node stopped refreshing for longer than that and
	// refreshInterval is removed. Default 30 s.
	IdleTimeout time.Duration
	// Options are passed to nats.Connect after the Bus's own (e.g.
	// credentials, TLS).
	Options []nats.Option
	Logger  *slog.Logger
}

// Bus is a node's session.Bus on NATS. Open connects it; Serve gives it
// the hub it shares.
type Bus struct {
	cfg      Config
	log      *slog.Logger
	nc       *nats.Conn
	js       jetstream.JetStream
	events   jetstream.Stream
	sessions jetstream.KeyValue
	nodes    jetstream.KeyValue
	hub      *session.Hub

	// entryLocks order, per session, the writes of its registry entry
	// and its release (serveRelease), so that a session this node let go
	// is never written again as this node's (entryLock picks one; striped,
	// since a lock per session would need a lifetime of its own).
	entryLocks [64]sync.Mutex

	mu sync.Mutex
	// remote holds the registry entries of sessions other nodes hold, as
	// the bucket's watch last told.
	remote map[string]entry
	// held is what this node last wrote for each session it holds.
	held map[string]*heldSession
	// released holds the sessions this node let another node take over,
	// and when: never written as this node's again, unless taken back.
	released map[string]time.Time

	// fetchAsset answers other nodes' asset requests (ServeAssets).
	fetchAsset func(ctx context.Context, req assets.Request) (*assets.Asset, error)

	relays *leases[*relay] // agents of this node's sessions on other nodes (relay.go)

	takeovers, releases, storeFailures atomic.Uint64 // Stats
	feeds                              feeds         // this node's agents of other nodes' sessions (relay.go)
}

// entry is a session's registry entry: the state of session.Bus.Takeover,
// which node holds the session, and where each tab's log starts in the
// event stream.
type entry struct {
	Node     string               `json:"node"`
	State    session.SessionState `json:"state"`
	LogStart map[string]uint64    `json:"logStart,omitempty"`
	Updated  time.Time            `json:"updated"`
}

// heldSession is what this node wrote last for a session it holds. It is
// guarded by Bus.mu.
type heldSession struct {
	logStart map[string]uint64 // tab → stream sequence of its latest Replace record
	written  []byte            // the entry last written, without Updated
	at       time.Time         // when it was written
}

// Open connects to NATS and makes sure the stream and buckets exist.
func Open(ctx context.Context, cfg Config) (*Bus, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Retention <= 0 {
		cfg.Retention = 24 * time.Hour
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 30 * time.Second
	}
	if cfg.Node == "" {
		cfg.Node = defaultNodeName()
	} else if !validToken(cfg.Node) {
		return nil, fmt.Errorf("node name %q: use letters, digits, '-' and '_' only", cfg.Node)
	}
	b := &Bus{
		cfg:      cfg,
		log:      cfg.Logger.With("node", cfg.Node),
		remote:   make(map[string]entry),
		held:     make(map[string]*heldSession),
		released: make(map[string]time.Time),
	}
	b.relays = newLeases[*relay]()
	b.feeds.init()
	opts := append([]nats.Option{
		nats.Name("cobrowse " + cfg.Node),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				b.log.Warn("NATS connection lost; reconnecting", "err", err)
			}
		}),
		nats.ReconnectHandler(func(*nats.Conn) { b.log.Info("NATS connection back") }),
	}, cfg.Options...)
	nc, err := connect(ctx, cfg.URL, opts, b.log)
	if err != nil {
		return nil, fmt.Errorf("connecting to NATS at %s: %w", cfg.URL, err)
	}
	b.nc = nc
	if err := b.setUp(ctx); err != nil {
		nc.Close()
		return nil, err
	}
	return b, nil
}

// connectWait is how long a node waits at start for a NATS server that
// does not answer yet (started at the same time, by the same compose file).
const connectWait = 30 * time.Second

// connect connects to NATS, trying again every second for connectWait
// while no server answers.
func connect(ctx context.Context, url string, opts []nats.Option, log *slog.Logger) (*nats.Conn, error) {
	deadline := time.Now().Add(connectWait)
	for {
		nc, err := nats.Connect(url, opts...)
		if !errors.Is(err, nats.ErrNoServers) || time.Now().After(deadline) {
			return nc, err
		}
		log.Info("no NATS server answers yet; trying again", "url", url)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// setUp creates (or updates) the stream and the buckets.
func (b *Bus) setUp(ctx context.Context) error {
	js, err := jetstream.New(b.nc)
	if err != nil {
		return err
	}
	b.js = js
	b.events, err = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        eventStream,
		Description: "cobrowse: the batches of every session's tabs, as agents see them",
		Subjects:    []string{eventSubjects + ">"},
		MaxAge:      b.cfg.Retention,
		Storage:     jetstream.FileStorage,
		AllowDirect: true,
	})
	if err != nil {
		return fmt.Errorf("JetStream stream %s (is JetStream enabled on the NATS server?): %w", eventStream, err)
	}
	b.sessions, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      sessionBucket,
		Description: "cobrowse: the sessions of the cluster and the nodes holding them",
		History:     1,
	})
	if err != nil {
		return fmt.Errorf("JetStream bucket %s: %w", sessionBucket, err)
	}
	b.nodes, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      nodeBucket,
		Description: "cobrowse: the live nodes of the cluster",
		History:     1,
		TTL:         nodeTTL,
	})
	if err != nil {
		return fmt.Errorf("JetStream bucket %s: %w", nodeBucket, err)
	}
	return nil
}

// Stats are a node's cluster counters since Open, and its relays now.
type Stats struct {
	RemoteSessions int    // sessions other nodes hold, as the registry lists them
	Relays         int    // agents of other nodes watching this node's sessions
	Feeds          int    // agents of this node watching other nodes' sessions
	Takeovers      uint64 // sessions this node took over from another node
	Releases       uint64 // sessions this node let another node take over
	StoreFailures  uint64 // batches JetStream did not store (a takeover would miss them)
}

// Stats returns the node's cluster counters.
func (b *Bus) Stats() Stats {
	b.mu.Lock()
	remote := len(b.remote)
	b.mu.Unlock()
	b.feeds.mu.Lock()
	feeds := len(b.feeds.m)
	b.feeds.mu.Unlock()
	b.relays.mu.Lock()
	relays := len(b.relays.m)
	b.relays.mu.Unlock()
	return Stats{
		RemoteSessions: remote, Relays: relays, Feeds: feeds,
		Takeovers: b.takeovers.Load(), Releases: b.releases.Load(), StoreFailures: b.storeFailures.Load(),
	}
}

// Node returns this node's name in the cluster.
func (b *Bus) Node() string { return b.cfg.Node }

// Serve shares hub with the cluster until ctx is done: it writes the
// registry entries of the hub's sessions, watches the other nodes' entries,
// says this node is alive, and answers other nodes' requests. Call it once,
// after session.NewHub(session.Config{Bus: b}).
func (b *Bus) Serve(ctx context.Context, hub *session.Hub) error {
	b.hub = hub
	if err := b.beat(ctx); err != nil {
		return fmt.Errorf("announcing node %s: %w", b.cfg.Node, err)
	}
	watcher, err := b.sessions.WatchAll(ctx)
	if err != nil {
		return fmt.Errorf("watching the session registry: %w", err)
	}
	if err := b.serveRequests(); err != nil {
		return err
	}
	go b.watchRegistry(ctx, watcher)
	go b.run(ctx)
	return nil
}

// Close leaves the cluster: this node's key goes (so the others treat it
// as gone at once) and the connection is drained.
func (b *Bus) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	b.nodes.Delete(ctx, b.cfg.Node)
	b.nc.Drain()
}

// run keeps the node's key alive, writes its sessions' registry entries
// and removes entries their nodes abandoned.
func (b *Bus) run(ctx context.Context) {
	sync := time.NewTicker(syncInterval)
	defer sync.Stop()
	beat := time.NewTicker(heartbeat)
	defer beat.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-sync.C:
			b.syncRegistry(ctx)
		case <-beat.C:
			if err := b.beat(ctx); err != nil {
				b.log.Warn("NATS: announcing this node failed", "err", err)
			}
			b.removeAbandoned(ctx)
			b.relays.expire(relayTimeout)
			b.forgetReleased()
		}
	}
}

func (b *Bus) beat(ctx context.Context) error {
	_, err := b.nodes.Put(ctx, b.cfg.Node, []byte(time.Now().UTC().Format(time.RFC3339Nano)))
	return err
}

// alive reports whether node has announced itself within nodeTTL.
func (b *Bus) alive(ctx context.Context, node string) bool {
	_, err := b.nodes.Get(ctx, node)
	return err == nil
}

// registryWriters bounds the registry entries a node writes at once.
const registryWriters = 16

// syncRegistry writes the entries of the hub's sessions that changed, and
// every entry once per refreshInterval, registryWriters at a time.
func (b *Bus) syncRegistry(ctx context.Context) {
	slots := make(chan struct{}, registryWriters)
	var wg sync.WaitGroup
	for _, st := range b.hub.States() {
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			b.writeEntry(ctx, st, false)
		})
	}
	wg.Wait()
}

// writeEntryNow writes the registry entry of a session this node holds
// (a tab's log started over: a takeover must read it from there).
func (b *Bus) writeEntryNow(ctx context.Context, id string) {
	if st, ok := b.hub.State(id); ok {
		b.writeEntry(ctx, st, true)
	}
}

// entryLock is the lock that orders the writes of session id's entry.
func (b *Bus) entryLock(id string) *sync.Mutex {
	var h uint32 = 2166136261 // FNV-1a
	for i := 0; i < len(id); i++ {
		h = (h ^ uint32(id[i])) * 16777619
	}
	return &b.entryLocks[h%uint32(len(b.entryLocks))]
}

// writeEntry writes a session's entry if it changed, if it was last
// written refreshInterval ago, or if now; never for a session released.
func (b *Bus) writeEntry(ctx context.Context, st session.SessionState, now bool) {
	id := st.Info.ID
	lock := b.entryLock(id)
	lock.Lock()
	defer lock.Unlock()
	b.mu.Lock()
	if _, gone := b.released[id]; gone {
		b.mu.Unlock()
		return
	}
	h := b.heldLocked(id)
	e := entry{Node: b.cfg.Node, State: st, LogStart: clone(h.logStart)}
	written, writtenAt := h.written, h.at
	b.mu.Unlock()
	key := entryKey(e)
	at := time.Now()
	if !now && bytes.Equal(key, written) && at.Sub(writtenAt) < refreshInterval {
		return
	}
	e.Updated = at.UTC()
	data, err := json.Marshal(e)
	if err != nil {
		b.log.Error("encoding a registry entry", "session", id, "err", err)
		return
	}
	if _, err := b.sessions.Put(ctx, id, data); err != nil {
		b.log.Warn("NATS: writing a registry entry failed", "session", id, "err", err)
		return
	}
	b.mu.Lock()
	h.written, h.at = key, at
	b.mu.Unlock()
}

// entryKey is what decides whether an entry changed: all of it but the
// times that move with every batch (they are refreshed every
// refreshInterval).
func entryKey(e entry) []byte {
	e.State.Info.LastActivity = time.Time{}
	data, _ := json.Marshal(e) // plain data: cannot fail
	return data
}

// heldLocked returns what this node keeps for a session it holds.
func (b *Bus) heldLocked(id string) *heldSession {
	h := b.held[id]
	if h == nil {
		h = &heldSession{logStart: make(map[string]uint64)}
		b.held[id] = h
	}
	return h
}

// watchRegistry keeps b.remote in step with the other nodes' entries and
// wakes the hub's watchers (dashboards) when they change.
func (b *Bus) watchRegistry(ctx context.Context, w jetstream.KeyWatcher) {
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-w.Updates():
			if !ok {
				return
			}
			if e == nil {
				continue // the end of the initial values
			}
			b.applyEntry(e)
			b.hub.ClusterChanged()
		}
	}
}

// applyEntry records one change of the registry.
func (b *Bus) applyEntry(kv jetstream.KeyValueEntry) {
	id := kv.Key()
	b.mu.Lock()
	defer b.mu.Unlock()
	if kv.Operation() != jetstream.KeyValuePut {
		delete(b.remote, id)
		return
	}
	var e entry
	if err := json.Unmarshal(kv.Value(), &e); err != nil {
		b.log.Warn("unreadable registry entry; ignored", "session", id, "err", err)
		return
	}
	if e.Node == b.cfg.Node {
		delete(b.remote, id)
		return
	}
	delete(b.held, id) // another node holds it now
	b.remote[id] = e
}

// forgetReleased forgets the sessions released more than a minute ago:
// their new node has written their entry long since.
func (b *Bus) forgetReleased() {
	limit := time.Now().Add(-time.Minute)
	b.mu.Lock()
	defer b.mu.Unlock()
	for id, at := range b.released {
		if at.Before(limit) {
			delete(b.released, id)
		}
	}
}

// removeAbandoned deletes the entries (and stored batches) of sessions
// whose node stopped refreshing them long enough ago that their visitor
// did not come back anywhere.
func (b *Bus) removeAbandoned(ctx context.Context) {
	limit := time.Now().Add(-(b.cfg.IdleTimeout + 2*refreshInterval))
	b.mu.Lock()
	var gone []string
	for id, e := range b.remote {
		if e.Updated.Before(limit) {
			gone = append(gone, id)
		}
	}
	b.mu.Unlock()
	for _, id := range gone {
		kv, err := b.sessions.Get(ctx, id)
		if err != nil {
			continue
		}
		var e entry
		if json.Unmarshal(kv.Value(), &e) == nil && e.Updated.Before(limit) {
			// Only if nobody wrote it meanwhile.
			if b.sessions.Delete(ctx, id, jetstream.LastRevision(kv.Revision())) == nil {
				b.purge(ctx, id)
				b.log.Info("removed a session its node abandoned", "session", id, "node", e.Node)
			}
		}
	}
}

// Remote lists the sessions other nodes hold, as their entries describe
// them (refreshed every refreshInterval or on change).
func (b *Bus) Remote() []session.Info {
	b.mu.Lock()
	defer b.mu.Unlock()
	infos := make([]session.Info, 0, len(b.remote))
	for _, e := range b.remote {
		infos = append(infos, b.describe(e))
	}
	return infos
}

// Lookup describes a session another node holds.
func (b *Bus) Lookup(id string) (session.Info, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.remote[id]
	if !ok {
		return session.Info{}, false
	}
	return b.describe(e), true
}

// describe is the Info of a remote entry, as this node's dashboard shows
// it: which node holds it, and Consent only where the hub's join mode
// shows it.
func (b *Bus) describe(e entry) session.Info {
	info := e.State.Info
	info.Node = e.Node
	if b.hub.JoinMode() == session.JoinNone {
		info.Consent = ""
	}
	return info
}

// Ended deletes an ended session's entry and stored batches.
func (b *Bus) Ended(id string) {
	b.mu.Lock()
	delete(b.held, id)
	b.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	if err := b.sessions.Delete(ctx, id); err != nil {
		b.log.Warn("NATS: deleting an ended session's entry failed", "session", id, "err", err)
	}
	b.purge(ctx, id)
}

// purge deletes a session's stored batches.
func (b *Bus) purge(ctx context.Context, id string) {
	if err := b.events.Purge(ctx, jetstream.WithPurgeSubject(eventSubjects+id+".>")); err != nil {
		b.log.Warn("NATS: deleting a session's stored batches failed", "session", id, "err", err)
	}
}

func clone(m map[string]uint64) map[string]uint64 {
	c := make(map[string]uint64, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// validToken reports whether s can be a NATS subject token and a key.
func validToken(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// defaultNodeName is the host name (made a valid token) and a random
// suffix, so that a restarted node is a new one.
func defaultNodeName() string {
	host, _ := os.Hostname()
	host = strings.Map(func(r rune) rune {
		if r < 128 && validToken(string(r)) {
			return r
		}
		return '-'
	}, host)
	if len(host) > 40 {
		host = host[:40]
	}
	b := make([]byte, 6)
	rand.Read(b) // never fails (crypto/rand documents this)
	return strings.TrimLeft(host+"-", "-") + base64.RawURLEncoding.EncodeToString(b)
}

// errDisconnected fails at once what a visitor would otherwise wait for
// while the connection to NATS is down (it reconnects by itself).
var errDisconnected = errors.New("not connected to NATS (reconnecting)")

// errNotHeld is a node's answer to a request about a session it does not
// hold.
var errNotHeld = errors.New("this node does not hold the session")
