package viewer

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/cobrowse/cobrowse/audit"
	"github.com/cobrowse/cobrowse/internal/logtest"
	"github.com/cobrowse/cobrowse/internal/rrwebtest"
)

// TestAuditLog checks that sign-ins (good and bad) and agents joining and
// leaving a session reach the audit log.
func TestAuditLog(t *testing.T) {
	f := newFixture(t)
	var log logtest.Buffer
	f.srv.audit = audit.New(&log, quietLogger())

	f.do(t, request{path: "/login?token=wrong-token-0123456789"})
	f.do(t, request{path: "/login?token=" + url.QueryEscape(testToken)})
	v, _, err := f.hub.Attach("s1", "tab-1", "page-1")
	if err != nil {
		t.Fatal(err)
	}
	mustBatch(t, v, 1, rrwebtest.Page(1000, "https://shop.example/", 0))
	conn := f.mustDial(t, "s1")
	readLive(t, conn)
	conn.Close()

	want := []map[string]any{
		{"event": "agent.login", "ok": false},
		{"event": "agent.login", "ok": true},
		{"event": "agent.join", "session": "s1"},
		{"event": "agent.leave", "session": "s1"},
	}
	deadline := time.Now().Add(hangGuard)
	for strings.Count(log.String(), "\n") < len(want) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond) // the server notices the close on its own
	}
	lines := strings.Split(strings.TrimSpace(log.String()), "\n")
	if len(lines) != len(want) {
		t.Fatalf("%d audit lines, want %d:\n%s", len(lines), len(want), log.String())
	}
	for i, line := range lines {
		var got map[string]any
		if err := json.Unmarshal([]byte(line), &got); err != nil {
			t.Fatalf("line %d is not JSON: %s", i+1, line)
		}
		for k, v := range want[i] {
			if got[k] != v {
				t.Errorf("line %d: %s = %v, want %v (%s)", i+1, k, got[k], v, line)
			}
		}
		if got["remote"] == "" || got["time"] == "" {
			t.Errorf("line %d lacks remote or time: %s", i+1, line)
		}
	}
}
