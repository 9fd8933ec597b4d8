package policies

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// leakPage is the page the leak property starts from: a masked container
// (.secret), a removed one (#ssn-block), a public one (#public) and a
// container whose class the operations toggle (#toggle), which only ever
// holds public text, and a password field.
func leakPage() node {
	return doc(1, el(2, "html", nil, el(3, "body", nil,
		el(10, "div", map[string]any{"class": "secret"}, txt(11, "SECRET-initial-masked")),
		el(20, "div", map[string]any{"id": "ssn-block"}, txt(21, "SECRET-initial-removed")),
		el(30, "div", map[string]any{"id": "public"}, txt(31, "public text")),
		el(40, "div", map[string]any{"id": "toggle"}, txt(41, "public toggled text")),
		el(50, "input", map[string]any{"type": "password"}),
	)))
}

// leakOps turns ops into a stream of events that only ever put secrets
// where the policy hides them: under the masked or the removed container
// (also nested, also moved between the two), in their attributes, in the
// password field; and detector-shaped values anywhere. Every secret it uses
// is returned.
func leakOps(t testing.TB, ops []byte) (events []json.RawMessage, secrets []string) {
	secret := func() string {
		s := fmt.Sprintf("SECRET-%d-zq", len(secrets))
		secrets = append(secrets, s)
		return s
	}
	rng := rand.New(rand.NewPCG(uint64(len(ops)), 7))
	detected := []string{"4111 1111 1111 1111", "jane.doe@example.com", "DE89 3704 0044 0532 0130 00", "123-45-6789"}
	hidden := map[int]int{} // node id → container (10 or 20) of nodes holding secrets
	var hiddenIDs []int     // in creation order, for picking
	next := 100
	for _, op := range ops {
		switch op % 8 {
		case 0, 1: // a secret text, perhaps in a new span, under a hiding container
			parent := []int{10, 20}[rng.IntN(2)]
			if len(hiddenIDs) > 0 && rng.IntN(2) == 0 {
				parent = hiddenIDs[rng.IntN(len(hiddenIDs))]
			}
			span, text := next, next+1
			next += 2
			events = append(events, mutation(t, map[string]any{"adds": []any{
				map[string]any{"parentId": parent, "nextId": nil, "node": el(span, "span", map[string]any{"title": secret(), "data-x": secret()}, txt(text, secret()))},
			}}))
			hidden[span], hidden[text] = parent, parent
			hiddenIDs = append(hiddenIDs, span, text)
		case 2: // a secret text change of a hidden node
			if len(hiddenIDs) == 0 {
				continue
			}
			id := hiddenIDs[rng.IntN(len(hiddenIDs))]
			events = append(events, mutation(t, map[string]any{
				"texts":      []any{map[string]any{"id": id, "value": secret()}},
				"attributes": []any{map[string]any{"id": id, "attributes": map[string]any{"aria-label": secret(), "placeholder": secret()}}},
			}))
		case 3: // move a hidden node to the other hiding container
			if len(hiddenIDs) == 0 {
				continue
			}
			id := hiddenIDs[rng.IntN(len(hiddenIDs))]
			to := 30 - hidden[id] // 10 <-> 20
			if hidden[id] != 10 && hidden[id] != 20 {
				to = 10
			}
			moved := next
			next++
			events = append(events, mutation(t, map[string]any{
				"removes": []any{map[string]any{"parentId": hidden[id], "id": id}},
				"adds":    []any{map[string]any{"parentId": to, "nextId": nil, "node": txt(moved, secret())}},
			}))
			hidden[moved] = to
			hiddenIDs = append(hiddenIDs, moved)
		case 4: // toggle the public container's class: only public text in it
			class := []any{"secret", nil, "other"}[rng.IntN(3)]
			events = append(events, mutation(t, map[string]any{"attributes": []any{map[string]any{"id": 40, "attributes": map[string]any{"class": class}}}}))
		case 5: // a detector-shaped value in public text, an attribute or a URL
			v := detected[rng.IntN(len(detected))]
			id := next
			next++
			events = append(events, mutation(t, map[string]any{"adds": []any{
				map[string]any{"parentId": 30, "nextId": nil, "node": el(id, "a", map[string]any{"href": "/p?q=" + v, "title": "see " + v}, txt(id+100000, "call "+v))},
			}}))
		case 6: // the visitor types a secret into the password field, shows it, types again
			events = append(events, incr(t, sourceInput, map[string]any{"id": 50, "text": secret(), "isChecked": false}))
			if rng.IntN(2) == 0 {
				events = append(events, mutation(t, map[string]any{"attributes": []any{map[string]any{"id": 50, "attributes": map[string]any{"type": "text"}}}}))
			}
		case 7: // the masked container gets another class and a secret attribute; it stays masked
			events = append(events, mutation(t, map[string]any{"attributes": []any{map[string]any{"id": 10, "attributes": map[string]any{"class": "secret extra", "data-note": secret()}}}}))
		}
	}
	return events, append(secrets, detected...)
}

// checkNoLeak runs the events through a Redactor and fails if any secret,
// as it is or URL-encoded, is in what it sends.
func checkNoLeak(t testing.TB, ops []byte) {
	r := redactor(t, accountPolicy)
	events, secrets := leakOps(t, ops)
	events = append([]json.RawMessage{meta(t, "https://shop.example.com/account/"), snapshot(t, leakPage())}, events...)
	secrets = append(secrets, "SECRET-initial-masked", "SECRET-initial-removed")
	var out strings.Builder
	for _, e := range events {
		for _, o := range redact(t, r, e) {
			out.Write(o)
			out.WriteByte('\n')
		}
	}
	sent := out.String()
	for _, s := range secrets {
		for _, form := range []string{s, strings.ReplaceAll(s, " ", "+"), strings.ReplaceAll(s, " ", "%20"), strings.ReplaceAll(s, "@", "%40")} {
			if strings.Contains(sent, form) {
				t.Fatalf("secret %q leaked as %q (ops % x):\n%s", s, form, ops, sent)
			}
		}
	}
	if !strings.Contains(sent, "public text") {
		t.Fatalf("the public text never reached the agent: the check proves nothing\n%s", sent)
	}
	if n := r.mirror.size(); n > 12+len(ops)*2 {
		t.Fatalf("the mirror holds %d nodes after %d operations", n, len(ops))
	}
}

// TestRedactorNeverLeaks runs random operation streams (see leakOps).
func TestRedactorNeverLeaks(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		ops := make([]byte, rng.IntN(60))
		for i := range ops {
			ops[i] = byte(rng.UintN(256))
		}
		checkNoLeak(t, ops)
	}
}

// FuzzRedactorNeverLeaks lets the fuzzer choose the operations.
func FuzzRedactorNeverLeaks(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7})
	f.Add([]byte{0, 0, 3, 3, 2, 4, 4, 7, 6, 6, 5})
	f.Fuzz(func(t *testing.T, ops []byte) {
		if len(ops) > 200 {
			return
		}
		checkNoLeak(t, ops)
	})
}
