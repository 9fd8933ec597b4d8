package policies

import (
	"math"
	"math/rand/v2"
	"testing"

	"golang.org/x/net/html"
)

// TestNodeIndexIsAMap checks nodeIndex against a map on random operations
// over ids as rrweb numbers them (dense, from a first leaf on) and as a
// hostile script might (negative, huge, far apart), and that the far ones
// do not grow the slice.
func TestNodeIndexIsAMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for round := range 200 {
		x, model := newNodeIndex(0), map[int64]*html.Node{}
		start := rng.Int64N(10_000)
		id := func() int64 {
			switch rng.IntN(10) {
			case 0:
				return -rng.Int64N(1000)
			case 1:
				return rng.Int64N(math.MaxInt64)
			case 2:
				return math.MinInt64 + rng.Int64N(10)
			default:
				return start + rng.Int64N(500)
			}
		}
		peak := 0
		for range 400 {
			k := id()
			switch rng.IntN(3) {
			case 0:
				if model[k] == nil {
					n := &html.Node{}
					x.set(k, n)
					model[k] = n
				}
			case 1:
				x.delete(k)
				delete(model, k)
			}
			if got := x.get(k); got != model[k] {
				t.Fatalf("round %d: get(%d) = %p, want %p", round, k, got, model[k])
			}
			if x.len() != len(model) {
				t.Fatalf("round %d: len() = %d, want %d", round, x.len(), len(model))
			}
			peak = max(peak, len(model))
		}
		for k, n := range model {
			if x.get(k) != n {
				t.Fatalf("round %d: get(%d) = %p, want %p", round, k, x.get(k), n)
			}
		}
		if len(x.dense) > 2*peak+maxIndexGap {
			t.Fatalf("round %d: the slice grew to %d for at most %d nodes", round, len(x.dense), peak)
		}
	}
}

// TestNodeIndexStaysSmall sets ids each just inside the slice's bound, as a
// hostile script could: the slice must stay within it.
func TestNodeIndexStaysSmall(t *testing.T) {
	x := newNodeIndex(0)
	for n := range 10_000 {
		x.set(x.base+int64(2*(n+1)+maxIndexGap-1), &html.Node{})
	}
	if len(x.dense) > 2*x.len()+maxIndexGap {
		t.Fatalf("the slice has %d slots for %d nodes", len(x.dense), x.len())
	}
}
