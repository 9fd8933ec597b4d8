package policies

import (
	"cmp"
	"encoding/json"
	"fmt"
	"iter"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"

	"github.com/cobrowse/cobrowse/internal/rrweb"
)

// A Redactor turns one tab's rrweb event stream, as the visitor script sends
// it, into the stream an agent may see. The server runs it on every event
// before anything else (hub log, agents, renderer) sees it; it does not
// trust the visitor script's own masking.
//
// It keeps a mirror of the page's DOM (see mirror), built from full
// snapshots and mutations, and decides on that whole tree, with the policy of
// the page named by the latest Meta event:
//
//   - remove selectors: the element is sent as an empty box (its tag, and
//     only the attributes that size it: class, id, style, width, height and
//     the rr_width/rr_height that rrweb's own blocking records), its subtree
//     never;
//   - mask selectors: text, input values and text-bearing attributes
//     (value, placeholder, title, alt, label, aria-*, data-*, content, and
//     the query and fragment of URLs) in the subtree are replaced by
//     MaskString, which keeps their length;
//   - input masking: passwords (also after a "show password" toggle turned
//     them into text), e-mail, telephone and hidden fields, card fields
//     (autocomplete cc-*) and one-time codes always (Page.MasksInput);
//     every field with MaskAllInputs;
//   - detectors: everything else that is text (text nodes, comments,
//     attribute values, URLs, CSS content strings, input values, the page
//     URL) has its detected substrings masked;
//   - block_page: the agent gets a placeholder page instead of the page.
//
// Fail closed: event types, incremental sources and fields it does not know
// are dropped: events are decoded and encoded again from known fields only,
// except the events that redactfast.go checks key by key and passes as they
// came (numbers-only pointer, scroll, viewport and media events, and typed
// values and text changes that need no masking). Canvas contents, images
// inlined as data: URLs, srcdoc, plugin and console events are dropped;
// event handler attributes and javascript: URLs are removed; a node added
// under a parent the mirror does not know is masked; and events before the
// first Meta event, or on a page whose mirror outgrew maxMirrorNodes, are
// not sent.
//
// When an attribute change makes an element start or stop matching a rule,
// the Redactor sends, after the change, the events that bring the agent's
// copy of its subtree to the new state: masked or real text and values, or
// the removal or the return of the subtree's children.
//
// It counts what it redacts, by cause (Counts), and reports each page's
// counts when the page ends (OnPageEnd), for the audit log.
//
// A Redactor is not safe for concurrent use: the hub calls it under its tab's
// lock, in event order.
type Redactor struct {
	policy func() *Policy
	page   *Page   // nil before the first Meta event
	mirror *mirror // nil until a full snapshot of the current page
	// blocked is set while the page is hidden from agents: block_page, or
	// a mirror that outgrew its bound.
	blocked bool
	counts  map[string]int // see Counts
	// addOf, while a mutation is being sent, tells which of its adds built
	// each new node (see mutation).
	addOf map[*html.Node]int

	// The page being redacted, for OnPageEnd: its URL as agents see it and
	// the version of the policy that chose its rules.
	pageURL, version string
	onPageEnd        func(PageReport)
}

// PageReport is what a Redactor reports when a page ends (see OnPageEnd).
type PageReport struct {
	URL           string         // the page's URL, redacted as agents see it
	PolicyVersion string         // Policy.Version of the policy in force
	Rules         []string       // the rules that applied
	Counts        map[string]int // the redactions made on the page (see Counts)
}

// OnPageEnd sets a function that the Redactor calls, with what it hid on the
// page, when a page ends: the tab shows another page, or it is closed. It is
// called from Redact and Close, so under the caller's lock: it must not block.
func (r *Redactor) OnPageEnd(f func(PageReport)) { r.onPageEnd = f }

// Close ends the tab: the current page is reported (OnPageEnd).
func (r *Redactor) Close() {
	r.endPage()
	r.dropMirror()
}

// dropMirror forgets the mirror of the page, whose memory goes to the next
// one (mirror.release): no node of it may be held anywhere else.
func (r *Redactor) dropMirror() {
	r.mirror.release()
	r.mirror = nil
}

// endPage reports the page that ends, if there was one.
func (r *Redactor) endPage() {
	counts := r.Counts()
	if r.onPageEnd == nil || r.page == nil {
		return
	}
	r.onPageEnd(PageReport{URL: r.pageURL, PolicyVersion: r.version, Rules: r.page.Rules, Counts: counts})
}

// NewRedactor returns a Redactor for one tab that reads the current policy
// from policy at each page start, so that a reloaded policy applies from the
// visitor's next page or snapshot.
func NewRedactor(policy func() *Policy) *Redactor {
	return &Redactor{policy: policy}
}

// Redact returns the events an agent may see in place of raw: none, raw
// redacted, or raw redacted followed by corrections. The mirror keeps
// strings that are parts of raw (a snapshot's text), so raw must not
// change afterwards (session.Redactor).
//
// Each event comes with its type and, for a Meta event, its redacted URL
// (session.Redactor): every event sent is either written by the Redactor
// or, on the fast path, checked whole by parseEnvelope and r.passes.
func (r *Redactor) Redact(raw json.RawMessage) []rrweb.Event {
	ev, plain, ok := parseEnvelope(raw)
	if !ok {
		r.count("dropped: malformed event")
		return nil
	}
	if plain && ev.Type == rrweb.IncrementalSnapshot && r.page != nil && r.mirror != nil && !r.blocked && r.passes(ev.Data) {
		return []rrweb.Event{{JSON: raw, Type: ev.Type}}
	}
	return r.redactEvent(ev)
}

// passes reports whether an IncrementalSnapshot event with data may be sent
// as it came (see redactfast.go): numbers only, or a typed value or text
// changes that need no masking (which it records in the mirror).
func (r *Redactor) passes(data []byte) bool {
	if numbersOnly(data) {
		return true
	}
	if id, text, ok := typedValue(data); ok {
		return r.plainInput(id, text)
	}
	if changes, ok := textChanges(data); ok {
		return r.plainTexts(changes)
	}
	return false
}

// plainInput records text as the value of field id, and reports whether
// it may be sent as it is: the field is known, not removed, not masked, and
// no detector finds anything in the value.
func (r *Redactor) plainInput(id int64, text string) bool {
	n := r.mirror.byID.get(id)
	if n == nil || n.Type != html.ElementNode {
		return false
	}
	st := stateOf(n)
	if st.removed || r.fieldMaskedBy(n, st) != "" {
		return false
	}
	st.raw.set(stringAttribute("value", text)) // for re-sending it if the node's state changes
	syncAttrs(n, st)
	return len(r.page.Detectors.Find(text)) == 0
}

// plainTexts applies text changes to the mirror and reports whether the
// Mutation that carries them may be sent as it is: every node is a known
// text node outside masked and removed subtrees, not style or textarea
// text (redacted as CSS and as a value), and no detector finds anything in
// its new text. Otherwise nothing is applied: the full path does it.
func (r *Redactor) plainTexts(changes []textChange) bool {
	for _, c := range changes {
		n := r.mirror.byID.get(c.id)
		if n == nil || n.Type != html.TextNode || n.Parent == nil {
			return false
		}
		st := stateOf(n)
		if st.masked || st.removed || st.style || n.Parent.DataAtom == atom.Style || n.Parent.DataAtom == atom.Textarea ||
			len(r.page.Detectors.Find(c.value)) > 0 {
			return false
		}
	}
	for _, c := range changes {
		r.mirror.byID.get(c.id).Data = c.value
	}
	return true
}

// redactEvent is Redact for any event: its data decoded, redacted, encoded
// again.
func (r *Redactor) redactEvent(ev event) []rrweb.Event {
	var out []any
	switch ev.Type {
	case rrweb.DOMContentLoaded, rrweb.Load:
		out = []any{struct{}{}}
	case rrweb.Meta:
		out = r.meta(ev.Data)
	case rrweb.FullSnapshot:
		out = r.fullSnapshot(ev)
	case rrweb.IncrementalSnapshot:
		out = r.incremental(ev.Data)
	}
	if len(out) == 0 {
		r.count(fmt.Sprintf("dropped: event of type %d", ev.Type))
		return nil
	}
	events := make([]rrweb.Event, 0, len(out))
	for _, data := range out {
		enc, whole := data.(json.RawMessage) // an event written whole (fullSnapshot)
		if !whole {
			var err error
			if enc, err = encodeEvent(ev, data); err != nil {
				r.count("dropped: event that could not be encoded")
				return nil
			}
		}
		sent := rrweb.Event{JSON: enc, Type: ev.Type}
		if m, ok := data.(metaData); ok {
			sent.Href = m.Href
		}
		events = append(events, sent)
	}
	return events
}

// encodeEvent encodes an event of ev's type and time with data. It writes the
// envelope itself, a snapshot's node tree (appendNode) and a mutation
// (appendMutation), rather than through encoding/json, which would check
// and copy a snapshot's tens of kilobytes once more at each level.
func encodeEvent(ev event, data any) ([]byte, error) {
	b := appendEventHead(make([]byte, 0, 256), ev)
	var err error
	switch data := data.(type) {
	case *fullSnapshotData:
		b = append(b, `{"node":`...)
		if b, err = appendNode(b, data.Node); err != nil {
			return nil, err
		}
		b = appendOffset(b, data)
	case *mutationData:
		if b, err = appendMutation(b, data); err != nil {
			return nil, err
		}
	default:
		enc, err := json.Marshal(data)
		if err != nil {
			return nil, err
		}
		b = append(b, enc...)
	}
	return appendEventTail(b, ev), nil
}

// appendEventHead appends the start of an event of ev's type, up to its
// data.
func appendEventHead(b []byte, ev event) []byte {
	b = strconv.AppendInt(append(b, `{"type":`...), int64(ev.Type), 10)
	return append(b, `,"data":`...)
}

// appendEventTail appends the end of an event of ev's time, after its data.
func appendEventTail(b []byte, ev event) []byte {
	b = append(append(b, `,"timestamp":`...), ev.Timestamp...)
	if ev.Delay != nil {
		b = append(append(b, `,"delay":`...), *ev.Delay...)
	}
	return append(b, '}')
}

// appendOffset appends the end of a snapshot's data, after its node.
func appendOffset(b []byte, fs *fullSnapshotData) []byte {
	b = append(b, `,"initialOffset":{"top":`...)
	b = append(append(b, cmp.Or(fs.InitialOffset.Top, "0")...), `,"left":`...)
	return append(append(b, cmp.Or(fs.InitialOffset.Left, "0")...), "}}"...)
}

// Page returns the URL and title to show agents for a page the tab says it
// shows (the dashboard's description of a session): redacted with the
// policy of that page; a blocked page's title is hidden.
func (r *Redactor) Page(pageURL, title string) (string, string) {
	saved := r.page
	defer func() { r.page = saved }()
	r.page = r.policy().ForPage(hostPath(pageURL))
	if r.page.Block {
		title = "Hidden by policy"
	}
	return r.redactURL(pageURL, ""), r.detect(title)
}

// hostPath returns the host (without port) and path of a page URL, for
// Policy.ForPage; "/" if it has none or does not parse.
func hostPath(pageURL string) (host, path string) {
	u, err := url.Parse(pageURL)
	if err != nil {
		return "", "/"
	}
	return u.Hostname(), cmp.Or(u.EscapedPath(), "/")
}

// meta starts a new page: its policy applies until the next Meta event.
func (r *Redactor) meta(data json.RawMessage) []any {
	var m metaData
	if json.Unmarshal(data, &m) != nil {
		return nil
	}
	r.endPage()
	policy := r.policy()
	r.page, r.version = policy.ForPage(hostPath(m.Href)), policy.Version()
	r.dropMirror()
	r.blocked = r.page.Block
	m.Href = r.redactURL(m.Href, "")
	r.pageURL = m.Href
	return []any{m}
}

// fullSnapshot rebuilds the mirror from the snapshot ev and sends it
// redacted: the event written whole (a json.RawMessage), straight from the
// mirror into the one buffer, or the blocked page.
func (r *Redactor) fullSnapshot(ev event) []any {
	snap, ok := ev.snapshot, ev.snapshot != nil
	if !ok {
		snap, ok = decodeSnapshot(ev.Data)
	}
	if r.page == nil || !ok || !snap.node {
		// No Meta event (no policy chosen for this page), or no snapshot.
		snap.release()
		return nil
	}
	r.dropMirror()
	r.mirror = snap.mirror
	root := snap.root
	if root == nil || r.mirror.full {
		r.blocked = true
	}
	fs := &snap.offset
	if r.blocked {
		r.count(byBlockPage)
		fs.Node = blockedPage()
		return []any{fs}
	}
	r.evaluate(root, "", "", nil)
	// The redacted snapshot is about as long as the visitor's.
	b := append(appendEventHead(make([]byte, 0, len(ev.Data)+256), ev), `{"node":`...)
	b = appendEventTail(appendOffset(r.appendSerialized(b, root), fs), ev)
	return []any{json.RawMessage(b)}
}

// blockedPage is the document an agent sees instead of a page that the
// policy hides.
func blockedPage() *snode {
	text := &snode{Type: nodeText, ID: 6, TextContent: "Hidden by policy"}
	p := &snode{Type: nodeElement, ID: 5, TagName: "p", Attributes: attributes{
		stringAttribute("style", "font: 16px sans-serif; color: #555; text-align: center; margin-top: 40vh"),
	}, ChildNodes: []*snode{text}}
	body := &snode{Type: nodeElement, ID: 4, TagName: "body", ChildNodes: []*snode{p}}
	head := &snode{Type: nodeElement, ID: 3, TagName: "head"}
	htmlEl := &snode{Type: nodeElement, ID: 2, TagName: "html", ChildNodes: []*snode{head, body}}
	return &snode{Type: nodeDocument, ID: 1, ChildNodes: []*snode{htmlEl}}
}

// incremental redacts an IncrementalSnapshot's data by its source.
func (r *Redactor) incremental(data json.RawMessage) []any {
	source, ok := dataSource(data) // the rest is decoded (and checked) by source
	if !ok || r.page == nil {
		return nil
	}
	if r.blocked || r.mirror == nil {
		return nil // the agent sees the placeholder, or has no snapshot yet
	}
	switch source {
	case sourceMutation:
		return r.mutation(data)
	case sourceInput:
		return decodeThen(data, r.input)
	case sourceSelection:
		return decodeThen(data, r.selection)
	case sourceStyleSheetRule:
		return decodeThen(data, r.styleSheetRule)
	case sourceStyleDeclaration:
		return decodeThen(data, r.styleDeclaration)
	case sourceAdoptedStyleSheet:
		return decodeThen(data, r.adoptedStyleSheet)
	case sourceMouseMove, sourceTouchMove, sourceDrag:
		return decodeThen(data, pass[mouseMoveData])
	case sourceMouseInteraction:
		return decodeThen(data, pass[mouseInteractionData])
	case sourceScroll:
		return decodeThen(data, pass[scrollData])
	case sourceViewportResize:
		return decodeThen(data, pass[viewportResizeData])
	case sourceMediaInteraction:
		return decodeThen(data, pass[mediaInteractionData])
	case sourceFont:
		return decodeThen(data, r.font)
	case sourceCustomElement:
		return decodeThen(data, pass[customElementData])
	}
	return nil // canvas mutations, console logs, and sources unknown to this version
}

// decodeThen decodes data as a T and hands it to f.
func decodeThen[T any](data json.RawMessage, f func(*T) []any) []any {
	v := new(T)
	if json.Unmarshal(data, v) != nil {
		return nil
	}
	return f(v)
}

// pass sends an event of positions and ids unchanged (but re-encoded).
func pass[T any](v *T) []any { return []any{v} }

// input redacts the value typed into a field.
func (r *Redactor) input(d *inputData) []any {
	n := r.mirror.byID.get(d.ID)
	if n == nil || n.Type != html.ElementNode {
		return nil
	}
	st := stateOf(n)
	if st.removed {
		return nil
	}
	st.raw.set(stringAttribute("value", d.Text)) // for re-sending it if the node's state changes
	syncAttrs(n, st)
	d.Text = r.redactValue(n, st, d.Text)
	return []any{d}
}

// selection is sent only if every node it spans may be seen as it is.
func (r *Redactor) selection(d *selectionData) []any {
	for _, rg := range d.Ranges {
		for _, id := range []int64{rg.Start, rg.End} {
			n := r.mirror.byID.get(id)
			if n == nil || stateOf(n).masked || stateOf(n).removed {
				return nil
			}
		}
	}
	return []any{d}
}

func (r *Redactor) styleSheetRule(d *styleSheetRuleData) []any {
	for i := range d.Adds {
		d.Adds[i].Rule = r.redactCSS(d.Adds[i].Rule, "")
	}
	for i, rm := range d.Removes {
		var v styleRuleRemove
		if json.Unmarshal(rm, &v) != nil {
			return nil
		}
		d.Removes[i], _ = json.Marshal(v)
	}
	for _, s := range []*string{d.Replace, d.ReplaceSync} {
		if s != nil {
			*s = r.redactCSS(*s, "")
		}
	}
	return []any{d}
}

func (r *Redactor) styleDeclaration(d *styleDeclarationData) []any {
	if d.Set != nil && d.Set.Value != nil {
		v := r.redactCSS(*d.Set.Value, "")
		d.Set.Value = &v
	}
	return []any{d}
}

func (r *Redactor) adoptedStyleSheet(d *adoptedStyleSheetData) []any {
	for i := range d.Styles {
		for j := range d.Styles[i].Rules {
			d.Styles[i].Rules[j].Rule = r.redactCSS(d.Styles[i].Rules[j].Rule, "")
		}
	}
	return []any{d}
}

// font is sent when it names a URL; an inlined font (data: URL, or the
// bytes of a buffer) is dropped, as inlined images are.
func (r *Redactor) font(d *fontData) []any {
	if d.Buffer || isDataURL(d.FontSource) {
		return nil
	}
	d.FontSource = r.redactURL(d.FontSource, "")
	return []any{d}
}

// evaluate decides, top-down from n, which nodes are removed and masked, and
// by what, given the decisions inherited from n's parent ("" for none). It
// appends to changed the nodes whose decision differs from the one they had
// (nil skips that).
func (r *Redactor) evaluate(n *html.Node, maskedBy, removedBy string, changed *[]change) {
	st := stateOf(n)
	if n.Type == html.ElementNode {
		if removedBy == "" {
			removedBy = firstMatch("remove", r.page.Remove, n)
		}
		if maskedBy == "" {
			maskedBy = firstMatch("mask", r.page.Mask, n)
		}
	}
	masked, removed := maskedBy != "", removedBy != ""
	if changed != nil && (st.masked != masked || st.removed != removed) {
		*changed = append(*changed, change{n, st.removed})
	}
	st.masked, st.removed, st.maskedBy, st.removedBy = masked, removed, maskedBy, removedBy
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		r.evaluate(c, maskedBy, removedBy, changed)
	}
}

// firstMatch returns what the first of sels that matches element n is
// called in counts ("mask .secret"), or "" if none matches.
func firstMatch(kind string, sels []Selector, n *html.Node) string {
	for _, s := range sels {
		if s.Match.Match(n) {
			return kind + " " + s.Source
		}
	}
	return ""
}

// Why nodes are masked besides a mask selector, as counted.
const (
	byUnknownParent  = "mask: node under an unknown parent"
	bySensitiveInput = "inputs: sensitive field"
	byAllInputs      = "inputs: all"
	byBlockPage      = "block_page"
)

// inherited returns the decisions that the children of parent inherit. A
// node without a known parent is masked.
func (r *Redactor) inherited(parent *html.Node) (maskedBy, removedBy string) {
	if parent == nil {
		return byUnknownParent, ""
	}
	st := stateOf(parent)
	return st.maskedBy, st.removedBy
}

// serialize returns the redacted serialized form of n and its subtree,
// written as JSON (snode.sent) by appendSerialized.
func (r *Redactor) serialize(n *html.Node) *snode {
	return &snode{sent: r.appendSerialized(nil, n)}
}

// appendSerialized appends to b the redacted serialized form of n and its
// subtree, in appendNode's form (attributes in name order), straight from
// the mirror: a snapshot's nodes are not built twice, once as snodes and
// once as JSON. A removed element is an empty box; during a mutation, the
// children that another of its adds carries are left out (addOf).
func (r *Redactor) appendSerialized(b []byte, n *html.Node) []byte {
	st := stateOf(n)
	b = append(b, `{"type":`...)
	switch n.Type {
	case html.DocumentNode:
		b = append(b, '0'+nodeDocument)
	case html.DoctypeNode:
		b = append(b, '0'+nodeDocumentType)
	case html.ElementNode:
		b = append(b, '0'+nodeElement)
	case html.TextNode:
		b = append(b, '0'+nodeText)
	case html.CommentNode:
		b = append(b, '0'+nodeComment)
	}
	b = strconv.AppendInt(append(b, `,"id":`...), st.id, 10)
	switch n.Type {
	case html.DoctypeNode:
		b = appendString(append(b, `,"name":`...), n.Data)
		return append(b, `,"publicId":"","systemId":""}`...)
	case html.TextNode:
		b = appendString(append(b, `,"textContent":`...), r.redactText(n, st, n.Data))
		if st.style {
			b = append(b, `,"isStyle":true`...)
		}
		return append(b, '}')
	case html.CommentNode:
		b = appendString(append(b, `,"textContent":`...), r.redactPlain(n.Data, st.maskedBy))
		return append(b, '}')
	case html.ElementNode:
		b = appendString(append(b, `,"tagName":`...), n.Data)
		b = r.appendAttrs(append(b, `,"attributes":`...), n, st)
	}
	b = append(b, `,"childNodes":[`...)
	if n.Type == html.ElementNode && st.removed {
		r.count(st.removedBy) // an empty box: nothing inside it is written
	} else {
		first := true
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			if r.addOf != nil && r.addOf[c] != r.addOf[n] {
				continue // sent by another add of the mutation
			}
			if !first {
				b = append(b, ',')
			}
			first = false
			b = r.appendSerialized(b, c)
		}
	}
	b = append(b, ']')
	if st.svg {
		b = append(b, `,"isSVG":true`...)
	}
	return append(b, '}')
}

// appendAttrs appends the attributes of element n to send, as a JSON
// object in name order.
func (r *Redactor) appendAttrs(b []byte, n *html.Node, st *nodeState) []byte {
	b = append(b, '{')
	first := true
	for _, a := range st.raw {
		v, ok := r.redactAttr(n, st, a)
		if !ok {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(appendString(b, a.name), ':')
		b = append(b, v...)
	}
	return append(b, '}')
}

// redactAttrs returns the attributes of element n to send, from the changes
// or values in attrs.
func (r *Redactor) redactAttrs(n *html.Node, st *nodeState, attrs attributes) attributes {
	out := make(attributes, 0, len(attrs))
	for _, a := range attrs {
		if red, ok := r.redactAttr(n, st, a); ok {
			out = append(out, attribute{name: a.name, raw: red})
		}
	}
	return out
}

// boxAttrs are the attributes a removed element keeps: what sizes its box.
var boxAttrs = map[string]bool{"class": true, "id": true, "style": true, "width": true, "height": true, "rr_width": true, "rr_height": true}

// Attributes by what their values hold.
var (
	urlAttrs = map[string]bool{"href": true, "src": true, "action": true, "formaction": true, "poster": true,
		"cite": true, "background": true, "xlink:href": true, "data": true, "longdesc": true, "ping": true}
	textAttrs = map[string]bool{"value": true, "placeholder": true, "title": true, "alt": true, "label": true,
		"content": true, "summary": true, "abbr": true, "download": true}
)

// redactAttr returns the value to send of attribute a, and false if the
// attribute must not be sent at all. A string is sent as it came when
// redaction leaves it as it is and it is valid UTF-8.
func (r *Redactor) redactAttr(n *html.Node, st *nodeState, a attribute) (json.RawMessage, bool) {
	key, v := strings.ToLower(a.name), a.raw
	switch {
	case st.removed && !boxAttrs[key]:
		return nil, false // a removed element keeps what sizes its box only
	case strings.HasPrefix(key, "on"), key == "rr_dataurl", key == "srcdoc":
		return nil, false // handlers; canvas and image contents; inline documents
	case len(v) > 0 && v[0] == '{':
		return r.redactStyleObject(v)
	case len(v) == 0 || v[0] != '"':
		// null (removed), true, a number: nothing to read in them.
		if a.present || string(v) == "null" {
			return v, true
		}
		return nil, false
	}
	s := a.val
	var red string // what to send of s
	switch {
	case urlAttrs[key]:
		if isJavaScriptURL(s) || isDataURL(s) {
			return nil, false
		}
		red = r.redactURL(s, st.maskedBy)
	case key == "srcset" || key == "imagesrcset":
		if strings.Contains(strings.ToLower(s), "data:") {
			return nil, false
		}
		red = r.redactURLList(s, st.maskedBy)
	case key == "value" && isField(n):
		red = r.redactValue(n, st, s)
	case key == "style" || key == "_csstext":
		red = r.redactCSS(s, st.maskedBy)
	case textAttrs[key] || strings.HasPrefix(key, "aria-") || strings.HasPrefix(key, "data-"):
		red = r.redactPlain(s, st.maskedBy)
	default:
		return v, true // structure: class, id, type, name, rel, sizes...
	}
	if red == s && utf8.ValidString(s) {
		return v, true // as it came (invalid UTF-8 is written as U+FFFD below, as before)
	}
	return encodeString(red), true
}

// redactStyleObject redacts a style attribute change given as properties
// (rrweb's styleOMValue: property → value, [value, priority] or false).
func (r *Redactor) redactStyleObject(v json.RawMessage) (json.RawMessage, bool) {
	var props map[string]json.RawMessage
	if json.Unmarshal(v, &props) != nil {
		return nil, false
	}
	for p, pv := range props {
		var s string
		var pair []string
		switch {
		case json.Unmarshal(pv, &s) == nil:
			props[p] = encodeString(r.redactCSS(s, ""))
		case json.Unmarshal(pv, &pair) == nil && len(pair) == 2:
			props[p], _ = json.Marshal([]string{r.redactCSS(pair[0], ""), pair[1]})
		case string(pv) == "false":
		default:
			delete(props, p)
		}
	}
	b, err := json.Marshal(props)
	return b, err == nil
}

// isField reports whether n is a form field whose value attribute is its
// value: input (not a button, whose value is its label), textarea, select,
// option.
func isField(n *html.Node) bool {
	switch n.DataAtom {
	case atom.Textarea, atom.Select, atom.Option:
		return true
	case atom.Input:
		switch strings.ToLower(attr(n, "type")) {
		case "submit", "button", "reset", "image":
			return false
		}
		return true
	}
	return false
}

// redactValue redacts the value of form field n.
func (r *Redactor) redactValue(n *html.Node, st *nodeState, v string) string {
	if by := r.fieldMaskedBy(n, st); by != "" {
		r.count(by)
		return MaskString(v)
	}
	return r.detect(v)
}

// fieldMaskedBy returns why the value of field n (or of the select of option
// n) is masked, or "" if it is not: a mask selector, a sensitive field (see
// Page.MasksInput; a field that once was a password stays one), or inputs:
// all.
func (r *Redactor) fieldMaskedBy(n *html.Node, st *nodeState) string {
	if st.maskedBy != "" {
		return st.maskedBy
	}
	if n.DataAtom == atom.Option {
		n = n.Parent
		if n == nil {
			return byUnknownParent
		}
		st = stateOf(n)
	}
	switch {
	case st.maskedBy != "":
		return st.maskedBy
	case st.everPassword || matchesAny(sensitiveInputs, n):
		return bySensitiveInput
	case r.page.MasksInput(n):
		return byAllInputs
	}
	return ""
}

// redactText redacts the text of text node n (or its new value v).
func (r *Redactor) redactText(n *html.Node, st *nodeState, v string) string {
	if st.style || n.Parent != nil && n.Parent.DataAtom == atom.Style {
		return r.redactCSS(v, st.maskedBy)
	}
	if n.Parent != nil && n.Parent.DataAtom == atom.Textarea {
		return r.redactValue(n.Parent, stateOf(n.Parent), v)
	}
	return r.redactPlain(v, st.maskedBy)
}

// detect masks the substrings of s that the page's detectors find.
func (r *Redactor) detect(s string) string {
	masked, _ := r.page.Detectors.mask(s, r.countDetector)
	return masked
}

// countDetector counts a match of the detector name.
func (r *Redactor) countDetector(name string) { r.count("detector " + name) }

// count counts one redaction (a value masked, a box removed, a page
// blocked, an event dropped) under what caused it.
func (r *Redactor) count(what string) {
	if r.counts == nil {
		r.counts = make(map[string]int)
	}
	r.counts[what]++
}

// Counts returns the redactions made since the last call, by what caused
// them ("mask .secret", "remove #ssn", "detector email", "inputs: sensitive
// field", "block_page", "dropped: …"), and clears them. The numbers are
// values (a text, an attribute, a typed value) masked, boxes removed,
// detector matches, pages blocked and events dropped.
func (r *Redactor) Counts() map[string]int {
	c := r.counts
	r.counts = nil
	return c
}

// redactPlain masks s whole if masked, else its detected substrings.
func (r *Redactor) redactPlain(s, mask string) string {
	if mask != "" {
		r.count(mask)
		return MaskString(s)
	}
	return r.detect(s)
}

// redactURL masks the query values and the fragment of URL s if masked, and
// detected substrings in all of it; the scheme, host and path stay usable
// (the replayer resolves relative URLs against the page's).
func (r *Redactor) redactURL(s, mask string) string {
	e := partEditor{s: s}
	end, pathEnd := len(s), len(s) // of the path and query, of the path
	fragAt := strings.IndexByte(s, '#')
	if fragAt >= 0 {
		end, pathEnd = fragAt, fragAt
	}
	queryAt := strings.IndexByte(s[:end], '?')
	if queryAt >= 0 {
		pathEnd = queryAt
	}
	for segment := range splitSpans(s, 0, pathEnd, '/') {
		e.set(segment.start, segment.end, r.detectEncoded(s[segment.start:segment.end], false))
	}
	if queryAt >= 0 {
		for pair := range splitSpans(s, queryAt+1, end, '&') {
			eq := strings.IndexByte(s[pair.start:pair.end], '=')
			if eq < 0 {
				e.set(pair.start, pair.end, r.detectEncoded(s[pair.start:pair.end], true))
				continue
			}
			eq += pair.start
			e.set(pair.start, eq, r.detectEncoded(s[pair.start:eq], true))
			e.set(eq+1, pair.end, r.redactURLPart(s[eq+1:pair.end], mask))
		}
	}
	if fragAt >= 0 {
		e.set(fragAt+1, len(s), r.redactURLPart(s[fragAt+1:], mask))
	}
	return e.String()
}

// span is the range [start, end) of a string.
type span struct{ start, end int }

// splitSpans yields the ranges of the parts of s[start:end] between the bytes
// sep (at least one part, maybe empty), as strings.Split would cut it.
func splitSpans(s string, start, end int, sep byte) iter.Seq[span] {
	return func(yield func(span) bool) {
		for {
			i := strings.IndexByte(s[start:end], sep)
			if i < 0 {
				yield(span{start, end})
				return
			}
			if !yield(span{start, start + i}) {
				return
			}
			start += i + 1
		}
	}
}

// partEditor replaces parts of s, in order, copying s only once a part
// changes: most URLs come out as they went in, without an allocation.
type partEditor struct {
	s      string
	done   int // s[:done] is in b, once edited
	b      strings.Builder
	edited bool
}

// set puts v in place of s[start:end], which must not start before the
// end of the last part set.
func (e *partEditor) set(start, end int, v string) {
	if !e.edited {
		if v == e.s[start:end] {
			return
		}
		e.edited = true
		e.b.Grow(len(e.s) + len(v) - (end - start))
	}
	e.b.WriteString(e.s[e.done:start])
	e.b.WriteString(v)
	e.done = end
}

// String returns s with the parts set.
func (e *partEditor) String() string {
	if !e.edited {
		return e.s
	}
	e.b.WriteString(e.s[e.done:])
	return e.b.String()
}

// redactURLPart redacts a query value or a fragment: all of it if masked,
// what the detectors find in it otherwise.
func (r *Redactor) redactURLPart(part, mask string) string {
	if mask != "" {
		return r.redactPlain(part, mask)
	}
	return r.detectEncoded(part, true)
}

// detectEncoded masks what the detectors find in a part of a URL (a path
// segment, a query key or value, a fragment), also once percent-decoded
// (and, if plus, with '+' read as a space, as forms encode it). A match that
// shows only decoded masks the whole part: an encoded form cannot be masked
// piece by piece.
func (r *Redactor) detectEncoded(part string, plus bool) string {
	decoded := percentDecode(part, plus)
	if decoded == part {
		return r.detect(part)
	}
	if len(r.page.Detectors.find(decoded, r.countDetector)) > 0 {
		return MaskString(part)
	}
	return part
}

// percentDecode decodes the valid %XX escapes of s (and '+' as a space if
// plus), leaving anything else as it is, as browsers do.
func percentDecode(s string, plus bool) string {
	if !strings.ContainsAny(s, "%+") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '+' && plus:
			b.WriteByte(' ')
		case c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
			b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
			i += 2
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func isHex(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c|0x20 && c|0x20 <= 'f' }

func unhex(c byte) byte {
	if c <= '9' {
		return c - '0'
	}
	return (c | 0x20) - 'a' + 10
}

// redactURLList redacts each URL of a srcset, keeping the descriptors.
func (r *Redactor) redactURLList(s, mask string) string {
	parts := strings.Split(s, ",")
	for i, p := range parts {
		lead := len(p) - len(strings.TrimLeft(p, " \t\n\f\r"))
		rest := p[lead:]
		end := strings.IndexAny(rest, " \t\n\f\r")
		if end < 0 {
			end = len(rest)
		}
		parts[i] = p[:lead] + r.redactURL(rest[:end], mask) + rest[end:]
	}
	return strings.Join(parts, ",")
}

// redactCSS masks the strings in CSS text (all of each if masked, detected
// substrings otherwise), where a content: value (or an attr() fallback)
// carries text that a page shows; selectors, properties and URLs outside
// strings stay. A string is a quote, then anything but that quote (a
// backslash escapes the next character) up to the same quote; one that a
// newline or the end of the text cuts off is masked up to there too, since
// a browser may still show it.
func (r *Redactor) redactCSS(css, mask string) string {
	var b strings.Builder
	done := 0 // css[:done] is in b
	// The next double and single quote at or after i: two IndexByte
	// searches, each run again only once i passed its quote, are much
	// faster than IndexAny on a style sheet of kilobytes.
	double, single := -1, -1
	for i := 0; i < len(css); {
		double, single = nextByte(css, '"', i, double), nextByte(css, '\'', i, single)
		open := min(double, single)
		if open == len(css) {
			break
		}
		end := cssStringEnd(css, open)
		content := css[open+1 : end]
		if red := r.redactPlain(content, mask); red != content {
			b.WriteString(css[done : open+1])
			b.WriteString(red)
			done = end
		}
		i = end + 1
	}
	if done == 0 {
		return css
	}
	b.WriteString(css[done:])
	return b.String()
}

// nextByte returns the index of the first c in s at or after from, or
// len(s), given last, a previous answer for an earlier from (or -1).
func nextByte(s string, c byte, from, last int) int {
	if last >= from {
		return last
	}
	if k := strings.IndexByte(s[from:], c); k >= 0 {
		return from + k
	}
	return len(s)
}

// cssStringEnd returns the index of what ends the string opened at
// css[open]: its closing quote, a newline, or len(css).
func cssStringEnd(css string, open int) int {
	quote := css[open]
	for i := open + 1; i < len(css); i++ {
		switch css[i] {
		case '\\':
			i++
		case '\n', quote:
			return i
		}
	}
	return len(css)
}

// isJavaScriptURL reports whether s is a javascript: URL as a browser reads
// it: leading spaces and controls, and tabs or newlines inside the scheme,
// ignored.
func isJavaScriptURL(s string) bool { return hasScheme(s, "javascript:") }

// isDataURL reports whether s is a data: URL.
func isDataURL(s string) bool { return hasScheme(s, "data:") }

func hasScheme(s, scheme string) bool {
	s = strings.TrimLeft(s, "\x00\x01\x02\x03\x04\x05\x06\x07\x08\t\n\x0b\x0c\r\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f ")
	k := 0 // bytes of scheme matched, tabs and newlines skipped
	for i := 0; i < len(s) && k < len(scheme); i++ {
		switch c := s[i]; {
		case c == '\t' || c == '\n' || c == '\r':
		case lowerASCII(c) == scheme[k]:
			k++
		default:
			return false
		}
	}
	return k == len(scheme)
}

// lowerASCII returns c in lower case if it is an ASCII letter.
func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}
