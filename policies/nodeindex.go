package policies

import "golang.org/x/net/html"

// nodeIndex finds a mirror's nodes by their rrweb id. rrweb numbers a
// page's nodes from 1 up, one after another, so nearly every id indexes a
// slice, which takes a fraction of a map's memory and none of its hashing
// on every event that names a node. An id far from the others (which only
// a hostile script sends) goes to a map instead, so that no id can make the
// slice large.
type nodeIndex struct {
	base   int64        // the id of dense[0]
	dense  []*html.Node // the nodes of ids base to base+len(dense)-1, nil for none
	sparse map[int64]*html.Node
	count  int
}

// maxIndexGap bounds the slice: an id goes in it only if it is less than
// twice the number of nodes plus maxIndexGap above base, so the slice never
// holds more than that many slots, whatever ids come.
const maxIndexGap = 1024

// firstIDMargin is how far below the first id set the slice starts.
const firstIDMargin = 64

// newNodeIndex returns an empty index with room for about n nodes.
func newNodeIndex(n int) nodeIndex {
	return nodeIndex{dense: make([]*html.Node, 0, n)}
}

// An id is in dense or in sparse, not both: one that went to sparse stays
// there when the slice later grows over it.

// get returns the node with the id, or nil.
func (x *nodeIndex) get(id int64) *html.Node {
	if i := id - x.base; 0 <= i && i < int64(len(x.dense)) && x.dense[i] != nil {
		return x.dense[i]
	}
	return x.sparse[id] // nil if there is no map
}

// set records n as the node with the id, which must not be taken.
func (x *nodeIndex) set(id int64, n *html.Node) {
	x.count++
	if len(x.dense) == 0 {
		// The first id a snapshot's mirror sets is its first leaf's (it is
		// built from the leaves up): its ancestors' are a little smaller.
		x.base = id - min(max(id, 0), firstIDMargin)
	}
	i := id - x.base
	if 0 <= i && i < int64(2*x.count)+maxIndexGap {
		for int64(len(x.dense)) <= i {
			x.dense = append(x.dense, nil)
		}
		x.dense[i] = n
		return
	}
	if x.sparse == nil {
		x.sparse = make(map[int64]*html.Node)
	}
	x.sparse[id] = n
}

// delete forgets the node with the id, if there is one.
func (x *nodeIndex) delete(id int64) {
	if i := id - x.base; 0 <= i && i < int64(len(x.dense)) && x.dense[i] != nil {
		x.dense[i] = nil
		x.count--
		return
	}
	if _, ok := x.sparse[id]; ok {
		delete(x.sparse, id)
		x.count--
	}
}

// len returns the number of nodes in the index.
func (x *nodeIndex) len() int { return x.count }
