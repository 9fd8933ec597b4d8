package webhook

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestDeliveriesAreSignedAndRetried(t *testing.T) {
	secret := []byte("0123456789abcdef-secret")
	var mu sync.Mutex
	var got []Event
	failures := 1 // the first attempt fails: the sender retries
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if want := Sign(secret, r.Header.Get(TimestampHeader), body); r.Header.Get(SignatureHeader) != want {
			t.Errorf("signature %q, want %q", r.Header.Get(SignatureHeader), want)
		}
		mu.Lock()
		defer mu.Unlock()
		if failures > 0 {
			failures--
			http.Error(w, "try again", http.StatusServiceUnavailable)
			return
		}
		var e Event
		if err := json.Unmarshal(body, &e); err != nil {
			t.Errorf("body %s: %v", body, err)
		}
		got = append(got, e)
	}))
	defer srv.Close()
	s, err := New(Config{URL: srv.URL, Secret: secret, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	s.Send(Event{Event: "session.started", Session: "s1", At: time.Now(), Fields: map[string]any{"label": "user-42"}})
	s.Send(Event{Event: "session.ended", Session: "s1", At: time.Now()})
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n == 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.Close(context.Background())
	if len(got) != 2 || got[0].Event != "session.started" || got[0].Fields["label"] != "user-42" || got[1].Event != "session.ended" {
		t.Errorf("delivered %+v, want started then ended, in order", got)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tt := range []struct {
		cfg  Config
		want string
	}{
		{Config{URL: "ftp://x", Secret: make([]byte, 16)}, "absolute http or https"},
		{Config{URL: "/relative", Secret: make([]byte, 16)}, "absolute http or https"},
		{Config{URL: "https://helpdesk.example/hook", Secret: []byte("short")}, "at least 16 bytes"},
	} {
		if _, err := New(tt.cfg); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("New(%+v) = %v, want %q", tt.cfg.URL, err, tt.want)
		}
	}
}
