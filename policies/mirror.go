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
	byID nodeIndex
	// full is set once a node was left out because the mirror had
	// maxMirrorNodes: a snapshot is then hidden, not shown with holes.
	full bool

	// The nodes, and the attribute lists, that buildNode takes before it
	// allocates any: room for a snapshot's hundreds of nodes, in blocks
	// taken as the snapshot is built and given back when the mirror goes
	// (release). They stay taken, even once their nodes are removed, until
	// then; once the snapshot is built (seal), nodes that mutations add
	// beyond the room left are allocated one by one, so that a page that
	// keeps adding and removing nodes does not grow the mirror.
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

// newMirror returns an empty mirror, for about nodes nodes, to build a
// snapshot in.
func newMirror(nodes int) *mirror {
	return &mirror{byID: newNodeIndex(min(nodes, maxMirrorNodes))}
}

// seal tells the mirror that its snapshot is built: it takes no more blocks.
func (m *mirror) seal() { m.blocks.sealed = true }

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

// mirrorBlocks are the blocks a mirror has taken (nextNodes, nextAttrs),
// which release gives back.
type mirrorBlocks struct {
	nodes  []*nodeBlock
	attrs  []*attrBlock
	sealed bool // see mirror.seal
}

// nextNodes takes a block of nodes, or returns nil once sealed.
func (bs *mirrorBlocks) nextNodes() []mirrorNode {
	if bs.sealed {
		return nil
	}
	block := recycledNodeBlocks.Get().(*nodeBlock)
	bs.nodes = append(bs.nodes, block)
	return block[:]
}

// nextAttrs takes a block of attributes, or returns nil once sealed.
func (bs *mirrorBlocks) nextAttrs() []html.Attribute {
	if bs.sealed {
		return nil
	}
	block := recycledAttrBlocks.Get().(*attrBlock)
	bs.attrs = append(bs.attrs, block)
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
func (m *mirror) size() int { return m.byID.len() }

// build adds the serialized node sn and its descendants to the mirror, under
// parent (nil for a root), before next (nil: as the last child), as
// buildNode does each node: children first. It returns the new node, or
// nil if sn is malformed or its id is taken. The mirror takes over the
// attribute lists of sn's elements: the caller must not use them
// afterwards.
func (m *mirror) build(sn *snode, parent, next *html.Node) *html.Node {
	if sn == nil {
		return nil
	}
	var kids []*html.Node
	if sn.Type == nodeDocument || sn.Type == nodeElement {
		for _, c := range sn.ChildNodes {
			if kid := m.build(c, nil, nil); kid != nil {
				kids = append(kids, kid)
			}
		}
	}
	n := m.buildNode(sn, kids)
	if n != nil && parent != nil {
		if next != nil && next.Parent == parent {
			parent.InsertBefore(n, next)
		} else {
			parent.AppendChild(n)
		}
	}
	return n
}

// buildNode adds the serialized node sn to the mirror, with kids, its
// children already built (in order, in no tree yet), and returns it. If sn
// is malformed, its id is taken (a visitor script that reuses ids gets
// nothing applied) or the mirror is full, it returns nil and forgets the
// kids: the whole subtree is left out. A node that cannot have children
// gets none: its kids are forgotten. The mirror takes over the attribute
// list of sn: the caller must not use it afterwards.
//
// A subtree is built from its leaves up (the snapshot decoder builds each
// node as soon as it has read it, and a node's id comes after its
// children), so of an element and a descendant with the same id, the
// descendant is built and the element, and so the descendant, left out.
func (m *mirror) buildNode(sn *snode, kids []*html.Node) *html.Node {
	full := m.size() >= maxMirrorNodes
	m.full = m.full || full
	taken := m.byID.get(sn.ID) != nil
	if taken || sn.Type < nodeDocument || sn.Type > nodeComment || full {
		for _, kid := range kids {
			m.forget(kid)
		}
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
	}
	m.byID.set(sn.ID, n)
	for _, kid := range kids {
		if sn.Type == nodeDocument || sn.Type == nodeElement {
			n.AppendChild(kid)
		} else {
			m.forget(kid)
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
	n := m.byID.get(id)
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
	m.byID.delete(stateOf(n).id)
}
