package e2e

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/gorilla/websocket"

	"github.com/cobrowse/cobrowse/session"
)

// serverSideFetches counts the requests of an origin that did not come from
// a browser: Chromium sends Sec-Fetch-Mode with every request, the server's
// asset fetcher does not (it passes on only Accept, Accept-Language and
// User-Agent).
type serverSideFetches struct {
	mu   sync.Mutex
	uris []string // path and query of each request
}

func (s *serverSideFetches) note(r *http.Request) {
	if r.Header.Get("Sec-Fetch-Mode") == "" {
		s.mu.Lock()
		s.uris = append(s.uris, r.URL.RequestURI())
		s.mu.Unlock()
	}
}

func (s *serverSideFetches) list() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.uris...)
}

// solidPNG is a w×h image of one colour.
func solidPNG(w, h int, c color.RGBA) []byte {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.SetRGBA(x, y, c)
		}
	}
	var b bytes.Buffer
	png.Encode(&b, img)
	return b.Bytes()
}

// anyFont returns a TrueType font of the machine (Chromium's Debian package
// brings some), to serve as a web font.
func anyFont(t *testing.T) []byte {
	t.Helper()
	for _, pattern := range []string{"/usr/share/fonts/truetype/dejavu/DejaVuSansMono-Bold.ttf", "/usr/share/fonts/truetype/*/*.ttf", "/usr/share/fonts/*/*/*.ttf"} {
		matches, _ := filepath.Glob(pattern)
		for _, m := range matches {
			if b, err := os.ReadFile(m); err == nil {
				return b
			}
		}
	}
	t.Fatal("no TrueType font under /usr/share/fonts")
	return nil
}

// gatedSite is a fronted site whose account page needs a login cookie for
// its stylesheet and image too, and uses a web font from a second origin
// that allows only the page's own origin (CORS), as CDNs are set up for a
// site: an agent's browser on another origin could not use it. extraHead is
// added to the account page's head.
func gatedSite(t *testing.T, fontURL, refusedURL, extraHead string) (*httptest.Server, *serverSideFetches) {
	t.Helper()
	fetches := &serverSideFetches{}
	loggedIn := func(r *http.Request) bool {
		c, err := r.Cookie("auth")
		return err == nil && c.Value == "ok"
	}
	badge := solidPNG(200, 80, color.RGBA{230, 120, 0, 255})
	mux := http.NewServeMux()
	mux.HandleFunc("/login", func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: "auth", Value: "ok", Path: "/", HttpOnly: true})
		http.Redirect(w, r, "/account", http.StatusFound)
	})
	mux.HandleFunc("/account", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><html><head><title>Account</title>
<link rel="stylesheet" href="/private.css">%s</head>
<body><h1 class="probe">Account 42</h1><img id="badge" src="/private/badge.png" width="200" height="80">
<img src="http://169.254.169.254/latest/meta-data/iam.png" width="1" height="1">
<img src="%s" width="1" height="1"></body></html>`, extraHead, refusedURL)
	})
	mux.HandleFunc("/private.css", func(w http.ResponseWriter, r *http.Request) {
		fetches.note(r)
		if !loggedIn(r) {
			http.Error(w, "log in first", http.StatusForbidden)
			return
		}
		w.Header().Set("Content-Type", "text/css")
		fmt.Fprintf(w, `@font-face { font-family: Probe; src: url(%q) format("truetype"); }
body { margin: 0; background: rgb(20, 110, 190); color: #fff; }
.probe { font: 64px Probe, serif; margin: 40px; }
#badge { display: block; margin: 40px; }`, fontURL)
	})
	mux.HandleFunc("/private/badge.png", func(w http.ResponseWriter, r *http.Request) {
		fetches.note(r)
		if !loggedIn(r) {
			http.Error(w, "log in first", http.StatusForbidden)
			return
		}
		w.Header().Set("Content-Type", "image/png")
		w.Write(badge)
	})
	site := httptest.NewServer(mux)
	t.Cleanup(site.Close)
	return site, fetches
}

// intranetServer is a loopback server the server must never fetch from (it
// is not in --asset-allow-private), and the requests it got from the
// server itself.
func intranetServer(t *testing.T) (*httptest.Server, *serverSideFetches) {
	t.Helper()
	fetches := &serverSideFetches{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.note(r)
		w.Header().Set("Content-Type", "image/png")
		w.Write(solidPNG(1, 1, color.RGBA{255, 0, 0, 255}))
	}))
	t.Cleanup(srv.Close)
	return srv, fetches
}

// pixelDiff returns the share of pixels, over the area both images cover,
// whose colour differs by more than a small tolerance in any channel.
func pixelDiff(t *testing.T, a, b []byte) float64 {
	t.Helper()
	ia, err := png.Decode(bytes.NewReader(a))
	if err != nil {
		t.Fatal(err)
	}
	ib, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	area := ia.Bounds().Intersect(ib.Bounds())
	differ := 0
	for y := area.Min.Y; y < area.Max.Y; y++ {
		for x := area.Min.X; x < area.Max.X; x++ {
			r1, g1, b1, _ := ia.At(x, y).RGBA()
			r2, g2, b2, _ := ib.At(x, y).RGBA()
			d := func(p, q uint32) bool { return max(p, q)-min(p, q) > 48<<8 }
			if d(r1, r2) || d(g1, g2) || d(b1, b2) {
				differ++
			}
		}
	}
	return float64(differ) / float64(area.Dx()*area.Dy())
}

// waitForSession waits for the only live session and returns its id.
func waitForSession(t testing.TB, c *cobrowse) string {
	t.Helper()
	var sessions []session.Info
	eventually(t, 10*time.Second, "the visitor's session is listed", func() string {
		c.api(t, "/api/sessions", &sessions)
		if len(sessions) != 1 {
			return fmt.Sprintf("sessions %+v", sessions)
		}
		return ""
	})
	return sessions[0].ID
}

// sameView waits until the view that shot takes looks like want (at most
// 1 % of the pixels differ), logs the share that differs, and keeps the
// last shot as an artifact.
func sameView(t *testing.T, what, artifact string, want []byte, shot func() ([]byte, error)) {
	t.Helper()
	var got []byte
	var ratio float64
	defer func() { saveArtifact(t, artifact, got) }()
	eventually(t, 10*time.Second, what+" matches the visitor's", func() string {
		var err error
		if got, err = shot(); err != nil {
			return err.Error()
		}
		if ratio = pixelDiff(t, want, got); ratio > 0.01 {
			return fmt.Sprintf("%.2f%% of the pixels differ", 100*ratio)
		}
		return ""
	})
	t.Logf("visitor vs %s: %.3f%% of the pixels differ", what, 100*ratio)
}

func TestRenderedModeResolvesAssetsOnTheServer(t *testing.T) {
	fontFetches := &serverSideFetches{}
	font := anyFont(t)
	var fontOrigin *httptest.Server
	fontOrigin = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fontFetches.note(r)
		if o := r.Header.Get("Origin"); o != "" && !strings.HasPrefix(o, "http://127.0.0.1:") {
			http.Error(w, "not for you", http.StatusForbidden)
			return
		}
		w.Header().Set("Content-Type", "font/ttf")
		w.Header().Set("Access-Control-Allow-Origin", r.Header.Get("Origin"))
		w.Write(font)
	}))
	defer fontOrigin.Close()
	intranet, intranetFetches := intranetServer(t)
	site, siteFetches := gatedSite(t, fontOrigin.URL+"/probe.ttf", intranet.URL+"/secret.png", "")

	c := startCobrowse(t, "serve", "--upstream", site.URL, "--render",
		"--asset-allow-private", strings.TrimPrefix(fontOrigin.URL, "http://"))
	visitor := visitorBrowser(t).WithPanic(func(v any) { t.Helper(); t.Fatalf("visitor browser: %v", v) })
	page := visitor.MustPage("").Timeout(60 * time.Second)
	page.MustNavigate(c.visitorURL + "login").MustWaitLoad()
	page.MustElement("#badge")
	page.MustWait(`() => document.fonts.check('64px Probe') && document.getElementById('badge').naturalWidth > 0`)
	id := waitForSession(t, c)

	// The canonical render, as a ticket would get it, matches what the
	// visitor sees: stylesheet and image behind the login, font from the
	// other origin.
	// (The first answer may take a rendering start.)
	eventually(t, 30*time.Second, "the screenshot of the rendered view", func() string {
		if status, body := c.agentGET(t, "/api/sessions/"+id+"/screenshot.png"); status != http.StatusOK {
			return fmt.Sprintf("%d %s", status, body)
		}
		return ""
	})
	seen := page.MustScreenshot()
	saveArtifact(t, "render-visitor.png", seen)
	sameView(t, "the rendered view", "render-screenshot.png", seen, func() ([]byte, error) {
		status, shot := c.agentGET(t, "/api/sessions/"+id+"/screenshot.png")
		if status != http.StatusOK {
			return nil, fmt.Errorf("%d %s", status, shot)
		}
		return shot, nil
	})
	// (The visitor's rrweb inlines the same-origin stylesheet it can read;
	// the image is fetched by the server, with the visitor's cookie, or it
	// would not show.)
	if got := siteFetches.list(); !slices.Contains(got, "/private/badge.png") {
		t.Errorf("the site served %q to the server; want the image behind the login", got)
	}
	if got := fontFetches.list(); len(got) == 0 {
		t.Errorf("the font origin saw no server-side fetch")
	}

	// SSRF: neither the metadata address nor the intranet server was
	// fetched by the server.
	if got := intranetFetches.list(); len(got) > 0 {
		t.Errorf("the renderer fetched %q from a loopback server that is not allowed", got)
	}
	for _, refused := range []string{"169.254.169.254", strings.TrimPrefix(intranet.URL, "http://")} {
		if !strings.Contains(c.stderr.String(), refused) {
			t.Errorf("the server log does not say that it refused %s", refused)
		}
	}

	// The agent switches to Rendered mode in the console: frames show.
	agent := agentBrowser(t)
	if err := chromedp.Do(agent,
		chromedp.Navigate(c.agentURL+"/login?token="+c.token),
		chromedp.Navigate(c.agentURL+"/sessions/"+id),
		chromedp.WaitVisible(chromedp.CSS(`#stage iframe`)),
	); err != nil {
		t.Fatalf("agent console: %v", err)
	}
	switchToRendered(t, agent)
	if shot, err := chromedp.Run(agent, chromedp.CaptureScreenshot()); err == nil {
		saveArtifact(t, "agent-rendered-mode.png", shot)
	}
}

// switchToRendered clicks the console's Rendered button and waits for a
// frame in the rendered view.
func switchToRendered(t *testing.T, agent context.Context) {
	t.Helper()
	if err := chromedp.Do(agent,
		chromedp.Click(chromedp.CSS(`#mode-rendered`)),
		chromedp.WaitVisible(chromedp.CSS(`#rendered`)),
	); err != nil {
		t.Fatalf("agent switching to Rendered mode: %v", err)
	}
	eventually(t, 15*time.Second, "a frame in the agent's Rendered view", func() string {
		w, err := chromedp.Run(agent, chromedp.Evaluate[int](`document.getElementById('rendered').naturalWidth`))
		if err != nil || w == 0 {
			return fmt.Sprintf("naturalWidth %d (%v)", w, err)
		}
		return ""
	})
}

// renderWatcher reads a session's render socket as an agent would and
// notes each state and when frames come.
type renderWatcher struct {
	mu        sync.Mutex
	states    []string
	lastFrame time.Time
	frames    int
}

func watchRender(t *testing.T, c *cobrowse, id string) *renderWatcher {
	t.Helper()
	ws := "ws" + strings.TrimPrefix(c.agentURL, "http") + "/api/sessions/" + id + "/render"
	conn, _, err := websocket.DefaultDialer.Dial(ws, http.Header{"Authorization": {"Bearer " + c.token}})
	if err != nil {
		t.Fatalf("render socket: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	w := &renderWatcher{}
	go func() {
		for {
			kind, msg, err := conn.ReadMessage()
			if err != nil {
				return
			}
			w.mu.Lock()
			if kind == websocket.BinaryMessage {
				w.frames++
				w.lastFrame = time.Now()
			} else {
				w.states = append(w.states, string(msg))
			}
			w.mu.Unlock()
		}
	}()
	return w
}

func (w *renderWatcher) state() (last string, frames int, lastFrame time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.states) > 0 {
		last = w.states[len(w.states)-1]
	}
	return last, w.frames, w.lastFrame
}

// serverBrowsers returns the pids of the cobrowse server's Chromium browser
// processes (not their renderers and helpers, which have --type=, nor the
// crash handler).
func serverBrowsers(c *cobrowse) []int {
	var pids []int
	for _, pid := range leftoverBrowsers(c.tmpDir) {
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		exe, _, _ := bytes.Cut(cmdline, []byte{0})
		if name := filepath.Base(string(exe)); (name == "chromium" || name == "chrome") && !bytes.Contains(cmdline, []byte("--type=")) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func TestRenderedModeSurvivesAKilledBrowser(t *testing.T) {
	c := startCobrowse(t, "demo", "--render")
	visitor := visitorBrowser(t)
	page := visitor.MustPage("").Timeout(60 * time.Second)
	page.MustNavigate(c.visitorURL).MustWaitLoad()
	page.MustElement("#products")
	id := waitForSession(t, c)
	w := watchRender(t, c, id)
	eventually(t, 30*time.Second, "the rendered view is live", func() string {
		last, frames, _ := w.state()
		if !strings.Contains(last, `"live"`) || frames == 0 {
			return fmt.Sprintf("state %s, %d frames", last, frames)
		}
		return ""
	})

	browsers := serverBrowsers(c)
	if len(browsers) != 1 {
		t.Fatalf("the server runs %d Chromium browsers (%v); want 1", len(browsers), browsers)
	}
	killed := time.Now()
	if err := syscall.Kill(browsers[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// The view comes back by itself: a new frame after the kill.
	back := eventually(t, 15*time.Second, "frames after the browser was killed", func() string {
		last, _, lastFrame := w.state()
		if !lastFrame.After(killed) || !strings.Contains(last, `"live"`) {
			return fmt.Sprintf("state %s, last frame %s before the kill", last, killed.Sub(lastFrame))
		}
		return ""
	})
	t.Logf("rendered view back %s after SIGKILL of its browser (goal ≤ 3s)", back.Round(10*time.Millisecond))
	if back > 6*time.Second {
		t.Errorf("the rendered view took %s to come back; the goal is 3s", back)
	}
	// And it follows the visitor again.
	_, before, _ := w.state()
	page.MustElement(`button.add-to-cart[data-product="mug"]`).MustClick()
	eventually(t, 5*time.Second, "a frame for the visitor's click", func() string {
		if _, frames, _ := w.state(); frames <= before {
			return "no new frame"
		}
		return ""
	})
	if after := serverBrowsers(c); len(after) != 1 || after[0] == browsers[0] {
		t.Errorf("browsers after the kill: %v (killed %d); want one new one", after, browsers[0])
	}
}

// Chromium processes of the renderer end with the server, even when the
// server is killed and cannot clean up (the pool gives each browser a
// parent-death signal).
func TestRendererBrowsersDieWithAKilledServer(t *testing.T) {
	c := startCobrowse(t, "demo", "--render")
	if n := len(serverBrowsers(c)); n != 1 {
		t.Fatalf("the server runs %d Chromium browsers; want 1 at start", n)
	}
	if err := c.proc.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "no Chromium of the killed server left", func() string {
		if left := leftoverBrowsers(c.tmpDir); len(left) > 0 {
			return fmt.Sprintf("processes %v", left)
		}
		return ""
	})
}
