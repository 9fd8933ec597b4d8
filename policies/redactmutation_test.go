package policies

import (
	"encoding/json"
	"testing"

	"github.com/cobrowse/cobrowse/internal/rrweb"
	"github.com/cobrowse/cobrowse/internal/rrwebtest"
)

// recordedMutations returns the data of the mutations in the recorded demo
// session.
func recordedMutations(t testing.TB) [][]byte {
	var out [][]byte
	for _, b := range rrwebtest.DemoSession(t) {
		for _, raw := range b {
			ev, _, ok := parseEnvelope(raw)
			if !ok || ev.Type != rrweb.IncrementalSnapshot {
				continue
			}
			if source, ok := dataSource(ev.Data); ok && source == sourceMutation {
				out = append(out, ev.Data)
			}
		}
	}
	if len(out) == 0 {
		t.Fatal("no mutation in the recorded session")
	}
	return out
}

// checkSameMutation fails if decodeMutation decodes data and encoding/json
// does not, or decodes it differently, or if appendMutation writes what
// encoding/json decoded otherwise than encoding/json does.
func checkSameMutation(t *testing.T, data []byte) (decoded bool) {
	mine, ok := decodeMutation(data)
	if !ok {
		return false
	}
	var std mutationData
	if err := json.Unmarshal(data, &std); err != nil {
		t.Fatalf("decodeMutation read %q, which encoding/json refuses: %v", data, err)
	}
	a, errA := appendMutation(nil, mine)
	b, errB := appendMutation(nil, &std)
	// Compared as JSON values: a string with invalid UTF-8 is decoded to
	// U+FFFD by encoding/json, and kept by the scanner (then written as
	// \ufffd).
	if (errA == nil) != (errB == nil) || errA == nil && !sameJSON(t, a, b) {
		t.Fatalf("for %q:\nmine %s (%v)\nstd  %s (%v)", data, a, errA, b, errB)
	}
	if errA == nil {
		for i, ac := range mine.Attributes {
			checkSameAttributes(t, data, ac.Attributes, std.Attributes[i].Attributes)
		}
		for i, add := range mine.Adds {
			if add.Node != nil {
				checkSameValues(t, data, add.Node, std.Adds[i].Node)
			}
		}
	}
	// appendMutation writes nil lists as empty ones.
	if std.Texts == nil {
		std.Texts = []textMutation{}
	}
	if std.Attributes == nil {
		std.Attributes = []attributeChange{}
	}
	if std.Removes == nil {
		std.Removes = []removedNode{}
	}
	if std.Adds == nil {
		std.Adds = []addedNode{}
	}
	c, errC := json.Marshal(&std)
	if (errB == nil) != (errC == nil) || errB == nil && !sameJSON(t, b, c) {
		t.Fatalf("for %q:\nappendMutation %s (%v)\nencoding/json  %s (%v)", data, b, errB, c, errC)
	}
	return true
}

func TestDecodeMutationReadsRecordedMutations(t *testing.T) {
	for _, data := range recordedMutations(t) {
		if !checkSameMutation(t, data) {
			t.Errorf("a recorded mutation does not decode: %.200s", data)
		}
	}
}

func FuzzDecodeMutation(f *testing.F) {
	for _, data := range recordedMutations(f) {
		f.Add(data)
	}
	f.Add([]byte(`{"source":0,"texts":[{"id":5,"value":"a\u00e9<b>\n"},{"id":6,"value":null}],"attributes":[{"id":7,"attributes":{"class":"x","hidden":"","disabled":null,"width":3,"style":{"color":"red","margin":["0","important"],"top":false}}}],"removes":[{"parentId":1,"id":2,"isShadow":true}],"adds":[{"parentId":3,"previousId":4,"nextId":null,"node":{"type":2,"id":8,"tagName":"b","attributes":{},"childNodes":[{"type":3,"id":9,"textContent":"hi"}]}}],"isAttachIframe":true}`))
	f.Add([]byte(`{"source":0,"attributes":[{"id":1,"attributes":{"b":"1","a":"x\ty\u00e9","b":"3","B":4,"c":true,"d":false,"e":null}}],"adds":[{"parentId":1,"node":{"type":2,"id":2,"tagName":"i","attributes":{"z":"1","z":"2","Z":"\"q\""}}}]}`))
	f.Add([]byte(`{"SOURCE":0,"Texts":null,"attributes":[{"ID":1,"attributes":null}],"removes":null,"adds":[{"parentId":1,"nextId":2,"node":null,"extra":{"a":[1,"b"]}}],"other":true}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkSameMutation(t, data)
	})
}
