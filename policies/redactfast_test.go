package policies

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/cobrowse/cobrowse/internal/rrweb"
)

func TestIsNumericEvent(t *testing.T) {
	for _, tc := range []struct {
		event string
		want  bool
	}{
		{`{"type":3,"data":{"source":1,"positions":[{"x":10,"y":20.5,"id":7,"timeOffset":-40}]},"timestamp":1700000000000}`, true},
		{`{"type":3,"data":{"source":1,"positions":[]},"timestamp":1,"delay":2}`, true},
		{` { "type" : 3 , "data" : { "source" : 3 , "id" : 1 , "x" : 0 , "y" : 1e3 } , "timestamp" : 1 } `, true},
		{`{"type":3,"data":{"source":2,"type":2,"id":5,"x":1,"y":2,"pointerType":0},"timestamp":1}`, true},
		{`{"type":3,"data":{"source":4,"width":1280,"height":800},"timestamp":1}`, true},
		{`{"type":3,"data":{"source":7,"type":1,"id":3,"currentTime":1.5,"muted":true,"loop":false},"timestamp":1}`, true},
		{`{"type":3,"data":{"source":12,"positions":[{"x":1,"y":2,"id":3,"timeOffset":0},{"x":1,"y":2,"id":3,"timeOffset":0}]},"timestamp":1}`, true},

		{`{"type":3,"data":{"source":3,"id":1,"x":0,"y":0,"text":"a"},"timestamp":1}`, false},       // a key of another source
		{`{"type":3,"data":{"source":3,"id":1,"x":"0","y":0},"timestamp":1}`, false},                // a string
		{`{"type":3,"data":{"source":3,"id":1,"x":0,"x":5},"timestamp":1}`, false},                  // a key twice
		{`{"type":3,"data":{"source":3,"id":1,"x":0},"type":3,"timestamp":1}`, false},               // an event key twice
		{`{"type":3,"data":{"\u0073ource":3,"id":1},"timestamp":1}`, false},                         // an escaped key
		{`{"type":3,"data":{"id":1,"source":3},"timestamp":1}`, false},                              // source not first
		{`{"type":3,"data":{"source":5,"id":1,"text":"x","isChecked":false},"timestamp":1}`, false}, // an input
		{`{"type":3,"data":{"source":0,"texts":[],"attributes":[],"removes":[],"adds":[]},"timestamp":1}`, false},
		{`{"type":2,"data":{"source":3,"id":1},"timestamp":1}`, false},
		{`{"type":3,"data":{"source":3,"id":1}}`, false},                 // no timestamp
		{`{"type":3,"data":{"source":3,"id":1},"timestamp":1}x`, false},  // trailing bytes
		{`{"type":3,"data":{"source":3,"id":01},"timestamp":1}`, false},  // leading zero
		{`{"type":3,"data":{"source":3,"id":NaN},"timestamp":1}`, false}, // not JSON
		{`{"type":3,"data":{"source":1,"positions":[{"x":1,"z":2}]},"timestamp":1}`, false},
		{`{"type":3,"data":{"source":1,"positions":{"x":1}},"timestamp":1}`, false},
		{`{"type":3,"data":{"source":7,"muted":"true"},"timestamp":1}`, false},
		{`{"type":3,"leak":"x","data":{"source":3},"timestamp":1}`, false},
		{`{"type":3,"data":{"source":3,"id":{"x":1}},"timestamp":1}`, false},
		{`{"type":3,"data":{"source":3,"id":1},"timestamp":1,"data":{"source":3}}`, false},
	} {
		if got := isNumericEvent([]byte(tc.event)); got != tc.want {
			t.Errorf("isNumericEvent(%s) = %v, want %v", tc.event, got, tc.want)
		}
	}
}

// FuzzNumericEvent checks the fast paths against the full one: whatever
// Redact sends for an event, the full decoding path (fullPath) must
// send the same content, on a page with a plain text field (id 3), a
// password field (id 4), a text node (5), style text (7) and textarea text
// (9).
func FuzzNumericEvent(f *testing.F) {
	f.Add([]byte(`{"type":3,"data":{"source":1,"positions":[{"x":10,"y":20.5,"id":7,"timeOffset":-40}]},"timestamp":1700000000000}`))
	f.Add([]byte(`{"type":3,"data":{"source":7,"type":1,"id":3,"currentTime":1.5,"muted":true},"timestamp":1,"delay":0}`))
	f.Add([]byte(`{"type":3,"data":{"source":2,"type":2,"id":5,"x":1,"y":2,"pointerType":0},"timestamp":1}`))
	f.Add([]byte(`{"type":3,"data":{"source":5,"id":3,"text":"red shoes","isChecked":false,"userTriggered":true},"timestamp":1}`))
	f.Add([]byte(`{"type":3,"data":{"source":5,"id":3,"text":"jane@example.com \u00e9","isChecked":false},"timestamp":1}`))
	f.Add([]byte(`{"type":3,"data":{"source":5,"id":4,"text":"hunter22","isChecked":false},"timestamp":1}`))
	f.Add([]byte(`{"type":3,"data":{"source":0,"texts":[{"id":5,"value":"total 3"}],"attributes":[],"removes":[],"adds":[]},"timestamp":1}`))
	f.Add([]byte(`{"type":3,"data":{"source":0,"texts":[{"id":5,"value":"jane@example.com"},{"id":7,"value":null}],"attributes":[],"removes":[],"adds":[]},"timestamp":1}`))
	f.Add([]byte(`{"type":3,"data":{"adds":[],"source":0,"removes":[],"attributes":[],"texts":[{"value":"x\ny","id":7}]},"timestamp":1}`))
	page := doc(1, el(2, "body", nil, el(3, "input", map[string]any{"type": "text"}), el(4, "input", map[string]any{"type": "password"}),
		txt(5, "total 2"), el(6, "style", nil, txt(7, "a{color:red}")), el(8, "textarea", nil, txt(9, "notes"))))
	f.Fuzz(func(t *testing.T, raw []byte) {
		fast, full := redactor(t, ""), redactor(t, "")
		run(t, fast, meta(t, "https://a.example/"), snapshot(t, page))
		run(t, full, meta(t, "https://a.example/"), snapshot(t, page))
		got, want := redact(t, fast, raw), fullPath(t, full, raw)
		if len(got) != len(want) {
			t.Fatalf("for %s, Redact sends %d events, the full path %d", raw, len(got), len(want))
		}
		for i := range got {
			if !sameJSON(t, got[i], want[i]) {
				t.Fatalf("for %s, Redact sends %s, the full path %s", raw, got[i], want[i])
			}
		}
	})
}

func TestInputEvent(t *testing.T) {
	for _, tc := range []struct {
		event string
		id    int64
		text  string
		ok    bool
	}{
		{`{"type":3,"data":{"source":5,"id":12,"text":"red shoes","isChecked":false},"timestamp":1}`, 12, "red shoes", true},
		{`{"type":3,"data":{"id":12,"text":"a\"b\u00e9","isChecked":true,"userTriggered":false,"source":5},"timestamp":1,"delay":3}`, 12, "a\"bé", true},
		{`{"type":3,"data":{"source":5,"id":12,"text":"x","isChecked":false,"extra":1},"timestamp":1}`, 0, "", false},
		{`{"type":3,"data":{"source":5,"id":12,"isChecked":false},"timestamp":1}`, 0, "", false},
		{`{"type":3,"data":{"source":5,"id":12,"text":5,"isChecked":false},"timestamp":1}`, 0, "", false},
		{`{"type":3,"data":{"source":5,"id":1.5,"text":"x","isChecked":false},"timestamp":1}`, 0, "", false},
		{`{"type":3,"data":{"source":5,"source":5,"id":1,"text":"x","isChecked":false},"timestamp":1}`, 0, "", false},
		{`{"type":3,"data":{"source":3,"id":1,"text":"x","isChecked":false},"timestamp":1}`, 0, "", false},
		{"{\"type\":3,\"data\":{\"source\":5,\"id\":1,\"text\":\"a\tb\",\"isChecked\":false},\"timestamp\":1}", 0, "", false},
	} {
		id, text, ok := inputEvent([]byte(tc.event))
		if id != tc.id || text != tc.text || ok != tc.ok {
			t.Errorf("inputEvent(%s) = %d, %q, %v; want %d, %q, %v", tc.event, id, text, ok, tc.id, tc.text, tc.ok)
		}
	}
}

// sameJSON reports whether a and b hold the same JSON value (numbers
// compared as written).
func sameJSON(t *testing.T, a, b []byte) bool {
	decode := func(b []byte) any {
		d := json.NewDecoder(bytes.NewReader(b))
		d.UseNumber()
		var v any
		if err := d.Decode(&v); err != nil {
			t.Fatalf("decoding %s: %v", b, err)
		}
		return v
	}
	return reflect.DeepEqual(decode(a), decode(b))
}

// FuzzAppendString checks the snapshot encoder's strings against
// encoding/json's.
func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "plain", `q"b\s`, "a\nb\tc\r\x00\x1f", "<script>&", "é€😀", "\xff\xfe", "\u2028\u2029", "\xed\xa0\x80"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, _ := json.Marshal(s)
		if got := appendString(nil, s); string(got) != string(want) {
			t.Fatalf("appendString(%q) = %s, want %s", s, got, want)
		}
	})
}

func TestTextMutationEvent(t *testing.T) {
	for _, tc := range []struct {
		event string
		want  int // number of changes; -1: not a text-only mutation
	}{
		{`{"type":3,"data":{"source":0,"texts":[{"id":5,"value":"a"},{"id":6,"value":"b\n"}],"attributes":[],"removes":[],"adds":[]},"timestamp":1}`, 2},
		{`{"type":3,"data":{"source":0,"texts":[],"attributes":[],"removes":[],"adds":[]},"timestamp":1}`, 0},
		{`{"type":3,"data":{"source":0,"texts":[{"id":5,"value":null}],"attributes":[],"removes":[],"adds":[]},"timestamp":1}`, -1},
		{`{"type":3,"data":{"source":0,"texts":[{"id":5,"value":"a"}],"attributes":[{"id":5,"attributes":{}}],"removes":[],"adds":[]},"timestamp":1}`, -1},
		{`{"type":3,"data":{"source":0,"texts":[{"id":5,"value":"a"}],"removes":[],"adds":[]},"timestamp":1}`, -1},
		{`{"type":3,"data":{"source":0,"texts":[{"id":5,"value":"a","x":1}],"attributes":[],"removes":[],"adds":[]},"timestamp":1}`, -1},
		{`{"type":3,"data":{"source":0,"texts":[{"id":5}],"attributes":[],"removes":[],"adds":[]},"timestamp":1}`, -1},
		{`{"type":3,"data":{"source":0,"texts":[],"attributes":[],"removes":[],"adds":[],"isAttachIframe":true},"timestamp":1}`, -1},
		{`{"type":3,"data":{"source":1,"texts":[],"attributes":[],"removes":[],"adds":[]},"timestamp":1}`, -1},
	} {
		changes, ok := textMutationEvent([]byte(tc.event))
		if got := len(changes); !ok {
			got = -1
		} else if got != tc.want {
			t.Errorf("textMutationEvent(%s): %d changes, want %d", tc.event, got, tc.want)
		}
		if (tc.want < 0) == ok {
			t.Errorf("textMutationEvent(%s): ok = %v, want %v", tc.event, ok, tc.want >= 0)
		}
	}
}

// FuzzUnquote checks unquote against encoding/json on string contents, and
// validQuoted against unquote.
func FuzzUnquote(f *testing.F) {
	for _, s := range []string{`plain`, "a longer plain string\x1f with a control", `a longer plain string\n with an escape`, `a\nb\t\"c\\`, `\u00e9\u20ac`, `\ud83d\ude00`, `\ud800x`, `\udc00\ud800`, `\ud800\u0041`, `\x`, "\x01", `\u12`, "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, content string) {
		if s := (scanner{b: []byte(`"` + content + `"`)}); !s.skipValue() || s.i != len(content)+2 {
			return // an unescaped quote: the scanner would have ended the string there
		}
		naive := len(content) // plainPrefix, a byte at a time
		for i := range len(content) {
			if content[i] == '\\' || content[i] < 0x20 {
				naive = i
				break
			}
		}
		if got := plainPrefix([]byte(content)); got != naive {
			t.Fatalf("plainPrefix(%q) = %d, want %d", content, got, naive)
		}
		got, ok := unquote([]byte(content))
		var want string
		err := json.Unmarshal([]byte(`"`+content+`"`), &want)
		if ok != (err == nil) {
			t.Fatalf("unquote(%q): ok %v, encoding/json: %v", content, ok, err)
		}
		if valid := validQuoted([]byte(content)); valid != ok {
			t.Fatalf("validQuoted(%q) = %v, unquote's ok %v", content, valid, ok)
		}
		if ok && !sameJSON(t, appendString(nil, got), appendString(nil, want)) {
			t.Fatalf("unquote(%q) = %q, encoding/json %q", content, got, want)
		}
	})
}

// The fast paths' checks as whole events, for the tests: each is the
// envelope (parseEnvelope, no other key, an IncrementalSnapshot) and the
// check of its data.

func incrementalData(raw []byte) ([]byte, bool) {
	ev, plain, ok := parseEnvelope(raw)
	return ev.Data, ok && plain && ev.Type == rrweb.IncrementalSnapshot
}

func isNumericEvent(raw []byte) bool {
	data, ok := incrementalData(raw)
	return ok && numbersOnly(data)
}

func inputEvent(raw []byte) (int64, string, bool) {
	data, ok := incrementalData(raw)
	if !ok {
		return 0, "", false
	}
	return typedValue(data)
}

func textMutationEvent(raw []byte) ([]textChange, bool) {
	data, ok := incrementalData(raw)
	if !ok {
		return nil, false
	}
	return textChanges(data)
}

// fullPath is Redact without its fast paths: the event decoded, redacted
// and encoded again.
func fullPath(t testing.TB, r *Redactor, raw []byte) []json.RawMessage {
	ev, _, ok := parseEnvelope(raw)
	if !ok {
		return nil
	}
	return checkSent(t, r.redactEvent(ev))
}
