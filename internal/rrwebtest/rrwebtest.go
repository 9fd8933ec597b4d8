// Package rrwebtest makes rrweb events for tests: small, valid events of the
// types the server classifies (Meta, FullSnapshot, incremental), shaped as
// rrweb 2 emits them, and a recorded real session of the demo shop (for
// benchmarks and cobrowse loadtest).
package rrwebtest

import (
	"bytes"
	"compress/gzip"
	_ "embed"
	"encoding/json"
	"fmt"
	"testing"
)

// Meta is the event rrweb emits before every full snapshot.
func Meta(ts int, href string) json.RawMessage {
	return json.RawMessage(fmt.Sprintf(`{"type":4,"timestamp":%d,"data":{"href":%q,"width":1024,"height":768}}`, ts, href))
}

// FullSnapshot is a full snapshot of an empty document.
func FullSnapshot(ts int) json.RawMessage {
	return json.RawMessage(fmt.Sprintf(`{"type":2,"timestamp":%d,"data":{"node":{"type":0,"childNodes":[],"id":1},"initialOffset":{"left":0,"top":0}}}`, ts))
}

// MouseMove is an incremental event: the pointer at x = n, so that tests can
// tell events apart and check their order.
func MouseMove(ts, n int) json.RawMessage {
	return json.RawMessage(fmt.Sprintf(`{"type":3,"timestamp":%d,"data":{"source":1,"positions":[{"x":%d,"y":0,"id":1,"timeOffset":0}]}}`, ts, n))
}

// Page returns the events of one page load: Meta and FullSnapshot at ts and
// ts+1, then n mouse moves (x = 0..n-1) with the following timestamps.
func Page(ts int, href string, n int) []json.RawMessage {
	events := []json.RawMessage{Meta(ts, href), FullSnapshot(ts + 1)}
	for i := 0; i < n; i++ {
		events = append(events, MouseMove(ts+2+i, i))
	}
	return events
}

// demoSession is what a visitor's browser sent while shopping on the demo
// (two pages, clicks, pointer moves, scrolls, typed values), as recorded by
// e2e's TestRecordDemoSession:
//
//	COBROWSE_RECORD=$PWD/internal/rrwebtest/demo-session.json.gz go test -run TestRecordDemoSession ./e2e/
//
//go:embed demo-session.json.gz
var demoSession []byte

// DemoSession returns the recorded demo session's batches of rrweb events,
// for benchmarks that replay a real visitor.
func DemoSession(tb testing.TB) [][]json.RawMessage {
	tb.Helper()
	batches, err := DemoBatches()
	if err != nil {
		tb.Fatal(err)
	}
	return batches
}

// DemoBatches is DemoSession for programs (cobrowse loadtest).
func DemoBatches() ([][]json.RawMessage, error) {
	zr, err := gzip.NewReader(bytes.NewReader(demoSession))
	if err != nil {
		return nil, err
	}
	var batches [][]json.RawMessage
	if err := json.NewDecoder(zr).Decode(&batches); err != nil {
		return nil, fmt.Errorf("the recorded demo session: %w", err)
	}
	return batches, nil
}
