package session

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"

	"github.com/cobrowse/cobrowse/internal/rrwebtest"
)

// BenchmarkFanOut measures events per second from one visitor to n agents:
// each iteration is one batch holding one incremental event, and the clock
// stops when every agent has received every batch. Every 10,000 batches the
// visitor starts a new snapshot, as rrweb's checkouts do, which keeps the log
// bounded.
//
//	go test -run '^$' -bench FanOut -benchmem ./session/
func BenchmarkFanOut(b *testing.B) {
	for _, agents := range []int{1, 10} {
		b.Run(fmt.Sprintf("agents=%d", agents), func(b *testing.B) {
			hub := quietHub(Config{MaxQueueBytes: 1 << 30})
			v, _ := mustAttach(b, hub, "session-1", "tab-0001", "page-0001")
			snapshot := rrwebtest.Page(1000, "https://shop.test/", 0)
			if _, err := v.Batch(1, snapshot); err != nil {
				b.Fatal(err)
			}
			s, _ := hub.Session("session-1")

			var wg sync.WaitGroup
			subs := make([]*Subscriber, agents)
			for i := range subs {
				sub, err := s.Subscribe("Test agent")
				if err != nil {
					b.Fatal(err)
				}
				sub.Next(context.Background()) // the initial reset
				subs[i] = sub
				wg.Add(1)
				go func() {
					defer wg.Done()
					for received := 0; received < b.N; {
						msgs, err := sub.Next(context.Background())
						if err != nil {
							b.Error(err)
							return
						}
						received += len(msgs)
					}
				}()
			}

			event := []json.RawMessage{rrwebtest.MouseMove(2000, 1)}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				batch := event
				if i%10000 == 9999 {
					batch = snapshot
				}
				if _, err := v.Batch(uint64(i+2), batch); err != nil {
					b.Fatal(err)
				}
			}
			wg.Wait()
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
			for _, sub := range subs {
				if sub.Resyncs() != 0 {
					b.Fatalf("an agent was resynced; the measurement counts messages and needs none")
				}
			}
		})
	}
}
