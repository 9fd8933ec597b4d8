package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/gorilla/websocket"

	"github.com/cobrowse/cobrowse/internal/rrwebtest"
	"github.com/cobrowse/cobrowse/viewer"
)

// loadOptions are the flags of cobrowse loadtest.
type loadOptions struct {
	visitorURL string
	agentURL   string
	token      string
	visitors   int
	agents     int
	duration   time.Duration
	ramp       time.Duration
	slowdown   float64
	dwell      time.Duration
}

// loadtest simulates visitors replaying the recorded demo session (its
// batches at their recorded pace, a new page load each time round) and
// agents watching them, against a running server, and reports what it saw.
func loadtest(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o loadOptions
	fs := newFlagSet("loadtest", "Usage: cobrowse loadtest [flags]\n\nSimulates visitors (replaying a recorded demo session) and agents watching them against a running cobrowse, then reports sessions, messages and bytes per second, visitor→agent latency, errors, and the server's memory and CPU (from its /metrics).", stderr)
	fs.StringVar(&o.visitorURL, "visitor", "http://127.0.0.1:8080", "the server's visitor listener `URL`")
	fs.StringVar(&o.agentURL, "agent", "http://127.0.0.1:8081", "the server's agent listener `URL`")
	fs.StringVar(&o.token, "token", os.Getenv("COBROWSE_AGENT_TOKEN"), "the agent `token` (default $COBROWSE_AGENT_TOKEN)")
	fs.IntVar(&o.visitors, "visitors", 100, "simulated `visitors`, each its own session")
	fs.IntVar(&o.agents, "agents", 1, "agents watching each visitor (`n`)")
	fs.DurationVar(&o.duration, "duration", time.Minute, "how long to run (`duration`), ramp included")
	fs.DurationVar(&o.ramp, "ramp", 10*time.Second, "time over which the visitors connect (`duration`)")
	fs.Float64Var(&o.slowdown, "slowdown", 1, "replay the recording this many `times` slower: it was made by a test that clicks through two pages in 10 s, faster than a person reads")
	fs.DurationVar(&o.dwell, "dwell", 0, "reading time on each page (`duration`) before the next page load, with the page's socket open and no event: a person's pace without slowing down the recorded clicks, moves and typing")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case o.token == "":
		return errors.New("--token (or $COBROWSE_AGENT_TOKEN) is required: agents sign in with it")
	case o.visitors < 1 || o.agents < 0:
		return errors.New("--visitors must be 1 or more and --agents 0 or more")
	case o.duration <= o.ramp:
		return errors.New("--duration must be longer than --ramp")
	case o.slowdown < 1:
		return errors.New("--slowdown must be 1 or more")
	case o.dwell < 0:
		return errors.New("--dwell must not be negative")
	}
	batches, err := rrwebtest.DemoBatches()
	if err != nil {
		return err
	}
	lt := &loadRun{o: o, batches: batches, startsPage: make([]bool, len(batches)), started: time.Now()}
	for i, b := range batches {
		lt.startsPage[i] = startsPage(b)
	}
	cpu0, _ := lt.serverStats()
	ctx, cancel := context.WithTimeout(ctx, o.duration)
	defer cancel()
	var wg sync.WaitGroup
	for i := range o.visitors {
		delay := time.Duration(int64(o.ramp) * int64(i) / int64(o.visitors))
		wg.Go(func() { lt.visitor(ctx, delay) })
	}
	progress := time.NewTicker(5 * time.Second)
	defer progress.Stop()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for running := true; running; {
		select {
		case <-progress.C:
			fmt.Fprintln(stderr, lt.line())
		case <-done:
			running = false
		}
	}
	cpu1, rss := lt.serverStats()
	lt.report(stdout, cpu1-cpu0, rss)
	return nil
}

// loadRun is one run's shared state and counters.
type loadRun struct {
	o       loadOptions
	batches [][]json.RawMessage
	// startsPage[i] says whether batches[i] begins a page (--dwell).
	startsPage []bool
	started    time.Time

	sessions, errors          atomic.Int64
	visitorMsgs, visitorBytes atomic.Int64 // payloads, before compression
	agentMsgs, agentBytes     atomic.Int64
	wireIn, wireOut           atomic.Int64 // bytes on the wire: visitors' writes, agents' reads
	mu                        sync.Mutex
	latencies                 []time.Duration // visitor probe → agent
	firstErr                  atomic.Value    // string
}

// countingConn counts the bytes a connection writes (visitors) or reads
// (agents): the load on the wire, after WebSocket compression.
type countingConn struct {
	net.Conn
	written, read *atomic.Int64
}

func (c *countingConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	if c.written != nil {
		c.written.Add(int64(n))
	}
	return n, err
}

func (c *countingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if c.read != nil {
		c.read.Add(int64(n))
	}
	return n, err
}

// dialer returns a WebSocket dialer (with compression, as browsers
// negotiate it) whose connections count their written or read bytes.
func dialer(written, read *atomic.Int64) *websocket.Dialer {
	return &websocket.Dialer{
		EnableCompression: true,
		HandshakeTimeout:  10 * time.Second,
		NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return &countingConn{Conn: c, written: written, read: read}, nil
		},
	}
}

func (lt *loadRun) fail(err error) {
	if lt.errors.Add(1) == 1 {
		lt.firstErr.Store(err.Error())
	}
}

// probeEvent is a pointer move whose timestamp is its send time: the agent
// that receives it measures the latency. (Pointer moves pass the Redactor
// as they came.)
func probeEvent(now time.Time) json.RawMessage {
	return json.RawMessage(`{"type":3,"timestamp":` + strconv.FormatInt(now.UnixMilli(), 10) +
		`,"data":{"source":1,"positions":[{"x":7,"y":7,"id":1,"timeOffset":0}]}}`)
}

func randomID() string {
	b := make([]byte, 12)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// visitor runs one simulated visitor: it connects after delay, then loads
// the demo session page after page, at the recorded pace, accepting agents
// when asked, until ctx ends; its agents watch meanwhile.
func (lt *loadRun) visitor(ctx context.Context, delay time.Duration) {
	select {
	case <-time.After(delay):
	case <-ctx.Done():
		return
	}
	jar := &cookieJar{}
	tab := randomID()
	agentsStarted := false
	for ctx.Err() == nil {
		sessionID, err := lt.replayPage(ctx, jar, tab, func(id string) {
			if agentsStarted {
				return
			}
			agentsStarted = true
			lt.sessions.Add(1)
			for range lt.o.agents {
				go lt.agent(ctx, id)
			}
		})
		if err != nil && ctx.Err() == nil {
			lt.fail(fmt.Errorf("visitor (session %s): %w", sessionID, err))
			time.Sleep(time.Second)
		}
	}
}

// cookieJar holds the visitor cookie a simulated browser keeps.
type cookieJar struct{ cookie string }

// replayPage streams the recorded session once as one page load of tab.
func (lt *loadRun) replayPage(ctx context.Context, jar *cookieJar, tab string, welcomed func(sessionID string)) (string, error) {
	u, err := url.Parse(lt.o.visitorURL)
	if err != nil {
		return "", err
	}
	ws := "ws" + strings.TrimPrefix(u.Scheme, "http") + "://" + u.Host + "/__cobrowse/ws?tab=" + tab + "&page=" + randomID()
	header := http.Header{"Origin": {u.Scheme + "://" + u.Host}}
	if jar.cookie != "" {
		header.Set("Cookie", jar.cookie)
	}
	conn, resp, err := dialer(&lt.wireIn, nil).DialContext(ctx, ws, header)
	if err != nil {
		return "", fmt.Errorf("dialing the visitor socket: %w", err)
	}
	defer conn.Close()
	if c := resp.Cookies(); len(c) > 0 {
		jar.cookie = c[0].Name + "=" + c[0].Value
	}
	var welcome struct{ Session string }
	if err := conn.ReadJSON(&welcome); err != nil {
		return "", fmt.Errorf("reading the welcome: %w", err)
	}
	welcomed(welcome.Session)
	var writeMu sync.Mutex
	write := func(msg []byte) error {
		writeMu.Lock()
		defer writeMu.Unlock()
		lt.visitorMsgs.Add(1)
		lt.visitorBytes.Add(int64(len(msg)))
		return conn.WriteMessage(websocket.TextMessage, msg)
	}
	go func() { // acks, and a visitor who accepts agents
		for {
			_, msg, err := conn.ReadMessage()
			if err != nil {
				return
			}
			var m struct{ Type string }
			if json.Unmarshal(msg, &m) == nil && m.Type == "consent" {
				write([]byte(`{"type":"consent","allow":true}`))
			}
		}
	}()
	write([]byte(`{"type":"page","url":"` + lt.o.visitorURL + `","title":"Cobrowse Demo Shop"}`))
	prev := int64(0)
	for i, batch := range lt.batches {
		// The recorded pause before this batch (at least 20 ms), times
		// --slowdown, and the reading time before a page load.
		var pause time.Duration
		if ts := firstTimestamp(batch); prev != 0 && ts > prev {
			pause = max(time.Duration(float64(ts-prev)*lt.o.slowdown)*time.Millisecond, 20*time.Millisecond)
			prev = ts
		} else if ts != 0 {
			prev = ts
		}
		if i > 0 && lt.startsPage[i] {
			pause += lt.o.dwell
		}
		if !sleep(ctx, pause) {
			return welcome.Session, nil
		}
		events := append(slices.Clone(batch), probeEvent(time.Now()))
		msg, _ := json.Marshal(map[string]any{"seq": i + 1, "events": events})
		if err := write(msg); err != nil {
			return welcome.Session, err
		}
	}
	sleep(ctx, lt.o.dwell) // reading the last page before the next load
	return welcome.Session, nil
}

// sleep waits d, or less if ctx ends first; it reports whether ctx goes on.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	select {
	case <-time.After(d):
		return true
	case <-ctx.Done():
		return false
	}
}

// startsPage reports whether a batch holds a Meta event (rrweb type 4),
// which begins a page.
func startsPage(batch []json.RawMessage) bool {
	for _, e := range batch {
		var env struct{ Type int }
		if json.Unmarshal(e, &env) == nil && env.Type == 4 {
			return true
		}
	}
	return false
}

func firstTimestamp(batch []json.RawMessage) int64 {
	if len(batch) == 0 {
		return 0
	}
	var e struct{ Timestamp int64 }
	json.Unmarshal(batch[0], &e)
	return e.Timestamp
}

// agent watches a session and measures each probe's latency. It starts
// as soon as the visitor is welcomed, sooner than a person could open the
// session: an agent listener of another node of a cluster may not know the
// session yet ("no such session"), and is asked again for up to 10 s.
func (lt *loadRun) agent(ctx context.Context, sessionID string) {
	deadline := time.Now().Add(10 * time.Second)
	for lt.watch(ctx, sessionID) && time.Now().Before(deadline) && sleep(ctx, 250*time.Millisecond) {
	}
}

// watch reads the session's live socket until it ends; it reports whether
// the server closed it at once as a session it does not know.
func (lt *loadRun) watch(ctx context.Context, sessionID string) (unknown bool) {
	u := "ws" + strings.TrimPrefix(lt.o.agentURL, "http") + "/api/sessions/" + url.PathEscape(sessionID) + "/live?name=loadtest"
	conn, _, err := dialer(nil, &lt.wireOut).DialContext(ctx, u, http.Header{"Authorization": {"Bearer " + lt.o.token}})
	if err != nil {
		lt.fail(fmt.Errorf("agent dialing %s: %w", sessionID, err))
		return false
	}
	defer conn.Close()
	context.AfterFunc(ctx, func() { conn.Close() })
	for read := 0; ; read++ {
		_, msg, err := conn.ReadMessage()
		if err != nil {
			return read == 0 && websocket.IsCloseError(err, viewer.CloseNoSession)
		}
		now := time.Now()
		lt.agentMsgs.Add(1)
		lt.agentBytes.Add(int64(len(msg)))
		var m struct {
			Type   string
			Events []struct {
				Type      int
				Timestamp int64
				Data      struct {
					Source    int
					Positions []struct{ X, Y, ID int }
				}
			}
		}
		if json.Unmarshal(msg, &m) != nil || m.Type != "events" {
			continue
		}
		for _, e := range m.Events {
			if e.Type == 3 && e.Data.Source == 1 && len(e.Data.Positions) == 1 && e.Data.Positions[0].X == 7 && e.Data.Positions[0].Y == 7 {
				lt.mu.Lock()
				lt.latencies = append(lt.latencies, now.Sub(time.UnixMilli(e.Timestamp)))
				lt.mu.Unlock()
			}
		}
	}
}

// percentiles returns p50, p95 and p99 of the latencies so far.
func (lt *loadRun) percentiles() (p50, p95, p99 time.Duration, n int) {
	lt.mu.Lock()
	l := slices.Clone(lt.latencies)
	lt.mu.Unlock()
	if len(l) == 0 {
		return 0, 0, 0, 0
	}
	slices.Sort(l)
	at := func(q float64) time.Duration { return l[int(q*float64(len(l)-1))] }
	return at(0.50), at(0.95), at(0.99), len(l)
}

func (lt *loadRun) line() string {
	secs := time.Since(lt.started).Seconds()
	p50, _, p99, _ := lt.percentiles()
	return fmt.Sprintf("loadtest: %3.0fs  sessions %d  in %.0f msg/s  out %.0f msg/s  p50 %s  p99 %s  errors %d",
		secs, lt.sessions.Load(), float64(lt.visitorMsgs.Load())/secs, float64(lt.agentMsgs.Load())/secs,
		p50.Round(time.Millisecond), p99.Round(time.Millisecond), lt.errors.Load())
}

// serverStats reads the server's process CPU seconds and resident memory
// from its /metrics (zeros when they cannot be read).
func (lt *loadRun) serverStats() (cpuSeconds, rssBytes float64) {
	req, err := http.NewRequest(http.MethodGet, lt.o.agentURL+"/metrics", nil)
	if err != nil {
		return 0, 0
	}
	req.Header.Set("Authorization", "Bearer "+lt.o.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, 0
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		v, _ := strconv.ParseFloat(value, 64)
		switch {
		case !ok:
		case name == "process_cpu_seconds_total":
			cpuSeconds = v
		case name == "process_resident_memory_bytes":
			rssBytes = v
		}
	}
	return cpuSeconds, rssBytes
}

func (lt *loadRun) report(w io.Writer, cpuSeconds, rss float64) {
	secs := time.Since(lt.started).Seconds()
	sessions := max(lt.sessions.Load(), 1)
	p50, p95, p99, n := lt.percentiles()
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "visitors × agents each\t%d × %d (recording replayed %g× slower, %v reading each page)\n", lt.o.visitors, lt.o.agents, lt.o.slowdown, lt.o.dwell)
	fmt.Fprintf(tw, "sessions\t%d\n", lt.sessions.Load())
	fmt.Fprintf(tw, "messages in (visitors → server)\t%.0f/s\n", float64(lt.visitorMsgs.Load())/secs)
	fmt.Fprintf(tw, "messages out (server → agents)\t%.0f/s\n", float64(lt.agentMsgs.Load())/secs)
	perSession := func(b int64) float64 { return float64(b) * 8 / 1000 / secs / float64(sessions) }
	fmt.Fprintf(tw, "per session, visitor → server\t%.1f kbit/s on the wire (%.1f kbit/s of messages)\n", perSession(lt.wireIn.Load()), perSession(lt.visitorBytes.Load()))
	fmt.Fprintf(tw, "per session and agent, server → agent\t%.1f kbit/s on the wire (%.1f kbit/s of messages)\n",
		perSession(lt.wireOut.Load())/float64(max(lt.o.agents, 1)), perSession(lt.agentBytes.Load())/float64(max(lt.o.agents, 1)))
	fmt.Fprintf(tw, "visitor → agent latency (%d probes)\tp50 %s  p95 %s  p99 %s\n", n, p50.Round(time.Millisecond), p95.Round(time.Millisecond), p99.Round(time.Millisecond))
	fmt.Fprintf(tw, "errors\t%d\n", lt.errors.Load())
	if e, _ := lt.firstErr.Load().(string); e != "" {
		fmt.Fprintf(tw, "first error\t%s\n", e)
	}
	if rss > 0 {
		fmt.Fprintf(tw, "server memory\t%.0f MiB (%.2f MiB per session)\n", rss/(1<<20), rss/(1<<20)/float64(sessions))
		fmt.Fprintf(tw, "server CPU\t%.0f %% of one core\n", 100*cpuSeconds/secs)
	} else {
		fmt.Fprintf(tw, "server memory and CPU\tunknown (/metrics not readable with this token)\n")
	}
	tw.Flush()
}
