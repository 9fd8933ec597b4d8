package policies

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/cobrowse/cobrowse/internal/rrweb"
)

// Builders of rrweb events for the tests.

type node = map[string]any

func doc(id int, kids ...node) node {
	return node{"type": nodeDocument, "id": id, "childNodes": kids}
}

func el(id int, tag string, attrs map[string]any, kids ...node) node {
	if attrs == nil {
		attrs = map[string]any{}
	}
	if kids == nil {
		kids = []node{}
	}
	return node{"type": nodeElement, "id": id, "tagName": tag, "attributes": attrs, "childNodes": kids}
}

func txt(id int, s string) node { return node{"type": nodeText, "id": id, "textContent": s} }

func ev(t testing.TB, typ int, data any) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(map[string]any{"type": typ, "data": data, "timestamp": 1700000000000})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func meta(t testing.TB, href string) json.RawMessage {
	return ev(t, rrweb.Meta, map[string]any{"href": href, "width": 1280, "height": 800})
}

func snapshot(t testing.TB, root node) json.RawMessage {
	return ev(t, rrweb.FullSnapshot, map[string]any{"node": root, "initialOffset": map[string]any{"top": 0, "left": 0}})
}

func incr(t testing.TB, source int, data map[string]any) json.RawMessage {
	data["source"] = source
	return ev(t, rrweb.IncrementalSnapshot, data)
}

func mutation(t testing.TB, m map[string]any) json.RawMessage {
	for _, k := range []string{"texts", "attributes", "removes", "adds"} {
		if _, ok := m[k]; !ok {
			m[k] = []any{}
		}
	}
	return incr(t, sourceMutation, m)
}

// redactor returns a Redactor with the policy in yaml (Default if "").
func redactor(t testing.TB, yaml string) *Redactor {
	t.Helper()
	p := Default()
	if yaml != "" {
		var err error
		if p, err = Parse("test.yaml", []byte(yaml)); err != nil {
			t.Fatal(err)
		}
	}
	return NewRedactor(func() *Policy { return p })
}

// run feeds events to r and returns everything it sends, as one string.
func run(t testing.TB, r *Redactor, events ...json.RawMessage) string {
	t.Helper()
	var out []string
	for _, e := range events {
		for _, o := range redact(t, r, e) {
			out = append(out, string(o))
		}
	}
	return strings.Join(out, "\n")
}

// redact returns the events r sends in place of e, after checking that each
// holds what r says of it: the hub stores and forwards them without reading
// them again (session.Redactor).
func redact(t testing.TB, r *Redactor, e json.RawMessage) []json.RawMessage {
	t.Helper()
	return checkSent(t, r.Redact(e))
}

// checkSent checks that each event holds what its rrweb.Event says (valid
// JSON, its type, a numeric timestamp, a Meta event's URL), and returns
// the events' JSON.
func checkSent(t testing.TB, events []rrweb.Event) []json.RawMessage {
	t.Helper()
	var out []json.RawMessage
	for _, ev := range events {
		got, err := rrweb.Parse(ev.JSON)
		if err != nil {
			t.Fatalf("sent %s: %v", ev.JSON, err)
		}
		switch got.Type {
		case rrweb.DOMContentLoaded, rrweb.Load, rrweb.FullSnapshot, rrweb.IncrementalSnapshot, rrweb.Meta:
		default:
			t.Fatalf("sent an event of type %d: %s", got.Type, ev.JSON)
		}
		if got.Type != ev.Type || got.Href != ev.Href {
			t.Fatalf("sent %s as type %d with href %q", ev.JSON, ev.Type, ev.Href)
		}
		out = append(out, ev.JSON)
	}
	return out
}

func mustContain(t *testing.T, out string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %s:\n%s", w, out)
		}
	}
}

func mustNotContain(t *testing.T, out string, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if strings.Contains(out, s) {
			t.Errorf("output leaks %q:\n%s", s, out)
		}
	}
}

const accountPolicy = `version: 1
detectors: [card_number, iban, ssn, email, phone]
rules:
  - name: account-secrets
    pages: ["/account/**"]
    mask: [".secret", "#holder"]
    remove: ["#ssn-block"]
    no_control: ["button.pay"]
  - name: admin
    pages: ["/admin/**"]
    block_page: true
`

// page is a snapshot of an account page with something for every rule.
func accountPage() node {
	return doc(1,
		el(2, "html", nil,
			el(3, "head", nil, el(4, "title", nil, txt(5, "Account of jane@example.com"))),
			el(6, "body", nil,
				el(7, "p", map[string]any{"class": "secret", "title": "Balance tooltip"}, txt(8, "Balance 1234.56")),
				el(9, "div", map[string]any{"id": "holder"}, el(10, "span", nil, txt(11, "Jane Doe"))),
				el(12, "div", map[string]any{"id": "ssn-block", "class": "box", "data-ssn": "123-45-6789"}, txt(13, "SSN 123-45-6789")),
				el(14, "p", nil, txt(15, "Card 4111 1111 1111 1111 on file")),
				el(16, "input", map[string]any{"type": "password", "value": "hunter22"}),
				el(17, "a", map[string]any{"href": "javascript:alert(1)", "onclick": "steal()"}, txt(18, "link")),
				el(19, "img", map[string]any{"src": "data:image/png;base64,AAAA", "rr_dataURL": "data:image/png;base64,BBBB"}),
				el(20, "a", map[string]any{"href": "/orders?email=jane@example.com&page=2"}, txt(21, "orders")),
				el(22, "p", nil, txt(23, "Public text stays")),
			)))
}

func TestRedactorFullSnapshot(t *testing.T) {
	r := redactor(t, accountPolicy)
	out := run(t, r, meta(t, "https://shop.example.com/account/home?token=jane@example.com"), snapshot(t, accountPage()))
	mustNotContain(t, out,
		"jane@example.com", "1234.56", "Balance tooltip", "Jane Doe", "123-45-6789", "SSN",
		"4111 1111 1111 1111", "hunter22", "javascript:", "steal()", "onclick", "data:image", "rr_dataURL")
	mustContain(t, out,
		`"Public text stays"`,
		`"******* *******"`, // same length, whitespace kept
		`"Card **** **** **** **** on file"`,
		`"id":12,"tagName":"div","attributes":{`, // the removed box is still there
		`/orders?email=****************\u0026page=2`,
		`"href":"https://shop.example.com/account/home?token=****************"`)
	if strings.Contains(out, `"id":13`) {
		t.Errorf("the removed block's text node was sent:\n%s", out)
	}
	want := map[string]int{
		"mask .secret":            2, // the text and the title
		"mask #holder":            1,
		"remove #ssn-block":       1,
		"detector card_number":    1,
		"detector email":          3, // Meta URL, title, link query
		"inputs: sensitive field": 1,
	}
	got := r.Counts()
	for what, n := range want {
		if got[what] != n {
			t.Errorf("Counts()[%q] = %d, want %d (all: %v)", what, got[what], n, got)
		}
	}
	if again := r.Counts(); len(again) != 0 {
		t.Errorf("Counts did not clear: %v", again)
	}
}

func TestRedactorFailsClosed(t *testing.T) {
	r := redactor(t, "")
	for _, tc := range []struct {
		name string
		ev   json.RawMessage
	}{
		{"snapshot before any Meta", snapshot(t, doc(1))},
		{"not JSON", json.RawMessage(`{"type":2,`)},
		{"no timestamp", json.RawMessage(`{"type":4,"data":{"href":"https://a.example/"}}`)},
		{"plugin event", ev(t, 6, map[string]any{"plugin": "rrweb/console@1", "payload": map[string]any{"payload": []string{"jane@example.com"}}})},
		{"custom event", ev(t, 5, map[string]any{"tag": "x", "payload": "jane@example.com"})},
		{"unknown type", ev(t, 42, map[string]any{})},
	} {
		if out := redact(t, r, tc.ev); out != nil {
			t.Errorf("%s: sent %s", tc.name, out)
		}
	}
	run(t, r, meta(t, "https://a.example/"), snapshot(t, doc(1, el(2, "html", nil, el(3, "canvas", nil), txt(4, "t")))))
	for _, tc := range []struct {
		name string
		ev   json.RawMessage
	}{
		{"canvas mutation", incr(t, 9, map[string]any{"id": 3, "type": 0, "commands": []any{}})},
		{"console log", incr(t, 11, map[string]any{"payload": []string{"jane@example.com"}})},
		{"unknown source", incr(t, 99, map[string]any{"text": "jane@example.com"})},
		{"input on an unknown node", incr(t, sourceInput, map[string]any{"id": 77, "text": "x", "isChecked": false})},
		{"input on the document node", incr(t, sourceInput, map[string]any{"id": 1, "text": "x", "isChecked": false})},
		{"input on a text node", incr(t, sourceInput, map[string]any{"id": 4, "text": "x", "isChecked": false, "userTriggered": true})},
	} {
		if out := redact(t, r, tc.ev); out != nil {
			t.Errorf("%s: sent %s", tc.name, out)
		}
	}
	// Known events lose the fields that this version does not know.
	out := run(t, r, incr(t, sourceScroll, map[string]any{"id": 1, "x": 0, "y": 10, "leak": "jane@example.com"}))
	mustNotContain(t, out, "leak", "jane@example.com")
	mustContain(t, out, `"y":10`)
}

func TestRedactorMutations(t *testing.T) {
	r := redactor(t, accountPolicy)
	run(t, r, meta(t, "https://shop.example.com/account/"), snapshot(t, accountPage()))

	t.Run("text added under a masked element", func(t *testing.T) {
		out := run(t, r, mutation(t, map[string]any{"adds": []any{
			map[string]any{"parentId": 7, "nextId": nil, "node": el(30, "b", nil, txt(31, "Overdraft 99.00"))},
		}}))
		mustNotContain(t, out, "Overdraft", "99.00")
		mustContain(t, out, `"********* *****"`)
	})
	t.Run("node under an unknown parent", func(t *testing.T) {
		out := run(t, r, mutation(t, map[string]any{"adds": []any{
			map[string]any{"parentId": 999, "nextId": nil, "node": txt(32, "orphan secret")},
		}}))
		mustNotContain(t, out, "orphan secret")
	})
	t.Run("text change of a masked node", func(t *testing.T) {
		out := run(t, r, mutation(t, map[string]any{"texts": []any{map[string]any{"id": 8, "value": "Balance 7.00"}}}))
		mustNotContain(t, out, "7.00")
		mustContain(t, out, `"value":"******* ****"`)
	})
	t.Run("detectors on new text", func(t *testing.T) {
		out := run(t, r, mutation(t, map[string]any{"texts": []any{map[string]any{"id": 23, "value": "mail jane@example.com"}}}))
		mustNotContain(t, out, "jane@example.com")
	})
	t.Run("inside the removed block", func(t *testing.T) {
		out := run(t, r, mutation(t, map[string]any{
			"texts":      []any{map[string]any{"id": 13, "value": "SSN 987-65-4321"}},
			"attributes": []any{map[string]any{"id": 12, "attributes": map[string]any{"data-ssn": "987-65-4321", "class": "box wide"}}},
			"adds":       []any{map[string]any{"parentId": 12, "nextId": nil, "node": txt(33, "more 987-65-4321")}},
		}))
		mustNotContain(t, out, "987-65-4321", "data-ssn", `"id":13`, `"id":33`)
		mustContain(t, out, `"class":"box wide"`)
	})
	t.Run("becoming masked and unmasked", func(t *testing.T) {
		out := run(t, r, mutation(t, map[string]any{"attributes": []any{map[string]any{"id": 22, "attributes": map[string]any{"class": "secret"}}}}))
		mustContain(t, out, `"value":"**** ****************"`)
		out = run(t, r, mutation(t, map[string]any{"attributes": []any{map[string]any{"id": 22, "attributes": map[string]any{"class": nil}}}}))
		mustContain(t, out, `"value":"mail ****************"`) // the real text again, with the detector's mask
	})
	t.Run("becoming removed and back", func(t *testing.T) {
		out := run(t, r, mutation(t, map[string]any{"attributes": []any{map[string]any{"id": 14, "attributes": map[string]any{"id": "ssn-block"}}}}))
		mustContain(t, out, `"removes":[{"parentId":14,"id":15}]`)
		out = run(t, r, mutation(t, map[string]any{"attributes": []any{map[string]any{"id": 14, "attributes": map[string]any{"id": "card"}}}}))
		mustContain(t, out, `"adds":[{"parentId":14,"nextId":null,"node":{"type":3,"id":15,"textContent":"Card **** **** **** **** on file"`)
	})
	t.Run("removed node", func(t *testing.T) {
		out := run(t, r, mutation(t, map[string]any{"removes": []any{map[string]any{"parentId": 6, "id": 22}}}))
		mustContain(t, out, `"removes":[{"parentId":6,"id":22}]`)
		if r.mirror.byID.get(23) != nil {
			t.Error("the removed node's text is still in the mirror")
		}
	})
}

func TestRedactorInputs(t *testing.T) {
	r := redactor(t, accountPolicy)
	run(t, r, meta(t, "https://shop.example.com/checkout"), snapshot(t, doc(1, el(2, "html", nil, el(3, "body", nil,
		el(4, "input", map[string]any{"type": "password"}),
		el(5, "input", map[string]any{"type": "text", "name": "q"}),
		el(6, "input", map[string]any{"autocomplete": "cc-number"}),
	)))))
	typed := func(id int, text string) string {
		return run(t, r, incr(t, sourceInput, map[string]any{"id": id, "text": text, "isChecked": false}))
	}
	mustNotContain(t, typed(4, "hunter22"), "hunter22")
	mustContain(t, typed(5, "red shoes"), `"text":"red shoes"`)
	mustNotContain(t, typed(5, "jane@example.com"), "jane@example.com")
	mustNotContain(t, typed(6, "4000"), "4000")
	// "Show password" turns the field into text: it stays masked.
	run(t, r, mutation(t, map[string]any{"attributes": []any{map[string]any{"id": 4, "attributes": map[string]any{"type": "text"}}}}))
	mustNotContain(t, typed(4, "hunter23"), "hunter23")
}

func TestRedactorBlockedPage(t *testing.T) {
	r := redactor(t, accountPolicy)
	out := run(t, r, meta(t, "https://shop.example.com/admin/users"), snapshot(t, accountPage()),
		mutation(t, map[string]any{"texts": []any{map[string]any{"id": 23, "value": "admin stuff"}}}),
		incr(t, sourceMouseMove, map[string]any{"positions": []any{}}))
	mustContain(t, out, "Hidden by policy")
	mustNotContain(t, out, "Public text stays", "admin stuff", `"source":1`)
	// The next page is not blocked.
	out = run(t, r, meta(t, "https://shop.example.com/"), snapshot(t, accountPage()))
	mustContain(t, out, "Public text stays")
}

// A snapshot with more nodes than a mirror holds hides the page. The
// decoder builds a subtree's nodes before its root, and a root left out
// takes its subtree with it: the page must not then be shown without it.
func TestRedactorHidesAPageTooBigForTheMirror(t *testing.T) {
	var data bytes.Buffer
	data.WriteString(`{"type":2,"timestamp":1,"data":{"initialOffset":{"top":0,"left":0},"node":{"type":0,"id":1,"childNodes":[` +
		`{"type":2,"tagName":"div","attributes":{},"childNodes":[`)
	for i := range maxMirrorNodes {
		if i > 0 {
			data.WriteByte(',')
		}
		fmt.Fprintf(&data, `{"type":3,"textContent":"x","id":%d}`, 10+i)
	}
	data.WriteString(`],"id":2},{"type":3,"textContent":"after the big div","id":3}]}}}`)
	r := redactor(t, accountPolicy)
	out := run(t, r, meta(t, "https://shop.example.com/"), data.Bytes())
	mustContain(t, out, "Hidden by policy")
	mustNotContain(t, out, "after the big div")
}

func TestRedactorSelectionAndCSS(t *testing.T) {
	r := redactor(t, accountPolicy)
	run(t, r, meta(t, "https://shop.example.com/account/"), snapshot(t, accountPage()))
	sel := func(id int) string {
		return run(t, r, incr(t, sourceSelection, map[string]any{"ranges": []any{map[string]any{"start": id, "startOffset": 0, "end": id, "endOffset": 2}}}))
	}
	if out := sel(8); out != "" {
		t.Errorf("selection in masked text sent: %s", out)
	}
	mustContain(t, sel(23), `"ranges":[{"start":23`)
	out := run(t, r, incr(t, sourceStyleSheetRule, map[string]any{"id": 4, "adds": []any{
		map[string]any{"rule": `.who::after { content: "jane@example.com"; color: red }`, "index": 0}}}))
	mustNotContain(t, out, "jane@example.com")
	mustContain(t, out, `color: red`)
}

// BenchmarkRedactorMutation measures a typical mutation (a text change and an
// added element) on a page of a few thousand nodes.
func BenchmarkRedactorMutation(b *testing.B) {
	r := redactor(b, accountPolicy)
	var rows []node
	for i := range 1000 {
		id := 100 + 3*i
		rows = append(rows, el(id, "li", map[string]any{"class": "row"}, el(id+1, "span", nil, txt(id+2, fmt.Sprintf("Item %d costs 9.99", i)))))
	}
	run(b, r, meta(b, "https://shop.example.com/account/"), snapshot(b, doc(1, el(2, "html", nil, el(3, "body", nil, el(4, "ul", nil, rows...))))))
	next := 10000
	b.ReportAllocs()
	for b.Loop() {
		next += 2
		m := mutation(b, map[string]any{
			"texts": []any{map[string]any{"id": 102, "value": "Item 0 costs 10.99"}},
			"adds":  []any{map[string]any{"parentId": 4, "nextId": nil, "node": el(next, "li", nil, txt(next+1, "new row"))}},
		})
		if len(redact(b, r, m)) == 0 {
			b.Fatal("nothing sent")
		}
	}
}

func TestRedactorPage(t *testing.T) {
	r := redactor(t, accountPolicy)
	u, title := r.Page("https://shop.example.com/account/x?mail=jane@example.com", "Hello jane@example.com")
	if u != "https://shop.example.com/account/x?mail=****************" || title != "Hello ****************" {
		t.Errorf("Page = %q, %q", u, title)
	}
	if _, title := r.Page("https://shop.example.com/admin/", "Admin: users"); title != "Hidden by policy" {
		t.Errorf("blocked page's title %q", title)
	}
}

func TestRedactorReportsEachPage(t *testing.T) {
	r := redactor(t, accountPolicy)
	var reports []PageReport
	r.OnPageEnd(func(rep PageReport) { reports = append(reports, rep) })
	run(t, r, meta(t, "https://shop.example.com/account/?mail=jane@example.com"), snapshot(t, accountPage()))
	run(t, r, meta(t, "https://shop.example.com/admin/"), snapshot(t, accountPage()))
	r.Close()
	if len(reports) != 2 {
		t.Fatalf("%d reports, want 2: %+v", len(reports), reports)
	}
	first := reports[0]
	if first.URL != "https://shop.example.com/account/?mail=****************" || !strings.HasPrefix(first.PolicyVersion, "sha256:") ||
		len(first.Rules) != 1 || first.Counts["remove #ssn-block"] != 1 {
		t.Errorf("first page: %+v", first)
	}
	if second := reports[1]; second.Counts["block_page"] != 1 || second.Rules[0] != "admin" {
		t.Errorf("second page: %+v", second)
	}
}

func TestRedactorURLsEncoded(t *testing.T) {
	r := redactor(t, accountPolicy)
	run(t, r, meta(t, "https://shop.example.com/"), snapshot(t, doc(1)))
	for _, tc := range []struct{ in, want string }{
		{"/contact?to=carol%40example.com", "/contact?to=" + stars("carol%40example.com")},
		{"/pay?card=5200+8282+8282+8210&x=1", "/pay?card=" + stars("5200+8282+8282+8210") + "&x=1"},
		{"/pay?card=5200%208282%208282%208210", "/pay?card=" + stars("5200%208282%208282%208210")},
		{"/u/jane%40example.com/orders", "/u/" + stars("jane%40example.com") + "/orders"},
		{"/p#mail=jane%40example.com", "/p#" + stars("mail=jane%40example.com")},
		{"/search?q=red+shoes%21", "/search?q=red+shoes%21"},
		{"/bad?q=%zz%4", "/bad?q=%zz%4"},
	} {
		if got := r.redactURL(tc.in, ""); got != tc.want {
			t.Errorf("redactURL(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// FuzzRedactURL checks redactURL, which copies a URL only once a part of
// it changes, against cutting it with strings.Split and joining every part
// again, as it did before.
func FuzzRedactURL(f *testing.F) {
	for _, s := range []string{"/contact?to=carol%40example.com", "/pay?card=5200+8282+8282+8210&x=1", "/p#mail=jane@example.com",
		"https://a.example/u/jane@example.com/x?y=1&z&=2#f?g#h", "", "?", "#", "//?&&==#"} {
		f.Add(s, false)
		f.Add(s, true)
	}
	r := redactor(f, accountPolicy)
	run(f, r, meta(f, "https://shop.example.com/"), snapshot(f, doc(1)))
	f.Fuzz(func(t *testing.T, s string, masked bool) {
		mask := ""
		if masked {
			mask = "test-mask"
		}
		base, frag, hasFrag := strings.Cut(s, "#")
		base, query, hasQuery := strings.Cut(base, "?")
		segments := strings.Split(base, "/")
		for i, segment := range segments {
			segments[i] = r.detectEncoded(segment, false)
		}
		want := strings.Join(segments, "/")
		if hasQuery {
			pairs := strings.Split(query, "&")
			for i, pair := range pairs {
				k, v, hasValue := strings.Cut(pair, "=")
				pairs[i] = r.detectEncoded(k, true)
				if hasValue {
					pairs[i] += "=" + r.redactURLPart(v, mask)
				}
			}
			want += "?" + strings.Join(pairs, "&")
		}
		if hasFrag {
			want += "#" + r.redactURLPart(frag, mask)
		}
		if got := r.redactURL(s, mask); got != want {
			t.Fatalf("redactURL(%q, %q) = %q, want %q", s, mask, got, want)
		}
	})
}

// stars is what MaskString makes of s, which has no white space.
func stars(s string) string { return strings.Repeat("*", len(s)) }

// TestRedactorSendsEachAddOnce checks that a node added under a node of the
// same mutation is sent by its own add only, as rrweb sends it (a late
// <style> comes with its CSS in _cssText, and its text node apart).
func TestRedactorSendsEachAddOnce(t *testing.T) {
	r := redactor(t, accountPolicy)
	run(t, r, meta(t, "https://shop.example.com/"), snapshot(t, doc(1, el(2, "html", nil, el(3, "head", nil)))))
	out := run(t, r, mutation(t, map[string]any{"adds": []any{
		map[string]any{"parentId": 10, "nextId": nil, "node": txt(11, ".a{color:red}")},
		map[string]any{"parentId": 3, "nextId": nil, "node": el(10, "style", map[string]any{"_cssText": ".a{color:red}"})},
	}}))
	if n := strings.Count(out, `"id":11`); n != 1 {
		t.Errorf("the style's text node is sent %d times, want once:\n%s", n, out)
	}
	mustContain(t, out, `"node":{"type":2,"id":10,"tagName":"style","attributes":{"_cssText":".a{color:red}"},"childNodes":[]}`)
}

func TestRedactCSS(t *testing.T) {
	r := redactor(t, accountPolicy)
	run(t, r, meta(t, "https://shop.example.com/"), snapshot(t, doc(1)))
	for _, tc := range []struct{ css, mask, want string }{
		{`a{color:red}`, "", `a{color:red}`},
		{`a::after{content:"mail jane@example.com"}`, "", `a::after{content:"mail ****************"}`},
		{`a::after{content:'x \'jane@example.com\''}`, "", `a::after{content:'x \*****************\''}`}, // ' may start an address
		{`@font-face{font-family:"DM Serif";src:url("f.woff2")}`, "", `@font-face{font-family:"DM Serif";src:url("f.woff2")}`},
		{`a{content:"secret"} b{content:'two words'}`, "mask .x", `a{content:"******"} b{content:'*** *****'}`},
		{"a{content:\"cut jane@example.com\nb{content:\"jane@example.com\"}", "", "a{content:\"cut ****************\nb{content:\"****************\"}"},
		{`a{content:"unterminated jane@example.com`, "", `a{content:"unterminated ****************`},
	} {
		if got := r.redactCSS(tc.css, tc.mask); got != tc.want {
			t.Errorf("redactCSS(%q, %q) = %q, want %q", tc.css, tc.mask, got, tc.want)
		}
	}
}

func TestHasScheme(t *testing.T) {
	for _, tc := range []struct {
		url      string
		js, data bool
	}{
		{"javascript:alert(1)", true, false},
		{"  JaVa\tScRi\npt:alert(1)", true, false},
		{"\x01\x1f javascript:x", true, false},
		{"java script:x", false, false},
		{"javascript", false, false},
		{"/javascript:x", false, false},
		{"DATA:image/png;base64,AA", false, true},
		{"https://a.example/data:x", false, false},
		{"", false, false},
	} {
		if got := isJavaScriptURL(tc.url); got != tc.js {
			t.Errorf("isJavaScriptURL(%q) = %v", tc.url, got)
		}
		if got := isDataURL(tc.url); got != tc.data {
			t.Errorf("isDataURL(%q) = %v", tc.url, got)
		}
	}
}

// A mirror's memory goes to the next mirror of any tab when its page ends
// (mirror.release): a tab whose page has ended must not see another tab's
// page through it, nor the other tab its old one.
func TestRecycledMirrorsAreNotShared(t *testing.T) {
	page := func(word string) node {
		var items []node
		for i := range 200 { // more than one block of nodes and attributes
			items = append(items, el(10+2*i, "li", map[string]any{"title": word, "class": "row"}, txt(11+2*i, word)))
		}
		return doc(1, el(2, "html", nil, el(3, "body", nil, el(4, "ul", nil, items...))))
	}
	a, b := redactor(t, ""), redactor(t, "")
	run(t, a, meta(t, "https://a.example/"), snapshot(t, page("alpha")))
	run(t, a, meta(t, "https://a.example/next")) // a's mirror is released
	outB := run(t, b, meta(t, "https://b.example/"), snapshot(t, page("bravo")),
		mutation(t, map[string]any{"texts": []any{map[string]any{"id": 11, "value": "bravo changed"}}}))
	mustNotContain(t, outB, "alpha")
	mustContain(t, outB, "bravo changed")
	// a has no page to apply this to: it must send nothing of b's.
	outA := run(t, a, mutation(t, map[string]any{"texts": []any{map[string]any{"id": 13, "value": "x"}},
		"attributes": []any{map[string]any{"id": 12, "attributes": map[string]any{"class": "row2"}}}}))
	mustNotContain(t, outA, "bravo")
	b.Close() // released again; a new snapshot of a reuses it
	outA = run(t, a, snapshot(t, page("charlie")))
	mustNotContain(t, outA, "bravo", "alpha")
	mustContain(t, outA, "charlie")
}
