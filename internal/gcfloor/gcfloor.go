// Package gcfloor keeps the Go garbage collector from running while little
// of the heap is live.
//
// With the default GOGC=100 the collector runs whenever the heap has grown
// to twice what the last collection left live, but never below 4 MiB. A
// proxy keeps little live (a few MiB) and allocates a little for every
// request (about 10 KiB for a page), so under load it collected 25 to 30
// times a second, and the collections took 10 to 15 % of its CPU
// (docs/benchmarks.md). A floor under the heap goal spaces them out, for a
// bounded amount of memory: with a floor of 32 MiB, the heap grows to at
// most 32 MiB of which most is garbage, instead of 4 to 8 MiB. Once twice
// the live heap is above the floor, the collector runs as it would without
// it.
//
// It adjusts GOGC after every collection (runtime/debug.SetGCPercent) so
// that the next collection starts when the heap reaches the floor. An
// operator who sets GOGC or GOMEMLIMIT has chosen how the collector should
// run: then Start changes nothing.
package gcfloor

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// defaultHeapMinimum is the runtime's smallest heap goal at GOGC=100: the
// smallest goal is this times GOGC/100, so that GOGC values above
// floor/defaultHeapMinimum*100 would put the goal above the floor.
const defaultHeapMinimum = 4 << 20

// liveHeap is the runtime metric of the heap bytes that the last
// collection marked live (0 before the first one).
const liveHeap = "/gc/heap/live:bytes"

var once sync.Once

// Start sets a floor of floor bytes under the collector's heap goal, for
// the life of the process, unless the environment sets GOGC or GOMEMLIMIT.
// It reports whether it did. Only the first call does anything: the
// collector is the whole process's.
func Start(floor uint64) (started bool) {
	if os.Getenv("GOGC") != "" || os.Getenv("GOMEMLIMIT") != "" {
		return false
	}
	once.Do(func() {
		t := &tuner{floor: floor, sample: []metrics.Sample{{Name: liveHeap}}}
		t.adjust()
		t.arm()
		started = true
	})
	return started
}

// tuner sets GOGC after each collection. Its methods run on one goroutine
// at a time: Start's, then the runtime's cleanup goroutine.
type tuner struct {
	floor   uint64
	sample  []metrics.Sample
	percent int // the GOGC it set last; 0 before the first
}

// cycleMarker is allocated only to become garbage: its cleanup runs after
// the collection that finds it unreachable. It holds a pointer so that the
// runtime does not batch it with other small pointer-free objects, whose
// cleanups may never run.
type cycleMarker struct{ _ *byte }

// arm has adjust run after the next collection, and arm again.
func (t *tuner) arm() {
	runtime.AddCleanup(new(cycleMarker), func(t *tuner) {
		t.adjust()
		t.arm()
	}, t)
}

// adjust sets GOGC for the heap that the last collection left live.
func (t *tuner) adjust() {
	metrics.Read(t.sample)
	if p := percentFor(t.sample[0].Value.Uint64(), t.floor); p != t.percent {
		debug.SetGCPercent(p)
		t.percent = p
	}
}

// percentFor returns the GOGC whose heap goal, with live bytes live, is
// about floor, and at least the default of 100: the goal is live*(1+GOGC/100)
// but at least defaultHeapMinimum*GOGC/100, so it is the smaller of the two
// values that reach floor.
func percentFor(live, floor uint64) int {
	if live >= floor {
		return 100
	}
	p := floor * 100 / defaultHeapMinimum
	if live > 0 {
		p = min(p, (floor-live)*100/live)
	}
	return int(max(p, 100))
}
