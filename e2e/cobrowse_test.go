package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/go-rod/rod"
	"github.com/go-rod/rod/lib/proto"

	"github.com/cobrowse/cobrowse/session"
)

// Secrets the visitor types. They must never leave the visitor's browser.
const (
	password   = "correct-horse-battery-staple"
	cardNumber = "4000056655665556"
)

// frameLog collects WebSocket and server-sent-event payloads seen by a
// browser.
type frameLog struct {
	mu       sync.Mutex
	payloads []string
}

func (l *frameLog) add(p string) {
	l.mu.Lock()
	l.payloads = append(l.payloads, p)
	l.mu.Unlock()
}

func (l *frameLog) all() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.payloads, "\n")
}

// captureAgentTraffic records every WebSocket frame and server-sent event
// the agent's browser receives, until ctx ends.
func captureAgentTraffic(ctx context.Context) *frameLog {
	log := &frameLog{}
	frames := chromedp.Events(ctx, network.WebSocketFrameReceived)
	sse := chromedp.Events(ctx, network.EventSourceMessageReceived)
	go func() {
		for ev, err := range frames {
			if err != nil {
				return
			}
			log.add(string(ev.Response.PayloadData))
		}
	}()
	go func() {
		for ev, err := range sse {
			if err != nil {
				return
			}
			log.add(ev.Data)
		}
	}()
	return log
}

// captureVisitorTraffic records every WebSocket frame the visitor's page
// sends; the page's console messages and exceptions are logged if the test
// fails.
func captureVisitorTraffic(t *testing.T, page *rod.Page) *frameLog {
	t.Helper()
	log, console := &frameLog{}, &frameLog{}
	if err := (proto.NetworkEnable{}).Call(page); err != nil {
		t.Fatal(err)
	}
	if err := (proto.RuntimeEnable{}).Call(page); err != nil {
		t.Fatal(err)
	}
	go page.EachEvent(func(e *proto.NetworkWebSocketFrameSent) {
		log.add(e.Response.PayloadData)
	}, func(e *proto.RuntimeConsoleAPICalled) {
		var args []string
		for _, a := range e.Args {
			args = append(args, a.Value.String()+a.Description)
		}
		console.add(fmt.Sprintf("console.%s: %s", e.Type, strings.Join(args, " ")))
	}, func(e *proto.RuntimeExceptionThrown) {
		console.add("exception: " + e.ExceptionDetails.Text + " " + e.ExceptionDetails.Exception.Description)
	})()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("visitor page console:\n%s", console.all())
		}
	})
	return log
}

// inReplay evaluates a JavaScript expression against the document that the
// agent's Replayer renders (the visitor's page, in the sandboxed iframe).
func inReplay[T any](ctx context.Context, expr string) (T, error) {
	return chromedp.Run(ctx, chromedp.Evaluate[T](`(() => {
		const frame = document.querySelector('#stage iframe');
		const doc = frame && frame.contentDocument;
		if (!doc || !doc.body) return null;
		return (`+expr+`)(doc);
	})()`))
}

func TestVisitorIsSeenLiveByAnAgent(t *testing.T) {
	c := startDemo(t)
	visitor := visitorBrowser(t).WithPanic(func(v any) { t.Helper(); t.Fatalf("visitor browser: %v", v) })
	agent := agentBrowser(t)

	// The visitor opens the shop through cobrowse.
	page := visitor.MustPage("").Timeout(60 * time.Second)
	sent := captureVisitorTraffic(t, page)
	page.MustNavigate(c.visitorURL).MustWaitLoad()
	page.MustElement("#products")

	var sessions []session.Info
	eventually(t, 10*time.Second, "the visitor's session is listed by the API", func() string {
		c.api(t, "/api/sessions", &sessions)
		if len(sessions) != 1 || sessions[0].Title != "Cobrowse Demo Shop" || sessions[0].URL != c.visitorURL {
			return fmt.Sprintf("sessions = %+v", sessions)
		}
		return ""
	})
	sessionID := sessions[0].ID

	// The agent signs in and sees the session on the dashboard.
	received := captureAgentTraffic(agent)
	if err := chromedp.Do(agent,
		chromedp.Navigate(c.agentURL+"/login?token="+c.token),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-session="`+sessionID+`"]`)),
	); err != nil {
		t.Fatalf("agent dashboard: %v", err)
	}
	row, err := chromedp.Run(agent, chromedp.Text(chromedp.CSS(`tr[data-session="`+sessionID+`"]`)))
	if err != nil || !strings.Contains(row, "Cobrowse Demo Shop") || !strings.Contains(row, c.visitorURL) {
		t.Fatalf("dashboard row = %q (%v), want the title and URL", row, err)
	}
	if shot, err := chromedp.Run(agent, chromedp.CaptureScreenshot()); err == nil {
		saveArtifact(t, "agent-dashboard.png", shot)
	}

	// The agent opens the session and sees the visitor's page.
	if err := chromedp.Do(agent, chromedp.Click(chromedp.CSS(`tr[data-session="`+sessionID+`"] a`))); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the agent view shows the shop", func() string {
		text, err := inReplay[string](agent, `doc => doc.body.innerText`)
		if err != nil || !strings.Contains(text, "Cobrowse Demo Shop") || !strings.Contains(text, "Add to cart") {
			return fmt.Sprintf("replayed text %q (%v)", text, err)
		}
		return ""
	})
	sandbox, err := chromedp.Run(agent, chromedp.Evaluate[*string](`document.querySelector('#stage iframe').getAttribute('sandbox')`))
	if err != nil || sandbox == nil || strings.Contains(*sandbox, "allow-scripts") {
		t.Fatalf("replay iframe sandbox = %v (%v), want a sandbox without allow-scripts", sandbox, err)
	}

	// The visitor's pointer is shown.
	page.Mouse.MustMoveTo(400, 300)
	eventually(t, 5*time.Second, "the agent view shows the visitor's pointer", func() string {
		pos, err := chromedp.Run(agent, chromedp.Evaluate[[]float64](`(() => {
			const m = document.querySelector('.replayer-mouse');
			return m ? [parseFloat(m.style.left), parseFloat(m.style.top)] : [];
		})()`))
		if err != nil || len(pos) != 2 || math.Abs(pos[0]-400) > 2 || math.Abs(pos[1]-300) > 2 {
			return fmt.Sprintf("pointer at %v (%v)", pos, err)
		}
		return ""
	})

	// Adding to the cart shows in the agent view within 2 s.
	page.MustElement(`button.add-to-cart[data-product="mug"]`).MustClick()
	latency := eventually(t, 2*time.Second, "the cart update reaches the agent view", func() string {
		count, err := inReplay[string](agent, `doc => doc.querySelector('#cart-count').textContent.trim()`)
		if err != nil || count != "1" {
			return fmt.Sprintf("cart count %q (%v)", count, err)
		}
		return ""
	})
	t.Logf("cart update visible to the agent after %v (polled every 50 ms)", latency)

	// The visitor goes to checkout; the agent follows.
	wait := page.MustWaitNavigation()
	page.MustElement("#checkout-link").MustClick()
	wait()
	page.MustElement("#checkout-form")
	eventually(t, 10*time.Second, "the agent follows to checkout", func() string {
		found, err := inReplay[bool](agent, `doc => !!doc.querySelector('#checkout-form')`)
		var info session.Info
		c.api(t, "/api/sessions/"+sessionID, &info)
		if err != nil || !found || !strings.HasSuffix(info.URL, "/checkout") {
			return fmt.Sprintf("checkout form in replay: %v (%v); session URL %q", found, err, info.URL)
		}
		return ""
	})
	c.api(t, "/api/sessions", &sessions)
	if len(sessions) != 1 || sessions[0].ID != sessionID {
		t.Fatalf("after navigation sessions = %+v, want the same single session", sessions)
	}

	// Typed text appears; the password and the card number do not.
	page.MustElement("#name").MustInput("Ada Lovelace")
	page.MustElement("#card").MustInput(cardNumber)
	page.MustElement("#password").MustInput(password)
	eventually(t, 2*time.Second, "typed text reaches the agent view", func() string {
		values, err := inReplay[[]string](agent, `doc => ['#name', '#card', '#password'].map(s => doc.querySelector(s).value)`)
		want := []string{"Ada Lovelace", strings.Repeat("*", len(cardNumber)), strings.Repeat("*", len(password))}
		if err != nil || len(values) != 3 || values[0] != want[0] || values[1] != want[1] || values[2] != want[2] {
			return fmt.Sprintf("replayed values %q (%v), want %q", values, err, want)
		}
		return ""
	})

	visitorShot, err := page.Screenshot(false, nil)
	if err != nil {
		t.Fatal(err)
	}
	saveArtifact(t, "visitor-checkout.png", visitorShot)
	agentShot, err := chromedp.Run(agent, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	saveArtifact(t, "agent-checkout.png", agentShot)

	events := c.rawGET(t, "/api/sessions/"+sessionID+"/events")
	var parsed []struct{ Type int }
	if err := json.Unmarshal(events, &parsed); err != nil || len(parsed) < 2 || parsed[0].Type != 4 || parsed[1].Type != 2 {
		t.Fatalf("/events is not Meta + FullSnapshot + tail (%v): %.200s", err, events)
	}

	// The capture works (it saw the typed name), and nothing secret is in it.
	for name, traffic := range map[string]string{
		"frames sent by the visitor":     sent.all(),
		"messages received by the agent": received.all(),
		"the /events export":             string(events),
	} {
		if !strings.Contains(traffic, "Ada Lovelace") {
			t.Errorf("%s do not contain the typed name: the capture is broken", name)
		}
		for _, secret := range []string{password, cardNumber, "4000 0566"} {
			if strings.Contains(traffic, secret) {
				t.Errorf("%s contain the secret %q", name, secret)
			}
		}
	}
}

// An agent who opens a session after the visitor changed the page sees
// every change since the snapshot, not only the last: the reset's events
// are replayed at once (regression: rrweb's virtual DOM kept all but the
// last, so a second agent saw a stale page).
func TestLateAgentSeesEveryChangeSinceTheSnapshot(t *testing.T) {
	c := startDemo(t)
	page := visitorBrowser(t).MustPage("").Timeout(60 * time.Second)
	page.MustNavigate(c.visitorURL).MustWaitLoad()
	page.MustElement("#products")
	id := waitForSession(t, c)
	page.MustEval(`() => {
		const note = document.createElement('p');
		note.id = 'late-note';
		note.textContent = 'First change';
		document.body.appendChild(note);
	}`)
	time.Sleep(300 * time.Millisecond) // another batch
	page.MustEval(`() => { document.querySelector('h1').textContent = 'Second change'; }`)
	time.Sleep(300 * time.Millisecond)

	agent := agentBrowser(t)
	if err := chromedp.Do(agent,
		chromedp.Navigate(c.agentURL+"/login?token="+c.token),
		chromedp.Navigate(c.agentURL+"/sessions/"+id),
	); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the late agent's view has both changes", func() string {
		got, err := inReplay[string](agent, `doc => {
			const note = doc.getElementById('late-note'), h = doc.querySelector('h1');
			return (note ? note.textContent : '-') + ' / ' + (h ? h.textContent : '-');
		}`)
		if err != nil || got != "First change / Second change" {
			return fmt.Sprintf("replayed %q (%v)", got, err)
		}
		return ""
	})
}
