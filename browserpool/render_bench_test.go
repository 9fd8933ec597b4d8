package browserpool

import (
	"bytes"
	"context"
	"fmt"
	"image/color"
	"image/jpeg"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/cobrowse/cobrowse/internal/latency"
)

// palette holds colours far apart from one another, even after JPEG: each
// mutation paints the box in the next one, so the frame that shows a
// mutation is told from the frames before it.
var palette = []color.RGBA{
	{255, 0, 0, 255}, {0, 200, 0, 255}, {0, 0, 255, 255},
	{255, 255, 0, 255}, {255, 0, 255, 255}, {0, 255, 255, 255},
}

// BenchmarkRenderLatency measures the Rendered mode on its own (no visitor
// browser, no hub): for 1, 2, 4 and 8 sessions rendered at once by one
// browser, the time from a mutation entering a session's feed to the first
// screencast frame that shows it, and the browser's memory per session.
// Each iteration makes one mutation in every session at once; run it with
// -benchtime 200x for 200 mutations per session. Reported: p50-ms, p99-ms
// (over every mutation of every session) and PSS-MiB/session (proportional
// set size of the browser's whole process group, so shared pages count
// once).
func BenchmarkRenderLatency(b *testing.B) {
	for _, n := range []int{1, 2, 4, 8} {
		b.Run(fmt.Sprintf("sessions=%d", n), func(b *testing.B) {
			cfg := testConfig(b)
			cfg.TabsPerBrowser = n
			cfg.ProbeInterval = 5 * time.Second
			p := newPool(b, cfg)
			sessions := map[string]*testSession{}
			for i := range n {
				sessions[strconv.Itoa(i)] = &testSession{events: shopPage()}
			}
			r := newRenderer(b, p, &testResolver{files: shopFiles}, sessions)
			viewers := map[string]*Viewer{}
			for id := range sessions {
				v, err := r.Watch(id)
				if err != nil {
					b.Fatal(err)
				}
				defer v.Close()
				waitState(b, v, StateLive, 30*time.Second)
				viewers[id] = v
			}

			var mu sync.Mutex
			var latencies []time.Duration
			b.ResetTimer()
			for i := range b.N {
				var wg sync.WaitGroup
				for id, s := range sessions {
					wg.Go(func() {
						d := mutationToFrame(b, s, viewers[id], 10_000+i, palette[i%len(palette)])
						mu.Lock()
						latencies = append(latencies, d)
						mu.Unlock()
					})
				}
				wg.Wait()
			}
			b.StopTimer()
			latency.Report(b, latencies)
			p.mu.Lock()
			pid := p.browsers[0].pid
			p.mu.Unlock()
			pss, err := groupPSS(pid)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(pss)/float64(n)/(1<<20), "PSS-MiB/session")
		})
	}
}

// mutationToFrame paints the session's box in c and returns how long it
// took until a frame showed it.
func mutationToFrame(b *testing.B, s *testSession, v *Viewer, ts int, c color.RGBA) time.Duration {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	s.add(boxStyle(ts, fmt.Sprintf("rgb(%d, %d, %d)", c.R, c.G, c.B)))
	for {
		u, err := v.Next(ctx)
		if err != nil {
			b.Errorf("no frame with the box in %v: %v", c, err)
			return 10 * time.Second
		}
		if u.Frame == nil {
			continue
		}
		img, err := jpeg.Decode(bytes.NewReader(u.Frame.JPEG))
		if err != nil {
			b.Fatal(err)
		}
		r, g, bl, _ := img.At(50, 50).RGBA()
		if near(color.RGBA{uint8(r >> 8), uint8(g >> 8), uint8(bl >> 8), 255}, c) {
			return u.Frame.At.Sub(start)
		}
	}
}
