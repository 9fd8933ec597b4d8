// Package latency reports the latencies a benchmark measured, as the
// benchmarks of docs/benchmarks.md give them: p50 and p99 in milliseconds.
package latency

import (
	"slices"
	"testing"
	"time"
)

// Report sorts latencies and reports their p50 and p99 as the benchmark's
// metrics "p50-ms" and "p99-ms", in place of ns/op (a benchmark that
// measures latencies paces its operations, so their time says nothing).
func Report(b *testing.B, latencies []time.Duration) {
	if len(latencies) == 0 {
		return
	}
	slices.Sort(latencies)
	pct := func(q float64) float64 {
		return float64(latencies[int(q*float64(len(latencies)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(0, "ns/op")
}
