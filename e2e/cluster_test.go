package e2e

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/go-rod/rod"
	"github.com/go-rod/rod/lib/proto"

	"github.com/cobrowse/cobrowse/session"
)

// clusterPage is the fronted site of the cluster test: one page whose
// heading the test changes, and its stylesheet, which the site serves only
// to a visitor with the cookie the page set.
func clusterPage(t *testing.T) *httptest.Server {
	t.Helper()
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/style.css" {
			if c, err := r.Cookie("shop_login"); err != nil || c.Value != "yes" {
				http.Error(w, "sign in first", http.StatusForbidden)
				return
			}
			w.Header().Set("Content-Type", "text/css")
			fmt.Fprint(w, clusterStyle)
			return
		}
		http.SetCookie(w, &http.Cookie{Name: "shop_login", Value: "yes", Path: "/"})
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, `<!doctype html><html><head><title>Cluster shop</title><link rel="stylesheet" href="/style.css"></head>
<body><h1>Welcome</h1><p>One page, two nodes.</p></body></html>`)
	}))
	t.Cleanup(site.Close)
	return site
}

// clusterStyle is the page's login-gated stylesheet.
const clusterStyle = `h1 { color: rgb(200, 30, 30); }`

// freeAddr returns a loopback address no one listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// clusterPair is the set-up of the cluster tests: node B runs the
// embedded NATS server, node A uses it; a visitor reaches A through a
// forwarder (the load balancer), an agent watches from B.
type clusterPair struct {
	a, b     *cobrowse
	natsURL  string
	front    *forwarder
	page     *rod.Page
	received *frameLog // WebSocket frames the visitor's page received
	agent    *liveAgent
	id       string
}

func startClusterPair(t *testing.T) *clusterPair {
	t.Helper()
	site := clusterPage(t)
	natsAddr := freeAddr(t)
	key := base64.StdEncoding.EncodeToString([]byte("e2e cluster visitor key, 32 bytes!"))
	common := []string{"--upstream", site.URL, "--visitor-key", key}
	cp := &clusterPair{received: &frameLog{}, natsURL: "nats://" + natsAddr}
	cp.b = startCobrowse(t, append([]string{"serve", "--node", "node-b", "--nats-embed", natsAddr}, common...)...)
	cp.a = startCobrowse(t, append([]string{"serve", "--node", "node-a", "--nats", "nats://" + natsAddr}, common...)...)

	aURL, _ := url.Parse(cp.a.visitorURL)
	cp.front = newForwarder(t, aURL.Host)
	cp.page = visitorBrowser(t).MustPage("").Timeout(90 * time.Second)
	if err := (proto.NetworkEnable{}).Call(cp.page); err != nil {
		t.Fatal(err)
	}
	go cp.page.EachEvent(func(e *proto.NetworkWebSocketFrameReceived) { cp.received.add(e.Response.PayloadData) })()
	cp.page.MustNavigate("http://" + cp.front.ln.Addr().String() + "/").MustWaitLoad()

	// B's dashboard lists the session A holds.
	eventually(t, 10*time.Second, "node B lists the session of node A", func() string {
		var sessions []session.Info
		cp.b.api(t, "/api/sessions", &sessions)
		if len(sessions) != 1 || sessions[0].Node != "node-a" || sessions[0].Title != "Cluster shop" {
			return fmt.Sprintf("sessions %+v", sessions)
		}
		cp.id = sessions[0].ID
		return ""
	})
	cp.agent = dialLive(t, cp.b, cp.id, "Bea")
	cp.agent.until(t, "the page on node B", func(m map[string]any) bool {
		return m["type"] == "reset" && strings.Contains(mustMarshal(m), "One page, two nodes.")
	}, nil)
	return cp
}

// toB sends the visitor's connections to node B from now on.
func (cp *clusterPair) toB() {
	bURL, _ := url.Parse(cp.b.visitorURL)
	cp.front.retarget(bURL.Host)
}

// heldByB checks that node B holds the session now, with the visitor
// connected, and lists no other.
func (cp *clusterPair) heldByB(t *testing.T) {
	t.Helper()
	var info session.Info
	cp.b.api(t, "/api/sessions/"+cp.id, &info)
	if !info.Connected || info.Node != "" {
		t.Errorf("after the takeover, node B: connected %v, node %q; want connected and held by B itself", info.Connected, info.Node)
	}
	var sessions []session.Info
	cp.b.api(t, "/api/sessions", &sessions)
	if len(sessions) != 1 || sessions[0].ID != cp.id {
		t.Errorf("node B lists %+v, want only session %s", sessions, cp.id)
	}
	if !strings.Contains(cp.b.stderr.String(), "took a session over") {
		t.Error("node B's log does not say it took the session over")
	}
}

// A visitor on node A, an agent on node B: they co-browse through NATS.
// Node A is killed (SIGKILL); the visitor's connection lands on B (the
// same address, as behind a load balancer), B takes the session over from
// what the cluster stored, and the agent, still on B, sees everything the
// visitor did, including what it did while no node had it.
func TestClusterVisitorOnOneNodeAgentOnAnother(t *testing.T) {
	cp := startClusterPair(t)

	// The agent on B sees the visitor's changes, and its pointer reaches
	// the visitor on A.
	cp.page.MustEval(`() => { document.querySelector('h1').textContent = 'Edit on A'; }`)
	cp.agent.until(t, "the visitor's edit", containsText("Edit on A"), nil)
	// The page's login-gated stylesheet reaches the agent's node from node
	// A, which fetched it with the visitor's cookie.
	style := cp.b.rawGET(t, "/api/sessions/"+cp.id+"/asset?url="+url.QueryEscape("http://"+cp.front.ln.Addr().String()+"/style.css"))
	if string(style) != clusterStyle {
		t.Errorf("the stylesheet through node B: %q, want %q", style, clusterStyle)
	}
	// The agent console of node B: the dashboard says where the session
	// is, and the view replays it with the gated stylesheet applied.
	console := agentBrowser(t)
	row := `tr[data-session="` + cp.id + `"]`
	if err := chromedp.Do(console,
		chromedp.Navigate(cp.b.agentURL+"/login?token="+cp.b.token),
		chromedp.WaitVisible(chromedp.CSS(row)),
	); err != nil {
		t.Fatalf("node B's dashboard: %v", err)
	}
	if text, err := chromedp.Run(console, chromedp.Text(chromedp.CSS(row))); err != nil || !strings.Contains(text, "on node node-a") {
		t.Errorf("node B's dashboard row = %q (%v), want it to name node-a", text, err)
	}
	if err := chromedp.Do(console, chromedp.Click(chromedp.CSS(row+` a`))); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "node B's console replays the page with its stylesheet", func() string {
		got, err := inReplay[string](console, `doc => { const h = doc.querySelector('h1'); return h ? h.textContent + ' ' + getComputedStyle(h).color : ''; }`)
		if err != nil || got != "Edit on A rgb(200, 30, 30)" {
			return fmt.Sprintf("heading %q (%v)", got, err)
		}
		return ""
	})
	if shot, err := chromedp.Run(console, chromedp.CaptureScreenshot()); err == nil {
		saveArtifact(t, "cluster-console-on-b.png", shot)
	}
	// So do its events, for an export.
	if events := cp.b.rawGET(t, "/api/sessions/"+cp.id+"/events"); !bytes.Contains(events, []byte("Edit on A")) {
		t.Errorf("the session's events through node B lack the visitor's edit: %.300s", events)
	}
	if err := cp.agent.conn.WriteJSON(map[string]any{"type": "pointer", "x": 40, "y": 30}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the agent's pointer reaches the visitor on node A", func() string {
		if !strings.Contains(cp.received.all(), `"type":"pointer"`) {
			return "no pointer message yet"
		}
		return ""
	})

	// Node A dies. The visitor's next connection goes to B; meanwhile the
	// visitor goes on.
	killed := time.Now()
	if err := cp.a.proc.Kill(); err != nil {
		t.Fatal(err)
	}
	cp.toB()
	for i := 1; i <= 3; i++ {
		cp.page.MustEval(fmt.Sprintf(`() => { document.querySelector('h1').textContent = 'Edit %d while A is gone'; }`, i))
		time.Sleep(150 * time.Millisecond)
	}
	var seen strings.Builder
	cp.agent.until(t, "the edits made while A was gone reach the agent on B", func(m map[string]any) bool {
		seen.WriteString(mustMarshal(m))
		return strings.Contains(seen.String(), "Edit 3 while A is gone")
	}, nil)
	t.Logf("the agent saw the visitor again %v after node A was killed", time.Since(killed).Round(10*time.Millisecond))
	cp.heldByB(t)
}

// Node A is stopped (SIGTERM) while the visitor keeps changing the page
// every 50 ms: the visitor reconnects to B, which acknowledges exactly
// what A stored (no batch is missing: B never sees a gap and never has to
// start the log over from a snapshot because of one), and the agent on B
// ends up with the visitor's last change.
func TestClusterGracefulShutdownLosesNothing(t *testing.T) {
	cp := startClusterPair(t)
	cp.page.MustEval(`() => {
		let n = 0;
		window.__ticker = setInterval(() => { document.querySelector('h1').textContent = 'Tick ' + (++n); }, 50);
	}`)
	cp.agent.until(t, "the ticking heading", containsText("Tick 5"), nil)

	cp.toB()
	if err := cp.a.proc.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	last := cp.page.MustEval(`() => { clearInterval(window.__ticker); return document.querySelector('h1').textContent; }`).String()
	cp.agent.until(t, "the visitor's last change ("+last+") on node B", containsText(last), nil)
	cp.heldByB(t)
	if strings.Contains(cp.b.stderr.String(), "gap in visitor batches") {
		t.Error("node B saw a gap in the visitor's batches: some were lost in the move")
	}
}

// startRenderWorker runs `cobrowse render-worker` for the cluster at
// natsURL.
func startRenderWorker(t *testing.T, natsURL, name string) *cobrowse {
	t.Helper()
	return launch(t, []string{"render-worker", "--nats", natsURL, "--node", name, "--log-level", "debug"},
		func(_ *cobrowse, line string) bool { return strings.Contains(line, "render worker "+name) })
}

// Node B runs no browsers: two render workers render the Rendered mode of
// its agents. The agent on B watches the session node A holds, rendered
// by a worker (its feed and assets come from A); that worker is killed,
// and the other one takes over.
func TestClusterRenderWorkers(t *testing.T) {
	cp := startClusterPair(t)
	workers := map[string]*cobrowse{
		"worker-1": startRenderWorker(t, cp.natsURL, "worker-1"),
		"worker-2": startRenderWorker(t, cp.natsURL, "worker-2"),
	}
	w := watchRender(t, cp.b, cp.id)
	eventually(t, 30*time.Second, "the rendered view is live on node B", func() string {
		last, frames, _ := w.state()
		if !strings.Contains(last, `"live"`) || frames == 0 {
			return fmt.Sprintf("state %s, %d frames", last, frames)
		}
		return ""
	})
	var rendering string
	for name, wk := range workers {
		if strings.Contains(wk.stderr.String(), cp.id) {
			rendering = name
		}
	}
	if rendering == "" {
		t.Fatal("no worker's log names the session")
	}

	killed := time.Now()
	if err := workers[rendering].proc.Kill(); err != nil {
		t.Fatal(err)
	}
	back := eventually(t, 15*time.Second, "frames from the other worker", func() string {
		last, _, lastFrame := w.state()
		if !lastFrame.After(killed) || !strings.Contains(last, `"live"`) {
			return fmt.Sprintf("state %s, last frame %s before the kill", last, killed.Sub(lastFrame).Round(time.Millisecond))
		}
		return ""
	})
	t.Logf("%s killed; the rendered view was back %v later (goal ≤ 5 s)", rendering, back.Round(10*time.Millisecond))
	if back > 5*time.Second {
		t.Errorf("the view took %v to come back from another worker; the goal is 5 s", back)
	}
	// The new worker follows the visitor.
	_, before, _ := w.state()
	cp.page.MustEval(`() => { document.querySelector('h1').textContent = 'After the worker died'; }`)
	eventually(t, 10*time.Second, "a frame for the visitor's change", func() string {
		if _, frames, _ := w.state(); frames <= before {
			return "no new frame"
		}
		return ""
	})
	// Exports come from the workers too.
	png := cp.b.rawGET(t, "/api/sessions/"+cp.id+"/screenshot.png")
	if !bytes.HasPrefix(png, []byte("\x89PNG")) {
		t.Fatalf("the screenshot is not a PNG: %.40q", png)
	}
	saveArtifact(t, "cluster-worker-screenshot.png", png)
	doc := cp.b.rawGET(t, "/api/sessions/"+cp.id+"/rendered.html")
	if !bytes.Contains(doc, []byte("After the worker died")) {
		t.Errorf("the rendered document lacks the visitor's change: %.300s", doc)
	}
}

// containsText matches a message whose JSON holds s.
func containsText(s string) func(map[string]any) bool {
	return func(m map[string]any) bool { return strings.Contains(mustMarshal(m), s) }
}

func mustMarshal(v any) string {
	b, _ := json.Marshal(v) // decoded JSON: cannot fail
	return string(b)
}
