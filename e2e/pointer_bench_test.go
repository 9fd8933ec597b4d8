package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-rod/rod/lib/proto"
	"github.com/gorilla/websocket"

	"github.com/cobrowse/cobrowse/internal/latency"
)

// BenchmarkAgentPointerLatency measures an agent's pointer move to the
// visitor's browser: from the agent's message on its live socket to the
// visitor's page receiving the pointer message on its socket (the
// browser's Network.webSocketFrameReceived, seen through CDP). Drawing it
// takes the page at most one animation frame more. One move per
// iteration; run with -benchtime 500x. Reported: p50-ms and p99-ms.
//
//	go test -run '^$' -bench BenchmarkAgentPointerLatency -benchtime 500x ./e2e/
func BenchmarkAgentPointerLatency(b *testing.B) {
	c := startCobrowse(b, "demo")
	page := visitorBrowser(b).MustPage("")
	if err := (proto.NetworkEnable{}).Call(page); err != nil {
		b.Fatal(err)
	}
	arrived := make(chan float64, 64) // the x of each pointer message the page received
	go page.EachEvent(func(e *proto.NetworkWebSocketFrameReceived) {
		var m struct {
			Type string
			X    float64
		}
		if json.Unmarshal([]byte(e.Response.PayloadData), &m) == nil && m.Type == "pointer" {
			arrived <- m.X
		}
	})()
	page.MustNavigate(c.visitorURL).MustWaitLoad()
	page.MustElement("#products")
	id := waitForSession(b, c)
	ws := "ws" + strings.TrimPrefix(c.agentURL, "http") + "/api/sessions/" + id + "/live?name=Bench"
	conn, _, err := websocket.DefaultDialer.Dial(ws, http.Header{"Authorization": {"Bearer " + c.token}})
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	go func() { // the agent's feed is read, as a console does
		for {
			if _, _, err := conn.ReadMessage(); err != nil {
				return
			}
		}
	}()
	time.Sleep(500 * time.Millisecond) // the visitor's page learns who watches

	var latencies []time.Duration
	b.ResetTimer()
	for i := range b.N {
		x := float64(100 + i%500)
		start := time.Now()
		if err := conn.WriteMessage(websocket.TextMessage, []byte(fmt.Sprintf(`{"type":"pointer","x":%g,"y":200}`, x))); err != nil {
			b.Fatal(err)
		}
		for got := -1.0; got != x; {
			select {
			case got = <-arrived:
			case <-time.After(5 * time.Second):
				b.Fatalf("pointer %g never reached the visitor's page", x)
			}
		}
		latencies = append(latencies, time.Since(start))
		time.Sleep(10 * time.Millisecond) // an agent's mouse sends about 30 moves a second
	}
	b.StopTimer()
	latency.Report(b, latencies)
}
