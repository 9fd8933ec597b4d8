package policies

import (
	"encoding/json"
	"testing"
)

// FuzzRedactor feeds event streams (a JSON array of rrweb events) to a
// Redactor under a policy with every kind of rule: it must never panic, and
// send only valid JSON events of the types it knows, each with the type
// (and URL) it tells the hub.
func FuzzRedactor(f *testing.F) {
	seed := func(events ...json.RawMessage) {
		b, err := json.Marshal(events)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	seed(meta(f, "https://shop.example.com/account/x?e=jane@example.com"), snapshot(f, accountPage()))
	seed(meta(f, "https://shop.example.com/account/"), snapshot(f, accountPage()),
		mutation(f, map[string]any{
			"adds":       []any{map[string]any{"parentId": 7, "nextId": 8, "node": el(30, "b", map[string]any{"class": "secret"}, txt(31, "x"))}},
			"texts":      []any{map[string]any{"id": 13, "value": "SSN 987-65-4321"}},
			"attributes": []any{map[string]any{"id": 14, "attributes": map[string]any{"id": "ssn-block", "style": map[string]any{"color": "red"}}}},
			"removes":    []any{map[string]any{"parentId": 6, "id": 9}},
		}),
		incr(f, sourceInput, map[string]any{"id": 16, "text": "hunter22", "isChecked": false}),
		incr(f, sourceSelection, map[string]any{"ranges": []any{map[string]any{"start": 23, "startOffset": 0, "end": 23, "endOffset": 1}}}),
		incr(f, sourceStyleSheetRule, map[string]any{"adds": []any{map[string]any{"rule": `a::after{content:"x"}`}}}))
	f.Fuzz(func(t *testing.T, stream []byte) {
		var events []json.RawMessage
		if json.Unmarshal(stream, &events) != nil {
			return
		}
		r := redactor(t, accountPolicy)
		for _, e := range events {
			redact(t, r, e) // checks every event sent
		}
	})
}
