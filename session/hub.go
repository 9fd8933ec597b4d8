// Package session is the hub between visitors and agents.
//
// A session is one visitor (one browser, identified by a signed cookie). It has
// tabs; each tab streams rrweb events for the page it shows, in batches numbered
// by a per-page sequence number. For every tab the hub keeps the events since the
// latest full snapshot (bounded), so an agent that joins late gets "snapshot +
// tail" at once, and it fans new events out to the session's agents through
// bounded per-agent queues: a slow agent is resynced, never waited for.
//
// The hub reads only the envelope of an event (its type and timestamp, which
// the Redactor hands it); it never parses the page's DOM. What an agent may see is decided elsewhere.
package session

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cobrowse/cobrowse/internal/rrweb"
)

// Config bounds what one session may hold. Zero values take the defaults.
type Config struct {
	// MaxLogBytes bounds one tab's event log (the events since its latest full
	// snapshot). When a tab goes past it, the hub drops the log and asks the
	// visitor for a fresh full snapshot. Default 32 MiB.
	MaxLogBytes int
	// MaxQueueBytes bounds the messages waiting for one agent. An agent that
	// falls further behind loses its queue and is resynced from the log.
	// Default 8 MiB.
	MaxQueueBytes int
	// IdleTimeout is how long a tab or a session survives with no visitor
	// connection (a navigation reconnects within a second; a closed browser does
	// not). A network drop shorter than it resumes with nothing lost; a
	// longer one ends the session. Default 30 s.
	IdleTimeout time.Duration
	// SessionIdle ends a session with no activity (no batch, no
	// connection) for this long, even though its tabs are still open:
	// both sides are told. Zero means never.
	SessionIdle time.Duration
	// MaxSessions bounds the live sessions of the hub; a visitor beyond it is
	// refused (ErrTooManySessions). Default 10,000.
	MaxSessions int
	// MaxTabsPerSession bounds one visitor's tabs. A new tab beyond it
	// replaces the longest-disconnected tab, or is refused (ErrTooManyTabs)
	// if every tab is connected. Default 32.
	MaxTabsPerSession int
	// Logger receives structured logs; nil means slog.Default().
	Logger *slog.Logger
	// NewRedactor returns, for each new tab of a session, the Redactor that
	// every event and page description of the tab passes through before the
	// hub stores or forwards it (cmd uses policies.Redactor). Nil passes the
	// visitor's events on as they come, which only tests of the hub itself
	// should do.
	NewRedactor func(sessionID, tabID string) Redactor
	// Join says what it takes for agents to see a session. Default
	// JoinConsent.
	Join JoinMode
	// Record, if set, receives the session events an audit log keeps
	// (consent asked, given or refused; the visitor ending the session),
	// with their fields as key-value pairs.
	Record func(event string, fields ...any)
	// OnSessionEnd, if set, is called (on the hub's goroutine, without its
	// locks) after a session ended, so that what other parts keep for it
	// can go too.
	OnSessionEnd func(sessionID string)
	// OnDeliver, if set, is called for every message that carries a
	// visitor batch's events ("events", or the "reset" a snapshot starts)
	// when Subscriber.Next hands it to an agent's connection, with the time
	// since the batch arrived at the hub (Visitor.Batch was called): the
	// hub's fan-out latency, redaction and the agent's queue included. The
	// renderer's feeds and resyncs are not observed. It is called on the
	// agent's goroutine and must not block.
	OnDeliver func(latency time.Duration)
	// Bus shares sessions with the other nodes of a cluster (natsbus);
	// nil is a single node's in-process bus, which shares nothing.
	Bus Bus
}

// Redactor turns one tab's stream into what agents may see. It is called
// under the session's lock, in the order of the tab's events.
type Redactor interface {
	// Redact returns the events to store and forward in place of event:
	// none, one, or several. It reads every event it returns, so it hands
	// the hub what the hub would read of it: the hub stores and forwards
	// each one as it is, without parsing it again. Every Event must be
	// what rrweb.Parse would read from its JSON; a visitor's event that is
	// not one is withheld. The Redactor may keep event's bytes for as long
	// as the tab lasts: the hub never changes them (Visitor.Batch).
	Redact(event json.RawMessage) []rrweb.Event
	// Page returns the URL and title to show agents for a page the tab
	// says it shows.
	Page(url, title string) (string, string)
	// Close tells the Redactor that the tab has ended.
	Close()
}

// passThrough is the Redactor of a hub configured without one: it only
// checks each event's envelope (rrweb.Parse).
type passThrough struct{}

func (passThrough) Redact(event json.RawMessage) []rrweb.Event {
	ev, err := rrweb.Parse(event)
	if err != nil {
		return nil
	}
	return []rrweb.Event{ev}
}
func (passThrough) Page(url, title string) (string, string) { return url, title }
func (passThrough) Close()                                  {}

func (c Config) withDefaults() Config {
	if c.MaxLogBytes <= 0 {
		c.MaxLogBytes = 32 << 20
	}
	if c.MaxQueueBytes <= 0 {
		c.MaxQueueBytes = 8 << 20
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 30 * time.Second
	}
	if c.MaxSessions <= 0 {
		c.MaxSessions = 10000
	}
	if c.MaxTabsPerSession <= 0 {
		c.MaxTabsPerSession = 32
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Join == "" {
		c.Join = JoinConsent
	}
	if c.Bus == nil {
		c.Bus = localBus{}
	}
	if c.NewRedactor == nil {
		c.NewRedactor = func(string, string) Redactor { return passThrough{} }
	}
	return c
}

// Errors of the hub. ErrTooManySessions and ErrTooManyTabs refuse a visitor
// connection: the hub is at a configured bound.
var (
	// ErrNoSession is returned for a session id the hub does not know (never
	// existed, or ended).
	ErrNoSession       = errors.New("no such session")
	ErrTooManySessions = errors.New("too many live sessions (MaxSessions)")
	ErrTooManyTabs     = errors.New("too many connected tabs in this session (MaxTabsPerSession)")
	// ErrShuttingDown refuses a visitor connection after Shutdown.
	ErrShuttingDown = errors.New("the server is shutting down; reconnect to another instance or retry shortly")
)

// TabInfo describes one tab of a session.
type TabInfo struct {
	ID        string `json:"id"`
	URL       string `json:"url"`
	Title     string `json:"title"`
	Connected bool   `json:"connected"`
	Active    bool   `json:"active"`
}

// Info describes a session for dashboards and the REST API.
type Info struct {
	ID    string `json:"id"`
	URL   string `json:"url"`
	Title string `json:"title"`
	// Label names the visitor for agents (--visitor-label-cookie/-header),
	// when the fronted site gives one.
	Label        string    `json:"label,omitempty"`
	Started      time.Time `json:"started"`
	LastActivity time.Time `json:"lastActivity"`
	// Connected is true while at least one of the visitor's tabs is connected.
	Connected bool `json:"connected"`
	Tabs      int  `json:"tabs"`
	// TabList describes each tab; the active one is the tab the visitor
	// is on, which agents follow unless they chose another.
	TabList []TabInfo `json:"tabList,omitempty"`
	Agents  int       `json:"agents"`
	// Consent is, in JoinConsent mode, where the visitor's consent stands:
	// "not asked", "pending", "granted" or "declined". Absent in JoinNone
	// mode.
	Consent Consent `json:"consent,omitempty"`
	// Control is who controls the visitor's page, or asks to (absent when
	// nobody does).
	Control *ControlInfo `json:"control,omitempty"`
	// PixelRatio is the device pixel ratio of the followed tab's screen;
	// absent until the visitor's script reported it.
	PixelRatio float64 `json:"pixelRatio,omitempty"`
	// Ended is set in the last message an agent receives about a session.
	Ended bool `json:"ended,omitempty"`
	// Node is the cluster node holding a session of another node than
	// the one asked (Config.Bus); absent for this node's sessions.
	Node string `json:"node,omitempty"`
}

// Hub owns the live sessions of this process. It is safe for concurrent use.
type Hub struct {
	cfg Config

	mu       sync.Mutex
	sessions map[string]*Session
	watchers map[chan struct{}]struct{}
	codes    map[string]supportCode // JoinCode: live support codes (collab.go)
	labels   map[string]string      // labels of sessions not started yet (SetLabel)

	// stopping is set by Shutdown: visitors are refused and told to
	// reconnect elsewhere.
	stopping atomic.Bool
	counters counters
}

// counters are the hub's running totals (Stats). They are atomic: the hot
// paths update them without a lock.
type counters struct {
	batches       atomic.Uint64
	events        atomic.Uint64
	agentMessages atomic.Uint64
	resyncs       atomic.Uint64
}

// Stats are the hub's counters since NewHub, and its occupancy now.
type Stats struct {
	Sessions int // live sessions
	Tabs     int // visitor tabs of those sessions, connected or not
	Visitors int // visitor tabs connected now
	Agents   int // agents watching now (the renderer's feeds not counted)

	Batches       uint64 // visitor batches taken (duplicates after a reconnect not counted)
	Events        uint64 // rrweb events in those batches, before redaction
	AgentMessages uint64 // messages handed to agents' connections by Subscriber.Next
	Resyncs       uint64 // times a subscriber's queue overflowed and it restarted from the log
}

// Stats returns the hub's counters and occupancy. It takes every session's
// lock in turn: call it at a scrape's pace, not per event.
func (h *Hub) Stats() Stats {
	st := Stats{
		Batches:       h.counters.batches.Load(),
		Events:        h.counters.events.Load(),
		AgentMessages: h.counters.agentMessages.Load(),
		Resyncs:       h.counters.resyncs.Load(),
	}
	for _, s := range h.all() {
		s.mu.Lock()
		st.Sessions++
		st.Tabs += len(s.tabs)
		for _, t := range s.tabs {
			if t.conn != nil {
				st.Visitors++
			}
		}
		for sub := range s.subs {
			if sub.agent.ID != "" {
				st.Agents++
			}
		}
		s.mu.Unlock()
	}
	return st
}

// Shutdown tells every connected visitor to reconnect (their sockets close
// with code 1012, "service restart"; the visitor script reconnects with
// backoff and resends what was not acknowledged) and refuses new visitor
// connections with ErrShuttingDown. Sessions stay, so agents still get
// what they were sent; the process is expected to exit soon after.
func (h *Hub) Shutdown() {
	h.stopping.Store(true)
	for _, s := range h.all() {
		s.mu.Lock()
		for _, t := range s.tabs {
			if t.conn != nil {
				t.conn.detachLocked()
			}
		}
		s.mu.Unlock()
	}
	h.changed()
}

// ShuttingDown reports whether Shutdown was called.
func (h *Hub) ShuttingDown() bool { return h.stopping.Load() }

// NewHub returns an empty hub. Call Run to expire idle sessions.
func NewHub(cfg Config) *Hub {
	return &Hub{
		cfg:      cfg.withDefaults(),
		sessions: make(map[string]*Session),
		codes:    make(map[string]supportCode),
		labels:   make(map[string]string),
		watchers: make(map[chan struct{}]struct{}),
	}
}

// Sessions lists the live sessions, this node's and (through the Bus) the
// cluster's, most recently active first.
func (h *Hub) Sessions() []Info {
	all := h.all()

	infos := make([]Info, 0, len(all))
	held := make(map[string]bool, len(all))
	for _, s := range all {
		infos = append(infos, s.Info())
		held[s.id] = true
	}
	for _, info := range h.cfg.Bus.Remote() {
		if !held[info.ID] {
			infos = append(infos, info)
		}
	}
	sort.Slice(infos, func(i, j int) bool {
		if !infos[i].LastActivity.Equal(infos[j].LastActivity) {
			return infos[i].LastActivity.After(infos[j].LastActivity)
		}
		return infos[i].ID < infos[j].ID
	})
	return infos
}

// all returns the live sessions, in no order.
func (h *Hub) all() []*Session {
	h.mu.Lock()
	defer h.mu.Unlock()
	all := make([]*Session, 0, len(h.sessions))
	for _, s := range h.sessions {
		all = append(all, s)
	}
	return all
}

// Session returns the live session with the given id.
func (h *Hub) Session(id string) (*Session, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s, ok := h.sessions[id]
	if !ok {
		return nil, fmt.Errorf("session %q: %w", id, ErrNoSession)
	}
	return s, nil
}

// Watch returns a channel that receives a value (coalesced: at most one
// pending) whenever the list of sessions or any session's Info changes, and a
// function that stops the watch.
func (h *Hub) Watch() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	h.mu.Lock()
	h.watchers[ch] = struct{}{}
	h.mu.Unlock()
	return ch, func() {
		h.mu.Lock()
		delete(h.watchers, ch)
		h.mu.Unlock()
	}
}

// changed wakes every watcher without blocking.
func (h *Hub) changed() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.watchers {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// sessionFor returns the live session with the given id: this node's, or
// one the cluster knows, taken over (Bus.Takeover), or else a new one (also
// in place of one that has just ended).
func (h *Hub) sessionFor(id string) (*Session, error) {
	h.mu.Lock()
	s, ok := h.sessions[id]
	if ok && !s.ended.Load() {
		h.mu.Unlock()
		return s, nil
	}
	full := len(h.sessions) >= h.cfg.MaxSessions
	h.mu.Unlock()
	if full {
		return nil, ErrTooManySessions
	}
	if s := h.takeover(id); s != nil {
		return s, nil
	}

	h.mu.Lock()
	s, ok = h.sessions[id]
	label := h.labels[id] // for a new session: SetLabel may have come first
	if ok && s.ended.Load() {
		ok = false
		delete(h.sessions, id)
	}
	if !ok {
		if len(h.sessions) >= h.cfg.MaxSessions {
			h.mu.Unlock()
			return nil, ErrTooManySessions
		}
		s = h.newSession(id, time.Now())
		s.label = label
		delete(h.labels, id)
		h.sessions[id] = s
		h.cfg.Logger.Info("session started", "session", id)
	}
	h.mu.Unlock()
	if !ok {
		h.record("session.started", "session", id, "label", label)
		h.changed()
	}
	return s, nil
}

// newSession returns a session with no tab, no agent and no consent yet.
func (h *Hub) newSession(id string, started time.Time) *Session {
	return &Session{
		hub:          h,
		id:           id,
		started:      started,
		lastActivity: time.Now(),
		tabs:         make(map[string]*tab),
		subs:         make(map[*Subscriber]struct{}),
		consent:      ConsentNotAsked,
	}
}

// Expire ends the tabs and sessions that have had no visitor connection for
// longer than the configured IdleTimeout, and the sessions idle for longer
// than SessionIdle. Run calls it periodically.
func (h *Hub) Expire(now time.Time) {
	all := h.all()

	for _, s := range all {
		if reason := s.expireTabs(now); reason != "" {
			h.removeEnded(s, reason)
		}
	}
}

// removeEnded forgets a session that ended, for reason.
func (h *Hub) removeEnded(s *Session, reason string) {
	h.mu.Lock()
	if h.sessions[s.id] == s { // not already replaced by sessionFor
		delete(h.sessions, s.id)
	}
	h.mu.Unlock()
	h.cfg.Logger.Info("session ended", "session", s.id, "reason", reason)
	h.record("session.ended", "session", s.id, "reason", reason)
	h.cfg.Bus.Ended(s.id)
	h.changed()
	if h.cfg.OnSessionEnd != nil {
		h.cfg.OnSessionEnd(s.id)
	}
}

// record passes an audit event to Config.Record.
func (h *Hub) record(event string, fields ...any) {
	if h.cfg.Record != nil {
		h.cfg.Record(event, fields...)
	}
}

// Resnapshot makes every tab start over from a new full snapshot: the hub
// forgets the tabs' logs and asks their visitors for a snapshot. cobrowse
// calls it when the redaction policy changes, so that what agents see is
// decided by the new policy from then on, not only from the next page.
func (h *Hub) Resnapshot() {
	all := h.all()
	for _, s := range all {
		s.mu.Lock()
		for _, t := range s.tabs {
			t.replaceLog(nil)
			if t.conn != nil {
				t.conn.dropLogLocked()
			}
		}
		s.mu.Unlock()
	}
}

// Run expires idle sessions until ctx is done.
func (h *Hub) Run(ctx context.Context) {
	tick := time.NewTicker(h.cfg.IdleTimeout / 4)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			h.Expire(now)
		}
	}
}
