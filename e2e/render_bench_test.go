package e2e

import (
	"bytes"
	"fmt"
	"image/color"
	"image/jpeg"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/cobrowse/cobrowse/internal/latency"
)

// BenchmarkRenderedModeLatency measures the whole Rendered-mode path as an
// agent sees it: the visitor's page changes a box's colour (in the visitor's
// Chromium, driven by go-rod), and the time until the agent's render socket
// delivers the first JPEG frame that shows the new colour. That covers the
// visitor script's batching, the visitor socket, redaction, the hub, the
// replay in the server's Chromium, its screencast and the agent socket. One
// mutation per iteration; run with -benchtime 200x. Reported: p50-ms and
// p99-ms.
//
//	go test -run '^$' -bench BenchmarkRenderedModeLatency -benchtime 200x ./e2e/
func BenchmarkRenderedModeLatency(b *testing.B) {
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, `<!doctype html><title>Box</title><body style="margin:0">`+
			`<div id="box" style="width:200px;height:200px;background:rgb(0,0,0)"></div></body>`)
	}))
	defer site.Close()
	c := startCobrowse(b, "serve", "--upstream", site.URL, "--render")
	page := visitorBrowser(b).MustPage(c.visitorURL).MustWaitLoad()
	page.MustElement("#box")
	id := waitForSession(b, c)

	ws := "ws" + strings.TrimPrefix(c.agentURL, "http") + "/api/sessions/" + id + "/render"
	conn, _, err := websocket.DefaultDialer.Dial(ws, http.Header{"Authorization": {"Bearer " + c.token}})
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	// Each frame: when it arrived, and the box's colour in it.
	type frame struct {
		at     time.Time
		colour color.RGBA
	}
	frames := make(chan frame, 64)
	go func() {
		defer close(frames)
		for {
			kind, msg, err := conn.ReadMessage()
			if err != nil {
				return
			}
			if kind != websocket.BinaryMessage {
				continue
			}
			at := time.Now()
			img, err := jpeg.Decode(bytes.NewReader(msg))
			if err != nil {
				continue
			}
			r, g, bl, _ := img.At(100, 100).RGBA()
			frames <- frame{at, color.RGBA{uint8(r >> 8), uint8(g >> 8), uint8(bl >> 8), 255}}
		}
	}()

	palette := []color.RGBA{{255, 0, 0, 255}, {0, 200, 0, 255}, {0, 0, 255, 255}, {255, 255, 0, 255}, {255, 0, 255, 255}, {0, 255, 255, 255}}
	near := func(a, w color.RGBA) bool {
		d := func(p, q uint8) int { return max(int(p), int(q)) - min(int(p), int(q)) }
		return d(a.R, w.R) < 40 && d(a.G, w.G) < 40 && d(a.B, w.B) < 40
	}
	var latencies []time.Duration
	b.ResetTimer()
	for i := range b.N {
		want := palette[i%len(palette)]
		start := time.Now()
		page.MustEval(fmt.Sprintf(`() => document.getElementById('box').style.background = 'rgb(%d,%d,%d)'`, want.R, want.G, want.B))
		deadline := time.After(10 * time.Second)
	wait:
		for {
			select {
			case f, ok := <-frames:
				if !ok {
					b.Fatal("the render socket closed")
				}
				if near(f.colour, want) {
					latencies = append(latencies, f.at.Sub(start))
					break wait
				}
			case <-deadline:
				b.Fatalf("no frame showed %v within 10s", want)
			}
		}
		time.Sleep(20 * time.Millisecond) // a visitor does not change the page continuously
	}
	b.StopTimer()
	latency.Report(b, latencies)
}
