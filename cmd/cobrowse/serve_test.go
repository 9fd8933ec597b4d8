package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cobrowse/cobrowse/policies"
	"github.com/cobrowse/cobrowse/proxy"
	"github.com/cobrowse/cobrowse/session"
)

// lockedBuffer collects a server's log while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// cobrowse is a serve or demo command that startCobrowse runs.
type cobrowse struct {
	visitorURL, agentURL string // as printed, without a trailing slash
	logs                 *lockedBuffer
	cancel               context.CancelFunc
	done                 chan error
}

// startCobrowse runs the command with args (listeners on 127.0.0.1:0 are
// added) until it has printed its URLs. The test's cleanup stops it.
func startCobrowse(t *testing.T, args ...string) *cobrowse {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c := &cobrowse{logs: &lockedBuffer{}, cancel: cancel, done: make(chan error, 1)}
	t.Cleanup(func() { c.stop(t) })
	args = append(args, "--listen", "127.0.0.1:0", "--agent-listen", "127.0.0.1:0", "--shutdown-timeout", "5s")
	stdout, w := io.Pipe()
	go func() {
		c.done <- run(ctx, args, w, c.logs)
		w.Close()
	}()
	printed := regexp.MustCompile(`(visitor URL|agent sign-in):\s+(https?://[^/\s]+)`)
	lines := bufio.NewScanner(stdout)
	for (c.visitorURL == "" || c.agentURL == "") && lines.Scan() {
		if m := printed.FindStringSubmatch(lines.Text()); m != nil && m[1] == "visitor URL" {
			c.visitorURL = m[2]
		} else if m != nil {
			c.agentURL = m[2]
		}
	}
	if c.visitorURL == "" || c.agentURL == "" {
		t.Fatalf("cobrowse %s printed no visitor and agent URLs (it returned %v); log:\n%s", args[0], c.stop(t), c.logs)
	}
	go io.Copy(io.Discard, stdout)
	return c
}

// stop cancels the command's context (a signal) and returns what it
// returned. Stopping it again returns nil.
func (c *cobrowse) stop(t *testing.T) error {
	t.Helper()
	c.cancel()
	select {
	case err, ok := <-c.done:
		if ok {
			close(c.done)
		}
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("cobrowse did not stop within 10 s of its context")
		return nil
	}
}

// A demo with JSON logs: each agent-listener request has an id in its log
// lines, /readyz answers, and cancelling the context (a signal) stops it
// with no error.
func TestDemoLogsJSONWithRequestIDsAndStops(t *testing.T) {
	c := startCobrowse(t, "demo", "--log-format", "json", "--log-level", "debug", "--agent-token", "cmd-test-token-0123456789")
	logs := c.logs

	req, _ := http.NewRequest("GET", c.agentURL+"/readyz", nil)
	req.Header.Set("X-Request-Id", "cmd-test-request-1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Request-Id") != "cmd-test-request-1" {
		t.Errorf("GET /readyz: %s, X-Request-Id %q", resp.Status, resp.Header.Get("X-Request-Id"))
	}

	if err := c.stop(t); err != nil {
		t.Fatalf("the demo stopped with %v, want nil", err)
	}
	found := map[string]bool{}
	for line := range strings.SplitSeq(strings.TrimSpace(logs.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("a log line is not JSON: %q", line)
		}
		msg, _ := rec["msg"].(string)
		if msg == "agent listener request" && rec["request_id"] == "cmd-test-request-1" && rec["path"] == "/readyz" {
			found["request"] = true
		}
		if msg == "shutting down" || msg == "stopped" {
			found[msg] = true
		}
	}
	for _, want := range []string{"request", "shutting down", "stopped"} {
		if !found[want] {
			t.Errorf("the log lacks the %q line:\n%s", want, logs)
		}
	}
}

// The visitor listener forwards every path outside /__cobrowse/ to the
// upstream exactly as the client sent it: no cleaning, no redirect, escaping
// and query kept, any method; and always to the configured upstream, whatever
// host the path or request target names. Paths under /__cobrowse/ are
// cobrowse's and never reach the upstream. The requests are written by hand:
// a Go client would parse, and so normalise, some of these targets.
func TestVisitorListenerForwardsPathsVerbatim(t *testing.T) {
	for _, path := range []string{visitorScriptPath, session.VisitorPath, policies.ClientPath} {
		if !strings.HasPrefix(path, ownPrefix) {
			t.Errorf("%s is not under %s: the visitor listener would send it to the upstream", path, ownPrefix)
		}
	}
	type arrival struct{ method, target, host string }
	arrived := make(chan arrival, 1)
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- arrival{r.Method, r.RequestURI, r.Host}
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "from upstream")
	}))
	defer upstream.Close()
	c := startCobrowse(t, "serve", "--upstream", upstream.URL, "--agent-token", "cmd-test-token-0123456789")
	visitorAddr := strings.TrimPrefix(c.visitorURL, "http://")
	upstreamHost := strings.TrimPrefix(upstream.URL, "http://")

	tests := []struct {
		method, target string
		// forwarded is the request target the upstream must receive; ""
		// when it must receive nothing, and the visitor gets status.
		forwarded string
		status    int
	}{
		{"POST", "/img//https://cdn.example/x.png", "/img//https://cdn.example/x.png", 200},
		{"GET", "/img//https://cdn.example/x.png", "/img//https://cdn.example/x.png", 200},
		{"GET", "/a/../b", "/a/../b", 200},
		{"GET", "/a/./b", "/a/./b", 200},
		{"GET", "/a%2Fb", "/a%2Fb", 200},
		{"GET", "//double/leading", "//double/leading", 200},
		{"DELETE", "/a/../b/?q=%2F..%2F&r", "/a/../b/?q=%2F..%2F&r", 200},
		{"GET", "/x/../__cobrowse/visitor.js", "/x/../__cobrowse/visitor.js", 200},
		// A path or an absolute request target cannot choose the host.
		{"GET", "//evil.example/x", "//evil.example/x", 200},
		{"GET", "/http://evil.example/", "/http://evil.example/", 200},
		{"GET", "http://evil.example/x", "/x", 200},
		{"CONNECT", "evil.example:443", "", 404},
		// cobrowse's own.
		{"GET", visitorScriptPath, "", 200},
		{"GET", "/%5F%5Fcobrowse/visitor.js", "", 200},
		{"GET", "/__cobrowse/x", "", 404},
		{"POST", session.VisitorPath, "", 404},
		{"GET", "/__cobrowse%2Fx", "", 404},
		{"GET", "/__cobrowse/../x", "", 307},
	}
	for _, tc := range tests {
		t.Run(tc.method+" "+tc.target, func(t *testing.T) {
			resp := sendRaw(t, visitorAddr, tc.method, tc.target)
			if resp.StatusCode != tc.status {
				t.Errorf("status %d (Location %q), want %d", resp.StatusCode, resp.Header.Get("Location"), tc.status)
			}
			select {
			case got := <-arrived:
				want := arrival{tc.method, tc.forwarded, upstreamHost}
				if tc.forwarded == "" {
					t.Errorf("the upstream got %+v, want nothing", got)
				} else if got != want {
					t.Errorf("the upstream got %+v, want %+v", got, want)
				}
			default:
				if tc.forwarded != "" {
					t.Errorf("the upstream got nothing, want %s %s", tc.method, tc.forwarded)
				}
			}
		})
	}
}

// sendRaw writes one request with the target exactly as given to addr and
// returns the answer, its body read.
func sendRaw(t *testing.T, addr, method, target string) *http.Response {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "%s %s HTTP/1.1\r\nHost: %s\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", method, target, addr)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	if _, err := io.ReadAll(resp.Body); err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, target, err)
	}
	return resp
}

// Behind a TLS-terminating proxy named by --trusted-proxy (here the test
// itself, on 127.0.0.1) the visitor listener takes the visitor's scheme
// from X-Forwarded-Proto: the visitor cookie is Secure, the upstream's
// redirects go to https and the upstream is told https and the client's
// address. With another network trusted, the same headers are ignored.
func TestServeBehindTrustedProxy(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Seen", r.Header.Get("X-Forwarded-Proto")+" from "+r.Header.Get("X-Forwarded-For"))
		http.Redirect(w, r, "http://"+r.Host+"/next", http.StatusFound)
	}))
	defer up.Close()
	for _, tc := range []struct {
		trusted                string
		secure                 bool
		wantLocation, wantSeen string
	}{
		{"10.0.0.0/8,127.0.0.1", true, "https://shop.example/next", "https from 203.0.113.7, 127.0.0.1"},
		{"10.0.0.0/8", false, "http://shop.example/next", "http from 127.0.0.1"},
	} {
		c := startCobrowse(t, "serve", "--upstream", up.URL, "--trusted-proxy", tc.trusted, "--agent-token", "cmd-test-token-0123456789")
		req, _ := http.NewRequest("GET", c.visitorURL+"/", nil)
		req.Host = "shop.example"
		req.Header.Set("X-Forwarded-Proto", "https")
		req.Header.Set("X-Forwarded-For", "203.0.113.7")
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		var visitor *http.Cookie
		for _, cookie := range resp.Cookies() {
			if cookie.Name == "__cobrowse_sid" {
				visitor = cookie
			}
		}
		if visitor == nil || visitor.Secure != tc.secure {
			t.Errorf("--trusted-proxy %s: visitor cookie %v, want Secure %v", tc.trusted, visitor, tc.secure)
		}
		if got := resp.Header.Get("Location"); got != tc.wantLocation {
			t.Errorf("--trusted-proxy %s: Location %q, want %q", tc.trusted, got, tc.wantLocation)
		}
		if got := resp.Header.Get("X-Seen"); got != tc.wantSeen {
			t.Errorf("--trusted-proxy %s: the upstream saw %q, want %q", tc.trusted, got, tc.wantSeen)
		}
		if err := c.stop(t); err != nil {
			t.Fatal(err)
		}
	}
}

// The fronted site never gets the visitor cookie, cobrowse's credential for
// the visitor's session; it gets its own cookies as the browser sent them.
func TestServeKeepsVisitorCookieFromSite(t *testing.T) {
	seen := make(chan []string, 2)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- r.Header["Cookie"]
		w.Header().Set("Content-Type", "text/plain")
	}))
	defer up.Close()
	c := startCobrowse(t, "serve", "--upstream", up.URL, "--agent-token", "cmd-test-token-0123456789")
	defer c.stop(t)
	get := func(cookie string) *http.Response {
		req, _ := http.NewRequest("GET", c.visitorURL+"/", nil)
		if cookie != "" {
			req.Header.Set("Cookie", cookie)
		}
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	var visitor *http.Cookie
	for _, cookie := range get("").Cookies() {
		if cookie.Name == session.DefaultCookieName {
			visitor = cookie
		}
	}
	<-seen
	if visitor == nil {
		t.Fatal("no visitor cookie on the first answer")
	}
	get("cart=42; " + visitor.Name + "=" + visitor.Value + "; theme=dark")
	if got := <-seen; !slices.Equal(got, []string{"cart=42; theme=dark"}) {
		t.Errorf("the site got Cookie %q, want only its own cookies", got)
	}
}

// The listeners' servers bound the wait for a request's headers and close
// kept-alive connections left idle, which otherwise stay open for good.
func TestListenerServerLimits(t *testing.T) {
	srv := listenerServer(http.NotFoundHandler(), slog.New(slog.DiscardHandler))
	if srv.ReadHeaderTimeout != listenerHeaderTimeout || srv.IdleTimeout != listenerIdleTimeout || srv.IdleTimeout <= 0 {
		t.Errorf("ReadHeaderTimeout %v, IdleTimeout %v; want %v and %v", srv.ReadHeaderTimeout, srv.IdleTimeout, listenerHeaderTimeout, listenerIdleTimeout)
	}
	if srv.HTTP2 == nil || srv.HTTP2.WriteByteTimeout != proxy.DefaultSendTimeout {
		t.Errorf("HTTP2 %+v: want a WriteByteTimeout of %v", srv.HTTP2, proxy.DefaultSendTimeout)
	}
	if srv.ErrorLog == nil {
		t.Error("no ErrorLog: net/http's errors would go to the standard logger")
	}
}
