package gcfloor

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"
)

func TestPercentFor(t *testing.T) {
	const floor = 32 << 20
	for _, c := range []struct {
		live uint64
		want int
	}{
		{0, 800},             // before the first collection: the goal is 4 MiB * 8
		{1 << 20, 800},       // the runtime's minimum, not live*32, bounds the goal
		{4 << 20, 700},       // 4 MiB * (1 + 7) = 32 MiB
		{(4 << 20) + 1, 699}, // rounded down: the goal stays under the floor
		{8 << 20, 300},       // 8 MiB * 4
		{floor/2 - 1, 100},   // 100.00001 %, rounded down
		{16 << 20, 100},      // twice the live heap is the floor
		{24 << 20, 100},      // never below the default
		{floor - 1, 100},
		{floor, 100},
		{1 << 30, 100},
	} {
		if got := percentFor(c.live, floor); got != c.want {
			t.Errorf("percentFor(%d MiB + %d, 32 MiB) = %d, want %d", c.live>>20, c.live&(1<<20-1), got, c.want)
		}
	}
}

// TestTunerFollowsTheLiveHeap checks that the tuner sets GOGC after
// collections, from the heap they leave live: high while little is live,
// back to 100 once twice the live heap is above the floor.
func TestTunerFollowsTheLiveHeap(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	const floor = 64 << 20
	tr := &tuner{floor: floor, sample: []metrics.Sample{{Name: liveHeap}}}
	tr.arm()
	waitForGOGC(t, func(p int) bool { return p > 100 }, "above 100 with little live")

	held := make([]byte, floor/2+(8<<20))
	waitForGOGC(t, func(p int) bool { return p == 100 }, "100 with 40 MiB live")
	runtime.KeepAlive(held)
}

// waitForGOGC collects until GOGC satisfies ok, for up to 10 s.
func waitForGOGC(t *testing.T, ok func(int) bool, want string) {
	t.Helper()
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	for deadline := time.Now().Add(10 * time.Second); ; {
		runtime.GC()
		time.Sleep(5 * time.Millisecond) // cleanups run on their own goroutine
		metrics.Read(s)
		p := int(s[0].Value.Uint64())
		if ok(p) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("GOGC is %d after collections for 10 s, want %s", p, want)
		}
	}
}

// TestStartLeavesAnOperatorsSettings checks that GOGC or GOMEMLIMIT in the
// environment turns the floor off.
func TestStartLeavesAnOperatorsSettings(t *testing.T) {
	for _, name := range []string{"GOGC", "GOMEMLIMIT"} {
		t.Run(name, func(t *testing.T) {
			t.Setenv(name, "100")
			if Start(32 << 20) {
				t.Fatalf("Start set a floor although %s is set", name)
			}
		})
	}
}
