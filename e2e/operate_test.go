package e2e

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// closeCodeOf reads conn until it fails and returns the close code the
// server sent, or -1 for a connection that ended without a close frame.
func closeCodeOf(conn *websocket.Conn, within time.Duration) int {
	conn.SetReadDeadline(time.Now().Add(within))
	for {
		if _, _, err := conn.ReadMessage(); err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				return ce.Code
			}
			return -1
		}
	}
}

// metricValue returns the value of an unlabelled series in a scrape.
func metricValue(t *testing.T, scrape, name string) float64 {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindStringSubmatch(scrape)
	if m == nil {
		t.Fatalf("the scrape has no series %s", name)
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatalf("series %s: %v", name, err)
	}
	return v
}

// A server with a visitor, an agent and a rendered view reports them in
// /metrics, and on SIGTERM tells the visitor and the agent to reconnect
// (1012), stops its Chromium and exits 0 within --shutdown-timeout.
func TestMetricsAndGracefulShutdown(t *testing.T) {
	const shutdownTimeout = 10 * time.Second
	c := startCobrowse(t, "demo", "--render", "--shutdown-timeout", shutdownTimeout.String())

	// A real visitor, so that the session has a page to render.
	visitor := visitorBrowser(t)
	page := visitor.MustPage("").Timeout(60 * time.Second)
	page.MustNavigate(c.visitorURL).MustWaitLoad()
	page.MustElement("#products")
	id := waitForSession(t, c)
	w := watchRender(t, c, id)
	eventually(t, 30*time.Second, "the rendered view is live", func() string {
		if last, frames, _ := w.state(); !strings.Contains(last, `"live"`) || frames == 0 {
			return fmt.Sprintf("state %s, %d frames", last, frames)
		}
		return ""
	})
	agent, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(c.agentURL, "http")+"/api/sessions/"+id+"/live",
		http.Header{"Authorization": {"Bearer " + c.token}})
	if err != nil {
		t.Fatalf("agent socket: %v", err)
	}
	defer agent.Close()
	// A visitor socket of our own, whose close code we can read.
	origin := strings.TrimSuffix(c.visitorURL, "/")
	socket, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(origin, "http")+"/__cobrowse/ws?tab=shutdown-tab&page=shutdown-page",
		http.Header{"Origin": {origin}})
	if err != nil {
		t.Fatalf("visitor socket: %v", err)
	}
	defer socket.Close()
	var welcome struct{ Type string }
	socket.SetReadDeadline(time.Now().Add(10 * time.Second))
	if err := socket.ReadJSON(&welcome); err != nil || welcome.Type != "welcome" {
		t.Fatalf("visitor socket: %+v, %v; want a welcome", welcome, err)
	}

	t.Run("metrics", func(t *testing.T) {
		if status, _ := c.agentGETNoToken(t, "/metrics"); status != http.StatusUnauthorized {
			t.Errorf("GET /metrics without the token: %d, want 401", status)
		}
		// A change on the page after the agent joined: its delivery is timed.
		page.MustEval(`() => document.body.appendChild(document.createElement('p')).textContent = 'after the agent joined'`)
		var scrape string
		eventually(t, 10*time.Second, "the scrape shows the agent and a timed delivery", func() string {
			scrape = string(c.rawGET(t, "/metrics"))
			if !strings.Contains(scrape, "\ncobrowse_agents 1\n") || strings.Contains(scrape, "\ncobrowse_fanout_latency_seconds_count 0\n") {
				return "no agent, or no delivery timed yet"
			}
			return ""
		})
		for name, atLeast := range map[string]float64{
			"cobrowse_sessions": 2, "cobrowse_visitor_connections": 2, "cobrowse_visitor_events_total": 1,
			"cobrowse_agent_messages_total": 1, "cobrowse_render_browsers": 1, "cobrowse_render_leases_total": 1,
			"cobrowse_rendered_sessions": 1, "cobrowse_screencast_frames_total": 1, "cobrowse_fanout_latency_seconds_count": 1,
			"cobrowse_asset_cache_misses_total": 1, "process_resident_memory_bytes": 1, "go_goroutines": 1,
			`cobrowse_proxy_requests_total{site="*"}`: 1, `cobrowse_proxy_pages_total{site="*"}`: 1,
		} {
			if v := metricValue(t, scrape, name); v < atLeast {
				t.Errorf("%s = %v, want at least %v", name, v, atLeast)
			}
		}
		if status, body := c.agentGETNoToken(t, "/readyz"); status != http.StatusOK {
			t.Errorf("GET /readyz: %d %s, want 200", status, body)
		}
	})

	browsers := serverBrowsers(c)
	if len(browsers) == 0 {
		t.Fatal("the server runs no Chromium; the test would prove nothing")
	}
	began := time.Now()
	if err := c.proc.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	visitorCode := make(chan int, 1)
	go func() { visitorCode <- closeCodeOf(socket, shutdownTimeout) }()
	if code := closeCodeOf(agent, shutdownTimeout); code != websocket.CloseServiceRestart {
		t.Errorf("the agent's socket closed with %d, want 1012 (service restart)", code)
	}
	if code := <-visitorCode; code != websocket.CloseServiceRestart {
		t.Errorf("the visitor's socket closed with %d, want 1012 (service restart)", code)
	}
	state, err := c.proc.Wait()
	took := time.Since(began)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("exited %d after %v", state.ExitCode(), took)
	if state.ExitCode() != 0 {
		t.Errorf("exit status %d, want 0", state.ExitCode())
	}
	if took > shutdownTimeout {
		t.Errorf("exited after %v, want within --shutdown-timeout %v", took, shutdownTimeout)
	}
	if left := serverBrowsers(c); len(left) > 0 {
		t.Errorf("Chromium processes left after exit: %v", left)
	}
	if profiles, _ := filepath.Glob(filepath.Join(c.tmpDir, "cobrowse-bp-*")); len(profiles) > 0 {
		t.Errorf("the pool's directory is left: %v", profiles)
	}
	eventually(t, 5*time.Second, "the log says it stopped", func() string {
		if !strings.Contains(c.stderr.String(), `msg=stopped`) {
			return "no stopped line"
		}
		return ""
	})
}

// agentGETNoToken returns the status and body of an agent listener path,
// requested without credentials.
func (c *cobrowse) agentGETNoToken(t *testing.T, path string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(c.agentURL + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

// checkServerLog checks that the server's log, at debug level, shows none
// of the corpus's secrets: logs go to places agents' redaction does not
// reach (collectors, tickets), so no visitor content may be in them.
func (lt *leakTest) checkServerLog() {
	log := lt.c.stderr.String()
	if !strings.Contains(log, "level=DEBUG") || !strings.Contains(log, "session="+lt.sessionID) {
		lt.t.Errorf("the server logged nothing at debug level about session %s; the log check proves little", lt.sessionID)
	}
	for _, s := range leakSecrets {
		for _, form := range encodings(s.value) {
			if strings.Contains(log, form) {
				lt.t.Errorf("the server log shows the secret %q (%s on %s) as %q: …%s…", s.value, s.how, s.page, form, excerpt(log, form))
				break
			}
		}
	}
}
