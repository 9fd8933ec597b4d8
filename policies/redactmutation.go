package policies

import (
	"encoding/json"
	"strconv"
	"strings"

	"golang.org/x/net/html"
)

// mutation applies a Mutation to the mirror and returns it redacted,
// followed by the corrections that bring nodes whose decision changed to
// their new state (see Redactor).
//
// The mirror is updated in the replayer's order (removes, adds, texts,
// attributes), and the decisions evaluated on the result, so that an added
// node is judged with its final attributes and ancestors. Then:
//   - removes are sent unless the node was inside a removed subtree;
//   - adds are sent serialized with their decisions, unless the parent is
//     inside a removed subtree; a node whose parent the mirror does not know
//     is masked;
//   - text and attribute changes are sent redacted, unless the node is
//     inside a removed subtree (a removed box keeps its box attributes).
func (r *Redactor) mutation(data json.RawMessage) []any {
	d, ok := decodeMutation(data)
	if !ok {
		return nil
	}
	m := r.mirror
	out := &mutationData{Source: sourceMutation, IsAttachIframe: d.IsAttachIframe,
		Texts: []textMutation{}, Attributes: []attributeChange{}, Removes: []removedNode{}, Adds: []addedNode{}}

	for _, rm := range d.Removes {
		n := m.byID.get(rm.ID)
		if n == nil {
			continue
		}
		if !r.insideRemoved(n) {
			out.Removes = append(out.Removes, rm)
		}
		m.remove(rm.ID)
	}

	type added struct {
		add  addedNode
		node *html.Node
	}
	var adds []added
	// Which add built each node: an add is sent with the nodes it carried
	// only, not with those that later adds of the mutation put under it
	// (they are sent by their own adds; sending them twice makes the
	// replayer lose, for one, a late <style>'s CSS).
	r.addOf = make(map[*html.Node]int)
	defer func() { r.addOf = nil }()
	for _, a := range r.orderAdds(d.Adds) {
		parent := m.byID.get(a.ParentID)
		var next *html.Node
		if a.NextID != nil {
			next = m.byID.get(*a.NextID)
		}
		n := m.build(a.Node, parent, next)
		if n == nil {
			continue
		}
		adds = append(adds, added{a, n})
		markAdd(n, len(adds), r.addOf)
	}

	for _, t := range d.Texts {
		if n := m.byID.get(t.ID); n != nil && (n.Type == html.TextNode || n.Type == html.CommentNode) {
			n.Data = ""
			if t.Value != nil {
				n.Data = *t.Value
			}
		}
	}

	var changedElements []*html.Node
	for _, ac := range d.Attributes {
		n := m.byID.get(ac.ID)
		if n == nil || n.Type != html.ElementNode {
			continue
		}
		st := stateOf(n)
		for _, a := range ac.Attributes {
			if string(a.raw) == "null" {
				st.raw.remove(a.name)
			} else if len(a.raw) == 0 || a.raw[0] != '{' {
				st.raw.set(a)
			} // a style object changes declarations, not what selectors see here
		}
		syncAttrs(n, st)
		changedElements = append(changedElements, n)
	}

	// Decide, for the added subtrees and for every subtree that an attribute
	// change may have made match or stop matching: the element's own, and
	// its later siblings' (selectors with + and ~).
	for _, a := range adds {
		maskedBy, removedBy := r.inherited(a.node.Parent)
		r.evaluate(a.node, maskedBy, removedBy, nil)
	}
	var changed []change
	for _, el := range changedElements {
		for n := el; n != nil; n = n.NextSibling {
			maskedBy, removedBy := r.inherited(n.Parent)
			r.evaluate(n, maskedBy, removedBy, &changed)
		}
	}

	for _, a := range adds {
		if a.node.Parent != nil && stateOf(a.node.Parent).removed {
			continue
		}
		a.add.Node = r.serialize(a.node)
		out.Adds = append(out.Adds, a.add)
	}
	for _, t := range d.Texts {
		n := m.byID.get(t.ID)
		if n == nil || r.insideRemoved(n) {
			continue
		}
		if t.Value != nil {
			v := r.redactText(n, stateOf(n), *t.Value)
			if n.Type == html.CommentNode {
				v = r.redactPlain(*t.Value, stateOf(n).maskedBy)
			}
			t.Value = &v
		}
		out.Texts = append(out.Texts, t)
	}
	for _, ac := range d.Attributes {
		n := m.byID.get(ac.ID)
		if n == nil || n.Type != html.ElementNode || r.insideRemoved(n) {
			continue
		}
		out.Attributes = append(out.Attributes, attributeChange{ID: ac.ID, Attributes: r.redactAttrs(n, stateOf(n), ac.Attributes)})
	}

	result := []any{out}
	if corr := r.corrections(changed); corr != nil {
		result = append(result, corr)
	}
	return result
}

// The keys of a Mutation's data and of its entries (see mutationData).
var (
	mutationFields        = fields{"source", "texts", "attributes", "removes", "adds", "isAttachIframe"}
	textFields            = fields{"id", "value"}
	attributeChangeFields = fields{"id", "attributes"}
	removeFields          = fields{"parentId", "id", "isShadow"}
	addFields             = fields{"parentId", "previousId", "nextId", "node"}
)

// decodeMutation decodes a Mutation's data with the scanner, as
// decodeSnapshot does a snapshot's (and with the same rules), rather
// than with encoding/json, which took most of the time redaction spends on
// a mutation. FuzzDecodeMutation checks that whenever it decodes
// something, encoding/json decodes the same.
func decodeMutation(data []byte) (*mutationData, bool) {
	d := new(mutationData)
	s := scanner{b: data}
	ok := s.members(mutationFields, func(i int) bool {
		switch mutationFields[i] {
		case "source":
			v, ok := s.integer()
			d.Source = int(v)
			return ok && int64(d.Source) == v
		case "texts":
			return s.array(func() bool {
				var t textMutation
				ok := s.members(textFields, func(i int) bool {
					if textFields[i] == "id" {
						var ok bool
						t.ID, ok = s.integer()
						return ok
					}
					v, ok := s.str()
					t.Value = &v
					return ok
				})
				d.Texts = append(d.Texts, t)
				return ok
			})
		case "attributes":
			return s.array(func() bool {
				var ac attributeChange
				ok := s.members(attributeChangeFields, func(i int) bool {
					var ok bool
					if attributeChangeFields[i] == "id" {
						ac.ID, ok = s.integer()
					} else {
						ac.Attributes, ok = s.rawValues()
					}
					return ok
				})
				d.Attributes = append(d.Attributes, ac)
				return ok
			})
		case "removes":
			return s.array(func() bool {
				var rm removedNode
				ok := s.members(removeFields, func(i int) bool {
					var ok bool
					switch removeFields[i] {
					case "parentId":
						rm.ParentID, ok = s.integer()
					case "id":
						rm.ID, ok = s.integer()
					case "isShadow":
						rm.IsShadow, ok = s.boolean()
					}
					return ok
				})
				d.Removes = append(d.Removes, rm)
				return ok
			})
		case "adds":
			return s.array(func() bool {
				var a addedNode
				ok := s.members(addFields, func(i int) bool {
					var ok bool
					switch addFields[i] {
					case "parentId":
						a.ParentID, ok = s.integer()
					case "previousId":
						var v int64
						v, ok = s.integer()
						a.PreviousID = &v
					case "nextId":
						var v int64
						v, ok = s.integer()
						a.NextID = &v
					case "node":
						a.Node, ok = s.snode(0)
					}
					return ok
				})
				d.Adds = append(d.Adds, a)
				return ok
			})
		}
		var ok bool
		d.IsAttachIframe, ok = s.boolean()
		return ok
	})
	return d, ok && s.end()
}

// appendMutation appends d as JSON, as encoding/json writes a mutationData
// except that a nil list is written [] (rrweb's replayer iterates over each
// without checking that it exists) and that attribute values are written
// as they are, not compacted again: they are the decoder's (valid JSON) or
// redaction's, and the hub checks the whole event again.
func appendMutation(b []byte, d *mutationData) ([]byte, error) {
	b = strconv.AppendInt(append(b, `{"source":`...), int64(d.Source), 10)
	b = append(b, `,"texts":[`...)
	for i, t := range d.Texts {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(append(b, `{"id":`...), t.ID, 10)
		b = append(b, `,"value":`...)
		if t.Value == nil {
			b = append(b, "null"...)
		} else {
			b = appendString(b, *t.Value)
		}
		b = append(b, '}')
	}
	b = append(b, `],"attributes":[`...)
	for i, ac := range d.Attributes {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(append(b, `{"id":`...), ac.ID, 10)
		b = appendAttributes(append(b, `,"attributes":`...), ac.Attributes)
		b = append(b, '}')
	}
	b = append(b, `],"removes":[`...)
	for i, rm := range d.Removes {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(append(b, `{"parentId":`...), rm.ParentID, 10)
		b = strconv.AppendInt(append(b, `,"id":`...), rm.ID, 10)
		if rm.IsShadow {
			b = append(b, `,"isShadow":true`...)
		}
		b = append(b, '}')
	}
	b = append(b, `],"adds":[`...)
	for i, a := range d.Adds {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(append(b, `{"parentId":`...), a.ParentID, 10)
		if a.PreviousID != nil {
			b = strconv.AppendInt(append(b, `,"previousId":`...), *a.PreviousID, 10)
		}
		b = append(b, `,"nextId":`...)
		if a.NextID == nil {
			b = append(b, "null"...)
		} else {
			b = strconv.AppendInt(b, *a.NextID, 10)
		}
		b = append(b, `,"node":`...)
		if a.Node == nil {
			b = append(b, "null"...)
		} else {
			var err error
			if b, err = appendNode(b, a.Node); err != nil {
				return nil, err
			}
		}
		b = append(b, '}')
	}
	b = append(b, ']')
	if d.IsAttachIframe {
		b = append(b, `,"isAttachIframe":true`...)
	}
	return append(b, '}'), nil
}

// markAdd records that the subtree of n was built by add number i.
func markAdd(n *html.Node, i int, addOf map[*html.Node]int) {
	addOf[n] = i
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		markAdd(c, i, addOf)
	}
}

// orderAdds returns adds in an order in which each node's parent (and next
// sibling, when it is added too) comes first, as rrweb's replayer resolves
// them; adds whose parent never appears keep their place at the end.
func (r *Redactor) orderAdds(adds []addedNode) []addedNode {
	pending := make(map[int64]bool, len(adds))
	for _, a := range adds {
		if a.Node != nil {
			pending[a.Node.ID] = true
		}
	}
	ordered := make([]addedNode, 0, len(adds))
	for len(adds) > 0 {
		var rest []addedNode
		for _, a := range adds {
			waits := pending[a.ParentID] || a.NextID != nil && pending[*a.NextID]
			if waits {
				rest = append(rest, a)
				continue
			}
			ordered = append(ordered, a)
			if a.Node != nil {
				delete(pending, a.Node.ID)
			}
		}
		if len(rest) == len(adds) { // a cycle, or ids the visitor invented
			return append(ordered, rest...)
		}
		adds = rest
	}
	return ordered
}

// insideRemoved reports whether n is strictly inside a removed subtree (the
// removed element itself is sent, as a box).
func (r *Redactor) insideRemoved(n *html.Node) bool {
	return n.Parent != nil && stateOf(n.Parent).removed
}

// corrections returns a Mutation that brings the agent's copy of the nodes
// whose decision the last evaluation changed to their new state, or nil if
// there is nothing to send. changed is in document order within each
// evaluated subtree.
func (r *Redactor) corrections(changed []change) *mutationData {
	if len(changed) == 0 {
		return nil
	}
	c := &mutationData{Source: sourceMutation,
		Texts: []textMutation{}, Attributes: []attributeChange{}, Removes: []removedNode{}, Adds: []addedNode{}}
	covered := make(map[*html.Node]bool) // subtrees already brought up to date
	for _, ch := range changed {
		n, st := ch.node, stateOf(ch.node)
		if isCovered(n, covered) {
			continue
		}
		switch {
		case st.removed:
			// Newly removed (an ancestor's removal would have covered it):
			// its children go, its attributes shrink to the box.
			for kid := n.FirstChild; kid != nil; kid = kid.NextSibling {
				c.Removes = append(c.Removes, removedNode{ParentID: st.id, ID: stateOf(kid).id})
			}
			c.Attributes = append(c.Attributes, attributeChange{ID: st.id, Attributes: r.boxRemovals(st)})
			covered[n] = true
		case ch.wasRemoved:
			// It was the removed box (had it been inside one, the box's
			// return would have covered it): attributes and children return.
			c.Attributes = append(c.Attributes, attributeChange{ID: st.id, Attributes: r.redactAttrs(n, st, st.raw)})
			for kid := n.FirstChild; kid != nil; kid = kid.NextSibling {
				c.Adds = append(c.Adds, addedNode{ParentID: st.id, Node: r.serialize(kid)})
			}
			covered[n] = true
		case n.Type == html.TextNode:
			v := r.redactText(n, st, n.Data)
			c.Texts = append(c.Texts, textMutation{ID: st.id, Value: &v})
		case n.Type == html.CommentNode:
			v := r.redactPlain(n.Data, st.maskedBy)
			c.Texts = append(c.Texts, textMutation{ID: st.id, Value: &v})
		case n.Type == html.ElementNode:
			c.Attributes = append(c.Attributes, attributeChange{ID: st.id, Attributes: r.redactAttrs(n, st, st.raw)})
		}
	}
	return c
}

// change is a node whose decision an evaluation changed, and whether it was
// removed before.
type change struct {
	node       *html.Node
	wasRemoved bool
}

// isCovered reports whether n or an ancestor is in covered.
func isCovered(n *html.Node, covered map[*html.Node]bool) bool {
	for ; n != nil; n = n.Parent {
		if covered[n] {
			return true
		}
	}
	return false
}

// boxRemovals returns the attribute changes that reduce an element's
// attributes to those of a removed box.
func (r *Redactor) boxRemovals(st *nodeState) attributes {
	var out attributes
	for _, a := range st.raw {
		if !boxAttrs[strings.ToLower(a.name)] {
			out = append(out, attribute{name: a.name, raw: json.RawMessage("null")})
		}
	}
	return out
}
