package e2e

import (
	"compress/gzip"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"
)

// TestRecordDemoSession records what a visitor's browser sends while it
// shops on the demo: pointer moves, scrolls, clicks, the cart's updates,
// navigation to checkout and typing. It runs only when COBROWSE_RECORD names
// the file to write (gzipped JSON: the batches of rrweb events, in the order
// sent). policies' BenchmarkHubEvent
// replays internal/rrwebtest/demo-session.json.gz, made with:
//
//	COBROWSE_RECORD=$PWD/internal/rrwebtest/demo-session.json.gz go test -run TestRecordDemoSession ./e2e/
func TestRecordDemoSession(t *testing.T) {
	out := os.Getenv("COBROWSE_RECORD")
	if out == "" {
		t.Skip("set COBROWSE_RECORD=FILE to record a demo session")
	}
	c := startDemo(t)
	page := visitorBrowser(t).MustPage("").Timeout(120 * time.Second)
	page.MustSetViewport(1280, 800, 1, false)
	sent := captureVisitorTraffic(t, page)

	page.MustNavigate(c.visitorURL).MustWaitLoad()
	page.MustElement("#products")
	move := func(x, y float64) {
		page.Mouse.MustMoveTo(x, y)
		time.Sleep(16 * time.Millisecond)
	}
	// Browse: sweep the pointer across the products, scroll down and up.
	for i := range 200 {
		move(100+float64(i)*15, 200+float64(i%20)*10)
	}
	for range 6 {
		page.Mouse.MustScroll(0, 300)
		time.Sleep(120 * time.Millisecond)
	}
	for range 6 {
		page.Mouse.MustScroll(0, -300)
		time.Sleep(120 * time.Millisecond)
	}
	for _, product := range []string{"mug", "mug"} {
		el := page.MustElement(`button.add-to-cart[data-product="` + product + `"]`)
		el.MustScrollIntoView()
		el.MustClick()
		time.Sleep(300 * time.Millisecond)
	}
	// Checkout and typing.
	wait := page.MustWaitNavigation()
	page.MustElement("#checkout-link").MustClick()
	wait()
	page.MustElement("#checkout-form")
	for i := range 30 {
		move(600+float64(i)*5, 300+float64(i)*4)
	}
	page.MustElement("#name").MustInput("Ada Lovelace")
	page.MustElement("#card").MustInput("4000056655665556")
	page.MustElement("#password").MustInput("correct horse battery")
	time.Sleep(500 * time.Millisecond) // the last batch

	var batches [][]json.RawMessage
	for _, frame := range sent.list() {
		var b struct {
			Seq    uint64            `json:"seq"`
			Events []json.RawMessage `json:"events"`
		}
		if json.Unmarshal([]byte(frame), &b) != nil || b.Seq == 0 {
			continue // page, focus and other control messages
		}
		batches = append(batches, b.Events)
	}
	if len(batches) < 10 || !strings.Contains(sent.all(), "Ada Lovelace") {
		t.Fatalf("recorded %d batches; the visitor's traffic looks incomplete", len(batches))
	}
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	zw, _ := gzip.NewWriterLevel(f, gzip.BestCompression)
	if err := json.NewEncoder(zw).Encode(batches); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, b := range batches {
		n += len(b)
	}
	t.Logf("recorded %d batches, %d events to %s", len(batches), n, out)
}
