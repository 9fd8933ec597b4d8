package session

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// Bus connects a hub to the other cobrowse processes ("nodes") of a
// cluster. The node a session's visitor is connected to holds the session
// (its tabs, logs, consent, chat and agents); through the Bus it
//
//   - stores every batch it accepts, as agents may see it (redacted), before
//     the visitor is acknowledged, and the session's state, so that another
//     node can take the session over with nothing lost when the visitor
//     reconnects there (Takeover);
//   - lists its sessions to the other nodes' dashboards (Remote, Lookup);
//   - serves agents connected to other nodes (Join on their side).
//
// Config.Bus nil is the in-process bus of a single node, which shares
// nothing and has nothing to run. natsbus implements it on NATS JetStream.
//
// The hub calls a Bus outside its locks. A Bus is given the hub it serves
// (natsbus.Bus.Serve) and calls it back through Hub.States, Hub.Session
// and Hub.Release.
type Bus interface {
	// Store records one batch the hub accepted, durably: the visitor is
	// acknowledged when it returns, and resends the batch to whichever
	// node it reaches next if it returns an error.
	Store(rec BatchRecord) error
	// Takeover returns what another node held of a session, after that
	// node let it go (or died): its state and each tab's log. ok is false
	// when the cluster does not know the session.
	Takeover(ctx context.Context, sessionID string) (state SessionState, tabs []RestoredTab, ok bool, err error)
	// Remote lists the sessions other nodes hold.
	Remote() []Info
	// Lookup describes a session another node holds.
	Lookup(sessionID string) (Info, bool)
	// Join returns an agent's feed (person true) or the renderer's
	// (person false) of a session another node holds. Its Next returns
	// ErrSessionMoved when that node lets the session go or is lost.
	Join(ctx context.Context, sessionID, agentName string, person bool) (Feed, error)
	// Ended tells the cluster that a session this node held has ended (not
	// moved): what is stored for it can go.
	Ended(sessionID string)
	// Redeem redeems a support code another node gave (Hub.RedeemLocal
	// there) and returns its session; ErrBadCode if no node did.
	Redeem(code string) (sessionID string, err error)
}

// Feed is an agent's view of a session wherever the session is held: the
// messages of Subscriber.Next and the agent's Send. *Subscriber is the
// feed of a session this node holds.
type Feed interface {
	Agent() Agent
	Next(ctx context.Context) ([][]byte, error)
	Send(msg AgentMessage) error
	Close()
}

// ErrSessionMoved is returned by a feed's Next when the node that held the
// session let it go (its visitor reconnected elsewhere) or was lost. The
// feeds of Hub.Join follow the session to its new node by themselves.
var ErrSessionMoved = errors.New("session moved to another node")

// BatchRecord is what a node stores of one accepted batch (Bus.Store): the
// tab's batch seq and the change it made to the tab's log, in events as
// agents see them.
type BatchRecord struct {
	SessionID string
	TabID     string
	Page      string
	Seq       uint64
	// Replace is true when the batch started the tab's log over (a new
	// snapshot, or the log dropped while the hub waits for one): the log is
	// now Events. Otherwise Events were appended to it.
	Replace bool
	Events  []json.RawMessage
}

// SessionState is what a node needs, besides the tabs' logs, to take a
// session over: the registry entry other nodes' dashboards show (Info), and
// the collaboration state agents and the visitor must find unchanged.
type SessionState struct {
	Info            Info          `json:"info"`
	ConsentAnswered time.Time     `json:"consentAnswered,omitzero"`
	AgentSeq        int           `json:"agentSeq,omitempty"`
	Chat            []ChatMessage `json:"chat,omitempty"`
	// Active is the id of the tab agents follow.
	Active string     `json:"active,omitempty"`
	Tabs   []TabState `json:"tabs,omitempty"`
}

// TabState is a tab's part of SessionState.
type TabState struct {
	ID         string  `json:"id"`
	URL        string  `json:"url,omitempty"`
	Title      string  `json:"title,omitempty"`
	PixelRatio float64 `json:"pixelRatio,omitempty"`
}

// RestoredTab is a tab's stream as a Bus kept it: the page load streaming,
// its last stored batch and the tab's log.
type RestoredTab struct {
	ID      string
	Page    string
	LastSeq uint64
	Log     []json.RawMessage
}

// localBus is the in-process Bus of a hub with no cluster: nothing is
// shared, every session is this node's.
type localBus struct{}

func (localBus) Store(BatchRecord) error { return nil }
func (localBus) Takeover(context.Context, string) (SessionState, []RestoredTab, bool, error) {
	return SessionState{}, nil, false, nil
}
func (localBus) Remote() []Info                { return nil }
func (localBus) Lookup(string) (Info, bool)    { return Info{}, false }
func (localBus) Ended(string)                  {}
func (localBus) Redeem(string) (string, error) { return "", ErrBadCode }
func (localBus) Join(_ context.Context, id, _ string, _ bool) (Feed, error) {
	return nil, fmt.Errorf("session %q: %w", id, ErrNoSession)
}

// Lookup describes the session with the given id, held by this node or
// another one.
func (h *Hub) Lookup(id string) (Info, error) {
	if s, err := h.Session(id); err == nil {
		return s.Info(), nil
	}
	if info, ok := h.cfg.Bus.Lookup(id); ok {
		return info, nil
	}
	return Info{}, fmt.Errorf("session %q: %w", id, ErrNoSession)
}

// Events returns Session.Events of the session with the given id, held by
// this node or another one (from the "reset" a feed of it starts with).
func (h *Hub) Events(ctx context.Context, id string) ([]json.RawMessage, error) {
	if s, err := h.Session(id); err == nil {
		return s.Events(), nil
	}
	feed, err := h.cfg.Bus.Join(ctx, id, "", false)
	if err != nil {
		return nil, err
	}
	defer feed.Close()
	msgs, err := feed.Next(ctx)
	if err != nil {
		return nil, err
	}
	var reset struct {
		Type   string            `json:"type"`
		Events []json.RawMessage `json:"events"`
	}
	if len(msgs) == 0 || json.Unmarshal(msgs[0], &reset) != nil || reset.Type != "reset" {
		return nil, fmt.Errorf("session %q: its node's feed did not start with a reset", id)
	}
	if reset.Events == nil {
		reset.Events = []json.RawMessage{}
	}
	return reset.Events, nil
}

// States describes every session this node holds, for the Bus to share.
func (h *Hub) States() []SessionState {
	all := h.all()
	states := make([]SessionState, 0, len(all))
	for _, s := range all {
		s.mu.Lock()
		if !s.ended.Load() {
			states = append(states, s.stateLocked())
		}
		s.mu.Unlock()
	}
	return states
}

// State describes the session with the given id if this node holds it.
func (h *Hub) State(id string) (SessionState, bool) {
	s, err := h.Session(id)
	if err != nil {
		return SessionState{}, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stateLocked(), !s.ended.Load()
}

// ClusterChanged tells the hub's watchers (Hub.Watch) that the sessions
// of other nodes changed. The Bus calls it.
func (h *Hub) ClusterChanged() { h.changed() }

func (s *Session) stateLocked() SessionState {
	st := SessionState{
		Info:            s.infoLocked(),
		ConsentAnswered: s.consentAnswered,
		AgentSeq:        s.agentSeq,
		Chat:            slices.Clone(s.chat), // chatLocked shifts it in place
	}
	// Consent is in Info only where it matters to agents; a takeover needs
	// it always.
	st.Info.Consent = s.consent
	if s.active != nil {
		st.Active = s.active.id
	}
	for _, t := range s.tabs {
		st.Tabs = append(st.Tabs, TabState{ID: t.id, URL: t.url, Title: t.title, PixelRatio: t.pixelRatio})
	}
	// In a stable order: the Bus rewrites an entry only when it changed.
	slices.SortFunc(st.Tabs, func(a, b TabState) int { return strings.Compare(a.ID, b.ID) })
	return st
}

// Release lets another node take the session over: the visitor's tabs are
// told to reconnect (close code 1012, as in Shutdown), the feeds of its
// agents end with ErrSessionMoved (Hub.Join's feeds follow it), and this
// node forgets it without ending it. It reports whether this node held the
// session.
func (h *Hub) Release(id string) bool {
	h.mu.Lock()
	s := h.sessions[id]
	if s != nil {
		delete(h.sessions, id)
	}
	h.mu.Unlock()
	if s == nil {
		return false
	}
	s.mu.Lock()
	for _, t := range s.tabs {
		if t.conn != nil {
			t.conn.restart = true
			t.conn.detachLocked()
		}
		t.redactor.Close()
	}
	s.ended.Store(true)
	subs := s.subs
	s.subs = map[*Subscriber]struct{}{}
	for sub := range subs {
		sub.moved()
	}
	s.mu.Unlock()
	h.cfg.Logger.Info("session released to another node", "session", id)
	h.changed()
	return true
}

// restore makes a session this node takes over from what the Bus kept of
// it. Its tabs wait for their visitor's connection as after a network
// drop; each asks for a fresh snapshot when it reconnects, since the new
// Redactors have not seen the page.
func (h *Hub) restore(id string, st SessionState, tabs []RestoredTab) *Session {
	now := time.Now()
	started := st.Info.Started
	if started.IsZero() {
		started = now
	}
	s := h.newSession(id, started)
	s.consentAnswered, s.agentSeq, s.chat, s.label = st.ConsentAnswered, st.AgentSeq, st.Chat, st.Info.Label
	if st.Info.Consent == ConsentGranted || st.Info.Consent == ConsentDeclined {
		// A question that was pending is asked again by the next agent.
		s.consent = st.Info.Consent
	}
	described := make(map[string]TabState, len(st.Tabs))
	for _, ts := range st.Tabs {
		described[ts.ID] = ts
	}
	for _, rt := range tabs {
		if len(s.tabs) >= h.cfg.MaxTabsPerSession {
			break
		}
		ts := described[rt.ID]
		t := &tab{
			id: rt.ID, page: rt.Page, lastSeq: rt.LastSeq,
			url: ts.URL, title: ts.Title, pixelRatio: ts.PixelRatio,
			redactor:       h.cfg.NewRedactor(id, rt.ID),
			disconnectedAt: now, lastActivity: now,
			needsSnapshot: true,
		}
		t.replaceLog(rt.Log)
		s.tabs[t.id] = t
	}
	s.active = s.tabs[st.Active]
	if s.active == nil {
		s.active = s.mostRecentTabLocked()
	}
	return s
}

// takeover asks the Bus for a session this node does not hold and, if
// the cluster knows it, adds it to the hub. It returns the session, or nil
// when the session is new to the cluster.
func (h *Hub) takeover(id string) *Session {
	ctx, cancel := context.WithTimeout(context.Background(), takeoverTimeout)
	defer cancel()
	st, tabs, ok, err := h.cfg.Bus.Takeover(ctx, id)
	if err != nil {
		// The visitor's session starts afresh here rather than not at
		// all; agents see it again from its next snapshot.
		h.cfg.Logger.Error("taking a session over from the cluster failed; starting it afresh", "session", id, "err", err)
		return nil
	}
	if !ok {
		return nil
	}
	s := h.restore(id, st, tabs)
	h.mu.Lock()
	if existing, ok := h.sessions[id]; ok && !existing.ended.Load() {
		h.mu.Unlock()
		return existing // another tab of the visitor took it over first
	}
	h.sessions[id] = s
	h.mu.Unlock()
	h.cfg.Logger.Info("session taken over from the cluster", "session", id, "tabs", len(s.tabs))
	h.record("session.resumed", "session", id)
	h.changed()
	return s
}

// takeoverTimeout bounds the wait for another node to let a session go and
// for its records to be read.
const takeoverTimeout = 10 * time.Second

// Join returns an agent's feed (person true; agentName is how the visitor
// is told who watches) or the renderer's (person false) of a session held
// by this node or another one. The feed follows the session when it moves
// to another node: the agent's next message is then a "reset" from there.
func (h *Hub) Join(ctx context.Context, sessionID, agentName string, person bool) (Feed, error) {
	f := &followingFeed{hub: h, sessionID: sessionID, agentName: agentName, person: person}
	feed, err := f.connect(ctx)
	if errors.Is(err, ErrSessionMoved) {
		// Held by a node that is gone: wait in Next for the session to be
		// taken over, as for a move seen later.
		feed, err = brokenFeed{err: ErrSessionMoved}, nil
	}
	if err != nil {
		return nil, err
	}
	f.current = feed
	return f, nil
}

// followingFeed is a Feed that reconnects to the session's new node when
// its current one lets the session go or is lost.
type followingFeed struct {
	hub       *Hub
	sessionID string
	agentName string
	person    bool

	mu      sync.Mutex
	current Feed
	agent   Agent // who the agent is on the node that held the session first
	closed  bool
}

// connect joins the session where it is held now.
func (f *followingFeed) connect(ctx context.Context) (Feed, error) {
	if s, err := f.hub.Session(f.sessionID); err == nil {
		if f.person {
			return s.Subscribe(f.agentName)
		}
		return s.SubscribeFeed()
	}
	return f.hub.cfg.Bus.Join(ctx, f.sessionID, f.agentName, f.person)
}

// followTimeout bounds how long a feed waits for its session to be held
// again after it moved: past the hub's IdleTimeout the session has ended
// anyway.
func (f *followingFeed) followTimeout() time.Duration { return f.hub.cfg.IdleTimeout + takeoverTimeout }

// Agent returns who the agent is to the visitor, as the first node that
// held the session named it (a later node may number it differently; the
// session's Info says how).
func (f *followingFeed) Agent() Agent {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.agent.ID == "" {
		f.agent = f.current.Agent()
	}
	return f.agent
}

func (f *followingFeed) feed() Feed {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.current
}

func (f *followingFeed) Send(msg AgentMessage) error { return f.feed().Send(msg) }

func (f *followingFeed) Close() {
	f.mu.Lock()
	f.closed = true
	current := f.current
	f.mu.Unlock()
	current.Close()
}

// Next returns the current node's messages; when the session moves, it
// waits for it to be held again, joins it there, and goes on with the
// "reset" the new node starts with.
func (f *followingFeed) Next(ctx context.Context) ([][]byte, error) {
	for {
		current := f.feed()
		msgs, err := current.Next(ctx)
		if !errors.Is(err, ErrSessionMoved) {
			return msgs, err
		}
		current.Close()
		f.mu.Lock()
		f.current = brokenFeed{err: ErrSessionMoved}
		f.mu.Unlock()
		next, err := f.follow(ctx)
		f.mu.Lock()
		if f.closed {
			f.mu.Unlock()
			if next != nil {
				next.Close()
			}
			return nil, errSubscriberClosed
		}
		if err != nil {
			f.current = brokenFeed{err: err}
			f.mu.Unlock()
			return nil, err
		}
		f.current = next
		f.mu.Unlock()
		f.hub.cfg.Logger.Info("agent feed followed its session to another node", "session", f.sessionID)
	}
}

// follow waits for the session to be held again, by this node or another,
// and joins it there. It gives up with ErrSessionEnded after followTimeout.
func (f *followingFeed) follow(ctx context.Context) (Feed, error) {
	changes, stop := f.hub.Watch()
	defer stop()
	deadline := time.Now().Add(f.followTimeout())
	for {
		feed, err := f.connect(ctx)
		if err == nil {
			return feed, nil
		}
		if time.Now().After(deadline) {
			return nil, ErrSessionEnded
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-changes:
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// brokenFeed stands for a feed between two nodes, or after its session
// ended: Next returns err, Send refuses.
type brokenFeed struct{ err error }

func (brokenFeed) Agent() Agent                             { return Agent{} }
func (b brokenFeed) Next(context.Context) ([][]byte, error) { return nil, b.err }
func (b brokenFeed) Send(AgentMessage) error                { return b.err }
func (brokenFeed) Close()                                   {}
