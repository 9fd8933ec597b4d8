package session

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/cobrowse/cobrowse/internal/rrweb"
	"github.com/cobrowse/cobrowse/internal/rrwebtest"
)

// quietHub is a hub that logs nothing. Its agents see sessions without the
// visitor's consent unless cfg asks for it: most tests are about the stream,
// collab_test.go about consent.
func quietHub(cfg Config) *Hub {
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	if cfg.Join == "" {
		cfg.Join = JoinNone
	}
	return NewHub(cfg)
}

func mustAttach(tb testing.TB, hub *Hub, sessionID, tabID, pageID string) (*Visitor, uint64) {
	tb.Helper()
	v, ack, err := hub.Attach(sessionID, tabID, pageID)
	if err != nil {
		tb.Fatalf("Attach(%s, %s, %s): %v", sessionID, tabID, pageID, err)
	}
	return v, ack
}

type agentMessage struct {
	Type    string            `json:"type"`
	Events  []json.RawMessage `json:"events"`
	Session Info              `json:"session"`
}

func decode(t *testing.T, raw []byte) agentMessage {
	t.Helper()
	var m agentMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("agent message is not JSON: %v\n%s", err, raw)
	}
	return m
}

// next reads the subscriber's pending messages, failing the test if none
// come within a generous bound (a hang, not a timing measurement).
func next(t *testing.T, sub *Subscriber) []agentMessage {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	raws, err := sub.Next(ctx)
	if err != nil {
		t.Fatalf("Next: %v", err)
	}
	msgs := make([]agentMessage, len(raws))
	for i, raw := range raws {
		msgs[i] = decode(t, raw)
	}
	return msgs
}

func mustBatch(t *testing.T, v *Visitor, seq uint64, events []json.RawMessage) BatchResult {
	t.Helper()
	res, err := v.Batch(seq, events)
	if err != nil {
		t.Fatalf("Batch(%d): %v", seq, err)
	}
	return res
}

func sameEvents(t *testing.T, got, want []json.RawMessage) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d events, want %d", len(got), len(want))
	}
	for i := range want {
		if string(got[i]) != string(want[i]) {
			t.Fatalf("event %d = %s, want %s", i, got[i], want[i])
		}
	}
}

func TestResumeAfterReconnectLosesAndDuplicatesNothing(t *testing.T) {
	hub := quietHub(Config{})
	events := rrwebtest.Page(1000, "https://shop.test/", 8)
	v, ack := mustAttach(t, hub, "session-1", "tab-0001", "page-0001")
	if ack != 0 {
		t.Fatalf("first attach ack = %d, want 0", ack)
	}
	mustBatch(t, v, 1, events[0:3])
	mustBatch(t, v, 2, events[3:6])
	v.Detach() // the connection drops; the visitor never saw the ack of batch 3
	v2, ack := mustAttach(t, hub, "session-1", "tab-0001", "page-0001")
	if ack != 2 {
		t.Fatalf("reconnect ack = %d, want 2", ack)
	}
	// The visitor resends everything after what it believes was acked (1),
	// including batch 2 which the hub already holds.
	if res := mustBatch(t, v2, 2, events[3:6]); !res.Duplicate {
		t.Fatal("resent batch 2 was not recognised as a duplicate")
	}
	mustBatch(t, v2, 3, events[6:])

	s, err := hub.Session("session-1")
	if err != nil {
		t.Fatal(err)
	}
	sameEvents(t, s.Events(), events)
}

func TestSupersededConnectionIsDetached(t *testing.T) {
	hub := quietHub(Config{})
	old, _ := mustAttach(t, hub, "session-1", "tab-0001", "page-0001")
	mustAttach(t, hub, "session-1", "tab-0001", "page-0001")
	if _, open := <-old.Downlink(); open {
		t.Fatal("the superseded connection's downlink is still open")
	}
	if _, err := old.Batch(1, rrwebtest.Page(1000, "https://shop.test/", 0)); !errors.Is(err, ErrDetached) {
		t.Fatalf("Batch on superseded connection: err = %v, want ErrDetached", err)
	}
}

func TestLateJoinGetsSnapshotAndTailAtOnce(t *testing.T) {
	hub := quietHub(Config{})
	v, _ := mustAttach(t, hub, "session-1", "tab-0001", "page-0001")
	v.SetPage("https://shop.test/", "Shop")
	events := rrwebtest.Page(1000, "https://shop.test/", 20)
	for i := range events {
		mustBatch(t, v, uint64(i+1), events[i:i+1])
	}
	s, _ := hub.Session("session-1")
	sub, err := s.Subscribe("Test agent")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	msgs := next(t, sub)
	if len(msgs) != 1 || msgs[0].Type != "reset" {
		t.Fatalf("first messages = %+v, want one reset", msgs)
	}
	sameEvents(t, msgs[0].Events, events)
	if msgs[0].Session.Title != "Shop" || msgs[0].Session.URL != "https://shop.test/" {
		t.Fatalf("reset carries session %+v", msgs[0].Session)
	}

	// Live events follow, in order.
	mustBatch(t, v, uint64(len(events)+1), []json.RawMessage{rrwebtest.MouseMove(5000, 1)})
	msgs = next(t, sub)
	if len(msgs) != 1 || msgs[0].Type != "events" || len(msgs[0].Events) != 1 {
		t.Fatalf("live messages = %+v", msgs)
	}
}

func TestNavigationStartsANewPageInTheSameSession(t *testing.T) {
	hub := quietHub(Config{})
	v, _ := mustAttach(t, hub, "session-1", "tab-0001", "page-0001")
	mustBatch(t, v, 1, rrwebtest.Page(1000, "https://shop.test/", 3))
	s, _ := hub.Session("session-1")
	sub, _ := s.Subscribe("Test agent")
	defer sub.Close()
	next(t, sub) // initial reset

	v.Detach() // the visitor follows a link: the old page's socket closes
	v2, ack := mustAttach(t, hub, "session-1", "tab-0001", "page-0002")
	if ack != 0 {
		t.Fatalf("new page load ack = %d, want 0", ack)
	}
	checkout := rrwebtest.Page(1000, "https://shop.test/checkout", 2)
	mustBatch(t, v2, 1, checkout)
	msgs := next(t, sub)
	last := msgs[len(msgs)-1]
	if last.Type != "reset" {
		t.Fatalf("after navigation got %q, want reset", last.Type)
	}
	sameEvents(t, last.Events, checkout)
	if last.Session.URL != "https://shop.test/checkout" || last.Session.ID != "session-1" {
		t.Fatalf("after navigation session = %+v", last.Session)
	}
	if n := len(hub.Sessions()); n != 1 {
		t.Fatalf("hub has %d sessions, want 1", n)
	}
}

func TestSlowAgentIsResyncedWithoutSlowingOthers(t *testing.T) {
	hub := quietHub(Config{MaxQueueBytes: 4 << 10})
	v, _ := mustAttach(t, hub, "session-1", "tab-0001", "page-0001")
	mustBatch(t, v, 1, rrwebtest.Page(1000, "https://shop.test/", 0))
	s, _ := hub.Session("session-1")
	slow, _ := s.Subscribe("Test agent")
	defer slow.Close()
	fast, _ := s.Subscribe("Test agent")
	defer fast.Close()
	next(t, fast)

	// The fast agent reads each batch as it comes; the slow one never reads.
	// Publishing must still go on (a hub that waited for the slow agent would
	// hang here until the test times out).
	const batches = 500
	for i := 0; i < batches; i++ {
		event := rrwebtest.MouseMove(2000+i, i)
		mustBatch(t, v, uint64(i+2), []json.RawMessage{event})
		msgs := next(t, fast)
		if len(msgs) != 1 || msgs[0].Type != "events" {
			t.Fatalf("fast agent got %+v, want one events message", msgs)
		}
		sameEvents(t, msgs[0].Events, []json.RawMessage{event})
	}

	msgs := next(t, slow)
	if len(msgs) != 1 || msgs[0].Type != "reset" {
		t.Fatalf("slow agent got %d messages starting %q, want one reset", len(msgs), msgs[0].Type)
	}
	sameEvents(t, msgs[0].Events, s.Events())
	if slow.Resyncs() != 1 || fast.Resyncs() != 0 {
		t.Fatalf("resyncs: slow %d, fast %d; want 1 and 0", slow.Resyncs(), fast.Resyncs())
	}
}

func TestMalformedAndUnknownEventsAreDropped(t *testing.T) {
	hub := quietHub(Config{})
	v, _ := mustAttach(t, hub, "session-1", "tab-0001", "page-0001")
	good := rrwebtest.Page(1000, "https://shop.test/", 1)
	bad := []json.RawMessage{
		json.RawMessage(`{"type":99,"timestamp":1}`),
		json.RawMessage(`{"timestamp":1}`),
		json.RawMessage(`{"type":3}`),
		json.RawMessage(`[1,2]`),
		json.RawMessage(`"text"`),
	}
	res := mustBatch(t, v, 1, append(append([]json.RawMessage{}, good...), bad...))
	if res.Withheld != len(bad) {
		t.Fatalf("withheld %d, want %d", res.Withheld, len(bad))
	}
	s, _ := hub.Session("session-1")
	sameEvents(t, s.Events(), good)
}

func TestEventsBeforeAnySnapshotAreNotKept(t *testing.T) {
	hub := quietHub(Config{})
	v, _ := mustAttach(t, hub, "session-1", "tab-0001", "page-0001")
	mustBatch(t, v, 1, []json.RawMessage{rrwebtest.MouseMove(1, 1)})
	s, _ := hub.Session("session-1")
	if n := len(s.Events()); n != 0 {
		t.Fatalf("kept %d events without a snapshot", n)
	}
}

func TestOversizedLogAsksTheVisitorForASnapshot(t *testing.T) {
	hub := quietHub(Config{MaxLogBytes: 2 << 10})
	v, _ := mustAttach(t, hub, "session-1", "tab-0001", "page-0001")
	mustBatch(t, v, 1, rrwebtest.Page(1000, "https://shop.test/", 0))
	seq := uint64(2)
	for ; seq < 100; seq++ {
		mustBatch(t, v, seq, []json.RawMessage{rrwebtest.MouseMove(int(seq), int(seq))})
		select {
		case msg := <-v.Downlink():
			if string(msg) != `{"type":"snapshot"}` {
				t.Fatalf("downlink got %s", msg)
			}
			s, _ := hub.Session("session-1")
			if n := len(s.Events()); n != 0 {
				t.Fatalf("log over its bound still holds %d events", n)
			}
			fresh := rrwebtest.Page(1000, "https://shop.test/", 1)
			mustBatch(t, v, seq+1, fresh)
			sameEvents(t, s.Events(), fresh)
			return
		default:
		}
	}
	t.Fatal("the log grew past its bound without a snapshot request")
}

func TestFocusSwitchesTheFollowedTab(t *testing.T) {
	hub := quietHub(Config{})
	a, _ := mustAttach(t, hub, "session-1", "tab-000a", "page-000a")
	mustBatch(t, a, 1, rrwebtest.Page(1000, "https://shop.test/a", 0))
	b, _ := mustAttach(t, hub, "session-1", "tab-000b", "page-000b")
	bEvents := rrwebtest.Page(1000, "https://shop.test/b", 0)
	mustBatch(t, b, 1, bEvents)
	s, _ := hub.Session("session-1")
	sub, _ := s.Subscribe("Test agent")
	defer sub.Close()
	if msgs := next(t, sub); msgs[0].Session.URL != "https://shop.test/b" {
		t.Fatalf("agents follow %q, want the tab that loaded last", msgs[0].Session.URL)
	}
	a.Focus()
	msgs := next(t, sub)
	if msgs[0].Type != "reset" || msgs[0].Session.URL != "https://shop.test/a" {
		t.Fatalf("after focus got %s %q", msgs[0].Type, msgs[0].Session.URL)
	}
	// Events of the tab agents do not follow are kept but not sent.
	mustBatch(t, b, 2, []json.RawMessage{rrwebtest.MouseMove(3000, 1)})
	mustBatch(t, a, 2, []json.RawMessage{rrwebtest.MouseMove(3001, 2)})
	msgs = next(t, sub)
	if len(msgs) != 1 || len(msgs[0].Events) != 1 || string(msgs[0].Events[0]) != string(rrwebtest.MouseMove(3001, 2)) {
		t.Fatalf("agents got %+v, want only tab a's event", msgs)
	}
}

func TestIdleSessionEndsAndTellsItsAgents(t *testing.T) {
	var ended []string
	hub := quietHub(Config{IdleTimeout: time.Minute, OnSessionEnd: func(id string) { ended = append(ended, id) }})
	v, _ := mustAttach(t, hub, "session-1", "tab-0001", "page-0001")
	mustBatch(t, v, 1, rrwebtest.Page(1000, "https://shop.test/", 0))
	s, _ := hub.Session("session-1")
	sub, _ := s.Subscribe("Test agent")
	next(t, sub)
	v.Detach()

	hub.Expire(time.Now().Add(30 * time.Second))
	if _, err := hub.Session("session-1"); err != nil || len(ended) != 0 {
		t.Fatalf("session ended before its idle timeout: %v (OnSessionEnd for %q)", err, ended)
	}
	hub.Expire(time.Now().Add(2 * time.Minute))
	if _, err := hub.Session("session-1"); !errors.Is(err, ErrNoSession) {
		t.Fatalf("idle session still present: %v", err)
	}
	if len(ended) != 1 || ended[0] != "session-1" {
		t.Errorf("OnSessionEnd was called for %q, want session-1 once", ended)
	}
	msgs := next(t, sub)
	if len(msgs) != 1 || msgs[0].Type != "info" || !msgs[0].Session.Ended {
		t.Fatalf("last message = %+v, want info with ended", msgs)
	}
	if _, err := sub.Next(context.Background()); !errors.Is(err, ErrSessionEnded) {
		t.Fatalf("Next after end: %v, want ErrSessionEnded", err)
	}
}

func TestWatchSignalsChanges(t *testing.T) {
	hub := quietHub(Config{})
	changes, stop := hub.Watch()
	defer stop()
	v, _ := mustAttach(t, hub, "session-1", "tab-0001", "page-0001")
	select {
	case <-changes:
	case <-time.After(5 * time.Second):
		t.Fatal("no change signalled for a new session")
	}
	v.SetPage("https://shop.test/", "Shop")
	select {
	case <-changes:
	case <-time.After(5 * time.Second):
		t.Fatal("no change signalled for a new title")
	}
	if got := hub.Sessions()[0].Title; got != "Shop" {
		t.Fatalf("title = %q", got)
	}
}

func TestSessionsAreBounded(t *testing.T) {
	hub := quietHub(Config{MaxSessions: 2})
	mustAttach(t, hub, "session-1", "tab-0001", "page-0001")
	mustAttach(t, hub, "session-2", "tab-0001", "page-0001")
	if _, _, err := hub.Attach("session-3", "tab-0001", "page-0001"); !errors.Is(err, ErrTooManySessions) {
		t.Fatalf("third session: err = %v, want ErrTooManySessions", err)
	}
	mustAttach(t, hub, "session-1", "tab-0002", "page-0002") // known sessions still attach
}

func TestTabsAreBoundedAndDisconnectedOnesMakeRoom(t *testing.T) {
	hub := quietHub(Config{MaxTabsPerSession: 2})
	a, _ := mustAttach(t, hub, "session-1", "tab-000a", "page-000a")
	mustBatch(t, a, 1, rrwebtest.Page(1000, "https://shop.test/a", 0))
	mustAttach(t, hub, "session-1", "tab-000b", "page-000b")
	if _, _, err := hub.Attach("session-1", "tab-000c", "page-000c"); !errors.Is(err, ErrTooManyTabs) {
		t.Fatalf("third connected tab: err = %v, want ErrTooManyTabs", err)
	}
	a.Detach()
	c, _ := mustAttach(t, hub, "session-1", "tab-000c", "page-000c")
	mustBatch(t, c, 1, rrwebtest.Page(1000, "https://shop.test/c", 0))
	s, _ := hub.Session("session-1")
	if info := s.Info(); info.Tabs != 2 || info.URL != "https://shop.test/c" {
		t.Fatalf("after eviction: %+v, want 2 tabs following c", info)
	}
}

// A session that expires between Attach's lookup and its lock (ended, not
// yet removed from the hub) must not swallow the new connection.
func TestAttachNeverJoinsAnEndedSession(t *testing.T) {
	hub := quietHub(Config{})
	ended, err := hub.sessionFor("session-1")
	if err != nil {
		t.Fatal(err)
	}
	if ended.expireTabs(time.Now()) == "" {
		t.Fatal("a session without tabs did not end")
	}
	v, _ := mustAttach(t, hub, "session-1", "tab-0001", "page-0001")
	if v.session == ended {
		t.Fatal("Attach joined the ended session")
	}
	s, err := hub.Session("session-1")
	if err != nil || s != v.session || !s.Info().Connected {
		t.Fatalf("the hub lists %v (%v), want the visitor's live session", s, err)
	}
}

func TestResnapshotStartsEveryTabOver(t *testing.T) {
	hub := quietHub(Config{})
	v, _ := mustAttach(t, hub, "session-1", "tab-0001", "page-0001")
	mustBatch(t, v, 1, rrwebtest.Page(1000, "https://shop.test/", 0))
	hub.Resnapshot()
	select {
	case msg := <-v.Downlink():
		if string(msg) != `{"type":"snapshot"}` {
			t.Fatalf("downlink got %s", msg)
		}
	default:
		t.Fatal("the visitor was not asked for a snapshot")
	}
	s, _ := hub.Session("session-1")
	if n := len(s.Events()); n != 0 {
		t.Fatalf("the log still holds %d events from before", n)
	}
	mustBatch(t, v, 2, []json.RawMessage{rrwebtest.MouseMove(1, 1)})
	if n := len(s.Events()); n != 0 {
		t.Fatalf("kept %d events before the new snapshot", n)
	}
	fresh := rrwebtest.Page(1000, "https://shop.test/", 1)
	mustBatch(t, v, 3, fresh)
	sameEvents(t, s.Events(), fresh)
}

// panickyRedactor panics on events containing "boom".
type panickyRedactor struct{ passThrough }

func (panickyRedactor) Page(url, title string) (string, string) {
	if strings.Contains(title, "boom") {
		panic("redactor bug")
	}
	return url, title
}

func (r panickyRedactor) Redact(event json.RawMessage) []rrweb.Event {
	if strings.Contains(string(event), "boom") {
		panic("redactor bug")
	}
	return r.passThrough.Redact(event)
}

func TestRedactorPanicIsContained(t *testing.T) {
	hub := quietHub(Config{NewRedactor: func(string, string) Redactor { return panickyRedactor{} }})
	v, _ := mustAttach(t, hub, "session-1", "tab-0001", "page-0001")
	mustBatch(t, v, 1, rrwebtest.Page(1000, "https://shop.test/", 0))
	res := mustBatch(t, v, 2, []json.RawMessage{json.RawMessage(`{"type":3,"timestamp":1,"data":{"source":1,"boom":1}}`)})
	if res.Withheld != 1 {
		t.Errorf("Withheld = %d, want 1", res.Withheld)
	}
	select {
	case msg := <-v.Downlink():
		if string(msg) != `{"type":"snapshot"}` {
			t.Fatalf("downlink got %s", msg)
		}
	default:
		t.Fatal("the visitor was not asked for a new snapshot")
	}
	fresh := rrwebtest.Page(2000, "https://shop.test/", 1)
	mustBatch(t, v, 3, fresh) // the session is not locked up
	s, _ := hub.Session("session-1")
	sameEvents(t, s.Events(), fresh)

	v.SetPage("https://shop.test/boom", "boom")
	if info := s.Info(); info.URL != "" || info.Title != "" { // and Info does not hang on the lock
		t.Errorf("after a failed page redaction the session shows %q, %q", info.URL, info.Title)
	}
}
