package viewer_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"runtime/metrics"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/cobrowse/cobrowse/internal/rrwebtest"
	"github.com/cobrowse/cobrowse/policies"
	"github.com/cobrowse/cobrowse/session"
	"github.com/cobrowse/cobrowse/viewer"
)

// The whole server path of a visitor's events, for "hub CPU per event": the
// visitor's WebSocket message read and inflated (permessage-deflate, as
// browsers negotiate it), the batch parsed, the hub (with or without the
// Redactor), the ack written, and the events deflated and written to one
// agent's live WebSocket (/api/sessions/{id}/live). The clients, a visitor
// replaying the recorded demo session and an agent reading it, run in a
// child process (this test binary again, TestHubCostClient), so that the
// process CPU that the benchmark measures is the server's alone.

const (
	hubCostToken = "hub-cost-agent-token-0123456789"
	// hubCostClientEnv carries the client's configuration (hubCostConfig,
	// as JSON) to the child process.
	hubCostClientEnv = "COBROWSE_HUBCOST_CLIENT"
)

// hubCostConfig tells the client process where the servers are.
type hubCostConfig struct {
	Servers []hubCostServerAddr
}

type hubCostServerAddr struct {
	Visitor, Agent string // base URLs (http://127.0.0.1:port)
}

// BenchmarkHubCost replays the recorded demo session (45 events in 23
// batches) through two servers in turn, one without a Redactor and one with
// policies.Default, and reports each one's cost per visitor event: process
// CPU (getrusage: every goroutine of the server, GC included) and wall time
// (which also holds the client's work and the hand-offs between the
// processes), and the ratios, and the bytes each allocates per event (the
// pace its garbage collection has to keep). Each iteration is one session through each
// server, in alternating order, so both see the same machine load.
func BenchmarkHubCost(b *testing.B) {
	redacting := func(string, string) session.Redactor { return policies.NewRedactor(policies.Default) }
	variants := []struct {
		name      string
		redactor  func(sessionID, tabID string) session.Redactor
		cpu, wall time.Duration
		allocated uint64 // bytes
	}{
		{name: "pass"},
		{name: "redact", redactor: redacting},
	}
	var cfg hubCostConfig
	for _, v := range variants {
		cfg.Servers = append(cfg.Servers, startHubCostServer(b, v.name, v.redactor))
	}
	client := startHubCostClient(b, cfg)
	events := 0
	for _, batch := range rrwebtest.DemoSession(b) {
		events += len(batch)
	}

	b.ResetTimer()
	for i := range b.N {
		for j := range variants {
			k := (i + j) % len(variants) // alternate which goes first
			cpu, allocated, start := processCPU(b), heapAllocated(), time.Now()
			client.replay(b, k)
			variants[k].wall += time.Since(start)
			variants[k].cpu += processCPU(b) - cpu
			variants[k].allocated += heapAllocated() - allocated
		}
	}
	b.StopTimer()

	per := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / float64(b.N*events) }
	pass, redact := variants[0], variants[1]
	b.ReportMetric(0, "ns/op") // the sum of both variants says nothing
	b.ReportMetric(per(pass.cpu), "pass-cpu-ns/event")
	b.ReportMetric(per(redact.cpu), "redact-cpu-ns/event")
	b.ReportMetric(per(redact.cpu)/per(pass.cpu), "cpu-ratio")
	b.ReportMetric(per(pass.wall), "pass-ns/event")
	b.ReportMetric(per(redact.wall), "redact-ns/event")
	b.ReportMetric(per(redact.wall)/per(pass.wall), "wall-ratio")
	b.ReportMetric(float64(pass.allocated)/float64(b.N*events), "pass-B/event")
	b.ReportMetric(float64(redact.allocated)/float64(b.N*events), "redact-B/event")
}

// startHubCostServer starts a hub with its visitor and agent listeners, as
// cmd/cobrowse wires them (without the proxy and the audit log). Its
// handlers run with the profiler label server=name, so that a CPU profile
// of the benchmark can be split by server (pprof -tagfocus server=redact).
func startHubCostServer(b *testing.B, name string, redactor func(sessionID, tabID string) session.Redactor) hubCostServerAddr {
	logger := slog.New(slog.DiscardHandler)
	hub := session.NewHub(session.Config{Logger: logger, NewRedactor: redactor, Join: session.JoinNone})
	identity, err := session.NewIdentity(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		b.Fatal(err)
	}
	visitorMux := http.NewServeMux()
	visitorMux.Handle("GET "+session.VisitorPath, &session.VisitorHandler{Hub: hub, Identity: identity, Logger: logger})
	visitors := httptest.NewServer(labelled(name, visitorMux))
	b.Cleanup(visitors.Close)
	agents, err := viewer.New(viewer.Config{Hub: hub, Token: hubCostToken, Logger: logger})
	if err != nil {
		b.Fatal(err)
	}
	agentServer := httptest.NewServer(labelled(name, agents))
	b.Cleanup(agentServer.Close)
	return hubCostServerAddr{Visitor: visitors.URL, Agent: agentServer.URL}
}

// labelled runs h with the profiler label server=name.
func labelled(name string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		pprof.Do(r.Context(), pprof.Labels("server", name), func(context.Context) { h.ServeHTTP(w, r) })
	})
}

// hubCostClient is the child process that plays the visitor and the agent:
// each line written to it names a server to replay the session through,
// and it answers with a line when that server's agent has received it all.
type hubCostClient struct {
	in  io.WriteCloser
	out *bufio.Reader
}

func startHubCostClient(b *testing.B, cfg hubCostConfig) *hubCostClient {
	conf, err := json.Marshal(cfg)
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestHubCostClient$")
	cmd.Env = append(os.Environ(), hubCostClientEnv+"="+string(conf))
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		in.Close() // the client ends at the end of its input
		cmd.Wait()
	})
	c := &hubCostClient{in: in, out: bufio.NewReader(out)}
	if line, err := c.out.ReadString('\n'); err != nil || line != "ready\n" {
		b.Fatalf("the client process did not start: %q, %v", line, err)
	}
	return c
}

// replay has the client replay the session through server k and waits
// until it is done.
func (c *hubCostClient) replay(b *testing.B, k int) {
	if _, err := fmt.Fprintln(c.in, k); err != nil {
		b.Fatal(err)
	}
	if line, err := c.out.ReadString('\n'); err != nil || line != "ok\n" {
		b.Fatalf("the client failed: %q, %v", line, err)
	}
}

// processCPU returns the CPU time (user and system) the process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// heapAllocated returns the bytes the process has allocated on the heap so
// far: what its garbage collector has to keep up with.
func heapAllocated() uint64 {
	sample := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(sample)
	return sample[0].Value.Uint64()
}

// TestHubCostClient is BenchmarkHubCost's client process; run by itself,
// it does nothing.
func TestHubCostClient(t *testing.T) {
	conf := os.Getenv(hubCostClientEnv)
	if conf == "" {
		t.Skip("the client process of BenchmarkHubCost")
	}
	var cfg hubCostConfig
	if err := json.Unmarshal([]byte(conf), &cfg); err != nil {
		t.Fatal(err)
	}
	batches := rrwebtest.DemoSession(t)
	var tabs []*hubCostTab
	for _, srv := range cfg.Servers {
		tabs = append(tabs, openHubCostTab(t, srv))
	}
	fmt.Println("ready")
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		k, err := strconv.Atoi(in.Text())
		if err != nil || k < 0 || k >= len(tabs) {
			t.Fatalf("bad command %q", in.Text())
		}
		if err := tabs[k].replay(batches); err != nil {
			t.Fatal(err)
		}
		fmt.Println("ok")
	}
}

// hubCostTab is a visitor tab and an agent watching it, on one server.
type hubCostTab struct {
	visitor *websocket.Conn
	seq     int
	// seen gets every message the agent receives.
	seen chan []byte
}

// openHubCostTab connects a visitor tab and an agent to srv, both with
// compression as browsers negotiate it.
func openHubCostTab(t *testing.T, srv hubCostServerAddr) *hubCostTab {
	dialer := websocket.Dialer{EnableCompression: true, HandshakeTimeout: 5 * time.Second}
	ws := func(base string) string { return "ws" + strings.TrimPrefix(base, "http") }
	visitor, _, err := dialer.Dial(ws(srv.Visitor)+session.VisitorPath+"?tab=tab-00000001&page=page-0000001",
		http.Header{"Origin": {srv.Visitor}})
	if err != nil {
		t.Fatalf("visitor: %v", err)
	}
	var welcome struct{ Session string }
	if err := visitor.ReadJSON(&welcome); err != nil {
		t.Fatalf("visitor's welcome: %v", err)
	}
	go func() { // acks: read and dropped
		for {
			if _, _, err := visitor.ReadMessage(); err != nil {
				return
			}
		}
	}()
	agent, _, err := dialer.Dial(ws(srv.Agent)+"/api/sessions/"+welcome.Session+"/live",
		http.Header{"Authorization": {"Bearer " + hubCostToken}})
	if err != nil {
		t.Fatalf("agent: %v", err)
	}
	tab := &hubCostTab{visitor: visitor, seen: make(chan []byte, 1024)}
	go func() {
		for {
			_, msg, err := agent.ReadMessage()
			if err != nil {
				close(tab.seen)
				return
			}
			tab.seen <- msg
		}
	}()
	return tab
}

// replay sends the session's batches, as the visitor script does (without
// waiting for acks), then waits until the agent has received its last
// event, whose timestamp is made unique to this replay.
func (tab *hubCostTab) replay(batches [][]json.RawMessage) error {
	last := batches[len(batches)-1]
	var marker []byte
	for i, batch := range batches {
		tab.seq++
		if i == len(batches)-1 {
			batch = append([]json.RawMessage(nil), batch...)
			ts := strconv.Itoa(2_000_000_000_000 + tab.seq)
			var err error
			if batch[len(batch)-1], err = withTimestamp(last[len(last)-1], ts); err != nil {
				return err
			}
			marker = []byte(`"timestamp":` + ts)
		}
		msg, err := json.Marshal(map[string]any{"seq": tab.seq, "events": batch})
		if err != nil {
			return err
		}
		if err := tab.visitor.WriteMessage(websocket.TextMessage, msg); err != nil {
			return err
		}
	}
	timeout := time.After(10 * time.Second)
	for {
		select {
		case msg, ok := <-tab.seen:
			if !ok {
				return fmt.Errorf("the agent's connection closed")
			}
			if bytes.Contains(msg, marker) {
				return nil
			}
		case <-timeout:
			return fmt.Errorf("the agent did not receive the session's last event")
		}
	}
}

// withTimestamp returns event with its timestamp replaced by ts.
func withTimestamp(event json.RawMessage, ts string) (json.RawMessage, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(event, &fields); err != nil {
		return nil, err
	}
	fields["timestamp"] = json.RawMessage(ts)
	return json.Marshal(fields)
}
