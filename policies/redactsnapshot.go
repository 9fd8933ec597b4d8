package policies

import (
	"encoding/json"
	"strings"

	"golang.org/x/net/html/atom"
)

// A full snapshot is tens of kilobytes of nested nodes; decoding it with
// encoding/json's reflection was the largest part of what redaction costs
// per page (BenchmarkHubRecordedSession). decodeFullSnapshot reads it with
// the scanner of redactfast.go into the same snode tree. It reads what
// encoding/json would (keys in any letter case, null leaving a field
// empty, unknown keys skipped once checked to be JSON) but is stricter
// where that costs nothing: no key twice, no null child node.
// FuzzDecodeFullSnapshot checks that whenever it decodes something,
// encoding/json decodes the same.

// maxSnapshotDepth bounds the nesting of a snapshot's nodes (a DOM is a few
// dozen levels deep; a hostile one could be millions).
const maxSnapshotDepth = 2048

// decodeFullSnapshot decodes a FullSnapshot event's data.
func decodeFullSnapshot(data []byte) (*fullSnapshotData, bool) {
	fs := new(fullSnapshotData)
	s := scanner{b: data}
	var seen uint
	ok := s.object(func(key []byte) bool {
		switch {
		case strings.EqualFold(string(key), "node") && seen&1 == 0:
			seen |= 1
			if s.null() {
				return true
			}
			var ok bool
			fs.Node, ok = s.snode(0)
			return ok
		case strings.EqualFold(string(key), "initialOffset") && seen&2 == 0:
			seen |= 2
			if s.null() {
				return true
			}
			var fields uint
			return s.object(func(key []byte) bool {
				var target *json.Number
				switch {
				case strings.EqualFold(string(key), "top") && fields&1 == 0:
					fields |= 1
					target = &fs.InitialOffset.Top
				case strings.EqualFold(string(key), "left") && fields&2 == 0:
					fields |= 2
					target = &fs.InitialOffset.Left
				default:
					return s.skipChecked()
				}
				s.ws()
				start := s.i
				if _, ok := s.number(); !ok {
					return false
				}
				*target = json.Number(s.b[start:s.i])
				return true
			})
		case strings.EqualFold(string(key), "node") || strings.EqualFold(string(key), "initialOffset"):
			return false // twice
		}
		return s.skipChecked()
	})
	return fs, ok && s.end()
}

// The keys of a serialized node, by their bit in snode's seen set, and by
// name as rrweb writes them (other letter cases are looked up in the list).
var (
	snodeKeys = []string{"type", "id", "rootId", "isShadowHost", "isShadow", "childNodes", "compatMode",
		"name", "publicId", "systemId", "tagName", "attributes", "isSVG", "needBlock", "isCustom", "textContent", "isStyle"}
	snodeKeyIndex = func() map[string]int {
		m := make(map[string]int, len(snodeKeys))
		for i, k := range snodeKeys {
			m[k] = i
		}
		return m
	}()
)

// snodeKey returns the index in snodeKeys of a key, matched as
// encoding/json matches field names (without regard to case), or -1.
func snodeKey(key []byte) int {
	if i, ok := snodeKeyIndex[string(key)]; ok {
		return i
	}
	for i, name := range snodeKeys {
		if strings.EqualFold(string(key), name) {
			return i
		}
	}
	return -1
}

// snode reads a serialized node and its children.
func (s *scanner) snode(depth int) (*snode, bool) {
	if depth > maxSnapshotDepth {
		return nil, false
	}
	n := s.newSnode()
	var seen uint32
	ok := s.object(func(key []byte) bool {
		i := snodeKey(key)
		if i < 0 {
			return s.skipChecked()
		}
		if seen&(1<<i) != 0 {
			return false
		}
		seen |= 1 << i
		if s.null() {
			return true // as encoding/json: the field stays empty
		}
		var ok bool
		switch snodeKeys[i] {
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
			n.Attributes = attributes{}
			ok = s.object(func(key []byte) bool {
				name := internName(key) // object() takes only keys without escapes
				s.ws()
				start := s.i
				if !s.skipChecked() {
					return false
				}
				n.Attributes[name] = json.RawMessage(s.b[start:s.i])
				return true
			})
		}
		return ok
	})
	return n, ok
}

// newSnode returns a zeroed node, from a block of nodes that the scanner
// allocates at once (a snapshot has hundreds).
func (s *scanner) newSnode() *snode {
	if len(s.nodes) == 0 {
		// A node takes more than 16 bytes of JSON: a short snapshot does
		// not get a block of 64.
		s.nodes = make([]snode, min(64, 1+(len(s.b)-s.i)/16))
	}
	n := &s.nodes[0]
	s.nodes = s.nodes[1:]
	return n
}

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
