package policies

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"golang.org/x/net/html"

	"github.com/cobrowse/cobrowse/internal/rrweb"
)

// Report is what an agent would see of one HTML page under a policy, and
// every redaction that made it so: the output of `cobrowse policy test`.
type Report struct {
	URL     string   // the page's URL, which chose the rules
	Rules   []string // the rules that apply to the page
	Blocked bool     // block_page: the agent sees a placeholder
	// HTML is the page as an agent would get it: the document the
	// Redactor sends, rendered back to HTML.
	HTML string
	// Redactions lists what was redacted, most frequent first (see
	// Redactor.Counts for what is counted).
	Redactions []Redaction
}

// Redaction is a count of redactions with one cause.
type Redaction struct {
	What  string // "mask .secret", "detector email", ...
	Count int
}

// Explain runs the Redactor over an HTML page at pageURL, as if the visitor
// script had sent a full snapshot of it, and reports what an agent would
// see. The page's scripts are not run: it is the document as served, not as
// the visitor's browser may have changed it.
func (p *Policy) Explain(pageURL string, page io.Reader) (*Report, error) {
	doc, err := html.Parse(page)
	if err != nil {
		return nil, fmt.Errorf("parsing the page: %w", err)
	}
	r := NewRedactor(func() *Policy { return p })
	nextID := int64(0)
	meta, _ := json.Marshal(map[string]any{"type": rrweb.Meta, "timestamp": 1, "data": metaData{Href: pageURL, Width: "1280", Height: "800"}})
	snap, err := json.Marshal(map[string]any{"type": rrweb.FullSnapshot, "timestamp": 1, "data": map[string]any{
		"node": snapshotOf(doc, &nextID), "initialOffset": map[string]int{"top": 0, "left": 0}}})
	if err != nil {
		return nil, fmt.Errorf("serializing the page: %w", err)
	}
	r.Redact(meta)
	out := r.Redact(snap)
	if len(out) != 1 {
		return nil, fmt.Errorf("the Redactor sent %d events for the page's snapshot, want 1", len(out))
	}
	var ev struct {
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(out[0].JSON, &ev); err != nil {
		return nil, fmt.Errorf("reading the redacted snapshot: %w", err)
	}
	sent, ok := decodeSnapshot(ev.Data)
	defer sent.release() // once rendered
	if !ok || sent.root == nil {
		return nil, errors.New("the Redactor sent a snapshot that cannot be rebuilt")
	}
	agentView := sent.root
	sortAttrs(agentView)
	var rendered bytes.Buffer
	if err := html.Render(&rendered, agentView); err != nil {
		return nil, fmt.Errorf("rendering the redacted page: %w", err)
	}
	rep := &Report{URL: pageURL, Rules: r.page.Rules, Blocked: r.page.Block, HTML: rendered.String()}
	for what, n := range r.Counts() {
		rep.Redactions = append(rep.Redactions, Redaction{what, n})
	}
	slices.SortFunc(rep.Redactions, func(a, b Redaction) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), strings.Compare(a.What, b.What))
	})
	return rep, nil
}

// snapshotOf serializes a parsed document as rrweb's snapshot does, giving
// nodes ids from *nextID on.
func snapshotOf(n *html.Node, nextID *int64) *snode {
	*nextID++
	sn := &snode{ID: *nextID}
	switch n.Type {
	case html.DocumentNode:
		sn.Type = nodeDocument
	case html.DoctypeNode:
		sn.Type, sn.Name = nodeDocumentType, n.Data
		return sn
	case html.ElementNode:
		sn.Type, sn.TagName, sn.IsSVG = nodeElement, n.Data, n.Namespace == "svg"
		for _, a := range n.Attr {
			sn.Attributes.set(stringAttribute(a.Key, a.Val))
		}
	case html.TextNode:
		sn.Type, sn.TextContent = nodeText, n.Data
		sn.IsStyle = n.Parent != nil && n.Parent.Data == "style"
		return sn
	default: // comments, and what a parsed document cannot hold
		sn.Type, sn.TextContent = nodeComment, n.Data
		return sn
	}
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		sn.ChildNodes = append(sn.ChildNodes, snapshotOf(c, nextID))
	}
	return sn
}

// sortAttrs sorts the attributes of n and its subtree by name, so that the
// rendered page does not change from run to run.
func sortAttrs(n *html.Node) {
	slices.SortFunc(n.Attr, func(a, b html.Attribute) int { return strings.Compare(a.Key, b.Key) })
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		sortAttrs(c)
	}
}
