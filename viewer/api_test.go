package viewer

import (
	"encoding/json"
	"io/fs"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cobrowse/cobrowse/internal/rrwebtest"
	"github.com/cobrowse/cobrowse/session"
	"github.com/cobrowse/cobrowse/web"
)

func getJSON(t *testing.T, f *fixture, path string, wantStatus int, v any) []byte {
	t.Helper()
	resp, body := f.do(t, request{path: path, header: bearer(testToken)})
	checkSecurityHeaders(t, resp)
	if resp.StatusCode != wantStatus {
		t.Fatalf("GET %s: status %d, want %d; body %s", path, resp.StatusCode, wantStatus, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("GET %s: Content-Type %q, want application/json", path, ct)
	}
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("GET %s: body is not the expected JSON: %v\n%s", path, err, body)
	}
	return body
}

func TestListSessions(t *testing.T) {
	f := newFixture(t)

	var empty []session.Info
	if body := getJSON(t, f, "/api/sessions", http.StatusOK, &empty); strings.TrimSpace(string(body)) != "[]" {
		t.Errorf("no sessions: body %s, want []", body)
	}

	f.visit(t, "s1", "https://shop.example/cart", "Cart — Shop", 1)
	f.visit(t, "s2", "https://shop.example/", "Shop", 0)

	var list []session.Info
	getJSON(t, f, "/api/sessions", http.StatusOK, &list)
	byID := map[string]session.Info{}
	for _, info := range list {
		byID[info.ID] = info
	}
	if len(list) != 2 || len(byID) != 2 {
		t.Fatalf("listed %+v, want sessions s1 and s2", list)
	}
	for _, want := range []session.Info{
		{ID: "s1", URL: "https://shop.example/cart", Title: "Cart — Shop", Connected: true, Tabs: 1},
		{ID: "s2", URL: "https://shop.example/", Title: "Shop", Connected: true, Tabs: 1},
	} {
		got, ok := byID[want.ID]
		if !ok {
			t.Errorf("session %s not listed", want.ID)
			continue
		}
		if got.URL != want.URL || got.Title != want.Title || got.Connected != want.Connected || got.Tabs != want.Tabs || got.Agents != 0 || got.Ended {
			t.Errorf("session %s listed as %+v, want %+v", want.ID, got, want)
		}
		if got.Started.IsZero() || got.LastActivity.Before(got.Started) {
			t.Errorf("session %s: started %v, last activity %v", want.ID, got.Started, got.LastActivity)
		}
	}
}

func TestGetSession(t *testing.T) {
	f := newFixture(t)
	f.visit(t, "s1", "https://shop.example/cart", "Cart", 1)

	tests := []struct {
		path   string
		status int
	}{
		{"/api/sessions/s1", http.StatusOK},
		{"/api/sessions/nope", http.StatusNotFound},
		{"/api/sessions/S1", http.StatusNotFound},
		{"/api/sessions/nope/events", http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			if tt.status != http.StatusOK {
				var e struct {
					Error string `json:"error"`
				}
				getJSON(t, f, tt.path, tt.status, &e)
				if !strings.Contains(e.Error, "no such session") {
					t.Errorf("error %q does not say the session is unknown", e.Error)
				}
				return
			}
			var info session.Info
			getJSON(t, f, tt.path, tt.status, &info)
			if info.ID != "s1" || info.URL != "https://shop.example/cart" || info.Title != "Cart" || !info.Connected {
				t.Errorf("got %+v", info)
			}
		})
	}
}

func TestSessionEvents(t *testing.T) {
	page1 := rrwebtest.Page(1000, "https://shop.example/", 2)
	page2 := rrwebtest.Page(2000, "https://shop.example/cart", 1)
	tail := []json.RawMessage{rrwebtest.MouseMove(1100, 7), rrwebtest.MouseMove(1101, 8)}
	unknown := json.RawMessage(`{"type":99,"timestamp":1200,"data":{}}`)

	tests := []struct {
		name    string
		batches [][]json.RawMessage
		want    []json.RawMessage
	}{
		{"attached, nothing sent", nil, []json.RawMessage{}},
		{"incremental before any snapshot", [][]json.RawMessage{tail}, []json.RawMessage{}},
		{"one page", [][]json.RawMessage{page1}, page1},
		{"page and tail", [][]json.RawMessage{page1, tail}, append(append([]json.RawMessage{}, page1...), tail...)},
		{"tail across batches", [][]json.RawMessage{page1[:2], page1[2:], tail}, append(append([]json.RawMessage{}, page1...), tail...)},
		{"navigation keeps only the new page", [][]json.RawMessage{page1, tail, page2}, page2},
		{"unknown event types are not served", [][]json.RawMessage{page1, {unknown}}, page1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			v, _, err := f.hub.Attach("s1", "tab-1", "page-1")
			if err != nil {
				t.Fatal(err)
			}
			for i, b := range tt.batches {
				if _, err := v.Batch(uint64(i+1), b); err != nil {
					t.Fatalf("Batch(%d): %v", i+1, err)
				}
			}
			resp, body := f.do(t, request{path: "/api/sessions/s1/events", header: bearer(testToken)})
			checkSecurityHeaders(t, resp)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d; body %s", resp.StatusCode, body)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q, want application/json", ct)
			}
			if cd := resp.Header.Get("Content-Disposition"); cd != `inline; filename="s1.events.json"` {
				t.Errorf("Content-Disposition %q", cd)
			}
			if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control %q, want no-store", cc)
			}
			var got []json.RawMessage
			if err := json.Unmarshal(body, &got); err != nil {
				t.Fatalf("body is not a JSON array: %v\n%s", err, body)
			}
			if got == nil {
				t.Fatalf("body %s is not an array", body)
			}
			sameEvents(t, "events", got, tt.want)
		})
	}
}

func TestSessionsStream(t *testing.T) {
	f := newFixture(t)
	v := f.visit(t, "s1", "https://shop.example/", "Shop", 0)

	resp, events := f.openStream(t, bearer(testToken))
	checkSecurityHeaders(t, resp)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, want 200", resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("Content-Type %q, want text/event-stream", ct)
	}

	list := func(ev sseEvent) []session.Info {
		t.Helper()
		if ev.name != "sessions" {
			t.Fatalf("event %q, want \"sessions\"", ev.name)
		}
		var infos []session.Info
		if err := json.Unmarshal([]byte(ev.data), &infos); err != nil {
			t.Fatalf("event data is not a session list: %v\n%s", err, ev.data)
		}
		return infos
	}
	first := list(nextSSE(t, events))
	if len(first) != 1 || first[0].ID != "s1" || first[0].Title != "Shop" {
		t.Fatalf("first event lists %+v, want s1 titled Shop", first)
	}

	// Changes: the page's title changes, then a second visitor arrives. Each
	// must show up in a later event (several changes may share one event).
	changes := []struct {
		name   string
		change func()
		seen   func([]session.Info) bool
	}{
		{
			"SetPage",
			func() { v.SetPage("https://shop.example/cart", "Cart") },
			func(l []session.Info) bool {
				return len(l) == 1 && l[0].URL == "https://shop.example/cart" && l[0].Title == "Cart"
			},
		},
		{
			"new session",
			func() { f.visit(t, "s2", "https://shop.example/help", "Help", 0) },
			func(l []session.Info) bool { return len(l) == 2 },
		},
	}
	for _, c := range changes {
		c.change()
		deadline := time.Now().Add(hangGuard)
		for !c.seen(list(nextSSE(t, events))) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: no event showed the change", c.name)
			}
		}
	}
}

// checkSecurityHeaders checks the headers every agent response carries.
func checkSecurityHeaders(t *testing.T, resp *http.Response) {
	t.Helper()
	csp := resp.Header.Get("Content-Security-Policy")
	directives := map[string]string{}
	for _, d := range strings.Split(csp, ";") {
		name, value, _ := strings.Cut(strings.TrimSpace(d), " ")
		directives[name] = strings.TrimSpace(value)
	}
	for name, want := range map[string]string{
		"script-src":      "'self'",
		"default-src":     "'self'",
		"frame-ancestors": "'none'",
		"base-uri":        "'none'",
		// The replayed page loads its assets from the asset route only:
		// the agent's browser never contacts the visitor's site.
		"style-src":   "'self' 'unsafe-inline'",
		"img-src":     "'self' data: blob:",
		"font-src":    "'self' data:",
		"media-src":   "'self' data: blob:",
		"connect-src": "'self'",
	} {
		if got, ok := directives[name]; !ok || got != want {
			t.Errorf("%s %s: CSP %s is %q, want %q (CSP %q)", resp.Request.Method, resp.Request.URL.Path, name, got, want, csp)
		}
	}
	for name, sources := range directives {
		for src := range strings.FieldsSeq(sources) {
			if src == "http:" || src == "https:" || strings.Contains(src, "*") || strings.Contains(src, "://") {
				t.Errorf("%s %s: CSP %s allows %s, another origin (CSP %q)", resp.Request.Method, resp.Request.URL.Path, name, src, csp)
			}
		}
	}
	for k, want := range map[string]string{
		"X-Content-Type-Options": "nosniff",
		"X-Frame-Options":        "DENY",
		"Referrer-Policy":        "no-referrer",
	} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("%s %s: %s %q, want %q", resp.Request.Method, resp.Request.URL.Path, k, got, want)
		}
	}
}

func TestSecurityHeaders(t *testing.T) {
	f := newFixture(t)
	login := f.login(t)
	tests := []struct {
		name   string
		req    request
		status int
	}{
		{"healthz", request{path: "/healthz"}, http.StatusOK},
		{"login page", request{path: "/login"}, http.StatusOK},
		{"dashboard", request{path: "/", header: cookieHeader(agentCookie, login.Value)}, http.StatusOK},
		{"redirect", request{path: "/"}, http.StatusSeeOther},
		{"static", request{path: "/static/session.js"}, http.StatusOK},
		{"vendor", request{path: "/static/vendor/rrweb-replay.min.js"}, http.StatusOK},
		{"unauthorized API", request{path: "/api/sessions"}, http.StatusUnauthorized},
		{"unknown session", request{path: "/api/sessions/nope", header: bearer(testToken)}, http.StatusNotFound},
		{"no such route", request{path: "/nope"}, http.StatusNotFound},
		{"wrong method", request{method: http.MethodDelete, path: "/api/sessions", header: bearer(testToken)}, http.StatusMethodNotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, _ := f.do(t, tt.req)
			if resp.StatusCode != tt.status {
				t.Errorf("status %d, want %d", resp.StatusCode, tt.status)
			}
			checkSecurityHeaders(t, resp)
		})
	}
}

func TestStatic(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		path        string
		file        string // in web.Agent(); "" means not served
		contentType string
	}{
		{"/static/dashboard.js", "dashboard.js", "text/javascript; charset=utf-8"},
		{"/static/agent.css", "agent.css", "text/css; charset=utf-8"},
		{"/static/vendor/rrweb-replay.min.js", "vendor/rrweb-replay.min.js", "text/javascript; charset=utf-8"},
		{"/static/vendor/rrweb-replay.css", "vendor/rrweb-replay.css", "text/css; charset=utf-8"},
		{"/static/nope.js", "", ""},
		{"/static/vendor/nope.js", "", ""},
		{"/static/visitor/visitor.js", "", ""},
		{"/static/dist/rrweb-replay.min.js", "", ""},
		{"/static/%2e%2e/web.go", "", ""},
		{"/static/", "", ""}, // no directory listings
		{"/static/vendor/", "", ""},
		{"/static/vendor", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			resp, body := f.do(t, request{path: tt.path})
			checkSecurityHeaders(t, resp)
			if tt.file == "" {
				if resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusBadRequest {
					t.Fatalf("status %d, want 404 or 400", resp.StatusCode)
				}
				return
			}
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d, want 200", resp.StatusCode)
			}
			want, err := fs.ReadFile(web.Agent(), tt.file)
			if err != nil {
				t.Fatal(err)
			}
			if string(body) != string(want) {
				t.Errorf("served %d bytes that are not %s (%d bytes)", len(body), tt.file, len(want))
			}
			if ct := resp.Header.Get("Content-Type"); ct != tt.contentType {
				t.Errorf("Content-Type %q, want %q", ct, tt.contentType)
			}
		})
	}
}

func TestHealthz(t *testing.T) {
	f := newFixture(t)
	resp, body := f.do(t, request{path: "/healthz"})
	if resp.StatusCode != http.StatusOK || string(body) != "ok\n" {
		t.Errorf("status %d body %q, want 200 \"ok\\n\"", resp.StatusCode, body)
	}
}
