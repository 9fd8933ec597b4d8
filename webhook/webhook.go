// Package webhook tells a helpdesk (or any HTTP endpoint the operator
// configures) when co-browsing sessions start and end: one signed JSON POST
// per event, sent in the background with retries, never holding up a
// visitor or an agent.
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"
)

// Event is one webhook delivery's body.
type Event struct {
	Event   string    `json:"event"` // "session.started" or "session.ended"
	Session string    `json:"session"`
	At      time.Time `json:"at"`
	// Fields holds what else the event says (the reason a session ended,
	// the visitor's label), as documented in docs/webhooks.md.
	Fields map[string]any `json:"fields,omitempty"`
}

// SignatureHeader carries "sha256=" and the hex HMAC-SHA256 of
// TimestampHeader's value, a ".", and the body, keyed with the secret; a
// receiver recomputes it and rejects old timestamps, which stops replays.
const (
	SignatureHeader = "X-Cobrowse-Signature"
	TimestampHeader = "X-Cobrowse-Timestamp"
)

// Sign returns the SignatureHeader value for a body sent at timestamp.
func Sign(secret []byte, timestamp string, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(timestamp))
	mac.Write([]byte("."))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// Config configures a Sender.
type Config struct {
	URL    string // http or https; required
	Secret []byte // at least 16 bytes; required
	// Attempts per event (default 4), with exponential backoff from 1 s.
	Attempts int
	// Timeout of one attempt (default 10 s).
	Timeout time.Duration
	// QueueLength bounds the events waiting to be sent (default 1000);
	// past it, events are dropped and logged.
	QueueLength int
	Client      *http.Client // default: a client with Timeout
	Logger      *slog.Logger
}

// Sender delivers events to one URL, in order, from a goroutine of its own.
type Sender struct {
	cfg   Config
	queue chan Event
	stop  chan struct{}
	done  chan struct{}
	once  sync.Once
}

// New checks cfg and starts the sender.
func New(cfg Config) (*Sender, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("webhook URL %q: want an absolute http or https URL", cfg.URL)
	}
	if len(cfg.Secret) < 16 {
		return nil, errors.New("the webhook secret must be at least 16 bytes: receivers check each delivery's signature with it")
	}
	if cfg.Attempts <= 0 {
		cfg.Attempts = 4
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.QueueLength <= 0 {
		cfg.QueueLength = 1000
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: cfg.Timeout}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Sender{cfg: cfg, queue: make(chan Event, cfg.QueueLength), stop: make(chan struct{}), done: make(chan struct{})}
	go s.run()
	return s, nil
}

// Send queues an event; it never blocks. A full queue drops it (logged).
func (s *Sender) Send(e Event) {
	select {
	case s.queue <- e:
	default:
		s.cfg.Logger.Warn("webhook queue full; event dropped", "event", e.Event, "session", e.Session)
	}
}

// Close stops the sender after the events already queued were tried once
// more, within ctx.
func (s *Sender) Close(ctx context.Context) {
	s.once.Do(func() { close(s.stop) })
	select {
	case <-s.done:
	case <-ctx.Done():
	}
}

func (s *Sender) run() {
	defer close(s.done)
	for {
		select {
		case e := <-s.queue:
			s.deliver(e)
		case <-s.stop:
			for {
				select {
				case e := <-s.queue:
					s.attempt(e)
				default:
					return
				}
			}
		}
	}
}

// deliver tries an event up to Attempts times, backing off between tries
// (cut short by Close).
func (s *Sender) deliver(e Event) {
	backoff := time.Second
	for i := 1; ; i++ {
		err := s.attempt(e)
		if err == nil {
			return
		}
		if i == s.cfg.Attempts {
			s.cfg.Logger.Warn("webhook delivery failed; event dropped", "event", e.Event, "session", e.Session, "attempts", i, "err", err)
			return
		}
		select {
		case <-time.After(backoff):
		case <-s.stop:
			return
		}
		backoff *= 2
	}
}

// attempt makes one POST; a 2xx answer is a delivery.
func (s *Sender) attempt(e Event) error {
	body, err := json.Marshal(e)
	if err != nil {
		return err
	}
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(TimestampHeader, ts)
	req.Header.Set(SignatureHeader, Sign(s.cfg.Secret, ts, body))
	resp, err := s.cfg.Client.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("the endpoint answered %s", resp.Status)
	}
	return nil
}
