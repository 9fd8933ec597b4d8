package natsbus

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"

	"github.com/cobrowse/cobrowse/session"
)

// An agent connected to node B watching a session node A holds is served
// by a relay: B asks A to join ("cobrowse.node.A.join"); A subscribes to
// the session as for a local agent and publishes the feed's messages, in
// order and numbered, to "cobrowse.feed.B.<feed id>"; B sends the agent's
// messages, pings and its leaving to "cobrowse.node.A.relay.<feed id>".
// A message lost on the way (core NATS drops for a slow subscriber) is
// seen as a gap in the numbering, and B asks for a resync: the next
// message is a fresh "reset". A relay whose agent's node stopped pinging
// is closed; a feed whose node stopped answering pings ends with
// session.ErrSessionMoved, and the hub's feed follows the session to
// whichever node takes it over.

// Headers of relayed messages.
const (
	hdrKind = "Cobrowse-Kind" // B → A: send, ping, resync, close
	hdrEnd  = "Cobrowse-End"  // A → B, the feed's last message: "ended" or "moved"
)

const (
	// pingInterval is how often an agent's node pings the relay;
	// relayTimeout, how long the relay waits for a ping before it closes.
	pingInterval = 2 * time.Second
	relayTimeout = 5 * pingInterval
)

func nodeSubject(node, what string) string { return "cobrowse.node." + node + "." + what }
func feedSubject(node, feedID string) string {
	return "cobrowse.feed." + node + "." + feedID
}

// joinRequest asks the node holding a session for a relay.
type joinRequest struct {
	Session string `json:"session"`
	Feed    string `json:"feed"` // the feed's id on the agent's node
	From    string `json:"from"` // the agent's node
	Name    string `json:"name,omitempty"`
	Person  bool   `json:"person"`
}

type joinReply struct {
	Agent session.Agent `json:"agent"`
	Error string        `json:"error,omitempty"`
}

// serveRequests answers the other nodes: joins, releases, and the relays'
// traffic; and takes the feeds' messages.
func (b *Bus) serveRequests() error {
	if _, err := b.nc.Subscribe(nodeSubject(b.cfg.Node, ">"), b.handleNodeRequest); err != nil {
		return err
	}
	if _, err := b.nc.Subscribe(redeemSubject, b.serveRedeem); err != nil {
		return err
	}
	_, err := b.nc.Subscribe(feedSubject(b.cfg.Node, "*"), func(m *nats.Msg) {
		b.feeds.deliver(m)
	})
	return err
}

// redeemSubject is where a node asks every node about a support code it
// did not give; the node that gave it answers, the others stay silent.
const redeemSubject = "cobrowse.redeem"

// redeemWait bounds the wait for an answer: a code no node gave costs
// the agent this long.
const redeemWait = time.Second

func (b *Bus) serveRedeem(m *nats.Msg) {
	if id, err := b.hub.RedeemLocal(string(m.Data)); err == nil {
		m.Respond([]byte(id))
	}
}

// Redeem asks the other nodes for the session of a support code.
func (b *Bus) Redeem(code string) (string, error) {
	resp, err := b.nc.Request(redeemSubject, []byte(code), redeemWait)
	if err != nil {
		return "", session.ErrBadCode
	}
	return string(resp.Data), nil
}

func (b *Bus) handleNodeRequest(m *nats.Msg) {
	what := strings.TrimPrefix(m.Subject, nodeSubject(b.cfg.Node, ""))
	switch {
	case what == "join":
		b.serveJoin(m)
	case what == "release":
		b.serveRelease(m)
	case what == "asset":
		b.serveAsset(m)
	case strings.HasPrefix(what, "relay."):
		b.handleRelay(strings.TrimPrefix(what, "relay."), m)
	}
}

// serveJoin subscribes to a session of this node's for an agent of
// another node and starts relaying its feed.
func (b *Bus) serveJoin(m *nats.Msg) {
	var req joinRequest
	if err := json.Unmarshal(m.Data, &req); err != nil || !validToken(req.Feed) || !validToken(req.From) {
		respond(m, joinReply{Error: "malformed join request"})
		return
	}
	s, err := b.hub.Session(req.Session)
	var feed *session.Subscriber
	if err == nil {
		if req.Person {
			feed, err = s.Subscribe(req.Name)
		} else {
			feed, err = s.SubscribeFeed()
		}
	}
	if err != nil {
		respond(m, joinReply{Error: errNotHeld.Error()})
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &relay{what: feed, to: feedSubject(req.From, req.Feed), cancel: cancel}
	b.relays.add(req.Feed, r)
	respond(m, joinReply{Agent: feed.Agent()})
	go b.pump(ctx, req.Feed, r)
}

// pump publishes the feed's messages to the agent's node until the feed
// ends or the relay is closed.
func (b *Bus) pump(ctx context.Context, id string, r *relay) {
	defer b.relays.remove(id)
	var seq uint64
	for {
		msgs, err := r.what.Next(ctx)
		if err != nil {
			if ctx.Err() == nil { // not closed by the agent's node: say why
				end := &nats.Msg{Subject: r.to, Header: nats.Header{}}
				end.Header.Set(hdrEnd, "ended")
				if errors.Is(err, session.ErrSessionMoved) {
					end.Header.Set(hdrEnd, "moved")
				}
				b.nc.PublishMsg(end)
			}
			return
		}
		for _, msg := range msgs {
			seq++
			for _, part := range split(r.to, msg, b.maxPayload()) {
				part.Header.Set(hdrSeq, strconv.FormatUint(seq, 10))
				if err := b.nc.PublishMsg(part); err != nil {
					b.log.Warn("NATS: relaying to an agent's node failed", "err", err)
				}
			}
		}
	}
}

// serveRelease lets another node take a session over: this node writes the
// session's last state, then lets it go (session.Hub.Release), then
// answers.
func (b *Bus) serveRelease(m *nats.Msg) {
	id := string(m.Data)
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	lock := b.entryLock(id)
	lock.Lock()
	defer lock.Unlock()
	b.mu.Lock()
	b.released[id] = time.Now()
	logStart := clone(b.heldLocked(id).logStart)
	delete(b.held, id)
	b.mu.Unlock()
	if st, ok := b.hub.State(id); ok {
		e := entry{Node: b.cfg.Node, State: st, LogStart: logStart, Updated: time.Now().UTC()}
		if data, err := json.Marshal(e); err == nil {
			b.sessions.Put(ctx, id, data)
		}
	}
	if b.hub.Release(id) {
		b.releases.Add(1)
	}
	m.Respond([]byte("released"))
}

// release asks node to let session id go, and reports whether it answered
// (a node that does not is dead, or too slow to matter).
func (b *Bus) release(ctx context.Context, node, id string) bool {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	_, err := b.nc.RequestWithContext(ctx, nodeSubject(node, "release"), []byte(id))
	if err != nil {
		b.log.Info("the node holding a session did not let it go; taking it over as it was stored", "session", id, "holder", node, "err", err)
		return false
	}
	return true
}

func respond(m *nats.Msg, reply joinReply) {
	data, _ := json.Marshal(reply) // plain data: cannot fail
	m.Respond(data)
}

// relay is one agent's feed of a session of this node, relayed to the
// agent's node.
type relay = served[*session.Subscriber]

// handleRelay takes one message of an agent's node for relay id.
func (b *Bus) handleRelay(id string, m *nats.Msg) {
	kind := m.Header.Get(hdrKind)
	if kind == "ping" {
		b.relays.answerPing(id, m)
		return
	}
	r, ok := b.relays.get(id)
	if !ok {
		return
	}
	switch kind {
	case "send":
		var msg session.AgentMessage
		if json.Unmarshal(m.Data, &msg) == nil {
			r.what.Send(msg) // a refusal is the agent console's race with the visitor, as for a local agent
		}
	case "resync":
		r.what.Resync()
	case "close":
		b.relays.remove(id)
	}
}

// pinger pings the peer of a relay or a view, and tells when it is lost:
// gone from NATS (no responders), answering that it no longer knows the
// relay, or silent for two pings in a row.
type pinger struct {
	nc      *nats.Conn
	subject string
	timeout time.Duration
	missed  int
}

// lost sends one ping and reports whether the peer is lost.
func (p *pinger) lost() bool {
	m := &nats.Msg{Subject: p.subject, Header: nats.Header{}}
	m.Header.Set(hdrKind, "ping")
	resp, err := p.nc.RequestMsg(m, p.timeout)
	switch {
	case errors.Is(err, nats.ErrNoResponders) || (err == nil && string(resp.Data) != "ok"):
		return true
	case err != nil:
		p.missed++
		return p.missed >= 2
	}
	p.missed = 0
	return false
}

// Join subscribes an agent of this node (person) or the renderer to a
// session another node holds, through a relay. A node that does not answer
// or no longer holds the session gives session.ErrSessionMoved.
func (b *Bus) Join(ctx context.Context, id, agentName string, person bool) (session.Feed, error) {
	b.mu.Lock()
	e, ok := b.remote[id]
	b.mu.Unlock()
	if !ok {
		// A session that started a moment ago may not have reached this
		// node's watch yet: ask the registry itself.
		kv, err := b.sessions.Get(ctx, id)
		if err != nil {
			return nil, session.ErrNoSession
		}
		if e, err = decodeEntry(kv.Value()); err != nil || e.Node == b.cfg.Node {
			return nil, session.ErrNoSession
		}
	}
	f := &remoteFeed{bus: b, id: newFeedID(), node: e.Node, wake: make(chan struct{}, 1), done: make(chan struct{})}
	b.feeds.add(f)
	req, _ := json.Marshal(joinRequest{Session: id, Feed: f.id, From: b.cfg.Node, Name: agentName, Person: person}) // plain data
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	resp, err := b.nc.RequestWithContext(ctx, nodeSubject(e.Node, "join"), req)
	var reply joinReply
	if err == nil {
		err = json.Unmarshal(resp.Data, &reply)
	}
	if err == nil && reply.Error != "" {
		err = errors.New(reply.Error)
	}
	if err != nil {
		b.feeds.remove(f.id)
		b.log.Info("joining a session on another node failed", "session", id, "holder", e.Node, "err", err)
		return nil, session.ErrSessionMoved
	}
	f.agent = reply.Agent
	go f.keepAlive()
	return f, nil
}

// feeds are this node's feeds of sessions held elsewhere, by id.
type feeds struct {
	mu sync.Mutex
	m  map[string]*remoteFeed
}

func (fs *feeds) init() { fs.m = make(map[string]*remoteFeed) }

func (fs *feeds) add(f *remoteFeed) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.m[f.id] = f
}

func (fs *feeds) remove(id string) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	delete(fs.m, id)
}

// deliver hands a relayed message to its feed.
func (fs *feeds) deliver(m *nats.Msg) {
	id := m.Subject[strings.LastIndexByte(m.Subject, '.')+1:]
	fs.mu.Lock()
	f := fs.m[id]
	fs.mu.Unlock()
	if f != nil {
		f.deliver(m)
	}
}

// remoteFeed is a session.Feed of a session another node holds.
type remoteFeed struct {
	bus   *Bus
	id    string
	node  string
	agent session.Agent
	wake  chan struct{} // capacity 1: the queue or err changed
	done  chan struct{} // closed by Close

	mu    sync.Mutex
	queue [][]byte
	err   error // set when the feed ends; Next returns it after the queue
	// next is the number of the message expected next; awaitReset is set
	// after a gap, until the resync's "reset" comes.
	next       uint64
	awaitReset bool
	parts      joiner
	closeOnce  sync.Once
}

func (f *remoteFeed) Agent() session.Agent { return f.agent }

// deliver takes one message of the relay.
func (f *remoteFeed) deliver(m *nats.Msg) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return
	}
	if end := m.Header.Get(hdrEnd); end != "" {
		f.err = session.ErrSessionEnded
		if end == "moved" {
			f.err = session.ErrSessionMoved
		}
		f.signal()
		return
	}
	body, done, err := f.parts.add(m.Header, m.Data)
	if err != nil {
		f.resyncLocked()
		return
	}
	if !done {
		return
	}
	seq, _ := strconv.ParseUint(m.Header.Get(hdrSeq), 10, 64)
	if f.next != 0 && seq != f.next {
		f.resyncLocked()
	}
	f.next = seq + 1
	if f.awaitReset {
		if !strings.HasPrefix(string(body), `{"type":"reset"`) {
			return // continues what the agent lost; the reset replaces it
		}
		f.awaitReset = false
	}
	f.queue = append(f.queue, body)
	f.signal()
}

// resyncLocked asks the relay for a fresh start after lost messages.
func (f *remoteFeed) resyncLocked() {
	f.awaitReset = true
	f.send("resync", nil)
}

func (f *remoteFeed) signal() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// send publishes one message of kind to the relay.
func (f *remoteFeed) send(kind string, data []byte) error {
	m := &nats.Msg{Subject: nodeSubject(f.node, "relay."+f.id), Header: nats.Header{}, Data: data}
	m.Header.Set(hdrKind, kind)
	return f.bus.nc.PublishMsg(m)
}

// fail ends the feed with err unless it has ended already.
func (f *remoteFeed) fail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err == nil {
		f.err = err
		f.signal()
	}
}

// keepAlive pings the relay; a relay that is gone, or a node that does not
// answer twice in a row, ends the feed with ErrSessionMoved.
func (f *remoteFeed) keepAlive() {
	tick := time.NewTicker(pingInterval)
	defer tick.Stop()
	p := pinger{nc: f.bus.nc, subject: nodeSubject(f.node, "relay."+f.id), timeout: pingInterval}
	for {
		select {
		case <-f.done:
			return
		case <-tick.C:
		}
		if p.lost() {
			f.fail(session.ErrSessionMoved)
			return
		}
	}
}

// Next returns the relayed messages, in order, then the feed's end.
func (f *remoteFeed) Next(ctx context.Context) ([][]byte, error) {
	for {
		f.mu.Lock()
		if len(f.queue) > 0 {
			msgs := f.queue
			f.queue = nil
			f.mu.Unlock()
			return msgs, nil
		}
		err := f.err
		f.mu.Unlock()
		if err != nil {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-f.wake:
		}
	}
}

// Send passes the agent's message to the node holding the session.
func (f *remoteFeed) Send(msg session.AgentMessage) error {
	data, err := json.Marshal(msg)
	if err != nil {
		return err
	}
	return f.send("send", data)
}

// Close ends the relay.
func (f *remoteFeed) Close() {
	f.closeOnce.Do(func() {
		close(f.done)
		f.bus.feeds.remove(f.id)
		f.send("close", nil)
		f.fail(errors.New("feed closed"))
	})
}

// newFeedID returns a random id for a relay, unique in the cluster.
func newFeedID() string { return nuid.Next() }
