package viewer

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/cobrowse/cobrowse/internal/rrwebtest"
	"github.com/cobrowse/cobrowse/session"
)

// testToken is the agent token of every test server.
const testToken = "test-agent-token-0123456789"

// hangGuard bounds every wait in these tests. It is not a synchronisation
// delay: a correct server answers long before; reaching it means a hang.
const hangGuard = 5 * time.Second

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// fixture is an agent listener on 127.0.0.1 in front of a fresh hub.
type fixture struct {
	hub *session.Hub
	srv *Server
	ts  *httptest.Server
	// client does not follow redirects, so tests see them.
	client *http.Client
}

// newFixture starts a fixture; each setup may change the hub's and the
// server's configuration first.
func newFixture(t *testing.T, setup ...func(*session.Config, *Config)) *fixture {
	t.Helper()
	logger := quietLogger()
	hubConfig := session.Config{Logger: logger, Join: session.JoinNone}
	config := Config{Token: testToken, Logger: logger}
	for _, f := range setup {
		f(&hubConfig, &config)
	}
	hub := session.NewHub(hubConfig)
	config.Hub = hub
	srv, err := New(config)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	return &fixture{hub: hub, srv: srv, ts: ts, client: noRedirects(ts.Client())}
}

func noRedirects(c *http.Client) *http.Client {
	return &http.Client{
		Transport: c.Transport,
		Jar:       c.Jar,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// request is one HTTP request of a test; its body is read completely.
type request struct {
	method string
	path   string
	header http.Header
	form   string // urlencoded POST body, if any
}

func (f *fixture) do(t *testing.T, req request) (*http.Response, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	method := req.method
	if method == "" {
		method = http.MethodGet
	}
	var body io.Reader
	if req.form != "" {
		body = strings.NewReader(req.form)
	}
	r, err := http.NewRequestWithContext(ctx, method, f.ts.URL+req.path, body)
	if err != nil {
		t.Fatalf("NewRequest: %v", err)
	}
	for k, vs := range req.header {
		r.Header[k] = vs
	}
	if req.form != "" {
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := f.client.Do(r)
	if err != nil {
		t.Fatalf("%s %s: %v", method, req.path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, req.path, err)
	}
	return resp, b
}

// login signs in through GET /login?token= and returns the cookie it set.
func (f *fixture) login(t *testing.T) *http.Cookie {
	t.Helper()
	resp, _ := f.do(t, request{path: "/login?token=" + testToken})
	c := findCookie(resp, agentCookie)
	if c == nil {
		t.Fatalf("GET /login with the right token set no %s cookie (status %d, Set-Cookie %q)", agentCookie, resp.StatusCode, resp.Header.Values("Set-Cookie"))
	}
	return c
}

func findCookie(resp *http.Response, name string) *http.Cookie {
	for _, c := range resp.Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func bearer(token string) http.Header {
	return http.Header{"Authorization": {"Bearer " + token}}
}

func cookieHeader(name, value string) http.Header {
	return http.Header{"Cookie": {(&http.Cookie{Name: name, Value: value}).String()}}
}

// visit attaches a visitor tab to session id and streams one page load with
// n incremental events as batch 1.
func (f *fixture) visit(t *testing.T, id, href, title string, n int) *session.Visitor {
	t.Helper()
	v, _, err := f.hub.Attach(id, "tab-1", "page-1")
	if err != nil {
		t.Fatal(err)
	}
	mustBatch(t, v, 1, rrwebtest.Page(1000, href, n))
	v.SetPage(href, title)
	return v
}

func mustBatch(t *testing.T, v *session.Visitor, seq uint64, events []json.RawMessage) {
	t.Helper()
	res, err := v.Batch(seq, events)
	if err != nil {
		t.Fatalf("Batch(%d): %v", seq, err)
	}
	if res.Duplicate || res.Withheld != 0 {
		t.Fatalf("Batch(%d) = %+v, want a new batch with nothing withheld", seq, res)
	}
}

// sameEvents fails the test unless got holds exactly want, byte for byte.
func sameEvents(t *testing.T, what string, got, want []json.RawMessage) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d events, want %d\ngot:  %s\nwant: %s", what, len(got), len(want), joinEvents(got), joinEvents(want))
	}
	for i := range want {
		if string(got[i]) != string(want[i]) {
			t.Fatalf("%s: event %d is\n%s\nwant\n%s", what, i, got[i], want[i])
		}
	}
}

func joinEvents(events []json.RawMessage) string {
	parts := make([]string, len(events))
	for i, e := range events {
		parts[i] = string(e)
	}
	return "[" + strings.Join(parts, ",") + "]"
}

// WebSocket helpers.

// liveMessage is one server → agent message of /api/sessions/{id}/live.
type liveMessage struct {
	Type    string            `json:"type"`
	Session session.Info      `json:"session"`
	Tab     string            `json:"tab"`
	Events  []json.RawMessage `json:"events"`
}

func livePath(id string) string { return "/api/sessions/" + id + "/live" }

func (f *fixture) wsURL(path string) string {
	return "ws" + strings.TrimPrefix(f.ts.URL, "http") + path
}

// dial opens a WebSocket to path (/api/sessions/{id}/live). On a refused
// handshake it returns the HTTP response with its body read.
func (f *fixture) dial(t *testing.T, path string, header http.Header) (*websocket.Conn, *http.Response, []byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	d := websocket.Dialer{HandshakeTimeout: hangGuard}
	conn, resp, err := d.DialContext(ctx, f.wsURL(path), header)
	var body []byte
	if resp != nil && resp.Body != nil {
		body, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	if conn != nil {
		t.Cleanup(func() { conn.Close() })
	}
	return conn, resp, body, err
}

// mustDial opens the live WebSocket of a session with the agent token.
func (f *fixture) mustDial(t *testing.T, id string) *websocket.Conn {
	t.Helper()
	conn, resp, body, err := f.dial(t, livePath(id), bearer(testToken))
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dialing the live view of %q: %v (status %d, body %q)", id, err, status, body)
	}
	return conn
}

// readLive reads the next live message, skipping the "hello" that opens
// every live socket (TestLiveHello checks it).
func readLive(t *testing.T, conn *websocket.Conn) liveMessage {
	t.Helper()
	for {
		conn.SetReadDeadline(time.Now().Add(hangGuard))
		kind, raw, err := conn.ReadMessage()
		if err != nil {
			t.Fatalf("reading a live message: %v", err)
		}
		if kind != websocket.TextMessage {
			t.Fatalf("live message of WebSocket type %d, want text", kind)
		}
		var m liveMessage
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatalf("live message is not JSON: %v\n%s", err, raw)
		}
		if m.Type != "hello" {
			return m
		}
	}
}

// closeCode reads until the connection fails and returns the close code the
// server sent (-1 when the connection failed without a close frame).
func closeCode(t *testing.T, conn *websocket.Conn) (int, string) {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(hangGuard))
	for {
		_, _, err := conn.ReadMessage()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			return ce.Code, ce.Text
		}
		t.Logf("connection failed without a close frame: %v", err)
		return -1, ""
	}
}

// Server-sent events.

type sseEvent struct {
	name string
	data string
}

// readSSE parses a text/event-stream until it ends or ctx is done; the
// channel is closed then. Comments (keep-alives) are skipped.
func readSSE(ctx context.Context, body io.Reader) <-chan sseEvent {
	ch := make(chan sseEvent, 16)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(body)
		sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev.name != "" || ev.data != "" {
					select {
					case ch <- ev:
					case <-ctx.Done():
						return
					}
				}
				ev = sseEvent{}
			case strings.HasPrefix(line, ":"):
			case strings.HasPrefix(line, "event:"):
				ev.name = strings.TrimSpace(strings.TrimPrefix(line, "event:"))
			case strings.HasPrefix(line, "data:"):
				if ev.data != "" {
					ev.data += "\n"
				}
				ev.data += strings.TrimPrefix(strings.TrimPrefix(line, "data:"), " ")
			}
		}
	}()
	return ch
}

// nextSSE returns the next event of the stream.
func nextSSE(t *testing.T, events <-chan sseEvent) sseEvent {
	t.Helper()
	select {
	case ev, ok := <-events:
		if !ok {
			t.Fatal("the event stream ended")
		}
		return ev
	case <-time.After(hangGuard):
		t.Fatal("no server-sent event within the hang guard")
	}
	panic("unreachable")
}

// openStream opens GET /api/sessions/stream; the stream is closed with the test.
func (f *fixture) openStream(t *testing.T, header http.Header) (*http.Response, <-chan sseEvent) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	r, err := http.NewRequestWithContext(ctx, http.MethodGet, f.ts.URL+"/api/sessions/stream", nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range header {
		r.Header[k] = vs
	}
	// The response headers come with the first event, which is sent at once.
	timer := time.AfterFunc(hangGuard, cancel)
	resp, err := f.client.Do(r)
	timer.Stop()
	if err != nil {
		t.Fatalf("GET /api/sessions/stream: %v", err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp, readSSE(ctx, resp.Body)
}
