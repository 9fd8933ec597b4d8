package policies

import (
	"encoding/json"
	"slices"
	"strings"
	"sync"

	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"
)

// A full snapshot is tens of kilobytes of nested nodes; decoding it with
// encoding/json's reflection was the largest part of what redaction costs
// per page (BenchmarkHubRecordedSession). decodeSnapshot reads it with the
// scanner of redactfast.go, straight into a new mirror: each node is built
// (mirror.buildNode) as soon as it is read, so that no tree of snodes is
// written and read again (in a server, where other work keeps evicting
// the Redactor's data from the caches, that tree cost more than its
// decoding). It reads what encoding/json would (keys in any letter case,
// null leaving a field empty, unknown keys skipped once checked to be
// JSON) but is stricter where that costs nothing: no key twice, no null
// child node. FuzzDecodeFullSnapshot checks that whenever it decodes
// something, encoding/json decodes the same, and mirror.build makes the
// same mirror of it.

// maxSnapshotDepth bounds the nesting of a snapshot's nodes (a DOM is a few
// dozen levels deep; a hostile one could be millions).
const maxSnapshotDepth = 2048

// decodedSnapshot is a FullSnapshot's data, decoded into a new mirror.
type decodedSnapshot struct {
	mirror *mirror          // sealed
	root   *html.Node       // nil if the node was malformed (see buildNode)
	node   bool             // whether the data had a node at all
	offset fullSnapshotData // the initial offset; Node is nil
}

// decodeSnapshot decodes a FullSnapshot event's data. The mirror keeps
// parts of data (aliasString), which must not change afterwards.
func decodeSnapshot(data []byte) (*decodedSnapshot, bool) {
	s := scanner{b: data, text: aliasString(data)}
	snap, ok := s.snapshot()
	if ok && !s.end() {
		snap.release()
		return nil, false
	}
	return snap, ok
}

// release gives back the mirror of a snapshot that is not used. A nil
// *decodedSnapshot has none.
func (snap *decodedSnapshot) release() {
	if snap != nil {
		snap.mirror.release()
	}
}

// snapshot reads a FullSnapshot's data object, as decodeSnapshot does;
// s.text must be set. If it fails, it has released the mirror.
func (s *scanner) snapshot() (*decodedSnapshot, bool) {
	// A node takes about 100 bytes of JSON.
	snap := &decodedSnapshot{mirror: newMirror((len(s.b) - s.i) / 100)}
	s.mirror, s.scratch = snap.mirror, recycledScratch.Get().(*scratchNodes)
	ok := s.members(snapshotFields, func(i int) bool {
		if i == 0 {
			snap.node = true
			_, ok := s.snode(0)
			if len(s.built) == 1 {
				snap.root = s.built[0]
			}
			clear(s.built)
			s.built = s.built[:0]
			return ok
		}
		return s.members(offsetFields, func(i int) bool {
			target := &snap.offset.InitialOffset.Top
			if i == 1 {
				target = &snap.offset.InitialOffset.Left
			}
			s.ws()
			start := s.i
			if _, ok := s.number(); !ok {
				return false
			}
			*target = json.Number(s.b[start:s.i])
			return true
		})
	})
	for _, n := range *s.scratch {
		*n = snode{} // holding no pointers while pooled
	}
	recycledScratch.Put(s.scratch)
	s.mirror, s.scratch = nil, nil
	snap.mirror.seal()
	if !ok {
		snap.release()
		return nil, false
	}
	return snap, true
}

// The keys of the objects the scanner decodes as encoding/json decodes them
// into this package's types, as their fields' tags name them.
var (
	snapshotFields = fields{"node", "initialOffset"}
	offsetFields   = fields{"top", "left"}
	snodeFields    = fields{"type", "id", "tagName", "attributes", "childNodes", "textContent", "isStyle", "isSVG",
		"rootId", "isShadowHost", "isShadow", "compatMode", "name", "publicId", "systemId", "needBlock", "isCustom"}
)

// fields are the keys of a struct's fields, as its tags spell them: at most
// 64, the most frequent first (lookup tries them in turn).
type fields []string

// lookup returns the index of a key, matched as encoding/json matches field
// names (without regard to case), or -1.
func (f fields) lookup(key []byte) int {
	for i, name := range f {
		if string(key) == name {
			return i
		}
	}
	for i, name := range f {
		if strings.EqualFold(string(key), name) {
			return i
		}
	}
	return -1
}

// members reads an object as encoding/json reads one into a struct with
// the fields f: keys matched without regard to case, null leaving a field
// as it is, unknown keys skipped once checked to be JSON. It is stricter
// where that costs nothing: no field twice, no key with an escape. field
// reads the value of the field f[i], which is not null.
func (s *scanner) members(f fields, field func(i int) bool) bool {
	var seen uint64
	return s.object(func(key []byte) bool {
		i := f.lookup(key)
		switch {
		case i < 0:
			return s.skipChecked()
		case seen&(1<<i) != 0:
			return false
		}
		seen |= 1 << i
		return s.null() || field(i)
	})
}

// snode reads a serialized node and its children. With s.mirror, it builds
// each node into it as soon as it is read (mirror.buildNode) and pushes it
// on s.built, unless buildNode leaves it out; the snode it returns is then
// a scratch one, which the next node at its depth reuses.
func (s *scanner) snode(depth int) (*snode, bool) {
	if depth > maxSnapshotDepth {
		return nil, false
	}
	n := s.newSnode(depth)
	built := len(s.built) // where this node's children go
	ok := s.members(snodeFields, func(i int) bool {
		var ok bool
		switch snodeFields[i] {
		case "type":
			var v int64
			v, ok = s.integer()
			n.Type = int(v)
			ok = ok && int64(n.Type) == v
		case "id":
			n.ID, ok = s.integer()
		case "rootId":
			var v int64
			v, ok = s.integer()
			n.RootID = &v
		case "isShadowHost":
			n.IsShadowHost, ok = s.boolean()
		case "isShadow":
			n.IsShadow, ok = s.boolean()
		case "isSVG":
			n.IsSVG, ok = s.boolean()
		case "needBlock":
			n.NeedBlock, ok = s.boolean()
		case "isCustom":
			n.IsCustom, ok = s.boolean()
		case "isStyle":
			n.IsStyle, ok = s.boolean()
		case "compatMode":
			n.CompatMode, ok = s.str()
		case "name":
			n.Name, ok = s.str()
		case "publicId":
			n.PublicID, ok = s.str()
		case "systemId":
			n.SystemID, ok = s.str()
		case "tagName":
			n.TagName, ok = s.name()
		case "textContent":
			n.TextContent, ok = s.str()
		case "childNodes":
			if s.mirror != nil {
				return s.array(func() bool {
					_, ok := s.snode(depth + 1) // built, on s.built
					return ok
				})
			}
			// The children are gathered on s.kids (whose top a child's own
			// children use and leave as they found it), then copied once.
			mark := len(s.kids)
			ok = s.array(func() bool {
				kid, ok := s.snode(depth + 1)
				s.kids = append(s.kids, kid)
				return ok
			})
			n.ChildNodes = append(make([]*snode, 0, len(s.kids)-mark), s.kids[mark:]...)
			clear(s.kids[mark:]) // no pointers kept past the decoding
			s.kids = s.kids[:mark]
		case "attributes":
			n.Attributes, ok = s.rawValues()
		}
		return ok
	})
	if ok && s.mirror != nil {
		kids := s.built[built:]
		node := s.mirror.buildNode(n, kids)
		clear(kids) // no pointers kept past the decoding
		s.built = s.built[:built]
		if node != nil {
			s.built = append(s.built, node)
		}
	}
	return n, ok
}

// rawValues reads an object of attribute values, as encoding/json reads
// one into a map[string]json.RawMessage (the last of a key's values kept),
// but no key with an escape, into attributes. A string value is unquoted
// (which also checks it) as it is read, for the selectors and redaction to
// use; the raw values alias the scanner's bytes.
func (s *scanner) rawValues() (attributes, bool) {
	// The attributes are gathered on s.attrs, then put in order and copied
	// once: most elements have one to three.
	s.attrs = s.attrs[:0]
	ok := s.object(func(key []byte) bool {
		name := internName(key) // object() takes only keys without escapes
		s.ws()
		start := s.i
		if s.i < len(s.b) && s.b[s.i] == '"' {
			val, ok := s.str()
			if !ok {
				return false
			}
			s.attrs = append(s.attrs, attribute{name: name, raw: s.b[start:s.i], val: val, present: true})
			return true
		}
		if !s.skipChecked() {
			return false
		}
		s.attrs = append(s.attrs, newAttribute(name, s.b[start:s.i]))
		return true
	})
	// In name order, the last value of a name kept.
	slices.SortStableFunc(s.attrs, func(a, b attribute) int { return strings.Compare(a.name, b.name) })
	values := s.attributeList(len(s.attrs))
	for i, a := range s.attrs {
		if i+1 == len(s.attrs) || s.attrs[i+1].name != a.name {
			values = append(values, a)
		}
	}
	clear(s.attrs) // no pointers kept past the decoding
	return values, ok
}

// scratchNodes are the scratch nodes that a snapshot is decoded with (see
// snode), one per depth: a few dozen.
type scratchNodes []*snode

// recycledScratch holds the scratch nodes of decoded snapshots, zeroed.
var recycledScratch = sync.Pool{New: func() any { return new(scratchNodes) }}

// newSnode returns a zeroed node for one at depth: with s.mirror, the
// scratch node of that depth (see snode); otherwise one from a block of
// nodes that the scanner allocates at once.
func (s *scanner) newSnode(depth int) *snode {
	if s.mirror != nil {
		for len(*s.scratch) <= depth {
			*s.scratch = append(*s.scratch, new(snode))
		}
		n := (*s.scratch)[depth]
		*n = snode{}
		return n
	}
	if len(s.nodes) == 0 {
		// A node takes about 100 bytes of JSON (with its attributes, and
		// for a mutation the add that carries it): a mutation does not get
		// a block of 64 for its few nodes.
		s.nodes = make([]snode, min(snodeBlockLen, 1+(len(s.b)-s.i)/64))
	}
	n := &s.nodes[0]
	s.nodes = s.nodes[1:]
	return n
}

// snodeBlockLen is the number of nodes in a block of newSnode's.
const snodeBlockLen = 64

// attributeList returns an empty list with room for n attributes: for a
// snapshot, from one allocation for many elements (a mirror keeps the
// lists of its elements as long as the page lasts, so they are not
// recycled, but hundreds of small allocations become a few).
func (s *scanner) attributeList(n int) attributes {
	if s.mirror == nil || n > attrSlabLen/4 {
		return make(attributes, 0, n)
	}
	if n > len(s.attrRoom) {
		s.attrRoom = make(attributes, attrSlabLen)
	}
	list := s.attrRoom[:0:n] // its own room: an append past it copies
	s.attrRoom = s.attrRoom[n:]
	return list
}

// attrSlabLen is the number of attributes in one allocation of
// attributeList's.
const attrSlabLen = 64

// name reads a string that is most likely a tag or attribute name, without
// allocating a copy of one known to x/net/html.
func (s *scanner) name() (string, bool) {
	s.ws()
	start := s.i
	if !s.skipString() {
		return "", false
	}
	q := s.b[start+1 : s.i-1]
	if plainPrefix(q) == len(q) {
		return internName(q), true
	}
	return unquote(q)
}

// internName returns key as a string, without allocating a copy of a name
// known to x/net/html (tag and attribute names, mostly).
func internName(key []byte) string {
	if a := atom.Lookup(key); a != 0 {
		return a.String()
	}
	return string(key)
}

// null reads a null if one comes next.
func (s *scanner) null() bool {
	s.ws()
	if len(s.b)-s.i >= 4 && string(s.b[s.i:s.i+4]) == "null" {
		s.i += 4
		return true
	}
	return false
}

// boolean reads true or false.
func (s *scanner) boolean() (bool, bool) {
	s.ws()
	switch {
	case len(s.b)-s.i >= 4 && string(s.b[s.i:s.i+4]) == "true":
		s.i += 4
		return true, true
	case len(s.b)-s.i >= 5 && string(s.b[s.i:s.i+5]) == "false":
		s.i += 5
		return false, true
	}
	return false, false
}

// skipChecked reads any value, and checks that it is JSON.
func (s *scanner) skipChecked() bool {
	s.ws()
	if s.i >= len(s.b) {
		return false
	}
	switch c := s.b[s.i]; {
	case c == '"':
		start := s.i
		return s.skipString() && validQuoted(s.b[start+1:s.i-1])
	case c == '-' || '0' <= c && c <= '9':
		_, ok := s.number()
		return ok
	case c == 't' || c == 'f':
		_, ok := s.boolean()
		return ok
	case c == 'n':
		return s.null()
	}
	start := s.i
	return s.skipValue() && json.Valid(s.b[start:s.i])
}
