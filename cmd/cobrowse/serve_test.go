package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
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

// runServer runs cobrowse with args, which should make it listen on
// 127.0.0.1:0, until stop (or the end of the test) cancels it. It returns
// the visitor and agent URLs that cobrowse printed, its log, and stop,
// which returns what run returned, or fails the test if cobrowse did not
// stop within 10 s.
func runServer(t *testing.T, args []string) (visitorURL, agentURL string, logs *lockedBuffer, stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	stdout, w := io.Pipe()
	logs = &lockedBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, args, w, logs)
		w.Close()
	}()
	printed := regexp.MustCompile(`(visitor URL|agent sign-in):\s+(http://[^/\s]+)`)
	lines := bufio.NewScanner(stdout)
	for (visitorURL == "" || agentURL == "") && lines.Scan() {
		if m := printed.FindStringSubmatch(lines.Text()); m != nil && m[1] == "visitor URL" {
			visitorURL = m[2]
		} else if m != nil {
			agentURL = m[2]
		}
	}
	if visitorURL == "" || agentURL == "" {
		cancel()
		t.Fatalf("cobrowse printed no visitor or agent URL (run: %v); log:\n%s", <-done, logs)
	}
	go io.Copy(io.Discard, stdout)
	stop = func() error {
		t.Helper()
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(10 * time.Second):
			t.Fatal("cobrowse did not stop within 10 s of its context")
			return nil
		}
	}
	return visitorURL, agentURL, logs, stop
}

// A demo with JSON logs: each agent-listener request has an id in its log
// lines, /readyz answers, and cancelling the context (a signal) stops it
// with no error.
func TestDemoLogsJSONWithRequestIDsAndStops(t *testing.T) {
	_, agentURL, logs, stop := runServer(t, []string{"demo", "--log-format", "json", "--log-level", "debug", "--agent-token", "cmd-test-token-0123456789",
		"--listen", "127.0.0.1:0", "--agent-listen", "127.0.0.1:0", "--shutdown-timeout", "5s"})

	req, _ := http.NewRequest("GET", agentURL+"/readyz", nil)
	req.Header.Set("X-Request-Id", "cmd-test-request-1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Request-Id") != "cmd-test-request-1" {
		t.Errorf("GET /readyz: %s, X-Request-Id %q", resp.Status, resp.Header.Get("X-Request-Id"))
	}

	if err := stop(); err != nil {
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
		visitorURL, _, _, stop := runServer(t, []string{"serve", "--upstream", up.URL, "--trusted-proxy", tc.trusted,
			"--agent-token", "cmd-test-token-0123456789", "--listen", "127.0.0.1:0", "--agent-listen", "127.0.0.1:0", "--shutdown-timeout", "5s"})
		req, _ := http.NewRequest("GET", visitorURL+"/", nil)
		req.Host = "shop.example"
		req.Header.Set("X-Forwarded-Proto", "https")
		req.Header.Set("X-Forwarded-For", "203.0.113.7")
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		var visitor *http.Cookie
		for _, c := range resp.Cookies() {
			if c.Name == "__cobrowse_sid" {
				visitor = c
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
		if err := stop(); err != nil {
			t.Fatal(err)
		}
	}
}
