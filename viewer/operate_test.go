package viewer

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cobrowse/cobrowse/session"
)

func TestReadyz(t *testing.T) {
	notReady := errors.New("the policy is not loaded yet")
	var readiness error = notReady
	f := newFixture(t, func(_ *session.Config, c *Config) { c.Ready = func() error { return readiness } })
	for _, step := range []struct {
		name   string
		act    func()
		status int
		body   string
	}{
		{"not ready", func() {}, http.StatusServiceUnavailable, "not ready: the policy is not loaded yet"},
		{"ready", func() { readiness = nil }, http.StatusOK, "ok"},
		{"shutting down", func() { f.srv.Shutdown(context.Background()) }, http.StatusServiceUnavailable, "shutting down"},
	} {
		step.act()
		resp, body := f.do(t, request{path: "/readyz"}) // no token: for probes
		if resp.StatusCode != step.status || !strings.Contains(string(body), step.body) {
			t.Errorf("%s: GET /readyz = %d %q, want %d %q", step.name, resp.StatusCode, body, step.status, step.body)
		}
	}
	if resp, _ := f.do(t, request{path: "/healthz"}); resp.StatusCode != http.StatusOK {
		t.Errorf("GET /healthz while shutting down = %d, want 200 (the process lives)", resp.StatusCode)
	}
}

func TestMetricsNeedTheToken(t *testing.T) {
	metrics := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("cobrowse_sessions 0\n")) })
	f := newFixture(t, func(_ *session.Config, c *Config) { c.Metrics = metrics })
	if resp, _ := f.do(t, request{path: "/metrics"}); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /metrics without the token = %d, want 401", resp.StatusCode)
	}
	resp, body := f.do(t, request{path: "/metrics", header: bearer(testToken)})
	if resp.StatusCode != http.StatusOK || string(body) != "cobrowse_sessions 0\n" {
		t.Errorf("GET /metrics with the token = %d %q", resp.StatusCode, body)
	}
	if resp, _ := newFixture(t).do(t, request{path: "/metrics", header: bearer(testToken)}); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /metrics without Config.Metrics = %d, want 404", resp.StatusCode)
	}
}

// syncBuffer is a log destination the server's goroutines may write to
// while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestRequestID(t *testing.T) {
	logs := &syncBuffer{}
	f := newFixture(t, func(_ *session.Config, c *Config) {
		c.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	tests := []struct {
		name, sent string
		kept       bool
	}{
		{"none sent: generated", "", false},
		{"a proxy's id is kept", "4bf92f3577b34da6a3ce929d0e0e4736", true},
		{"an id that could forge a log line is replaced", `x" level=ERROR msg="forged`, false},
		{"an overlong id is replaced", strings.Repeat("a", 129), false},
	}
	seen := map[string]bool{}
	for _, tc := range tests {
		header := http.Header{}
		if tc.sent != "" {
			header.Set(RequestIDHeader, tc.sent)
		}
		// A wrong token: the log line of the refused sign-in carries the id.
		resp, _ := f.do(t, request{path: "/login?token=wrong-token-0123456789", header: header})
		id := resp.Header.Get(RequestIDHeader)
		switch {
		case tc.kept && id != tc.sent:
			t.Errorf("%s: echoed %q, want %q", tc.name, id, tc.sent)
		case !tc.kept && (!usableRequestID(id) || id == tc.sent || seen[id]):
			t.Errorf("%s: echoed %q, want a fresh id", tc.name, id)
		}
		seen[id] = true
		for _, want := range []string{
			`msg="agent sign-in with a wrong token" request_id=` + id,
			`msg="agent listener request" request_id=` + id + ` method=GET path=/login status=303`,
		} {
			if !strings.Contains(logs.String(), want) {
				t.Errorf("%s: the log lacks %q:\n%s", tc.name, want, logs)
			}
		}
	}
	if strings.Contains(logs.String(), "wrong-token-0123456789") {
		t.Errorf("the log shows the query's token:\n%s", logs)
	}
}

func TestShutdownClosesAgentsWith1012(t *testing.T) {
	f := newFixture(t)
	f.visit(t, "s1", "https://shop.example/", "Shop", 1)
	conn := f.mustDial(t, "s1")
	if m := readLive(t, conn); m.Type != "reset" {
		t.Fatalf("first live message %q, want reset", m.Type)
	}
	_, events := f.openStream(t, bearer(testToken))
	nextSSE(t, events)

	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
		defer cancel()
		shut <- f.srv.Shutdown(ctx)
	}()
	if code, _ := closeCode(t, conn); code != 1012 {
		t.Errorf("the agent's socket closed with %d, want 1012 (service restart)", code)
	}
	ended := time.After(hangGuard)
	for open := true; open; {
		select {
		case _, open = <-events: // an update sent before Shutdown, or the end
		case <-ended:
			t.Fatal("the dashboard stream did not end after Shutdown")
		}
	}
	if err := <-shut; err != nil {
		t.Errorf("Shutdown: %v; want it to return once the socket's handler did", err)
	}
	// A socket opened after Shutdown is closed at once, the same way.
	if code, _ := closeCode(t, f.mustDial(t, "s1")); code != 1012 {
		t.Errorf("a socket opened after Shutdown closed with %d, want 1012", code)
	}
}
