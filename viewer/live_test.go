package viewer

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/cobrowse/cobrowse/internal/rrwebtest"
)

func TestLive(t *testing.T) {
	f := newFixture(t)
	page1 := rrwebtest.Page(1000, "https://shop.example/", 2)
	page2 := rrwebtest.Page(2000, "https://shop.example/cart", 1)
	v, _, err := f.hub.Attach("s1", "tab-1", "page-1")
	if err != nil {
		t.Fatal(err)
	}
	mustBatch(t, v, 1, page1)
	v.SetPage("https://shop.example/", "Shop")

	conn := f.mustDial(t, "s1")

	tail := []json.RawMessage{rrwebtest.MouseMove(1100, 7), rrwebtest.MouseMove(1101, 8)}
	more := []json.RawMessage{rrwebtest.MouseMove(2100, 9)}
	steps := []struct {
		name   string
		act    func()
		typ    string
		events []json.RawMessage // nil: the message carries no events
		check  func(t *testing.T, m liveMessage)
	}{
		{
			name:   "reset first, with the snapshot",
			act:    func() {},
			typ:    "reset",
			events: page1,
			check: func(t *testing.T, m liveMessage) {
				if m.Session.ID != "s1" || m.Tab != "tab-1" || m.Session.URL != "https://shop.example/" || m.Session.Title != "Shop" {
					t.Errorf("reset for session %+v tab %q", m.Session, m.Tab)
				}
				if m.Session.Agents != 1 {
					t.Errorf("reset counts %d agents, want 1 (this one)", m.Session.Agents)
				}
			},
		},
		{
			name:   "a batch arrives as events",
			act:    func() { mustBatch(t, v, 2, tail) },
			typ:    "events",
			events: tail,
		},
		{
			name: "a title change arrives as info",
			act:  func() { v.SetPage("https://shop.example/", "Shop — Home") },
			typ:  "info",
			check: func(t *testing.T, m liveMessage) {
				if m.Session.ID != "s1" || m.Session.Title != "Shop — Home" {
					t.Errorf("info for %+v", m.Session)
				}
			},
		},
		{
			name:   "a navigation arrives as reset",
			act:    func() { mustBatch(t, v, 3, page2) },
			typ:    "reset",
			events: page2,
			check: func(t *testing.T, m liveMessage) {
				if m.Session.URL != "https://shop.example/cart" || m.Tab != "tab-1" {
					t.Errorf("reset after navigation for session %+v tab %q", m.Session, m.Tab)
				}
			},
		},
		{
			name:   "the new page's events follow",
			act:    func() { mustBatch(t, v, 4, more) },
			typ:    "events",
			events: more,
		},
	}
	for _, step := range steps {
		t.Run(step.name, func(t *testing.T) {
			step.act()
			m := readLive(t, conn)
			if m.Type != step.typ {
				t.Fatalf("message %q, want %q", m.Type, step.typ)
			}
			if step.events != nil {
				sameEvents(t, step.typ, m.Events, step.events)
			}
			if step.check != nil {
				step.check(t, m)
			}
		})
	}

	// What the agent was sent matches what the REST API serves.
	var rest []json.RawMessage
	getJSON(t, f, "/api/sessions/s1/events", http.StatusOK, &rest)
	sameEvents(t, "REST events after the live steps", rest, append(append([]json.RawMessage{}, page2...), more...))
}

func TestLiveUnknownSession(t *testing.T) {
	f := newFixture(t)
	v := f.visit(t, "gone", "https://shop.example/", "Shop", 0)
	v.Detach()
	f.hub.Expire(time.Now().Add(24 * time.Hour))

	for _, id := range []string{"nope", "gone"} {
		t.Run(id, func(t *testing.T) {
			conn := f.mustDial(t, id)
			code, text := closeCode(t, conn)
			if code != CloseNoSession {
				t.Fatalf("close code %d (%q), want %d", code, text, CloseNoSession)
			}
		})
	}
}

func TestLiveSessionEnds(t *testing.T) {
	f := newFixture(t)
	v := f.visit(t, "s1", "https://shop.example/", "Shop", 0)
	conn := f.mustDial(t, "s1")
	if m := readLive(t, conn); m.Type != "reset" {
		t.Fatalf("first message %q, want reset", m.Type)
	}
	v.Detach()
	f.hub.Expire(time.Now().Add(24 * time.Hour))
	m := readLive(t, conn)
	if m.Type != "info" || !m.Session.Ended {
		t.Fatalf("message %q with session %+v, want info with ended set", m.Type, m.Session)
	}
	if code, text := closeCode(t, conn); code != websocket.CloseNormalClosure {
		t.Fatalf("close code %d (%q), want %d", code, text, websocket.CloseNormalClosure)
	}
}

func TestLiveOrigin(t *testing.T) {
	const host = "{host}" // replaced by the test server's host:port
	tests := []struct {
		name   string
		origin string // "" sends none
		cookie bool   // the login cookie instead of the Bearer token
		ok     bool
	}{
		{"no origin, bearer", "", false, true},
		{"same origin, cookie", "http://" + host, true, true},
		{"same origin, bearer", "http://" + host, false, true},
		{"cross origin, cookie", "http://evil.example", true, false},
		{"cross origin, bearer", "http://evil.example", false, false},
		{"other port, cookie", "http://127.0.0.1:1", true, false},
		{"null origin, cookie", "null", true, false},
		{"host as a prefix, cookie", "http://" + host + ".evil.example", true, false},
		{"host as userinfo, cookie", "http://" + host + "@evil.example", true, false},
		{"unparsable origin, cookie", "http://%zz", true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.visit(t, "s1", "https://shop.example/", "Shop", 0)
			header := http.Header{}
			if tt.origin != "" {
				header.Set("Origin", strings.ReplaceAll(tt.origin, host, strings.TrimPrefix(f.ts.URL, "http://")))
			}
			if tt.cookie {
				header["Cookie"] = cookieHeader(agentCookie, f.login(t).Value)["Cookie"]
			} else {
				header.Set("Authorization", "Bearer "+testToken)
			}
			conn, resp, body, err := f.dial(t, livePath("s1"), header)
			if tt.ok {
				if err != nil {
					t.Fatalf("dial: %v (body %q)", err, body)
				}
				if m := readLive(t, conn); m.Type != "reset" {
					t.Fatalf("first message %q, want reset", m.Type)
				}
				return
			}
			if err == nil {
				t.Fatal("cross-origin handshake succeeded")
			}
			if !errors.Is(err, websocket.ErrBadHandshake) || resp == nil {
				t.Fatalf("dial error %v, want a refused handshake", err)
			}
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("status %d, want 403", resp.StatusCode)
			}
			checkSecurityHeaders(t, resp)
			// A refused handshake must not have subscribed an agent.
			var info struct {
				Agents int `json:"agents"`
			}
			getJSON(t, f, "/api/sessions/s1", http.StatusOK, &info)
			if info.Agents != 0 {
				t.Errorf("%d agents watching after a refused handshake, want 0", info.Agents)
			}
		})
	}
}
