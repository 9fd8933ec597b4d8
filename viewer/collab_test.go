package viewer

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/cobrowse/cobrowse/session"
)

// The live socket carries the agent's pointer to the visitor's tab, under
// the name given in ?name=.
func TestLiveAgentPointerReachesTheVisitor(t *testing.T) {
	f := newFixture(t)
	v := f.visit(t, "s1", "https://shop.example/", "Shop", 0)
	conn, _, body, err := f.dial(t, livePath("s1")+"?name=Alice", bearer(testToken))
	if err != nil {
		t.Fatalf("live socket: %v %s", err, body)
	}
	readLive(t, conn) // the reset

	var presence struct {
		Type   string
		Agents []struct{ ID, Name, Color string }
	}
	select {
	case raw := <-v.Downlink():
		if err := json.Unmarshal(raw, &presence); err != nil || presence.Type != "agents" || len(presence.Agents) != 1 || presence.Agents[0].Name != "Alice" {
			t.Fatalf("visitor got %s; want the presence of Alice", raw)
		}
	case <-time.After(hangGuard):
		t.Fatal("the visitor was not told an agent joined")
	}

	conn.WriteMessage(websocket.TextMessage, []byte(`{"type":"bogus"}`))
	conn.WriteMessage(websocket.TextMessage, []byte(`not json`))
	conn.WriteMessage(websocket.TextMessage, []byte(`{"type":"pointer","x":12.5,"y":40}`))
	select {
	case raw := <-v.Downlink():
		var p struct {
			Type, Agent string
			X, Y        float64
		}
		if err := json.Unmarshal(raw, &p); err != nil || p.Type != "pointer" || p.Agent != presence.Agents[0].ID || p.X != 12.5 || p.Y != 40 {
			t.Errorf("visitor got %s; want Alice's pointer at 12.5,40", raw)
		}
	case <-time.After(hangGuard):
		t.Fatal("the pointer did not reach the visitor")
	}
}

// Every live socket starts by telling the agent who it is to the visitor.
func TestLiveHello(t *testing.T) {
	f := newFixture(t)
	f.visit(t, "s1", "https://shop.example/", "Shop", 0)
	conn, _, body, err := f.dial(t, livePath("s1")+"?name=Dana", bearer(testToken))
	if err != nil {
		t.Fatalf("live socket: %v %s", err, body)
	}
	var hello struct {
		Type  string
		Agent struct{ ID, Name, Color string }
	}
	conn.SetReadDeadline(time.Now().Add(hangGuard))
	if err := conn.ReadJSON(&hello); err != nil || hello.Type != "hello" || hello.Agent.Name != "Dana" || hello.Agent.ID == "" || hello.Agent.Color == "" {
		t.Errorf("first message %+v (%v), want hello with Dana's id and colour", hello, err)
	}
	if m := readLive(t, conn); m.Type != "reset" {
		t.Errorf("after the hello: %q, want reset", m.Type)
	}
}

func TestJoinByCode(t *testing.T) {
	f := newFixture(t, func(c *session.Config, _ *Config) { c.Join = session.JoinCode })
	v := f.visit(t, "s1", "https://shop.example/", "Shop", 0)
	v.RequestCode()
	var code struct{ Code string }
	select {
	case raw := <-v.Downlink():
		json.Unmarshal(raw, &code)
	case <-time.After(hangGuard):
		t.Fatal("no code for the visitor")
	}
	for _, tt := range []struct {
		body   string
		status int
	}{
		{`{"code":"` + code.Code + `"}`, http.StatusOK},
		{`{"code":"` + code.Code + `"}`, http.StatusNotFound}, // used up
		{`not json`, http.StatusBadRequest},
	} {
		resp, body := f.do(t, request{method: http.MethodPost, path: "/api/join", header: bearer(testToken), form: tt.body})
		if resp.StatusCode != tt.status {
			t.Errorf("POST /api/join %s: %s %s, want %d", tt.body, resp.Status, body, tt.status)
		}
		if tt.status == http.StatusOK && !strings.Contains(string(body), `"id":"s1"`) {
			t.Errorf("joined %s, want session s1", body)
		}
	}
	if resp, _ := f.do(t, request{method: http.MethodPost, path: "/api/join", form: `{"code":"1"}`}); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("without credentials: %s", resp.Status)
	}
}

func TestServerInfo(t *testing.T) {
	f := newFixture(t, func(c *session.Config, _ *Config) { c.Join = session.JoinCode })
	var info struct {
		Join   string
		Render bool
	}
	getJSON(t, f, "/api/server", http.StatusOK, &info)
	if info.Join != "code" || info.Render {
		t.Errorf("/api/server = %+v, want join code and no rendering", info)
	}
}
