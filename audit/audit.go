// Package audit writes cobrowse's audit log: one JSON object per line, for
// the people who must answer "who saw what, under which policy, and what was
// hidden from them". Each line has "time" (RFC 3339, UTC) and "event" first,
// then the event's fields in a fixed order.
//
// Events (docs/audit.md lists their fields):
//
//	agent.login       an agent signed in, or failed to
//	agent.join        an agent started watching a session
//	agent.leave       it stopped
//	policy.loaded     the redaction policy in force, at start and on reload
//	page.redactions   what the policy hid on one page a visitor showed
//
// The log never holds visitor content: only ids, redacted URLs, counts and
// the names of rules, selectors and detectors.
package audit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"
)

// Log is an audit log. It is safe for concurrent use; a nil *Log records
// nothing, so code can log unconditionally.
type Log struct {
	mu     sync.Mutex
	w      io.Writer
	closer io.Closer // nil unless Open opened the file
	now    func() time.Time
	errLog *slog.Logger
	failed bool // a write failed; logged once
}

// Open opens the audit log file at path for appending (creating it, readable
// by its owner only). Lines are written whole, one write each, so several
// processes may append to the same file.
func Open(path string, errLog *slog.Logger) (*Log, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	l := New(f, errLog)
	l.closer = f
	return l, nil
}

// New returns a Log that writes to w. errLog receives write errors (once);
// nil means slog.Default().
func New(w io.Writer, errLog *slog.Logger) *Log {
	if errLog == nil {
		errLog = slog.Default()
	}
	return &Log{w: w, now: time.Now, errLog: errLog}
}

// Close closes the file Open opened.
func (l *Log) Close() error {
	if l == nil || l.closer == nil {
		return nil
	}
	return l.closer.Close()
}

// Record writes one event with fields given as key, value pairs (keys are
// strings, values anything encoding/json encodes). A value that does not
// encode is written as null.
func (l *Log) Record(event string, fields ...any) {
	if l == nil {
		return
	}
	var b bytes.Buffer
	b.WriteString(`{"time":`)
	writeValue(&b, l.now().UTC().Format(time.RFC3339Nano))
	b.WriteString(`,"event":`)
	writeValue(&b, event)
	for i := 0; i+1 < len(fields); i += 2 {
		key, _ := fields[i].(string)
		b.WriteByte(',')
		writeValue(&b, key)
		b.WriteByte(':')
		writeValue(&b, fields[i+1])
	}
	b.WriteString("}\n")
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, err := l.w.Write(b.Bytes()); err != nil && !l.failed {
		l.failed = true
		l.errLog.Error("audit log: write failed; audit events are being lost", "err", err)
	}
}

func writeValue(b *bytes.Buffer, v any) {
	enc, err := json.Marshal(v)
	if err != nil {
		enc = []byte("null")
	}
	b.Write(enc)
}
