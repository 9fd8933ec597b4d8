package natsbus

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cobrowse/cobrowse/session"
)

// node is one cobrowse node of a test cluster: a hub and its Bus.
type node struct {
	hub    *session.Hub
	bus    *Bus
	cancel context.CancelFunc
}

// startCluster runs an embedded NATS server and two nodes using it.
func startCluster(t *testing.T) (a, b *node) {
	t.Helper()
	srv, err := RunServer("127.0.0.1:0", t.TempDir(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	return startNode(t, srv.ClientURL(), "node-a"), startNode(t, srv.ClientURL(), "node-b")
}

func startNode(t *testing.T, url, name string) *node {
	t.Helper()
	return startNodeJoining(t, url, name, session.JoinNone)
}

// startNodeJoining is startNode with the hubs' join mode.
func startNodeJoining(t *testing.T, url, name string, join session.JoinMode) *node {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	bus, err := Open(ctx, Config{URL: url, Node: name, Logger: slog.New(slog.DiscardHandler), IdleTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	hub := session.NewHub(session.Config{Bus: bus, Join: join, IdleTimeout: 5 * time.Second, Logger: slog.New(slog.DiscardHandler)})
	if err := bus.Serve(ctx, hub); err != nil {
		t.Fatal(err)
	}
	n := &node{hub: hub, bus: bus, cancel: cancel}
	t.Cleanup(n.stop)
	return n
}

// stop ends the node as a crash would for the cluster: its connection
// goes without a goodbye (its node key expires later).
func (n *node) stop() {
	n.cancel()
	n.bus.nc.Close()
}

func raw(s string) json.RawMessage { return json.RawMessage(s) }

var (
	metaEvent     = raw(`{"type":4,"timestamp":1,"data":{"href":"https://shop.example/cart","width":800,"height":600}}`)
	snapshotEvent = raw(`{"type":2,"timestamp":2,"data":{"node":{"type":0,"id":1,"childNodes":[]},"initialOffset":{"top":0,"left":0}}}`)
)

func mutation(n int) json.RawMessage {
	return raw(`{"type":3,"timestamp":` + strconv.Itoa(10+n) + `,"data":{"source":0,"texts":[{"id":` + strconv.Itoa(n) + `,"value":"step ` + strconv.Itoa(n) + `"}],"attributes":[],"removes":[],"adds":[]}}`)
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// nextWith reads the feed until a message contains want.
func nextWith(t *testing.T, feed session.Feed, want string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		msgs, err := feed.Next(ctx)
		if err != nil {
			t.Fatalf("waiting for a message with %q: %v", want, err)
		}
		for _, m := range msgs {
			if strings.Contains(string(m), want) {
				return string(m)
			}
		}
	}
}

func TestAgentOnAnotherNodeAndTakeoverAfterACrash(t *testing.T) {
	a, b := startCluster(t)

	const sid, tab, page = "session-one", "tab-0001", "page-0001"
	v, ack, err := a.hub.Attach(sid, tab, page)
	if err != nil || ack != 0 {
		t.Fatalf("Attach on A: ack %d, %v", ack, err)
	}
	if _, err := v.Batch(1, []json.RawMessage{metaEvent, snapshotEvent}); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Batch(2, []json.RawMessage{mutation(2)}); err != nil {
		t.Fatal(err)
	}

	// B's dashboard lists A's session, and says where it is.
	waitFor(t, "B to list the session", func() bool {
		for _, info := range b.hub.Sessions() {
			if info.ID == sid && info.Node == "node-a" && info.URL == "https://shop.example/cart" {
				return true
			}
		}
		return false
	})

	// An agent on B sees the page, and its pointer reaches the visitor on A.
	feed, err := b.hub.Join(context.Background(), sid, "Ann", true)
	if err != nil {
		t.Fatal(err)
	}
	defer feed.Close()
	reset := nextWith(t, feed, `"type":"reset"`)
	if !strings.Contains(reset, "step 2") || !strings.Contains(reset, `"type":2`) {
		t.Fatalf("the reset lacks the snapshot or the mutation: %.300s", reset)
	}
	if err := feed.Send(session.AgentMessage{Type: "pointer", X: 10, Y: 20}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the pointer on A's visitor", func() bool {
		select {
		case m := <-v.Downlink():
			return strings.Contains(string(m), `"type":"pointer"`)
		default:
			return false
		}
	})
	if _, err := v.Batch(3, []json.RawMessage{mutation(3)}); err != nil {
		t.Fatal(err)
	}
	nextWith(t, feed, "step 3")

	// A crashes. The visitor reconnects to B, which takes the session over
	// with every acknowledged batch; the agent's feed follows it.
	a.stop()
	v2, ack, err := b.hub.Attach(sid, tab, page)
	if err != nil {
		t.Fatal(err)
	}
	if ack != 3 {
		t.Fatalf("B acknowledges batch %d after the takeover, want 3", ack)
	}
	asked := false
	for len(v2.Downlink()) > 0 {
		if strings.Contains(string(<-v2.Downlink()), `"type":"snapshot"`) {
			asked = true
		}
	}
	if !asked {
		t.Error("the visitor was not asked for a fresh snapshot for B's Redactor")
	}
	reset = nextWith(t, feed, `"type":"reset"`)
	for _, want := range []string{"step 2", "step 3", `"type":2`} {
		if !strings.Contains(reset, want) {
			t.Fatalf("the reset after the takeover lacks %s: %.400s", want, reset)
		}
	}
	if _, err := v2.Batch(4, []json.RawMessage{mutation(4)}); err != nil {
		t.Fatal(err)
	}
	nextWith(t, feed, "step 4")
	if st := b.bus.Stats(); st.Takeovers != 1 || st.StoreFailures != 0 {
		t.Errorf("B's stats %+v: want 1 takeover, no store failure", st)
	}
}

func TestReleaseToALiveNode(t *testing.T) {
	a, b := startCluster(t)

	const sid, tab, page = "session-two", "tab-0001", "page-0001"
	v, _, err := a.hub.Attach(sid, tab, page)
	if err != nil {
		t.Fatal(err)
	}
	v.Batch(1, []json.RawMessage{metaEvent, snapshotEvent})
	v.Batch(2, []json.RawMessage{mutation(2)})
	// An agent on A watches; then the visitor's connection lands on B.
	feed, err := a.hub.Join(context.Background(), sid, "Ann", true)
	if err != nil {
		t.Fatal(err)
	}
	defer feed.Close()
	nextWith(t, feed, "step 2")

	v2, ack, err := b.hub.Attach(sid, tab, page)
	if err != nil || ack != 2 {
		t.Fatalf("Attach on B: ack %d, %v; want 2", ack, err)
	}
	if !v.Restart() {
		t.Error("A's visitor connection was not told to reconnect")
	}
	if _, err := a.hub.Session(sid); err == nil {
		t.Error("A still holds the session it released")
	}
	// A's agent now watches through a relay to B.
	reset := nextWith(t, feed, `"type":"reset"`)
	if !strings.Contains(reset, "step 2") {
		t.Fatalf("reset after the move: %.300s", reset)
	}
	v2.Batch(3, []json.RawMessage{mutation(3)})
	nextWith(t, feed, "step 3")
	if st := a.bus.Stats(); st.Releases != 1 || st.Feeds != 1 {
		t.Errorf("A's stats %+v: want 1 release, and its agent's feed relayed from B", st)
	}

	// The session ends on B: every node forgets it.
	v2.End()
	waitFor(t, "A to forget the ended session", func() bool {
		_, err := a.hub.Lookup(sid)
		return err != nil
	})
}

// While NATS is down, visitors are not held up: a new session starts
// without waiting for the registry, and batches are taken without waiting
// for the stream (the failures are counted).
func TestVisitorsGoOnWhileNATSIsDown(t *testing.T) {
	srv, err := RunServer("127.0.0.1:0", t.TempDir(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	a := startNode(t, srv.ClientURL(), "node-a")
	srv.Shutdown()
	waitFor(t, "the node to see NATS gone", func() bool { return !a.bus.nc.IsConnected() })

	start := time.Now()
	v, ack, err := a.hub.Attach("session-down", "tab-0001", "page-0001")
	if err != nil || ack != 0 {
		t.Fatalf("Attach: ack %d, %v", ack, err)
	}
	if _, err := v.Batch(1, []json.RawMessage{metaEvent, snapshotEvent}); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("a visitor waited %v for a NATS that is down", took)
	}
	if st := a.bus.Stats(); st.StoreFailures != 1 {
		t.Errorf("store failures %d, want 1", st.StoreFailures)
	}
}

// A support code the visitor got from node A opens the session for an
// agent of node B; a code no node gave is refused.
func TestSupportCodeOfAnotherNode(t *testing.T) {
	srv, err := RunServer("127.0.0.1:0", t.TempDir(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	a := startNodeJoining(t, srv.ClientURL(), "node-a", session.JoinCode)
	b := startNodeJoining(t, srv.ClientURL(), "node-b", session.JoinCode)

	const sid = "session-code"
	v, _, err := a.hub.Attach(sid, "tab-0001", "page-0001")
	if err != nil {
		t.Fatal(err)
	}
	v.Batch(1, []json.RawMessage{metaEvent, snapshotEvent})
	v.RequestCode()
	var code string
	waitFor(t, "the visitor's code", func() bool {
		select {
		case m := <-v.Downlink():
			var msg struct{ Type, Code string }
			json.Unmarshal(m, &msg)
			code = msg.Code
			return msg.Type == "code"
		default:
			return false
		}
	})
	waitFor(t, "B to know the session", func() bool { _, err := b.hub.Lookup(sid); return err == nil })

	id, err := b.hub.Redeem(code)
	if err != nil || id != sid {
		t.Fatalf("Redeem on B: %q, %v; want %s", id, err, sid)
	}
	if info, _ := a.hub.Lookup(sid); info.Consent != session.ConsentGranted {
		t.Errorf("consent on A after the code: %q", info.Consent)
	}
	if _, err := b.hub.Redeem(code); !errors.Is(err, session.ErrBadCode) {
		t.Errorf("the code redeemed twice: %v", err)
	}
}
