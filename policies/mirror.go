package policies

import (
	"slices"
	"strings"
	"sync"
	"unsafe"

	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"
)

// maxMirrorNodes bounds the nodes of one page's mirror: a page bigger than
// that (or a visitor script inventing nodes) makes the Redactor hide the
// page until its next full snapshot, rather than grow without bound.
const maxMirrorNodes = 500_000

// mirror is the Redactor's copy of one page of the visitor's DOM, as
// x/net/html nodes, so that CSS selectors (cascadia) are matched on the whole
// tree, not on one event. It holds the visitor's real text and attributes:
// it never leaves the server, and what is sent is computed from it.
type mirror struct {
	byID map[int64]*html.Node

	// The nodes, and the attribute lists, that build takes before it
	// allocates any: room for a snapshot's hundreds of nodes, in blocks
	// taken at once and given back when the mirror goes (release). They
	// stay taken, even once their nodes are removed, until then; nodes
	// that mutations add later are allocated one by one, so that a page
	// that keeps adding and removing nodes does not grow the mirror.
	nodes  []mirrorNode     // room left in the block of nodes in use
	attrs  []html.Attribute // room left in the block of attributes in use
	blocks mirrorBlocks
}

// nodeState is what the mirror knows about one node besides the html.Node.
type nodeState struct {
	id int64
	// The node's decision at the last evaluation, to see what changes, and
	// why: the rule part that masks or removes it ("" if none), for the
	// Redactor's counts.
	masked, removed     bool
	maskedBy, removedBy string
	// everPassword is set once an input has had type=password: a "show
	// password" toggle that makes it type=text keeps it masked.
	everPassword bool
	// svg and style keep rrweb's flags for re-serializing the node.
	svg, style bool
	// raw holds the element's attributes as rrweb sent them (strings,
	// numbers, true); the html.Node lists those present (syncAttrs).
	raw attributes
}

// newMirror returns an empty mirror with room for nodes nodes and attrs
// attributes.
func newMirror(nodes, attrs int) *mirror {
	nodes, attrs = min(nodes, maxMirrorNodes), min(attrs, maxMirrorNodes)
	m := &mirror{byID: make(map[int64]*html.Node, nodes)}
	m.blocks.reserve(nodes, attrs)
	return m
}

// Blocks of room for mirror nodes and attributes. A snapshot's mirror is
// hundreds of nodes, garbage once the page is replaced by the next
// snapshot or the tab ends: its blocks go back to a pool for the next
// mirror, of any tab, rather than to the garbage collector.
const (
	nodeBlockLen = 64
	attrBlockLen = 128
)

type (
	nodeBlock = [nodeBlockLen]mirrorNode
	attrBlock = [attrBlockLen]html.Attribute
)

var (
	recycledNodeBlocks = sync.Pool{New: func() any { return new(nodeBlock) }}
	recycledAttrBlocks = sync.Pool{New: func() any { return new(attrBlock) }}
)

// mirrorBlocks are the blocks a mirror has taken (reserve), which build
// uses in turn (nextNodes, nextAttrs) and release gives back.
type mirrorBlocks struct {
	nodes []*nodeBlock
	attrs []*attrBlock
	// reservedNodes and reservedAttrs count the blocks reserved and not
	// yet used.
	reservedNodes, reservedAttrs int
}

// reserve takes blocks for nodes nodes and attrs attributes.
func (bs *mirrorBlocks) reserve(nodes, attrs int) {
	bs.reservedNodes = (nodes + nodeBlockLen - 1) / nodeBlockLen
	bs.reservedAttrs = (attrs + attrBlockLen - 1) / attrBlockLen
	for range bs.reservedNodes {
		bs.nodes = append(bs.nodes, recycledNodeBlocks.Get().(*nodeBlock))
	}
	for range bs.reservedAttrs {
		bs.attrs = append(bs.attrs, recycledAttrBlocks.Get().(*attrBlock))
	}
}

// nextNodes returns the next reserved block of nodes, or nil if none is
// left.
func (bs *mirrorBlocks) nextNodes() []mirrorNode {
	if bs.reservedNodes == 0 {
		return nil
	}
	block := bs.nodes[len(bs.nodes)-bs.reservedNodes]
	bs.reservedNodes--
	return block[:]
}

// nextAttrs returns the next reserved block of attributes, or nil if none
// is left.
func (bs *mirrorBlocks) nextAttrs() []html.Attribute {
	if bs.reservedAttrs == 0 {
		return nil
	}
	block := bs.attrs[len(bs.attrs)-bs.reservedAttrs]
	bs.reservedAttrs--
	return block[:]
}

// release gives the mirror's blocks back, zeroed. The mirror, and every
// node of it, must not be used afterwards: the Redactor calls it only when
// it drops its mirror, which nothing else points to.
func (m *mirror) release() {
	if m == nil {
		return
	}
	for _, block := range m.blocks.nodes {
		clear(block[:])
		recycledNodeBlocks.Put(block)
	}
	for _, block := range m.blocks.attrs {
		clear(block[:])
		recycledAttrBlocks.Put(block)
	}
	*m = mirror{}
}

// mirrorNode is a node of the mirror with its state, in one allocation.
// build makes every node of a mirror as one, so that stateOf finds a
// node's state from its address.
type mirrorNode struct {
	node  html.Node
	state nodeState
}

// stateOf returns the state of n, which must be a node of a mirror (which
// build made as part of a mirrorNode): the tree's nodes and their parents
// are, and so are the nodes that byID holds. It replaces a map from node to
// state, which cost as much as the rest of building a mirror.
func stateOf(n *html.Node) *nodeState {
	return &(*mirrorNode)(unsafe.Add(unsafe.Pointer(n), -int(unsafe.Offsetof(mirrorNode{}.node)))).state
}

// size returns the number of nodes in the mirror.
func (m *mirror) size() int { return len(m.byID) }

// build adds the serialized node sn and its descendants to the mirror, under
// parent (nil for a root), before next (nil: as the last child). It returns
// the new node, or nil if sn is malformed or its id is taken (a visitor
// script that reuses ids gets nothing applied). The mirror takes over the
// attribute maps of sn's elements: the caller must not use them afterwards.
func (m *mirror) build(sn *snode, parent, next *html.Node) *html.Node {
	if sn == nil || m.size() >= maxMirrorNodes {
		return nil
	}
	if _, taken := m.byID[sn.ID]; taken {
		return nil
	}
	if len(m.nodes) == 0 {
		m.nodes = m.blocks.nextNodes()
	}
	var mn *mirrorNode
	if len(m.nodes) > 0 {
		mn, m.nodes = &m.nodes[0], m.nodes[1:]
	} else {
		mn = new(mirrorNode)
	}
	mn.state.id = sn.ID
	n, st := &mn.node, &mn.state
	switch sn.Type {
	case nodeDocument:
		n.Type = html.DocumentNode
	case nodeDocumentType:
		n.Type, n.Data = html.DoctypeNode, sn.Name
	case nodeElement:
		n.Type = html.ElementNode
		n.Data = strings.ToLower(sn.TagName)
		n.DataAtom = atom.Lookup([]byte(n.Data))
		st.svg = sn.IsSVG
		if sn.IsSVG {
			n.Namespace = "svg"
		}
		st.raw = sn.Attributes // taken over: the serialized node is not used after build
		if k := len(st.raw); k > len(m.attrs) && k <= attrBlockLen {
			m.attrs = m.blocks.nextAttrs()
		}
		if k := len(st.raw); k <= len(m.attrs) {
			n.Attr, m.attrs = m.attrs[:0:k], m.attrs[k:] // see syncAttrs
		}
		syncAttrs(n, st)
	case nodeText:
		n.Type, n.Data = html.TextNode, sn.TextContent
		st.style = sn.IsStyle
	case nodeCDATA, nodeComment:
		n.Type, n.Data = html.CommentNode, sn.TextContent
	default:
		return nil
	}
	m.byID[sn.ID] = n
	if parent != nil {
		if next != nil && next.Parent == parent {
			parent.InsertBefore(n, next)
		} else {
			parent.AppendChild(n)
		}
	}
	if sn.Type == nodeDocument || sn.Type == nodeElement {
		for _, c := range sn.ChildNodes {
			m.build(c, n, nil)
		}
	}
	return n
}

// syncAttrs sets the html.Node's attributes from st.raw, for selectors, in
// name order, and notes a password input. It reuses the room of n.Attr.
func syncAttrs(n *html.Node, st *nodeState) {
	n.Attr = slices.Grow(n.Attr[:0], len(st.raw))
	for _, a := range st.raw {
		if a.present {
			n.Attr = append(n.Attr, html.Attribute{Key: strings.ToLower(a.name), Val: a.val})
		}
	}
	if n.DataAtom == atom.Input && strings.EqualFold(attr(n, "type"), "password") {
		st.everPassword = true
	}
}

// remove takes the node id and its descendants out of the mirror.
func (m *mirror) remove(id int64) {
	n := m.byID[id]
	if n == nil {
		return
	}
	if n.Parent != nil {
		n.Parent.RemoveChild(n)
	}
	m.forget(n)
}

// forget drops n and its descendants from the indexes.
func (m *mirror) forget(n *html.Node) {
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		m.forget(c)
	}
	delete(m.byID, stateOf(n).id)
}
