package e2e

import (
	"bytes"
	"fmt"
	"image"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/andybalholm/brotli"
	"github.com/go-rod/rod/lib/proto"

	"github.com/cobrowse/cobrowse/session"
)

// strictPage is a page as a security-minded site serves it: a nonce-based
// script-src with 'strict-dynamic', connect-src 'self', Trusted Types
// enforced, and a page script that writes HTML only through its Trusted
// Types policy. The page records every CSP violation it sees.
const (
	strictPolicy = "default-src 'self'; script-src 'nonce-r4nd0m' 'strict-dynamic'; " +
		"connect-src 'self'; object-src 'none'; base-uri 'none'; " +
		"require-trusted-types-for 'script'; trusted-types shop"
	strictPage = `<!doctype html><html><head><meta charset="utf-8"><title>Strict shop</title>
<meta http-equiv="Content-Security-Policy" content="connect-src 'self'">
<script nonce="r4nd0m">
  window.violations = [];
  document.addEventListener('securitypolicyviolation', e => window.violations.push(e.violatedDirective + ' ' + e.blockedURI));
  const policy = trustedTypes.createPolicy('shop', { createHTML: s => s });
  addEventListener('DOMContentLoaded', () => {
    document.getElementById('out').innerHTML = policy.createHTML('<b>rendered by a trusted type</b>');
  });
</script></head>
<body><h1>Strict shop</h1><p id="out"></p></body></html>`
)

// A page with a strict CSP (nonce + strict-dynamic, connect-src 'self',
// also in a <meta>), br compression and Trusted Types enforced loads through
// cobrowse with no CSP violation, and its visitor appears on the agent side.
func TestStrictCSPPageWorksThroughTheProxy(t *testing.T) {
	var compressed bytes.Buffer
	bw := brotli.NewWriterLevel(&compressed, 5)
	bw.Write([]byte(strictPage))
	bw.Close()
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.Contains(r.Header.Get("Accept-Encoding"), "br") {
			http.Error(w, "this test upstream serves br only", http.StatusNotAcceptable)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Encoding", "br")
		w.Header().Set("Content-Security-Policy", strictPolicy)
		w.Write(compressed.Bytes())
	}))
	t.Cleanup(upstream.Close)
	c := startCobrowse(t, "serve", "--upstream", upstream.URL)

	visitor := visitorBrowser(t).WithPanic(func(v any) { t.Helper(); t.Fatalf("visitor browser: %v", v) })
	page := visitor.MustPage("").Timeout(60 * time.Second)
	console := &frameLog{}
	if err := (proto.LogEnable{}).Call(page); err != nil {
		t.Fatal(err)
	}
	go page.EachEvent(func(e *proto.LogEntryAdded) {
		console.add(fmt.Sprintf("%s %s: %s", e.Entry.Level, e.Entry.Source, e.Entry.Text))
	})()
	page.MustNavigate(c.visitorURL).MustWaitLoad()
	page.MustElementR("b", "rendered by a trusted type")

	eventually(t, 10*time.Second, "the visitor's session reaches the hub", func() string {
		var sessions []session.Info
		c.api(t, "/api/sessions", &sessions)
		if len(sessions) != 1 || sessions[0].Title != "Strict shop" || !sessions[0].Connected {
			return fmt.Sprintf("sessions %+v", sessions)
		}
		return ""
	})
	id := mustSessionID(t, c)
	// The page's title comes with the visitor's hello; its first batch
	// (Meta, then the full snapshot) can follow a moment later.
	eventually(t, 10*time.Second, "a full snapshot reaches the hub", func() string {
		var events []struct{ Type int }
		c.api(t, "/api/sessions/"+id+"/events", &events)
		if len(events) < 2 || events[1].Type != 2 {
			return fmt.Sprintf("events %+v", events)
		}
		return ""
	})

	// The visitor's panel works on this page too: an agent with its
	// pointer and a chat line, so the banner, the pointer and the chat panel
	// are built under the page's CSP and Trusted Types.
	agent := dialLive(t, c, id, "Ivy")
	agent.until(t, "the page", func(m map[string]any) bool { ev, _ := m["events"].([]any); return m["type"] == "reset" && len(ev) > 0 }, nil)
	before := page.MustScreenshot()
	agent.conn.WriteJSON(map[string]any{"type": "pointer", "x": 300, "y": 200})
	agent.conn.WriteJSON(map[string]any{"type": "chat", "text": "Hello from Ivy"})
	eventually(t, 5*time.Second, "the panel on the strict page", func() string {
		if !page.MustHas("cobrowse-ui") {
			return "no cobrowse-ui"
		}
		if n := changedPixels(t, before, page.MustScreenshot(), image.Rect(280, 180, 340, 240)); n < 20 {
			return fmt.Sprintf("%d pixels changed where the pointer goes", n)
		}
		return ""
	})
	saveArtifact(t, "csp-visitor-panel.png", page.MustScreenshot())
	if v := page.MustEval(`() => window.violations.join('; ')`).String(); v != "" {
		t.Errorf("the page saw CSP violations: %s", v)
	}
	if logs := console.all(); strings.Contains(logs, "Content Security Policy") || strings.Contains(logs, "Trusted Type") {
		t.Errorf("the console reports CSP or Trusted Types errors:\n%s", logs)
	}
}

// mustSessionID returns the id of the only live session.
func mustSessionID(t *testing.T, c *cobrowse) string {
	t.Helper()
	var sessions []session.Info
	c.api(t, "/api/sessions", &sessions)
	if len(sessions) != 1 {
		t.Fatalf("want exactly one session, have %+v", sessions)
	}
	return sessions[0].ID
}
