package session

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/cobrowse/cobrowse/internal/rrweb"
	"github.com/cobrowse/cobrowse/internal/rrwebtest"
)

// FuzzVisitorMessages feeds arbitrary visitor messages through the same
// handler the visitor socket uses and checks what an agent receives: every
// message is valid JSON, and the log holds only events with a known type and
// a timestamp. The hub builds agent messages by concatenating raw events, so
// a malformed event that slipped through would corrupt every agent's stream.
//
//	go test -run '^$' -fuzz FuzzVisitorMessages -fuzztime 3m ./session/
func FuzzVisitorMessages(f *testing.F) {
	snapshot, _ := json.Marshal(rrwebtest.Page(1000, "https://shop.test/", 2))
	f.Add([]byte(`{"seq":1,"events":`+string(snapshot)+`}`), []byte(`{"seq":2,"events":[{"type":3,"timestamp":5,"data":{}}]}`))
	f.Add([]byte(`{"seq":1,"events":[{"type":4,"timestamp":1e308,"data":{"href":"x"}},{"type":2,"timestamp":-0}]}`), []byte(`{"type":"page","url":"\u00e9","title":"\xff"}`))
	f.Add([]byte(`{"seq":1,"events":[{"type":4.5,"timestamp":1},{"type":"4","timestamp":1},null,{}]}`), []byte(`{"type":"focus"}`))
	f.Add([]byte(`{"seq":18446744073709551615,"events":[]}`), []byte(`{"seq":1,"events":[{"type":4,"timestamp":1,"data":[]}]}`))
	f.Fuzz(func(t *testing.T, first, second []byte) {
		hub := quietHub(Config{MaxLogBytes: 4 << 10, MaxQueueBytes: 4 << 10})
		handler := &VisitorHandler{Hub: hub, Logger: hub.cfg.Logger}
		v, _ := mustAttach(t, hub, "session-1", "tab-0001", "page-0001")
		s, _ := hub.Session("session-1")
		sub, err := s.Subscribe("Test agent")
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		for _, data := range [][]byte{first, second} {
			reply, err := handler.handleMessage(v, data)
			var refused *refusal
			if err != nil && !errors.As(err, &refused) {
				t.Fatalf("handleMessage returned a non-refusal error: %v", err)
			}
			if reply != nil && !json.Valid(reply) {
				t.Fatalf("reply is not JSON: %q", reply)
			}
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // only what is queued already
		msgs, _ := sub.Next(ctx)
		for _, m := range msgs {
			if !json.Valid(m) {
				t.Fatalf("agent message is not JSON: %q", m)
			}
		}
		for _, e := range s.Events() {
			if _, err := rrweb.Parse(e); err != nil {
				t.Fatalf("the log holds an invalid event %q: %v", e, err)
			}
		}
		if info := s.Info(); len(info.URL) > maxURLBytes || len(info.Title) > maxTitleBytes || !strings.HasPrefix(info.ID, "session-1") {
			t.Fatalf("session info out of bounds: %+v", info)
		}
	})
}

// FuzzIdentityVerify checks that only values made by Sign verify, and that
// nothing makes Verify panic.
func FuzzIdentityVerify(f *testing.F) {
	id, _ := NewIdentity([]byte(strings.Repeat("k", MinKeyBytes)))
	f.Add(id.Sign("AAAAAAAAAAAAAAAAAAAAAA"))
	f.Add("AAAAAAAA.")
	f.Add(".....")
	f.Fuzz(func(t *testing.T, value string) {
		sid, ok := id.Verify(value)
		if ok && id.Sign(sid) != value {
			t.Fatalf("Verify accepted %q, which Sign would not produce", value)
		}
	})
}
