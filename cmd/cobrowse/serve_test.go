package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
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

// A demo with JSON logs: each agent-listener request has an id in its log
// lines, /readyz answers, and cancelling the context (a signal) stops it
// with no error.
func TestDemoLogsJSONWithRequestIDsAndStops(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stdout, w := io.Pipe()
	logs := &lockedBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"demo", "--log-format", "json", "--log-level", "debug", "--agent-token", "cmd-test-token-0123456789",
			"--listen", "127.0.0.1:0", "--agent-listen", "127.0.0.1:0", "--shutdown-timeout", "5s"}, w, logs)
		w.Close()
	}()
	agentURL := ""
	lines := bufio.NewScanner(stdout)
	for agentURL == "" && lines.Scan() {
		if m := regexp.MustCompile(`agent sign-in:\s+(http://[^/\s]+)`).FindStringSubmatch(lines.Text()); m != nil {
			agentURL = m[1]
		}
	}
	if agentURL == "" {
		t.Fatalf("the demo printed no agent URL; log:\n%s", logs)
	}
	go io.Copy(io.Discard, stdout)

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

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the demo stopped with %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the demo did not stop within 10 s of its context")
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
