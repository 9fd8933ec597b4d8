package viewer

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// A server without a renderer says so, in the words the agent sees, on both
// Rendered-mode routes; the rendering itself is tested with Chromium in
// browserpool and e2e.
func TestRenderedModeWithoutRenderer(t *testing.T) {
	f := newFixture(t)
	f.visit(t, "s1", "https://shop.example/", "Shop", 0)

	conn, resp, body, err := f.dial(t, "/api/sessions/s1/render", bearer(testToken))
	if err != nil {
		t.Fatalf("render socket: %v (%v %s)", err, resp, body)
	}
	conn.SetReadDeadline(time.Now().Add(hangGuard))
	kind, msg, err := conn.ReadMessage()
	if err != nil || kind != websocket.TextMessage {
		t.Fatalf("first message: type %d, %v", kind, err)
	}
	var status struct{ Type, State, Reason string }
	if err := json.Unmarshal(msg, &status); err != nil || status.Type != "render" || status.State != "unavailable" || status.Reason != noRenderer {
		t.Errorf("status %s (%v); want unavailable with the reason %q", msg, err, noRenderer)
	}
	if code, _ := closeCode(t, conn); code != websocket.CloseNormalClosure {
		t.Errorf("close code %d, want 1000 (nothing to retry)", code)
	}

	for _, path := range []string{"/api/sessions/s1/screenshot.png", "/api/sessions/s1/rendered.html"} {
		resp, body = f.do(t, request{path: path, header: bearer(testToken)})
		if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "--render") {
			t.Errorf("%s: %s %s; want 503 that names --render", path, resp.Status, body)
		}
	}
}

func TestRenderedModeRoutes(t *testing.T) {
	f := newFixture(t)
	for _, path := range []string{"/api/sessions/s1/screenshot.png", "/api/sessions/s1/rendered.html", "/api/sessions/s1/render"} {
		if resp, _ := f.do(t, request{path: path}); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s without credentials: %s, want 401", path, resp.Status)
		}
	}
	if resp, _ := f.do(t, request{path: "/api/sessions/nope/screenshot.png", header: bearer(testToken)}); resp.StatusCode != http.StatusNotFound {
		t.Errorf("screenshot of an unknown session: %s, want 404", resp.Status)
	}
	conn, _, _, err := f.dial(t, "/api/sessions/nope/render", bearer(testToken))
	if err != nil {
		t.Fatal(err)
	}
	if code, _ := closeCode(t, conn); code != CloseNoSession {
		t.Errorf("render socket of an unknown session closed with %d, want %d", code, CloseNoSession)
	}
	if resp, _ := f.do(t, request{path: "/assets/" + strings.Repeat("a", 64), header: bearer(testToken)}); resp.StatusCode != http.StatusNotFound {
		t.Errorf("/assets/ without an asset cache: %s, want 404", resp.Status)
	}
}
