package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	cdpinput "github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"
	"github.com/go-rod/rod"
	"github.com/go-rod/rod/lib/input"
	"github.com/go-rod/rod/lib/proto"
	"github.com/gorilla/websocket"

	"github.com/cobrowse/cobrowse/session"
	"github.com/cobrowse/cobrowse/webhook"
)

// liveAgent is an agent's live socket, read by a test.
type liveAgent struct {
	conn *websocket.Conn
	msgs chan map[string]any
}

func dialLive(t *testing.T, c *cobrowse, id, name string) *liveAgent {
	t.Helper()
	ws := "ws" + strings.TrimPrefix(c.agentURL, "http") + "/api/sessions/" + id + "/live?name=" + name
	conn, _, err := websocket.DefaultDialer.Dial(ws, http.Header{"Authorization": {"Bearer " + c.token}})
	if err != nil {
		t.Fatalf("live socket: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	a := &liveAgent{conn: conn, msgs: make(chan map[string]any, 256)}
	go func() {
		defer close(a.msgs)
		for {
			var m map[string]any
			if err := conn.ReadJSON(&m); err != nil {
				return
			}
			a.msgs <- m
		}
	}()
	return a
}

// until reads messages until one satisfies ok, and returns it; every message
// read is passed to seen (may be nil).
func (a *liveAgent) until(t *testing.T, what string, ok func(map[string]any) bool, seen func(map[string]any)) map[string]any {
	t.Helper()
	deadline := time.After(15 * time.Second)
	for {
		select {
		case m, open := <-a.msgs:
			if !open {
				t.Fatalf("%s: the live socket closed", what)
			}
			if seen != nil {
				seen(m)
			}
			if ok(m) {
				return m
			}
		case <-deadline:
			t.Fatalf("%s: not within 15s", what)
		}
	}
}

func consentIs(state string) func(map[string]any) bool {
	return func(m map[string]any) bool {
		s, _ := m["session"].(map[string]any)
		return s != nil && s["consent"] == state
	}
}

// visitorPixel returns the colour at (x, y) of the visitor's viewport.
func visitorPixel(t *testing.T, page *rod.Page, x, y int) (r, g, b uint8) {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(page.MustScreenshot()))
	if err != nil {
		t.Fatal(err)
	}
	cr, cg, cb, _ := img.At(x, y).RGBA()
	return uint8(cr >> 8), uint8(cg >> 8), uint8(cb >> 8)
}

// waitForPanel waits until the visitor's page shows the cobrowse panel
// (its closed shadow root cannot be read: the host element is what shows).
func waitForPanel(t *testing.T, page *rod.Page, within time.Duration, what string) {
	t.Helper()
	eventually(t, within, what, func() string {
		if !page.MustHas("cobrowse-ui") {
			return "no cobrowse-ui element"
		}
		return ""
	})
}

func absDiff(a, b uint8) int { return max(int(a), int(b)) - min(int(a), int(b)) }

// changedPixels counts the pixels of area that differ clearly between two
// screenshots.
func changedPixels(t *testing.T, before, after []byte, area image.Rectangle) int {
	t.Helper()
	a, err := png.Decode(bytes.NewReader(before))
	if err != nil {
		t.Fatal(err)
	}
	b, err := png.Decode(bytes.NewReader(after))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for y := area.Min.Y; y < area.Max.Y; y++ {
		for x := area.Min.X; x < area.Max.X; x++ {
			r1, g1, b1, _ := a.At(x, y).RGBA()
			r2, g2, b2, _ := b.At(x, y).RGBA()
			if max(absDiff(uint8(r1>>8), uint8(r2>>8)), absDiff(uint8(g1>>8), uint8(g2>>8)), absDiff(uint8(b1>>8), uint8(b2>>8))) > 80 {
				n++
			}
		}
	}
	return n
}

func TestConsent(t *testing.T) {
	c := startCobrowse(t, "demo", "--join", "consent")
	visitor := visitorBrowser(t)
	page := visitor.MustPage("").Timeout(60 * time.Second)
	sent := captureVisitorTraffic(t, page)
	page.MustNavigate(c.visitorURL).MustWaitLoad()
	page.MustElement("#products")
	id := waitForSession(t, c)
	defer func() {
		if t.Failed() {
			t.Logf("visitor sent:\n%s", sent.all())
		}
	}()

	// Declined: the agent receives nothing of the page.
	alice := dialLive(t, c, id, "Alice")
	var received []string
	collect := func(m map[string]any) {
		b, _ := json.Marshal(m)
		received = append(received, string(b))
	}
	alice.until(t, "the visitor is being asked", consentIs("pending"), collect)
	waitForPanel(t, page, 10*time.Second, "the consent question on the visitor's page")
	shot := page.MustScreenshot()
	saveArtifact(t, "consent-question.png", shot)
	page.Keyboard.MustType(input.Escape)
	alice.until(t, "the decline reaches the agent", consentIs("declined"), collect)
	page.MustElement(`button.add-to-cart[data-product="mug"]`).MustClick()
	time.Sleep(500 * time.Millisecond) // what the click would send has arrived by now
	status, events := c.agentGET(t, "/api/sessions/"+id+"/events")
	if status != http.StatusOK || string(bytes.TrimSpace(events)) != "[]" {
		t.Errorf("/events after a decline: %d %s", status, events)
	}
	for _, m := range received {
		if strings.Contains(m, "Add to cart") || strings.Contains(m, `"events":[{`) {
			t.Fatalf("after a decline the agent received page content: %.300s", m)
		}
	}

	// A new agent, later: asked again, accepted with Enter (the focused
	// "Allow"), then the page arrives.
	alice.conn.Close()
	time.Sleep(10 * time.Second) // a visitor who declined is not asked again for 10 s
	bob := dialLive(t, c, id, "Bob")
	bob.until(t, "the visitor is asked again", consentIs("pending"), nil)
	waitForPanel(t, page, 5*time.Second, "the question shows again")
	time.Sleep(200 * time.Millisecond) // the question takes focus
	page.Keyboard.MustType(input.Enter)
	reset := bob.until(t, "the page after consent", func(m map[string]any) bool {
		ev, _ := m["events"].([]any)
		return m["type"] == "reset" && len(ev) > 0
	}, nil)
	if b, _ := json.Marshal(reset); !strings.Contains(string(b), "Add to cart") {
		t.Errorf("the reset after consent lacks the page: %.300s", b)
	}

	// The visitor sees who watches (the banner, bottom right) and Bob's
	// pointer where Bob points.
	br, bg, bb := visitorPixel(t, page, 303, 208)
	bob.conn.WriteJSON(map[string]any{"type": "pointer", "x": 300, "y": 200})
	defer func() {
		if t.Failed() {
			saveArtifact(t, "consent-failed.png", page.MustScreenshot())
		}
	}()
	eventually(t, 5*time.Second, "Bob's pointer on the visitor's page", func() string {
		// The pointer's arrow is drawn in the agent's colour just right of
		// and below its tip, where the page was plain.
		r, g, b := visitorPixel(t, page, 303, 208)
		if d := max(absDiff(r, br), absDiff(g, bg), absDiff(b, bb)); d < 80 {
			return fmt.Sprintf("pixel at the pointer is %d,%d,%d, the page's was %d,%d,%d", r, g, b, br, bg, bb)
		}
		return ""
	})
	saveArtifact(t, "consent-banner-pointer.png", page.MustScreenshot())

	// Chat: Bob writes, the visitor's panel opens; the visitor answers in it
	// and Bob gets the answer, as chat, never as recorded page content.
	bob.conn.WriteJSON(map[string]any{"type": "chat", "text": "Hello from Bob"})
	bob.until(t, "Bob's line echoed", func(m map[string]any) bool { return m["type"] == "chat" }, nil)
	time.Sleep(300 * time.Millisecond) // the panel opens
	size := page.MustEval(`() => [innerWidth, innerHeight]`).Arr()
	w, h := size[0].Num(), size[1].Num()
	page.Mouse.MustMoveTo(w-16-130, h-64-25) // the panel's message field
	page.Mouse.MustClick("left")
	page.Keyboard.MustType([]input.Key("Thanks")...)
	page.Keyboard.MustType(input.Enter)
	var recorded []string
	reply := bob.until(t, "the visitor's answer", func(m map[string]any) bool {
		msg, _ := m["message"].(map[string]any)
		return m["type"] == "chat" && msg["text"] == "Thanks"
	}, func(m map[string]any) {
		if m["type"] == "events" {
			b, _ := json.Marshal(m)
			recorded = append(recorded, string(b))
		}
	})
	if from := reply["message"].(map[string]any)["from"].(map[string]any); from["id"] != "" {
		t.Errorf("the visitor's line comes from %v", from)
	}
	saveArtifact(t, "consent-chat.png", page.MustScreenshot())
	time.Sleep(300 * time.Millisecond)
	for _, r := range recorded {
		if strings.Contains(r, "Thanks") || strings.Contains(r, "Hello from Bob") {
			t.Errorf("the chat panel was recorded into the page's events: %.300s", r)
		}
	}

	// The visitor ends the session from the banner: Bob is told, and the
	// session is gone.
	page.Mouse.MustMoveTo(w-50, h-38) // the banner's End button
	page.Mouse.MustClick("left")
	bob.until(t, "the end reaches the agent", func(m map[string]any) bool {
		s, _ := m["session"].(map[string]any)
		return s != nil && s["ended"] == true
	}, nil)
}

// The agent's console, in a real browser: waiting for consent, the agent's
// pointer on the visitor's page, chat, and ending the session.
func TestAgentConsoleWorksWithTheVisitor(t *testing.T) {
	c := startCobrowse(t, "demo", "--join", "consent")
	page := visitorBrowser(t).MustPage("").Timeout(60 * time.Second)
	page.MustNavigate(c.visitorURL).MustWaitLoad()
	page.MustElement("#products")
	id := waitForSession(t, c)

	agent := agentBrowser(t)
	if err := chromedp.Do(agent,
		chromedp.Navigate(c.agentURL+"/login?token="+c.token),
		chromedp.Evaluate[chromedp.Void](`localStorage.setItem('cobrowse.agentName', 'Carol')`),
		chromedp.Navigate(c.agentURL+"/sessions/"+id),
		chromedp.WaitVisible(chromedp.CSS(`#consent-note`)),
	); err != nil {
		t.Fatalf("agent console: %v", err)
	}
	note, _ := chromedp.Run(agent, chromedp.Text(chromedp.CSS(`#consent-note`)))
	if !strings.Contains(note, "Waiting for the visitor") {
		t.Errorf("consent note %q", note)
	}
	waitForPanel(t, page, 10*time.Second, "the question on the visitor's page")
	time.Sleep(200 * time.Millisecond)
	page.Keyboard.MustType(input.Enter)
	eventually(t, 10*time.Second, "the agent sees the shop after consent", func() string {
		text, err := inReplay[string](agent, `doc => doc.body.innerText`)
		if err != nil || !strings.Contains(text, "Add to cart") {
			return fmt.Sprintf("replayed text %.80q (%v)", text, err)
		}
		return ""
	})
	if hidden, _ := chromedp.Run(agent, chromedp.Evaluate[bool](`document.getElementById('consent-note').hidden`)); !hidden {
		t.Error("the consent note stays after the visitor accepted")
	}

	// Carol points at the middle of her view: her pointer shows in the
	// middle of the visitor's viewport.
	size := page.MustEval(`() => [innerWidth, innerHeight]`).Arr()
	vx, vy := int(size[0].Num()/2), int(size[1].Num()/2)
	before := page.MustScreenshot()
	box, err := chromedp.Run(agent, chromedp.Evaluate[[]float64](`(() => { const r = document.getElementById('stage').getBoundingClientRect(); return [r.left + r.width / 2, r.top + r.height / 2]; })()`))
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "Carol's pointer in the middle of the visitor's page", func() string {
		chromedp.Do(agent, chromedp.MouseEvent(cdpinput.DispatchMouseEventTypeMouseMoved, box[0]+1, box[1]), chromedp.MouseEvent(cdpinput.DispatchMouseEventTypeMouseMoved, box[0], box[1]))
		// The arrow's tip is at the middle, give or take the scrollbar's
		// share of the scale: look for it around there.
		if n := changedPixels(t, before, page.MustScreenshot(), image.Rect(vx-30, vy-20, vx+30, vy+30)); n < 20 {
			return fmt.Sprintf("%d pixels changed around the middle", n)
		}
		return ""
	})

	// Highlight: Carol clicks the mug's card, the visitor sees it outlined
	// in her colour. Draw: a stroke across the page shows, then fades.
	time.Sleep(4500 * time.Millisecond) // the pointer fades first, out of the way
	before = page.MustScreenshot()
	if err := chromedp.Do(agent, chromedp.Click(chromedp.CSS(`[data-tool="highlight"]`))); err != nil {
		t.Fatal(err)
	}
	clickReplayed(t, agent, `[data-product="mug"]`)
	mug := page.MustElement(`[data-product="mug"]`).MustShape().Box()
	eventually(t, 5*time.Second, "the mug outlined on the visitor's page", func() string {
		// The outline runs along the top edge of the element.
		edge := image.Rect(int(mug.X), int(mug.Y)-6, int(mug.X+mug.Width), int(mug.Y)+2)
		if n := changedPixels(t, before, page.MustScreenshot(), edge); n < int(mug.Width) {
			return fmt.Sprintf("%d pixels changed along the top edge", n)
		}
		return ""
	})
	if err := chromedp.Do(agent, chromedp.Click(chromedp.CSS(`[data-tool="draw"]`))); err != nil {
		t.Fatal(err)
	}
	from, err := chromedp.Run(agent, chromedp.Evaluate[[]float64](`(() => { const r = document.getElementById('stage').getBoundingClientRect(); return [r.left + r.width * 0.3, r.top + r.height * 0.25, r.width * 0.4]; })()`))
	if err != nil {
		t.Fatal(err)
	}
	steps := []chromedp.Action[chromedp.Void]{chromedp.MouseEvent(cdpinput.DispatchMouseEventTypeMousePressed, from[0], from[1], chromedp.ButtonLeft)}
	for i := 1; i <= 20; i++ {
		steps = append(steps, chromedp.MouseEvent(cdpinput.DispatchMouseEventTypeMouseMoved, from[0]+from[2]*float64(i)/20, from[1], chromedp.ButtonLeft))
	}
	steps = append(steps, chromedp.MouseEvent(cdpinput.DispatchMouseEventTypeMouseReleased, from[0]+from[2], from[1], chromedp.ButtonLeft))
	if err := chromedp.Do(agent, steps...); err != nil {
		t.Fatal(err)
	}
	eventually(t, 3*time.Second, "the drawing on the visitor's page", func() string {
		line := image.Rect(int(size[0].Num()*0.3)+10, int(size[1].Num()*0.25)-8, int(size[0].Num()*0.7)-10, int(size[1].Num()*0.25)+8)
		if n := changedPixels(t, before, page.MustScreenshot(), line); n < 100 {
			return fmt.Sprintf("%d pixels changed along the stroke", n)
		}
		return ""
	})
	saveArtifact(t, "collab-highlight-draw.png", page.MustScreenshot())
	if err := chromedp.Do(agent, chromedp.Click(chromedp.CSS(`[data-tool="point"]`))); err != nil {
		t.Fatal(err)
	}

	// Chat from the console reaches the visitor's panel.
	if err := chromedp.Do(agent,
		chromedp.SendKeys(chromedp.CSS(`#chat-input`), "Hi, Carol here\n"),
	); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the line in the console's chat", func() string {
		text, _ := chromedp.Run(agent, chromedp.Text(chromedp.CSS(`#chat-list`)))
		if !strings.Contains(text, "Hi, Carol here") {
			return fmt.Sprintf("chat list %q", text)
		}
		return ""
	})
	time.Sleep(300 * time.Millisecond)
	saveArtifact(t, "collab-visitor.png", page.MustScreenshot())
	if shot, err := chromedp.Run(agent, chromedp.CaptureScreenshot()); err == nil {
		saveArtifact(t, "collab-agent.png", shot)
	}

	// Carol ends the session: the visitor's UI goes, the console says so.
	if err := chromedp.Do(agent, chromedp.Click(chromedp.CSS(`#end-session`))); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the visitor's UI gone", func() string {
		if page.MustHas("cobrowse-ui") {
			return "cobrowse-ui still there"
		}
		return ""
	})
	eventually(t, 5*time.Second, "the console says the session ended", func() string {
		status, _ := chromedp.Run(agent, chromedp.Text(chromedp.CSS(`#status`)))
		if status != "session ended" {
			return fmt.Sprintf("status %q", status)
		}
		return ""
	})
}

// A visitor with two tabs: the view follows the tab the visitor is on, and
// the agent can show the other one.
func TestAgentFollowsTheVisitorsTabs(t *testing.T) {
	c := startDemo(t)
	visitor := visitorBrowser(t)
	first := visitor.MustPage(c.visitorURL).Timeout(60 * time.Second)
	first.MustElement("#products")
	id := waitForSession(t, c)
	second := visitor.MustPage(c.visitorURL + "checkout").Timeout(60 * time.Second)
	second.MustElement("#checkout-form")

	agent := agentBrowser(t)
	if err := chromedp.Do(agent,
		chromedp.Navigate(c.agentURL+"/login?token="+c.token),
		chromedp.Navigate(c.agentURL+"/sessions/"+id),
		chromedp.WaitVisible(chromedp.CSS(`#tab-select`)),
	); err != nil {
		t.Fatalf("agent console: %v", err)
	}
	shows := func(sel string) func() string {
		return func() string {
			found, err := inReplay[bool](agent, `doc => !!doc.querySelector('`+sel+`')`)
			if err != nil || !found {
				return fmt.Sprintf("no %s in the replay (%v)", sel, err)
			}
			return ""
		}
	}
	eventually(t, 10*time.Second, "the view follows the visitor's newest tab", shows("#checkout-form"))

	// The agent picks the other tab.
	if err := chromedp.Do(agent, chromedp.Evaluate[chromedp.Void](`(() => {
		const s = document.getElementById('tab-select');
		const other = [...s.options].find(o => o.value && !o.textContent.includes('visitor is here'));
		s.value = other.value;
		s.dispatchEvent(new Event('change'));
	})()`)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the view shows the tab the agent chose", shows("#products"))
	// ... and keeps showing it while the visitor works in the other tab.
	second.MustElement("#checkout-form").MustClick()
	time.Sleep(500 * time.Millisecond)
	if msg := shows("#products")(); msg != "" {
		t.Errorf("the agent's choice did not hold: %s", msg)
	}
}

// --join code: the visitor asks for a support code, the agent enters it on
// the dashboard and sees the page.
func TestSupportCodeFlow(t *testing.T) {
	c := startCobrowse(t, "demo", "--join", "code")
	page := visitorBrowser(t).MustPage("").Timeout(60 * time.Second)
	if err := (proto.NetworkEnable{}).Call(page); err != nil {
		t.Fatal(err)
	}
	codes := make(chan string, 4)
	go page.EachEvent(func(e *proto.NetworkWebSocketFrameReceived) {
		var m struct{ Type, Code string }
		if json.Unmarshal([]byte(e.Response.PayloadData), &m) == nil && m.Type == "code" {
			codes <- m.Code
		}
	})()
	page.MustNavigate(c.visitorURL).MustWaitLoad()
	page.MustElement("#products")
	id := waitForSession(t, c)

	agent := agentBrowser(t)
	if err := chromedp.Do(agent,
		chromedp.Navigate(c.agentURL+"/login?token="+c.token),
		chromedp.WaitVisible(chromedp.CSS(`#join-code`)),
		chromedp.SendKeys(chromedp.CSS(`#code`), "000000\n"),
		chromedp.WaitVisible(chromedp.CSS(`#code-error`)),
	); err != nil {
		t.Fatalf("agent dashboard: %v", err)
	}
	eventually(t, 5*time.Second, "a wrong code is refused", func() string {
		msg, _ := chromedp.Run(agent, chromedp.Text(chromedp.CSS(`#code-error`)))
		if !strings.Contains(msg, "no session has this support code") {
			return fmt.Sprintf("error %q", msg)
		}
		return ""
	})

	// The site's own help link calls window.cobrowse.showCode().
	page.MustEval(`() => window.cobrowse.showCode()`)
	var code string
	select {
	case code = <-codes:
	case <-time.After(10 * time.Second):
		t.Fatal("the visitor got no support code")
	}
	saveArtifact(t, "code-visitor.png", page.MustScreenshot())
	if err := chromedp.Do(agent,
		chromedp.Evaluate[chromedp.Void](`document.getElementById('code').value = ''`),
		chromedp.SendKeys(chromedp.CSS(`#code`), code[:3]+" "+code[3:]+"\n"),
	); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the agent sees the visitor's page", func() string {
		loc, _ := chromedp.Run(agent, chromedp.Location())
		text, err := inReplay[string](agent, `doc => doc.body.innerText`)
		if !strings.HasSuffix(loc, "/sessions/"+id) || err != nil || !strings.Contains(text, "Add to cart") {
			return fmt.Sprintf("at %s, replay %.60q (%v)", loc, text, err)
		}
		return ""
	})
}

// forwarder is a TCP relay in front of the visitor listener whose network
// can be cut: the visitor's browser talks to cobrowse through it.
type forwarder struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	down   time.Time // connections are refused until then
}

func newForwarder(t *testing.T, target string) *forwarder {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &forwarder{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	t.Cleanup(func() { ln.Close(); f.cut(0) })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go f.relay(c)
		}
	}()
	return f
}

func (f *forwarder) relay(c net.Conn) {
	f.mu.Lock()
	if time.Now().Before(f.down) {
		f.mu.Unlock()
		c.Close()
		return
	}
	target := f.target
	f.mu.Unlock()
	up, err := net.Dial("tcp", target)
	if err != nil {
		c.Close()
		return
	}
	f.mu.Lock()
	f.conns[c], f.conns[up] = struct{}{}, struct{}{}
	f.mu.Unlock()
	go func() { io.Copy(up, c); up.Close() }()
	io.Copy(c, up)
	c.Close()
}

// retarget sends the connections from now on to target (another node
// behind the same address) and closes those relayed so far.
func (f *forwarder) retarget(target string) {
	f.mu.Lock()
	f.target = target
	f.mu.Unlock()
	f.cut(0)
}

// cut closes every relayed connection and refuses new ones for d.
func (f *forwarder) cut(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down = time.Now().Add(d)
	for c := range f.conns {
		c.Close()
	}
	f.conns = map[net.Conn]struct{}{}
}

// The visitor's network drops for 5 s while the visitor keeps shopping: the
// session resumes when it is back, and the agent gets everything.
func TestNetworkDropResumes(t *testing.T) {
	c := startDemo(t)
	u, _ := url.Parse(c.visitorURL)
	net5 := newForwarder(t, u.Host)
	page := visitorBrowser(t).MustPage("").Timeout(60 * time.Second)
	page.MustNavigate("http://" + net5.ln.Addr().String() + "/").MustWaitLoad()
	page.MustElement("#products")
	id := waitForSession(t, c)
	agent := dialLive(t, c, id, "Frank")
	agent.until(t, "the page", func(m map[string]any) bool { ev, _ := m["events"].([]any); return m["type"] == "reset" && len(ev) > 0 }, nil)

	net5.cut(5 * time.Second)
	var info session.Info
	eventually(t, 5*time.Second, "the server sees the visitor gone", func() string {
		c.api(t, "/api/sessions/"+id, &info)
		if info.Connected {
			return "still connected"
		}
		return ""
	})
	// The page keeps changing while offline (the demo's cart needs the
	// network, so the page is changed directly): three edits.
	for i := 1; i <= 3; i++ {
		page.MustEval(fmt.Sprintf(`() => { document.querySelector('h1').textContent = 'Offline edit %d'; }`, i))
		time.Sleep(100 * time.Millisecond)
	}
	// Everything done offline reaches the agent, in the same session, once
	// the network is back.
	var seen strings.Builder
	agent.until(t, "the offline clicks reach the agent", func(m map[string]any) bool {
		b, _ := json.Marshal(m)
		seen.Write(b)
		return strings.Contains(seen.String(), "Offline edit 3")
	}, nil)
	for i := 1; i <= 2; i++ {
		if !strings.Contains(seen.String(), fmt.Sprintf("Offline edit %d", i)) {
			t.Errorf("edit %d made offline never reached the agent", i)
		}
	}
	if id2 := waitForSession(t, c); id2 != id {
		t.Errorf("the session changed from %s to %s", id, id2)
	}
	c.api(t, "/api/sessions/"+id, &info)
	if !info.Connected {
		t.Error("the visitor is not connected again")
	}
}

// The visitor's label comes from the site's response header; the dashboard
// shows it and finds the visitor by it; a signed webhook tells a helpdesk
// when the session starts and ends.
func TestVisitorLabelAndWebhook(t *testing.T) {
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-User-Id", "user-42")
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, `<!doctype html><title>Account</title><h1>Account of user 42</h1>`)
	}))
	defer site.Close()
	secret := "webhook-secret-0123456789"
	events := make(chan webhook.Event, 8)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.Header.Get(webhook.SignatureHeader) != webhook.Sign([]byte(secret), r.Header.Get(webhook.TimestampHeader), body) {
			t.Errorf("webhook delivery with a bad signature: %s", body)
		}
		var e webhook.Event
		json.Unmarshal(body, &e)
		events <- e
	}))
	defer hook.Close()
	c := startCobrowse(t, "serve", "--upstream", site.URL, "--visitor-label-header", "X-User-Id",
		"--webhook", hook.URL, "--webhook-secret", secret)
	page := visitorBrowser(t).MustPage("").Timeout(60 * time.Second)
	page.MustNavigate(c.visitorURL).MustWaitLoad()
	id := waitForSession(t, c)
	select {
	case e := <-events:
		if e.Event != "session.started" || e.Session != id || e.Fields["label"] != "user-42" {
			t.Errorf("first webhook event %+v", e)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no session.started webhook")
	}

	agent := agentBrowser(t)
	if err := chromedp.Do(agent,
		chromedp.Navigate(c.agentURL+"/login?token="+c.token),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-session="`+id+`"]`)),
		chromedp.SendKeys(chromedp.CSS(`#search`), "user-4"),
	); err != nil {
		t.Fatal(err)
	}
	row, _ := chromedp.Run(agent, chromedp.Text(chromedp.CSS(`tr[data-session="`+id+`"]`)))
	if !strings.Contains(row, "user-42") {
		t.Errorf("dashboard row %q lacks the label", row)
	}
	if err := chromedp.Do(agent, chromedp.SendKeys(chromedp.CSS(`#search`), "x")); err != nil { // "user-4x": no match
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the search hides the visitor", func() string {
		n, _ := chromedp.Run(agent, chromedp.Evaluate[int](`document.querySelectorAll('#sessions tr').length`))
		if n != 0 {
			return fmt.Sprintf("%d rows", n)
		}
		return ""
	})

	// An agent ends the session: the helpdesk hears of it.
	live := dialLive(t, c, id, "Gus")
	live.conn.WriteJSON(map[string]any{"type": "end"})
	select {
	case e := <-events:
		if e.Event != "session.ended" || e.Session != id || !strings.Contains(fmt.Sprint(e.Fields["reason"]), "Gus") {
			t.Errorf("webhook event after the end %+v", e)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no session.ended webhook")
	}
}
