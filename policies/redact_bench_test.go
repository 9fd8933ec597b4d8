package policies

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/cobrowse/cobrowse/internal/rrwebtest"
	"github.com/cobrowse/cobrowse/session"
)

// demoStream is a synthetic stream shaped like a visitor on a shop page: a
// snapshot of ~600 nodes, then mostly pointer events, some scrolls, inputs
// and small mutations (the mix rrweb records with the visitor script's
// sampling).
func demoStream(b *testing.B) (start []json.RawMessage, stream []json.RawMessage) {
	var cards []node
	for i := range 100 {
		id := 100 + 6*i
		cards = append(cards, el(id, "article", map[string]any{"class": "card"},
			el(id+1, "img", map[string]any{"src": fmt.Sprintf("/img/%d.jpg", i), "alt": "Product"}),
			el(id+2, "h2", nil, txt(id+3, fmt.Sprintf("Product %d", i))),
			el(id+4, "p", map[string]any{"class": "price"}, txt(id+5, "9.99"))))
	}
	start = []json.RawMessage{
		meta(b, "https://shop.example.com/account/"),
		snapshot(b, doc(1, el(2, "html", nil, el(3, "body", nil,
			el(4, "input", map[string]any{"type": "search", "name": "q"}),
			el(5, "main", nil, cards...))))),
	}
	for i := range 1000 {
		switch {
		case i%10 < 6:
			stream = append(stream, incr(b, sourceMouseMove, map[string]any{"positions": []any{
				map[string]any{"x": i, "y": 2 * i, "id": 105, "timeOffset": -20},
				map[string]any{"x": i + 1, "y": 2*i + 1, "id": 105, "timeOffset": 0}}}))
		case i%10 == 6:
			stream = append(stream, incr(b, sourceScroll, map[string]any{"id": 1, "x": 0, "y": i}))
		case i%10 == 7:
			stream = append(stream, incr(b, sourceMouseInteraction, map[string]any{"type": 2, "id": 100 + 6*(i%100), "x": 10, "y": 20}))
		case i%10 == 8:
			stream = append(stream, incr(b, sourceInput, map[string]any{"id": 4, "text": fmt.Sprintf("red shoes %d", i), "isChecked": false}))
		default:
			stream = append(stream, mutation(b, map[string]any{"texts": []any{map[string]any{"id": 105, "value": fmt.Sprintf("%d.99", i)}}}))
		}
	}
	return start, stream
}

// BenchmarkHubEvent measures the hub's cost per event of the demo stream
// without a Redactor and with one: the difference is what redaction adds.
func BenchmarkHubEvent(b *testing.B) {
	for _, tc := range []struct {
		name   string
		redact func(sessionID, tabID string) session.Redactor
	}{
		{"pass-through", nil},
		{"redactor", func(string, string) session.Redactor { return redactor(b, accountPolicy) }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			hub := session.NewHub(session.Config{NewRedactor: tc.redact, MaxLogBytes: 1 << 30, Join: session.JoinNone})
			v, _, err := hub.Attach("session-1", "tab-0001", "page-0001")
			if err != nil {
				b.Fatal(err)
			}
			start, stream := demoStream(b)
			seq := uint64(1)
			if _, err := v.Batch(seq, start); err != nil {
				b.Fatal(err)
			}
			var bytes int64
			for _, e := range stream {
				bytes += int64(len(e))
			}
			b.SetBytes(bytes / int64(len(stream)))
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				seq++
				if _, err := v.Batch(seq, stream[i:i+1]); err != nil {
					b.Fatal(err)
				}
				if i++; i == len(stream) {
					i = 0
				}
			}
		})
	}
}

// BenchmarkHubRecordedSession replays a recorded demo session (see
// e2e/record_test.go: two pages, pointer moves, scrolls, clicks, cart
// updates, typing) through a fresh hub tab per iteration, without and with
// the Redactor and the built-in policy: the difference is what redaction
// adds to the hub's work for a real visitor's stream.
func BenchmarkHubRecordedSession(b *testing.B) {
	batches := rrwebtest.DemoSession(b)
	events, bytes := 0, 0
	for _, batch := range batches {
		events += len(batch)
		for _, e := range batch {
			bytes += len(e)
		}
	}
	for _, tc := range []struct {
		name   string
		redact func(sessionID, tabID string) session.Redactor
	}{
		{"pass-through", nil},
		{"redactor", func(string, string) session.Redactor { return NewRedactor(Default) }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			hub := session.NewHub(session.Config{NewRedactor: tc.redact, Logger: slog.New(slog.DiscardHandler), Join: session.JoinNone})
			b.SetBytes(int64(bytes))
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				i++
				v, _, err := hub.Attach(fmt.Sprintf("session-%d", i), "tab-0001", "page-0001")
				if err != nil {
					b.Fatal(err)
				}
				for seq, batch := range batches {
					if _, err := v.Batch(uint64(seq+1), batch); err != nil {
						b.Fatal(err)
					}
				}
				v.Detach()
				hub.Expire(time.Now().Add(time.Hour)) // the hub stays small
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*events), "ns/event")
		})
	}
}
