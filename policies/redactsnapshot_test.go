package policies

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/cobrowse/cobrowse/internal/rrweb"
	"github.com/cobrowse/cobrowse/internal/rrwebtest"
)

// recordedSnapshots returns the data of the full snapshots in the recorded
// demo session.
func recordedSnapshots(t testing.TB) [][]byte {
	var out [][]byte
	for _, b := range rrwebtest.DemoSession(t) {
		for _, raw := range b {
			if ev, _, ok := parseEnvelope(raw); ok && ev.Type == rrweb.FullSnapshot {
				out = append(out, ev.Data)
			}
		}
	}
	if len(out) == 0 {
		t.Fatal("no snapshot in the recorded session")
	}
	return out
}

// checkSameSnapshot fails if decodeFullSnapshot decodes data and
// encoding/json does not, or decodes it differently.
func checkSameSnapshot(t *testing.T, data []byte) (decoded bool) {
	mine, nodes, ok := decodeFullSnapshot(data)
	defer nodes.release()
	checkSnapshotInEvent(t, data, mine, ok)
	if !ok {
		return false
	}
	var std fullSnapshotData
	if err := json.Unmarshal(data, &std); err != nil {
		t.Fatalf("decodeFullSnapshot read %q, which encoding/json refuses: %v", data, err)
	}
	if (mine.Node == nil) != (std.Node == nil) {
		t.Fatalf("for %q: mine has node %v, encoding/json %v", data, mine.Node, std.Node)
	}
	if mine.Node == nil {
		return true
	}
	a, errA := encodeEvent(event{Type: rrweb.FullSnapshot, Timestamp: "1"}, mine)
	b, errB := encodeEvent(event{Type: rrweb.FullSnapshot, Timestamp: "1"}, &std)
	// Compared as JSON values: a string with invalid UTF-8 is written with
	// \ufffd escapes from one and U+FFFD itself from the other.
	if (errA == nil) != (errB == nil) || errA == nil && !sameJSON(t, a, b) {
		t.Fatalf("for %q:\nmine %s (%v)\nstd  %s (%v)", data, a, errA, b, errB)
	}
	if errA == nil {
		checkSameValues(t, data, mine.Node, std.Node)
	}
	return true
}

// checkSnapshotInEvent fails if parseEnvelope, which decodes a snapshot's
// data as it reads the event, does not decode data in an event as
// decodeFullSnapshot did by itself (decoded: mine).
func checkSnapshotInEvent(t *testing.T, data []byte, mine *fullSnapshotData, decoded bool) {
	if !json.Valid(data) {
		return // not one value: in an event, it may read as more keys
	}
	raw := append(append([]byte(`{"type":2,"data":`), data...), `,"timestamp":1}`...)
	ev, _, _ := parseEnvelope(raw)
	defer ev.nodes.release()
	if (ev.snapshot != nil) != decoded {
		t.Fatalf("for %q: decoded in the event %v, alone %v", data, ev.snapshot != nil, decoded)
	}
	if !decoded {
		return
	}
	a, errA := encodeEvent(event{Type: rrweb.FullSnapshot, Timestamp: "1"}, mine)
	b, errB := encodeEvent(event{Type: rrweb.FullSnapshot, Timestamp: "1"}, ev.snapshot)
	if (errA == nil) != (errB == nil) || !bytes.Equal(a, b) {
		t.Fatalf("for %q:\nalone    %s (%v)\nin event %s (%v)", data, a, errA, b, errB)
	}
}

// checkSameValues fails if the attribute values of the nodes of two trees
// of the same shape, decoded from data by the scanner (mine) and by
// encoding/json (std), differ as the DOM has them: what selectors and
// redaction read is not in the JSON that the decoders' outputs are
// compared by.
func checkSameValues(t *testing.T, data []byte, mine, std *snode) {
	checkSameAttributes(t, data, mine.Attributes, std.Attributes)
	for i, kid := range mine.ChildNodes {
		checkSameValues(t, data, kid, std.ChildNodes[i])
	}
}

// checkSameAttributes fails if two lists of attributes, decoded from data
// by the scanner (mine) and by encoding/json (std), differ as the DOM has
// them. Names are compared with each byte of invalid UTF-8 as U+FFFD, as
// encoding/json decodes them (the scanner keeps them, and they are written
// so), unless that makes two of them one.
func checkSameAttributes(t *testing.T, data []byte, mine, std attributes) {
	byName := func(as attributes) map[string]attribute {
		m := make(map[string]attribute, len(as))
		for _, a := range as {
			m[string([]rune(a.name))] = a
		}
		return m
	}
	m, s := byName(mine), byName(std)
	if len(m) != len(mine) {
		return
	}
	if len(m) != len(s) {
		t.Fatalf("for %q: the scanner decoded attributes %v, encoding/json %v", data, mine, std)
	}
	for name, a := range m {
		if b := s[name]; a.val != b.val || a.present != b.present {
			t.Fatalf("for %q: attribute %q is %q (present %v) decoded by the scanner, %q (present %v) by encoding/json",
				data, name, a.val, a.present, b.val, b.present)
		}
	}
}

func TestDecodeFullSnapshotReadsRecordedSnapshots(t *testing.T) {
	for _, data := range recordedSnapshots(t) {
		if !checkSameSnapshot(t, data) {
			t.Errorf("a recorded snapshot does not decode: %.200s", data)
		}
	}
}

func FuzzDecodeFullSnapshot(f *testing.F) {
	for _, data := range recordedSnapshots(f) {
		if len(data) < 4096 {
			f.Add(data)
		}
	}
	f.Add([]byte(`{"node":{"type":0,"id":1,"childNodes":[{"type":2,"id":2,"tagName":"p","attributes":{"class":"a","x":1,"y":true,"z":null},"childNodes":[{"type":3,"id":3,"textContent":"hi \u00e9\n"}]}]},"initialOffset":{"top":0,"left":1.5}}`))
	f.Add([]byte(`{"NODE":{"Type":2,"ID":7,"tagname":"div","attributes":null,"childNodes":null,"rootId":null,"isSVG":true,"extra":[1,{"a":"b"}]},"initialOffset":null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkSameSnapshot(t, data)
	})
}
