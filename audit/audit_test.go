package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cobrowse/cobrowse/internal/logtest"
)

func TestRecordWritesOneOrderedJSONLine(t *testing.T) {
	var out bytes.Buffer
	l := New(&out, nil)
	l.now = func() time.Time { return time.Date(2026, 11, 21, 12, 0, 0, 5, time.FixedZone("X", 3600)) }
	l.Record("page.redactions", "session", "s1", "counts", map[string]int{"mask .a": 2}, "bad", func() {})
	want := `{"time":"2026-11-21T11:00:00.000000005Z","event":"page.redactions","session":"s1","counts":{"mask .a":2},"bad":null}` + "\n"
	if out.String() != want {
		t.Errorf("got  %s\nwant %s", out.String(), want)
	}
	var v map[string]any
	if err := json.Unmarshal(out.Bytes(), &v); err != nil {
		t.Error(err)
	}
}

func TestNilLogRecordsNothing(t *testing.T) {
	var l *Log
	l.Record("agent.login") // must not panic
	if err := l.Close(); err != nil {
		t.Error(err)
	}
}

func TestOpenAppendsAndIsPrivate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	for range 2 {
		l, err := Open(path, nil)
		if err != nil {
			t.Fatal(err)
		}
		l.Record("agent.join", "session", "s1")
		l.Close()
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(data), "\n"); n != 2 {
		t.Errorf("%d lines, want 2 (appended):\n%s", n, data)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestWriteErrorIsLoggedOnce(t *testing.T) {
	var logs logtest.Buffer
	l := New(failingWriter{}, slog.New(slog.NewTextHandler(&logs, nil)))
	l.Record("a")
	l.Record("b")
	if n := strings.Count(logs.String(), "audit events are being lost"); n != 1 {
		t.Errorf("logged %d times:\n%s", n, logs.String())
	}
}
