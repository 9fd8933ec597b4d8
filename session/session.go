package session

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cobrowse/cobrowse/internal/rrweb"
)

// Session is one visitor's co-browsing session: its tabs, the tab agents
// follow, and the agents watching it.
//
// Lock order: Session.mu before Subscriber.mu. Hub.mu is never held while
// taking Session.mu.
type Session struct {
	hub     *Hub
	id      string
	started time.Time

	mu           sync.Mutex
	lastActivity time.Time
	tabs         map[string]*tab
	// active is the tab agents follow: the one that most recently started a
	// page or got the visitor's focus. Nil until a tab sends a page.
	active *tab
	subs   map[*Subscriber]struct{}
	// consent is the visitor's answer in JoinConsent mode; agentSeq
	// numbers the agents who joined (collab.go).
	consent         Consent
	consentAnswered time.Time
	agentSeq        int
	chat            []ChatMessage // the latest maxChatLog messages
	label           string        // the visitor's label (Hub.SetLabel)
	control         control       // remote control (collab.go)
	// ended is set, under mu, when the last tab expired; it is atomic so that
	// the hub can read it without taking mu (see the lock order above).
	ended atomic.Bool
}

// tab is one browser tab of the visitor. Its page changes with every
// navigation; its log restarts with every full snapshot.
type tab struct {
	id string
	// page is the id of the page load currently streaming; lastSeq is the last
	// batch accepted from it. A new page load starts again at seq 1.
	page    string
	lastSeq uint64
	url     string
	title   string
	// pixelRatio is the visitor's device pixel ratio; 0 until the visitor
	// says.
	pixelRatio float64
	// log holds the events since the latest Meta event (which rrweb emits right
	// before each full snapshot). It is nil while the hub waits for a snapshot.
	log      []json.RawMessage
	logBytes int
	// logGen counts the times the log started over (replaceLog), so that
	// a batch can tell its Bus record whether it replaced or appended.
	logGen uint64
	// needsSnapshot is set on a tab taken over from another node: its new
	// Redactor has not seen the page, so the visitor is asked for a
	// snapshot when it reconnects. The log it had stays meanwhile.
	needsSnapshot bool

	// redactor sees every event of the tab first (Config.NewRedactor).
	redactor Redactor

	conn           *Visitor // nil while disconnected
	disconnectedAt time.Time
	lastActivity   time.Time
}

// replaceLog starts the tab's log over with events (nil: none until the
// next snapshot).
func (t *tab) replaceLog(events []json.RawMessage) {
	t.log, t.logBytes = events, 0
	for _, e := range events {
		t.logBytes += len(e)
	}
	t.logGen++
}

// ID returns the session id.
func (s *Session) ID() string { return s.id }

// Info describes the session now.
func (s *Session) Info() Info {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.infoLocked()
}

func (s *Session) infoLocked() Info {
	info := Info{
		ID:           s.id,
		Started:      s.started,
		LastActivity: s.lastActivity,
		Tabs:         len(s.tabs),
		Agents:       len(s.subs),
		Ended:        s.ended.Load(),
		Label:        s.label,
	}
	for _, t := range s.tabs {
		if t.conn != nil {
			info.Connected = true
		}
		info.TabList = append(info.TabList, TabInfo{ID: t.id, URL: t.url, Title: t.title, Connected: t.conn != nil, Active: t == s.active})
	}
	slices.SortFunc(info.TabList, func(a, b TabInfo) int { return strings.Compare(a.ID, b.ID) })
	if s.active != nil {
		info.URL, info.Title, info.PixelRatio = s.active.url, s.active.title, s.active.pixelRatio
	}
	if s.hub.cfg.Join != JoinNone {
		info.Consent = s.consent
	}
	info.Control = s.control.info()
	return info
}

// Events returns the agent-visible events of the page the session's agents
// follow: the latest full snapshot and everything after it. It is empty while
// no snapshot is available, and until the visitor accepted agents.
func (s *Session) Events() []json.RawMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.active == nil || !s.visibleLocked() {
		return []json.RawMessage{}
	}
	return append([]json.RawMessage{}, s.active.log...)
}

// Attach connects a visitor's tab to the session with the given id, creating
// the session and tab as needed. page identifies the page load that is
// streaming; ack is the last batch seq the hub already holds for that page
// load (0 for a page it has not seen), so the visitor resends only what comes
// after. An earlier connection of the same tab is superseded: its Downlink is
// closed. Attach fails only at the hub's bounds (ErrTooManySessions,
// ErrTooManyTabs) and after Shutdown (ErrShuttingDown).
func (h *Hub) Attach(sessionID, tabID, pageID string) (v *Visitor, ack uint64, err error) {
	var s *Session
	for {
		if s, err = h.sessionFor(sessionID); err != nil {
			return nil, 0, err
		}
		s.mu.Lock()
		if !s.ended.Load() {
			break
		}
		// The session expired between the lookup and the lock: sessionFor
		// now replaces it with a new one.
		s.mu.Unlock()
	}
	// Checked under the session's lock, which Shutdown takes after setting
	// the flag: a tab attached here is either refused or detached by it.
	if h.stopping.Load() {
		s.mu.Unlock()
		return nil, 0, ErrShuttingDown
	}
	t, ok := s.tabs[tabID]
	if !ok {
		if len(s.tabs) >= h.cfg.MaxTabsPerSession && !s.evictDisconnectedTabLocked() {
			s.mu.Unlock()
			return nil, 0, ErrTooManyTabs
		}
		t = &tab{id: tabID, redactor: s.hub.cfg.NewRedactor(s.id, tabID)}
		s.tabs[tabID] = t
	}
	if t.conn != nil {
		t.conn.detachLocked()
	}
	if t.page != pageID {
		// A new page load. Keep the old log until the new page's snapshot
		// arrives, so agents keep seeing something meanwhile.
		t.page, t.lastSeq = pageID, 0
	}
	v = &Visitor{session: s, tab: t, downlink: make(chan []byte, 64)}
	t.conn = v
	s.greetLocked(v)
	if t.needsSnapshot {
		t.needsSnapshot = false
		v.sendLocked(snapshotRequest)
	}
	now := time.Now()
	t.lastActivity, s.lastActivity = now, now
	ack = t.lastSeq
	s.mu.Unlock()
	h.changed()
	return v, ack, nil
}

// evictDisconnectedTabLocked removes the tab that has been disconnected the
// longest and reports whether there was one.
func (s *Session) evictDisconnectedTabLocked() bool {
	var oldest *tab
	for _, t := range s.tabs {
		if t.conn == nil && (oldest == nil || t.disconnectedAt.Before(oldest.disconnectedAt)) {
			oldest = t
		}
	}
	if oldest == nil {
		return false
	}
	s.removeTabLocked(oldest)
	return true
}

// removeTabLocked forgets a tab; if agents followed it, they switch to the
// most recently active remaining tab.
func (s *Session) removeTabLocked(t *tab) {
	delete(s.tabs, t.id)
	for sub := range s.subs {
		if sub.pin == t.id {
			sub.pin = "" // back to following the visitor
		}
	}
	t.redactor.Close()
	if s.active != t {
		return
	}
	s.active = s.mostRecentTabLocked()
	if s.active != nil {
		s.broadcastResetLocked()
	}
}

// Visitor is one connection of a visitor's tab into the hub. Its methods are
// safe for concurrent use; Downlink carries the hub's messages to the visitor.
type Visitor struct {
	session  *Session
	tab      *tab
	downlink chan []byte // closed when detached; sends happen under session.mu
	detached bool        // guarded by session.mu
	// restart is set, under session.mu, when the connection is detached
	// because another node takes the session over (Hub.Release): the
	// visitor is told to reconnect at once.
	restart bool
}

// Restart reports whether the connection was detached for the visitor to
// reconnect at once (to another node): after Hub.Release or Hub.Shutdown.
func (v *Visitor) Restart() bool {
	v.session.mu.Lock()
	defer v.session.mu.Unlock()
	return v.restart || v.session.hub.ShuttingDown()
}

// ErrDetached is returned to a visitor connection that was superseded by a
// newer connection of the same tab or whose session ended.
var ErrDetached = errors.New("visitor connection superseded or session ended")

// Downlink delivers hub → visitor messages (JSON). It is closed when the
// connection is detached.
func (v *Visitor) Downlink() <-chan []byte { return v.downlink }

// Detach marks the tab disconnected. The tab and its log survive for the
// hub's IdleTimeout so that a navigation or a reconnect continues it.
func (v *Visitor) Detach() {
	s := v.session
	s.mu.Lock()
	if v.tab.conn == v {
		v.tab.conn = nil
		v.tab.disconnectedAt = time.Now()
	}
	v.detachLocked()
	s.mu.Unlock()
	s.hub.changed()
}

func (v *Visitor) detachLocked() {
	if !v.detached {
		v.detached = true
		close(v.downlink)
	}
}

// sendLocked queues a message for the visitor, dropping it if the visitor is
// not reading: the hub never waits for a visitor. What is dropped is
// repeated or superseded (a snapshot request, presence, a pointer position),
// or comes again when the tab reconnects (the consent question, the chat:
// see greetLocked).
func (v *Visitor) sendLocked(msg []byte) {
	if v.detached {
		return
	}
	select {
	case v.downlink <- msg:
	default:
	}
}

// BatchResult reports what the hub did with a batch.
type BatchResult struct {
	// Duplicate is true when the hub already had this seq; nothing changed.
	Duplicate bool
	// Withheld counts events the tab's Redactor kept from agents
	// (malformed, unknown, or not to be seen).
	Withheld int
}

// Batch stores and fans out one batch of rrweb events. seq must grow by one
// per batch within a page load; a seq the hub already holds is a duplicate
// (after a reconnect) and is ignored. The hub keeps the events' bytes (as
// it stores them, or in the tab's Redactor): the caller must not change
// them afterwards.
func (v *Visitor) Batch(seq uint64, events []json.RawMessage) (BatchResult, error) {
	arrived := time.Now()
	s := v.session
	s.mu.Lock()
	res, rec, err := v.batchLocked(seq, events, arrived)
	s.mu.Unlock()
	if err == nil && !res.Duplicate {
		if err := s.hub.cfg.Bus.Store(rec); err != nil {
			// The hub goes on with the batch; only a takeover of this
			// session by another node would miss it.
			s.hub.cfg.Logger.Error("storing a visitor batch in the cluster failed", "session", s.id, "tab", v.tab.id, "seq", seq, "err", err)
		}
		s.hub.counters.batches.Add(1)
		s.hub.counters.events.Add(uint64(len(events)))
		s.hub.changed()
	}
	return res, err
}

// batchLocked applies a batch to the tab and returns, besides what it did,
// the record of it for the Bus.
func (v *Visitor) batchLocked(seq uint64, events []json.RawMessage, arrived time.Time) (BatchResult, BatchRecord, error) {
	s, t := v.session, v.tab
	if v.detached {
		return BatchResult{}, BatchRecord{}, ErrDetached
	}
	if seq == 0 {
		return BatchResult{}, BatchRecord{}, errors.New("batch seq must start at 1")
	}
	if seq <= t.lastSeq {
		return BatchResult{Duplicate: true}, BatchRecord{}, nil
	}
	gen, logged := t.logGen, len(t.log)
	if seq != t.lastSeq+1 {
		// Batches were lost (the hub restarted, or the visitor misbehaved):
		// what follows cannot be replayed on top of the log.
		s.hub.cfg.Logger.Warn("gap in visitor batches; asking for a full snapshot",
			"session", s.id, "tab", t.id, "want", t.lastSeq+1, "got", seq)
		v.dropLogLocked()
	}
	t.lastSeq = seq
	t.lastActivity, s.lastActivity = arrived, arrived

	var res BatchResult
	var forward []json.RawMessage // events for agents already in sync
	reset := false                // a new snapshot started: agents restart from the log
	var accepted []rrweb.Event
	for _, raw := range events {
		out := v.redactLocked(raw)
		if len(out) == 0 {
			res.Withheld++
		}
		accepted = append(accepted, out...)
	}
	for _, ev := range accepted {
		if ev.Type == rrweb.Meta {
			t.replaceLog(nil)
			forward, reset = nil, true
			if ev.Href != "" {
				t.url = ev.Href
			}
			s.active = t // agents follow the tab that started a page
		} else if t.log == nil {
			continue // no snapshot to apply it to; one has been asked for
		}
		t.log = append(t.log, ev.JSON)
		t.logBytes += len(ev.JSON)
		if t.logBytes > s.hub.cfg.MaxLogBytes {
			s.hub.cfg.Logger.Warn("tab event log over its bound; asking for a full snapshot",
				"session", s.id, "tab", t.id, "bytes", t.logBytes, "max", s.hub.cfg.MaxLogBytes)
			v.dropLogLocked()
			forward, reset = nil, false
			continue
		}
		if !reset {
			forward = append(forward, ev.JSON)
		}
	}
	rec := BatchRecord{SessionID: s.id, TabID: t.id, Page: t.page, Seq: seq, Replace: t.logGen != gen}
	if rec.Replace {
		rec.Events = slices.Clip(t.log)
	} else {
		rec.Events = slices.Clip(t.log[logged:])
	}
	if s.visibleLocked() && (reset || len(forward) > 0) {
		var events []byte // built once, for the agents who show this tab
		for sub := range s.subs {
			if s.followedLocked(sub) != t {
				continue
			}
			if reset {
				sub.push(s.resetMessageLocked(sub), arrived, s.hub.cfg.MaxQueueBytes)
				continue
			}
			if events == nil {
				events = eventsMessage("events", nil, forward)
			}
			sub.push(events, arrived, s.hub.cfg.MaxQueueBytes)
		}
	}
	return res, rec, nil
}

// redactLocked runs the tab's Redactor on one event. A Redactor that
// panics (a bug, which a hostile visitor may trigger) must neither take the
// server down nor leave the session locked: the event is withheld, the tab
// gets a fresh Redactor, and the visitor is asked for a new snapshot, which
// the fresh Redactor starts from.
func (v *Visitor) redactLocked(raw json.RawMessage) (out []rrweb.Event) {
	defer func() {
		if p := recover(); p != nil {
			s, t := v.session, v.tab
			s.hub.cfg.Logger.Error("redactor failed on a visitor event; event withheld, asking for a new snapshot",
				"session", s.id, "tab", t.id, "panic", p, "stack", string(debug.Stack()))
			out = nil
			t.redactor = s.hub.cfg.NewRedactor(s.id, t.id)
			v.dropLogLocked()
		}
	}()
	return v.tab.redactor.Redact(raw)
}

// pageLocked runs the tab's Redactor on the page the tab says it shows; if
// the Redactor panics, agents are shown neither URL nor title.
func (v *Visitor) pageLocked(url, title string) (shownURL, shownTitle string) {
	defer func() {
		if p := recover(); p != nil {
			v.session.hub.cfg.Logger.Error("redactor failed on a page description; nothing shown",
				"session", v.session.id, "tab", v.tab.id, "panic", p, "stack", string(debug.Stack()))
			shownURL, shownTitle = "", ""
		}
	}()
	return v.tab.redactor.Page(url, title)
}

// dropLogLocked forgets the tab's log and asks the visitor for a new full
// snapshot, which starts the next log.
func (v *Visitor) dropLogLocked() {
	v.tab.replaceLog(nil)
	v.sendLocked(snapshotRequest)
}

// snapshotRequest asks the visitor's tab for a new full snapshot.
var snapshotRequest = []byte(`{"type":"snapshot"}`)

// SetPage records the URL and title the visitor's tab shows.
func (v *Visitor) SetPage(url, title string) {
	s := v.session
	s.mu.Lock()
	v.tab.url, v.tab.title = v.pageLocked(url, title)
	if s.active == nil {
		s.active = v.tab
	}
	if s.active == v.tab {
		s.broadcastLocked(s.infoMessageLocked())
	}
	s.mu.Unlock()
	s.hub.changed()
}

// SetPixelRatio records the tab's device pixel ratio (the renderer draws the
// page at it). Values outside 0.25 to 8, which no real screen has, are
// ignored.
func (v *Visitor) SetPixelRatio(r float64) {
	if !(r >= 0.25 && r <= 8) {
		return
	}
	s := v.session
	s.mu.Lock()
	changed := v.tab.pixelRatio != r
	v.tab.pixelRatio = r
	if changed && s.active == v.tab {
		s.broadcastLocked(s.infoMessageLocked())
	}
	s.mu.Unlock()
}

// Focus makes this tab the one the session's agents follow (the visitor
// switched to it).
func (v *Visitor) Focus() {
	s := v.session
	s.mu.Lock()
	if s.active != v.tab && !v.detached {
		s.active = v.tab
		s.broadcastResetLocked()
	}
	s.mu.Unlock()
	s.hub.changed()
}

// expireTabs removes tabs disconnected for longer than the idle timeout and
// reports why the session ended: no tab left ("visitor gone"), or no
// activity for SessionIdle ("idle"; the visitor's tabs are told). "" means
// it goes on.
func (s *Session) expireTabs(now time.Time) (ended string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if max := s.hub.cfg.SessionIdle; max > 0 && now.Sub(s.lastActivity) > max {
		s.endByLocked()
		return "idle"
	}
	idle := s.hub.cfg.IdleTimeout
	for _, t := range s.tabs {
		if t.conn == nil && now.Sub(t.disconnectedAt) > idle {
			s.removeTabLocked(t)
		}
	}
	if len(s.tabs) > 0 {
		return ""
	}
	s.endLocked()
	return "visitor gone"
}

// endLocked marks the session ended and gives each agent its last message.
func (s *Session) endLocked() {
	s.ended.Store(true)
	subs := s.subs
	s.subs = map[*Subscriber]struct{}{}
	end := s.infoMessageLocked()
	for sub := range subs {
		sub.end(end)
	}
}

func (s *Session) mostRecentTabLocked() *tab {
	var best *tab
	for _, t := range s.tabs {
		if best == nil || t.lastActivity.After(best.lastActivity) {
			best = t
		}
	}
	return best
}

// broadcastLocked queues msg for every agent of the session.
func (s *Session) broadcastLocked(msg []byte) {
	for sub := range s.subs {
		sub.push(msg, time.Time{}, s.hub.cfg.MaxQueueBytes)
	}
}

// followedLocked returns the tab sub shows: the one its agent chose
// ("follow"), or else the one the visitor is on (active). Nil sub means an
// agent who follows the visitor.
func (s *Session) followedLocked(sub *Subscriber) *tab {
	if sub != nil && sub.pin != "" {
		if t := s.tabs[sub.pin]; t != nil {
			return t
		}
	}
	return s.active
}

// broadcastResetLocked gives every agent a fresh start of the tab it shows.
func (s *Session) broadcastResetLocked() {
	for sub := range s.subs {
		sub.push(s.resetMessageLocked(sub), time.Time{}, s.hub.cfg.MaxQueueBytes)
	}
}

// resetMessageLocked is what an agent needs to (re)start its view: the
// page and log of the tab it shows (followedLocked).
func (s *Session) resetMessageLocked(sub *Subscriber) []byte {
	header := map[string]any{"session": s.infoLocked()}
	var log []json.RawMessage
	if t := s.followedLocked(sub); t != nil && s.visibleLocked() {
		header["tab"] = t.id
		log = t.log
	}
	if s.visibleLocked() && len(s.chat) > 0 {
		header["chat"] = s.chat
	}
	return eventsMessage("reset", header, log)
}

func (s *Session) infoMessageLocked() []byte {
	msg, err := json.Marshal(map[string]any{"type": "info", "session": s.infoLocked()})
	if err != nil {
		panic(fmt.Sprintf("session: encoding Info cannot fail: %v", err))
	}
	return msg
}

// eventsMessage builds {"type":kind, <header fields>, "events":[...]} without
// re-encoding the events (each was validated when it arrived).
func eventsMessage(kind string, header map[string]any, events []json.RawMessage) []byte {
	fields := map[string]any{"type": kind}
	for k, v := range header {
		fields[k] = v
	}
	head, err := json.Marshal(fields)
	if err != nil {
		panic(fmt.Sprintf("session: encoding a message header cannot fail: %v", err))
	}
	size := len(head) + len(`,"events":[]`) + len(events)
	for _, e := range events {
		size += len(e)
	}
	var b bytes.Buffer
	b.Grow(size)
	b.Write(head[:len(head)-1]) // without the closing brace
	b.WriteString(`,"events":[`)
	for i, e := range events {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(e)
	}
	b.WriteString("]}")
	return b.Bytes()
}
