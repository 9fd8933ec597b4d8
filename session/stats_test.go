package session

import (
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/cobrowse/cobrowse/internal/rrwebtest"
)

func TestStats(t *testing.T) {
	var mu sync.Mutex
	var latencies []time.Duration
	hub := quietHub(Config{MaxQueueBytes: 4 << 10, OnDeliver: func(d time.Duration) {
		mu.Lock()
		latencies = append(latencies, d)
		mu.Unlock()
	}})
	v, _ := mustAttach(t, hub, "session-1", "tab-0001", "page-0001")
	mustAttach(t, hub, "session-2", "tab-0002", "page-0002")
	page := rrwebtest.Page(1000, "https://shop.test/", 2)
	mustBatch(t, v, 1, page)
	mustBatch(t, v, 1, page) // a duplicate after a reconnect: not counted again
	s, _ := hub.Session("session-1")
	agent, _ := s.Subscribe("Test agent")
	defer agent.Close()
	slow, _ := s.Subscribe("Test agent")
	defer slow.Close()
	feed, _ := s.SubscribeFeed() // the renderer's: not an agent
	defer feed.Close()
	next(t, agent) // the reset of Subscribe: no batch behind it, no latency
	next(t, feed)

	move := []json.RawMessage{rrwebtest.MouseMove(2000, 1)}
	mustBatch(t, v, 2, move)
	next(t, agent)
	next(t, feed)
	for i := range 200 { // the slow agent never reads until its queue overflows
		mustBatch(t, v, uint64(i+3), []json.RawMessage{rrwebtest.MouseMove(3000+i, i)})
	}
	next(t, slow)

	want := Stats{
		Sessions: 2, Tabs: 2, Visitors: 2, Agents: 2,
		Batches:       202,
		Events:        uint64(len(page)) + 201,
		AgentMessages: 3, // agent: reset, events; slow: the resync's reset
		Resyncs:       1,
	}
	if got := hub.Stats(); got != want {
		t.Errorf("Stats() =\n %+v, want\n %+v", got, want)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(latencies) != 1 || latencies[0] <= 0 || latencies[0] > 5*time.Second {
		t.Errorf("OnDeliver saw %v, want one latency (the agent's events message)", latencies)
	}
}

func TestShutdownTellsVisitorsToReconnect(t *testing.T) {
	vs := newVisitorServer(t, 0)
	conn, _, cookie, err := vs.dial(t, "tab-0001", "page-0001", "", vs.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	vs.hub.Shutdown()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		_, _, err := conn.ReadMessage()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != websocket.CloseServiceRestart {
			t.Fatalf("the visitor's socket ended with %v, want close code 1012 (service restart)", err)
		}
		break
	}
	_, _, _, err = vs.dial(t, "tab-0001", "page-0002", cookie, vs.srv.URL)
	var status *httpStatusError
	if !errors.As(err, &status) || status.status != http.StatusServiceUnavailable {
		t.Fatalf("a visitor after Shutdown: err = %v, want HTTP 503", err)
	}
	if !vs.hub.ShuttingDown() {
		t.Error("ShuttingDown() = false after Shutdown")
	}
}
