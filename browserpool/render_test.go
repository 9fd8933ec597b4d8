package browserpool

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"image/color"
	"image/png"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
)

// errTestSessionEnded is what a testFeed returns once its session ended.
var errTestSessionEnded = errors.New("test session ended")

// testSession plays the hub's part for one session: every Open gets a feed
// that starts with a reset of the page so far, then the events that follow.
type testSession struct {
	mu         sync.Mutex
	pixelRatio float64  // the visitor's screen's, in the reset's session Info
	events     []string // the page: Meta, FullSnapshot, then incremental events
	feeds      []*testFeed
	opens      int
	ended      bool
}

type testFeed struct {
	s      *testSession
	queue  chan []byte
	closed chan struct{}
	once   sync.Once
}

func (s *testSession) open() (Feed, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return nil, errTestSessionEnded
	}
	s.opens++
	f := &testFeed{s: s, queue: make(chan []byte, 100), closed: make(chan struct{})}
	f.queue <- []byte(fmt.Sprintf(`{"type":"reset","session":{"pixelRatio":%g},"events":[%s]}`, s.pixelRatio, strings.Join(s.events, ",")))
	s.feeds = append(s.feeds, f)
	return f, nil
}

// add appends events to the page and sends them to every open feed.
func (s *testSession) add(events ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, events...)
	msg := []byte(`{"type":"events","events":[` + strings.Join(events, ",") + `]}`)
	for _, f := range s.feeds {
		select {
		case f.queue <- msg:
		case <-f.closed:
		}
	}
}

func (s *testSession) end() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ended = true
	for _, f := range s.feeds {
		close(f.queue)
	}
	s.feeds = nil
}

func (s *testSession) openCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.opens
}

func (f *testFeed) Next(ctx context.Context) ([][]byte, error) {
	select {
	case msg, ok := <-f.queue:
		if !ok {
			return nil, errTestSessionEnded
		}
		return [][]byte{msg}, nil
	case <-f.closed:
		return nil, errors.New("feed closed")
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (f *testFeed) Close() {
	f.once.Do(func() {
		close(f.closed)
		s := f.s
		s.mu.Lock()
		defer s.mu.Unlock()
		for i, g := range s.feeds {
			if g == f {
				s.feeds = append(s.feeds[:i], s.feeds[i+1:]...)
				break
			}
		}
	})
}

// testResolver serves the visitor's site from a map and records what the
// renderer asked for.
type testResolver struct {
	files map[string]string // URL → CSS body

	mu    sync.Mutex
	asked []string // "session page-URL URL"
}

func (r *testResolver) Resolve(ctx context.Context, req Subresource) (*Resource, error) {
	r.mu.Lock()
	r.asked = append(r.asked, req.SessionID+" "+req.PageURL+" "+req.URL)
	r.mu.Unlock()
	body, ok := r.files[req.URL]
	if !ok {
		return nil, fmt.Errorf("%s: not found", req.URL)
	}
	return &Resource{Status: 200, Header: http.Header{"Content-Type": {"text/css"}}, Body: []byte(body)}, nil
}

func (r *testResolver) requests() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.asked...)
}

// shopPage is a visitor's page as rrweb records it: a stylesheet that only
// the server can fetch, a blue box (#box, id 8) and scripts that must never
// run or be fetched.
func shopPage() []string {
	return []string{
		`{"type":4,"timestamp":1000,"data":{"href":"http://shop.test/","width":640,"height":480}}`,
		`{"type":2,"timestamp":1001,"data":{"node":{"type":0,"id":1,"childNodes":[
			{"type":1,"id":2,"name":"html","publicId":"","systemId":""},
			{"type":2,"id":3,"tagName":"html","attributes":{},"childNodes":[
				{"type":2,"id":4,"tagName":"head","attributes":{},"childNodes":[
					{"type":2,"id":5,"tagName":"link","attributes":{"rel":"stylesheet","href":"http://shop.test/style.css"},"childNodes":[]},
					{"type":2,"id":6,"tagName":"script","attributes":{"src":"http://shop.test/evil.js"},"childNodes":[]}]},
				{"type":2,"id":7,"tagName":"body","attributes":{},"childNodes":[
					{"type":2,"id":8,"tagName":"div","attributes":{"id":"box"},"childNodes":[]},
					{"type":2,"id":9,"tagName":"script","attributes":{},"childNodes":[
						{"type":3,"id":10,"textContent":"document.body.style.background='red'"}]}]}]}]},
			"initialOffset":{"left":0,"top":0}}}`,
	}
}

var shopFiles = map[string]string{
	"http://shop.test/style.css": `body { margin: 0; background: rgb(0, 160, 0); }
		#box { width: 100px; height: 100px; background: rgb(0, 0, 255); }`,
}

// boxStyle is a mutation that paints the box in c.
func boxStyle(ts int, c string) string {
	return fmt.Sprintf(`{"type":3,"timestamp":%d,"data":{"source":0,"texts":[],"attributes":[{"id":8,"attributes":{"style":"background: %s"}}],"removes":[],"adds":[]}}`, ts, c)
}

func newRenderer(t testing.TB, p *Pool, resolver Resolver, sessions map[string]*testSession) *Renderer {
	t.Helper()
	r, err := NewRenderer(RenderConfig{
		Pool:     p,
		Resolver: resolver,
		Open: func(id string) (Feed, error) {
			s := sessions[id]
			if s == nil {
				return nil, errTestSessionEnded
			}
			return s.open()
		},
		SessionEnded: func(err error) bool { return errors.Is(err, errTestSessionEnded) },
		Linger:       300 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

// waitState reads updates until the viewer's status is want, and returns
// the number of frames read meanwhile.
func waitState(t testing.TB, v *Viewer, want State, within time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), within)
	defer cancel()
	var seen []string
	for {
		u, err := v.Next(ctx)
		if err != nil {
			t.Fatalf("waiting for state %s (saw %v): %v", want, seen, err)
		}
		if u.Status != nil {
			seen = append(seen, string(u.Status.State)+" "+u.Status.Reason)
			if u.Status.State == want {
				return
			}
		}
	}
}

// nextFrame returns the next frame of the viewer.
func nextFrame(t testing.TB, v *Viewer, within time.Duration) *Frame {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), within)
	defer cancel()
	for {
		u, err := v.Next(ctx)
		if err != nil {
			t.Fatalf("waiting for a frame: %v", err)
		}
		if u.Frame != nil {
			return u.Frame
		}
	}
}

// pixel decodes a screenshot and returns the colour at (x, y).
func pixel(t *testing.T, pngData []byte, x, y int) color.RGBA {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(pngData))
	if err != nil {
		t.Fatalf("decoding the screenshot: %v", err)
	}
	r, g, b, _ := img.At(x, y).RGBA()
	return color.RGBA{uint8(r >> 8), uint8(g >> 8), uint8(b >> 8), 255}
}

func near(c, want color.RGBA) bool {
	d := func(a, b uint8) int { return max(int(a), int(b)) - min(int(a), int(b)) }
	return d(c.R, want.R) < 40 && d(c.G, want.G) < 40 && d(c.B, want.B) < 40
}

// screenshotUntil takes screenshots until the pixel at (x, y) is near want.
func screenshotUntil(t *testing.T, r *Renderer, id string, x, y int, want color.RGBA, within time.Duration) []byte {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		shot, err := r.Screenshot(ctx, id)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		got := pixel(t, shot, x, y)
		if near(got, want) {
			return shot
		}
		if time.Now().After(deadline) {
			t.Fatalf("pixel (%d, %d) is %v, want %v within %s", x, y, got, want, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

var (
	blue  = color.RGBA{0, 0, 255, 255}
	green = color.RGBA{0, 160, 0, 255}
	red   = color.RGBA{255, 0, 0, 255}
)

func TestRendererShowsThePageWithServerSideAssets(t *testing.T) {
	p := newPool(t, testConfig(t))
	s := &testSession{events: shopPage()}
	resolver := &testResolver{files: shopFiles}
	r := newRenderer(t, p, resolver, map[string]*testSession{"s1": s})

	v, err := r.Watch("s1")
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	waitState(t, v, StateLive, 20*time.Second)
	f := nextFrame(t, v, 10*time.Second)
	if f.Width != 640 || f.Height != 480 || len(f.JPEG) == 0 {
		t.Errorf("frame %d×%d with %d bytes; want the visitor's 640×480 viewport", f.Width, f.Height, len(f.JPEG))
	}

	// The stylesheet came through the resolver; the box is blue on green,
	// and the page's inline script did not paint the body red.
	shot := screenshotUntil(t, r, "s1", 50, 50, blue, 10*time.Second)
	if c := pixel(t, shot, 300, 300); !near(c, green) {
		t.Errorf("the body is %v, want the stylesheet's green %v", c, green)
	}
	if !strings.Contains(strings.Join(resolver.requests(), "\n"), "s1 http://shop.test/ http://shop.test/style.css") {
		t.Errorf("the stylesheet was not resolved for session s1: %q", resolver.requests())
	}
	for _, req := range resolver.requests() {
		if strings.Contains(req, "evil.js") {
			t.Errorf("the renderer asked for a script: %s", req)
		}
	}

	// A mutation reaches the rendered view.
	s.add(boxStyle(2000, "rgb(255, 0, 0)"))
	screenshotUntil(t, r, "s1", 50, 50, red, 10*time.Second)

	// The document the view shows: the replayed page, its script inert.
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	doc, err := r.Document(ctx, "s1")
	if err != nil || !strings.Contains(doc, `id="box"`) || !strings.Contains(doc, "<noscript") || strings.Contains(doc, "<script") {
		t.Errorf("Document = %.300q, %v; want the replayed page with its scripts as noscript", doc, err)
	}
}

func TestRendererDrawsAtTheVisitorsPixelRatio(t *testing.T) {
	p := newPool(t, testConfig(t))
	s := &testSession{events: shopPage(), pixelRatio: 2}
	r := newRenderer(t, p, &testResolver{files: shopFiles}, map[string]*testSession{"s1": s})
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	shot, err := r.Screenshot(ctx, "s1")
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(shot))
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != 1280 || b.Dy() != 960 {
		t.Errorf("screenshot %v; want the 640×480 viewport at pixel ratio 2: 1280×960", b)
	}
}

func TestRendererRebuildsALostTab(t *testing.T) {
	p := newPool(t, testConfig(t))
	s := &testSession{events: shopPage()}
	r := newRenderer(t, p, &testResolver{files: shopFiles}, map[string]*testSession{"s1": s})
	v, err := r.Watch("s1")
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	waitState(t, v, StateLive, 20*time.Second)
	s.add(boxStyle(2000, "rgb(255, 0, 0)"))

	v.rd.mu.Lock()
	tab := v.rd.tab
	v.rd.mu.Unlock()
	crashed := time.Now()
	go cdp.Call(context.Background(), tab.target, page.Crash, cdp.Empty{}) // never answered: the renderer is gone
	waitState(t, v, StateRecovering, 5*time.Second)
	waitState(t, v, StateLive, 5*time.Second)
	// The goal is 3 s (docs/benchmarks.md records it); the test fails only
	// well past it, because the machine it runs on may be busy.
	back := time.Since(crashed)
	t.Logf("rendered view back %s after the tab crashed (goal ≤ 3s)", back.Round(time.Millisecond))
	if back > 6*time.Second {
		t.Errorf("the rendered view took %s to come back; the goal is 3s", back)
	}
	if n := s.openCount(); n != 2 {
		t.Errorf("the session's feed was opened %d times; want 2 (the rebuild starts from a fresh reset)", n)
	}
	// The rebuilt view has the mutation made before the crash.
	screenshotUntil(t, r, "s1", 50, 50, red, 5*time.Second)
}

func TestRendererSessionsShareABrowser(t *testing.T) {
	cfg := testConfig(t)
	cfg.TabsPerBrowser = 2
	p := newPool(t, cfg)
	sessions := map[string]*testSession{"a": {events: shopPage()}, "b": {events: shopPage()}}
	r := newRenderer(t, p, &testResolver{files: shopFiles}, sessions)
	viewers := map[string]*Viewer{}
	for id := range sessions {
		v, err := r.Watch(id)
		if err != nil {
			t.Fatal(err)
		}
		defer v.Close()
		waitState(t, v, StateLive, 20*time.Second)
		viewers[id] = v
	}
	// Both tabs keep painting: each mutation brings a frame, whichever tab
	// the browser last brought to the front.
	for i, id := range []string{"a", "b", "a", "b"} {
		sessions[id].add(boxStyle(3000+i, fmt.Sprintf("rgb(%d, 0, 0)", 100+40*i)))
		nextFrame(t, viewers[id], 5*time.Second)
	}
}

func TestRendererCapacityAndEnd(t *testing.T) {
	cfg := testConfig(t)
	cfg.WaitTimeout = 300 * time.Millisecond
	p := newPool(t, cfg)
	sessions := map[string]*testSession{"a": {events: shopPage()}, "b": {events: shopPage()}}
	r := newRenderer(t, p, &testResolver{files: shopFiles}, sessions)

	a, err := r.Watch("a")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	waitState(t, a, StateLive, 20*time.Second)

	// The pool's only tab is busy: the second session is told why, at once.
	b, err := r.Watch("b")
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, b, StateUnavailable, 5*time.Second)
	if b.rd.status.Reason != "rendering capacity full, DOM mode still available" {
		t.Errorf("reason %q", b.rd.status.Reason)
	}
	b.Close()

	// The first session ends: its viewer is told, and its tab goes back to
	// the pool.
	sessions["a"].end()
	waitState(t, a, StateEnded, 5*time.Second)
	if _, err := a.Next(t.Context()); !errors.Is(err, errRenderingOver) {
		t.Errorf("Next after the end: %v, want errRenderingOver", err)
	}
	eventually(t, 5*time.Second, "the tab released", func() bool { return p.Stats().Busy == 0 })
}

func TestRendererLingersThenReleases(t *testing.T) {
	p := newPool(t, testConfig(t))
	r := newRenderer(t, p, &testResolver{files: shopFiles}, map[string]*testSession{"s1": {events: shopPage()}})
	v, err := r.Watch("s1")
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, v, StateLive, 20*time.Second)
	v.Close()
	if _, err := v.Next(t.Context()); !errors.Is(err, ErrViewerClosed) {
		t.Errorf("Next after Close: %v", err)
	}
	// Back within Linger: the same rendering, no new tab.
	time.Sleep(100 * time.Millisecond)
	again, err := r.Watch("s1")
	if err != nil {
		t.Fatal(err)
	}
	if again.rd != v.rd {
		t.Errorf("a viewer that came back within Linger got a new rendering")
	}
	again.Close()
	eventually(t, 5*time.Second, "the rendering stopped after Linger", func() bool {
		return r.Sessions() == 0 && p.Stats().Busy == 0
	})
}

func TestRenderConfig(t *testing.T) {
	_, err := NewRenderer(RenderConfig{JPEGQuality: 101})
	for _, want := range []string{"Pool is required", "Open is required", "Resolver is required", "JPEGQuality is 101"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v; want it to say %q", err, want)
		}
	}
}
