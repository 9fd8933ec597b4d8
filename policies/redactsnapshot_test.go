package policies

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"golang.org/x/net/html"

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

// checkSameSnapshot fails if decodeSnapshot decodes data and encoding/json
// does not, or if the mirror it builds differs from the one mirror.build
// makes of what encoding/json decodes.
func checkSameSnapshot(t *testing.T, data []byte) (decoded bool) {
	mine, ok := decodeSnapshot(data)
	defer mine.release()
	checkSnapshotInEvent(t, data, mine, ok)
	if !ok {
		return false
	}
	var std fullSnapshotData
	if err := json.Unmarshal(data, &std); err != nil {
		t.Fatalf("decodeSnapshot read %q, which encoding/json refuses: %v", data, err)
	}
	if mine.node != (std.Node != nil) {
		t.Fatalf("for %q: mine has a node %v, encoding/json %v", data, mine.node, std.Node != nil)
	}
	if mine.offset.InitialOffset != std.InitialOffset {
		t.Fatalf("for %q: mine has the offset %v, encoding/json %v", data, mine.offset.InitialOffset, std.InitialOffset)
	}
	built := newMirror(0)
	defer built.release()
	want := dumpMirror(built.build(std.Node, nil, nil))
	if got := dumpMirror(mine.root); got != want && !namesCollide(mine.root) {
		t.Fatalf("for %q:\ndecoded %s\nbuilt   %s", data, got, want)
	}
	if mine.mirror.size() != built.size() && !namesCollide(mine.root) {
		t.Fatalf("for %q: decoded %d nodes, built %d", data, mine.mirror.size(), built.size())
	}
	return true
}

// checkSnapshotInEvent fails if parseEnvelope, which decodes a snapshot's
// data as it reads the event, does not decode data in an event as
// decodeSnapshot did by itself (decoded: mine).
func checkSnapshotInEvent(t *testing.T, data []byte, mine *decodedSnapshot, decoded bool) {
	if !json.Valid(data) {
		return // not one value: in an event, it may read as more keys
	}
	raw := append(append([]byte(`{"type":2,"data":`), data...), `,"timestamp":1}`...)
	ev, _, _ := parseEnvelope(raw)
	defer ev.snapshot.release()
	if (ev.snapshot != nil) != decoded {
		t.Fatalf("for %q: decoded in the event %v, alone %v", data, ev.snapshot != nil, decoded)
	}
	if !decoded {
		return
	}
	if a, b := dumpMirror(mine.root), dumpMirror(ev.snapshot.root); a != b || mine.offset != ev.snapshot.offset {
		t.Fatalf("for %q:\nalone    %s\nin event %s", data, a, b)
	}
}

// dumpMirror writes the subtree of n, a mirror's node (nil: none), as
// selectors and redaction read it: each node's type, id, data and
// attributes (values and rrweb's raw JSON) and flags. Strings are written
// with each byte of invalid UTF-8 as U+FFFD, as encoding/json decodes
// them (the scanner keeps them, and they are written so).
func dumpMirror(n *html.Node) string {
	var b strings.Builder
	var dump func(n *html.Node)
	dump = func(n *html.Node) {
		st := stateOf(n)
		fmt.Fprintf(&b, "(%d #%d %q %v %q", n.Type, st.id, []rune(n.Data), n.DataAtom, n.Namespace)
		for _, a := range n.Attr {
			fmt.Fprintf(&b, " %q=%q", []rune(a.Key), []rune(a.Val))
		}
		for _, a := range st.raw {
			raw := a.raw
			if len(raw) > 0 && raw[0] == '"' {
				raw = nil // the value, above, if present
			}
			fmt.Fprintf(&b, " raw %q=%q %v %s", []rune(a.name), []rune(a.val), a.present, raw)
		}
		fmt.Fprintf(&b, " svg=%v style=%v password=%v", st.svg, st.style, st.everPassword)
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			dump(c)
		}
		b.WriteByte(')')
	}
	if n != nil {
		dump(n)
	}
	return b.String()
}

// namesCollide reports whether two attribute names of an element under n
// are one name to encoding/json, which decodes invalid UTF-8 as U+FFFD:
// it then keeps one of the two.
func namesCollide(n *html.Node) bool {
	if n == nil {
		return false
	}
	names := make(map[string]bool)
	for _, a := range stateOf(n).raw {
		name := string([]rune(a.name))
		if names[name] {
			return true
		}
		names[name] = true
	}
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		if namesCollide(c) {
			return true
		}
	}
	return false
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
