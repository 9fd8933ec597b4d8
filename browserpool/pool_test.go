package browserpool

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/target"
	"github.com/chromedp/chromedp"
)

// The tests run the real browser; they never download one.
const testChrome = DefaultChromePath

// testConfig is a small, fast-probing pool; tests change what they need.
func testConfig(t testing.TB) Config {
	return Config{
		ChromePath:     testChrome,
		Browsers:       1,
		TabsPerBrowser: 1,
		WaitTimeout:    10 * time.Second,
		ProbeInterval:  200 * time.Millisecond,
		ProbeTimeout:   3 * time.Second,
		Logger:         slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo})),
	}
}

// newPool starts a pool whose every process is gone when the test ends,
// also when the test fails.
func newPool(t testing.TB, cfg Config) *Pool {
	t.Helper()
	if _, err := os.Stat(testChrome); err != nil {
		t.Fatalf("%s is missing: `make test` installs Debian's chromium (apt-get install chromium)", testChrome)
	}
	p, err := New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	dir := p.dir
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Error(err)
		}
		if left := processesUsing(dir); len(left) > 0 {
			killLeftovers(dir)
			t.Errorf("processes of the pool still ran after Close: %v", left)
		}
		os.RemoveAll(dir)
	})
	return p
}

// lease leases a tab or fails the test; the tab is released at the end.
func lease(t *testing.T, p *Pool) *Lease {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	l, err := p.Lease(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Release)
	return l
}

// eval evaluates expr in the lease's tab.
func eval[T any](t *testing.T, l *Lease, expr string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(l.Context(), 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluating %s: %v", expr, err)
	}
	return v
}

// navigate loads url in the lease's tab.
func navigate(t *testing.T, l *Lease, url string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(l.Context(), 10*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
		t.Fatalf("navigating to %s: %v", url, err)
	}
}

// waitDone waits for the lease to end and returns its Err.
func waitDone(t *testing.T, l *Lease, within time.Duration) error {
	t.Helper()
	select {
	case <-l.Done():
		return l.Err()
	case <-time.After(within):
		t.Fatalf("the lease did not end within %s", within)
		return nil
	}
}

// eventually polls cond every 20ms until it holds, or fails the test.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// gone reports whether no process names dir and dir no longer exists.
func gone(dir string) bool {
	_, err := os.Stat(dir)
	return len(processesUsing(dir)) == 0 && errors.Is(err, os.ErrNotExist)
}

func TestConfig(t *testing.T) {
	t.Setenv("CHROME_PATH", "")
	tests := []struct {
		name    string
		cfg     Config
		env     string
		wantErr []string // substrings of the error; none means valid
	}{
		{name: "zero config takes the defaults", cfg: Config{}},
		{name: "negative numbers", cfg: Config{Browsers: -1, TabsPerBrowser: -2, QueueLength: -1, MaxRSSMiB: -5, RecycleAfter: -time.Second},
			wantErr: []string{"Browsers is -1", "TabsPerBrowser is -2", "QueueLength is -1", "MaxRSSMiB is -5", "RecycleAfter is -1s"}},
		{name: "negative durations", cfg: Config{WaitTimeout: -1, ProbeInterval: -1, ProbeTimeout: -1, StartTimeout: -1, CallTimeout: -1},
			wantErr: []string{"WaitTimeout", "ProbeInterval", "ProbeTimeout", "StartTimeout", "CallTimeout"}},
		{name: "missing browser", cfg: Config{ChromePath: "/nonexistent/chromium"},
			wantErr: []string{`"/nonexistent/chromium"`, "CHROME_PATH", "never downloads"}},
		{name: "CHROME_PATH is used", env: "/nonexistent/from-env", wantErr: []string{`"/nonexistent/from-env"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("CHROME_PATH", tt.env)
			got, err := tt.cfg.withDefaults()
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				if got.Browsers != 1 || got.TabsPerBrowser != 4 || got.QueueLength != 0 || got.WaitTimeout != 5*time.Second ||
					got.ChromePath != DefaultChromePath || got.Logger == nil {
					t.Errorf("defaults not applied: %+v", got)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
		})
	}

	t.Run("New creates nothing on a bad config", func(t *testing.T) {
		tmp := t.TempDir()
		if _, err := New(t.Context(), Config{ChromePath: "/nonexistent/chromium", TempDir: tmp}); err == nil {
			t.Fatal("no error")
		}
		if entries, _ := os.ReadDir(tmp); len(entries) > 0 {
			t.Errorf("New left %v behind", entries)
		}
	})
}

func TestLeaseRunsActionsAndReleases(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `<!doctype html><title>pool test</title><p id=x>hello</p>`)
	}))
	defer srv.Close()
	p := newPool(t, testConfig(t))

	l := lease(t, p)
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", l.b.pid))
	if err != nil {
		t.Fatal(err)
	}
	args := strings.Split(string(cmdline), "\x00")
	want := []string{"--headless", "--disable-background-networking", "--disable-component-update",
		"--disable-sync", "--disable-quic", "--no-first-run", "--user-data-dir=" + l.b.dir}
	if os.Geteuid() == 0 {
		want = append(want, "--no-sandbox")
	}
	for _, flag := range want {
		if !slices.Contains(args, flag) {
			t.Errorf("the browser runs without %s: %q", flag, args)
		}
	}
	if !strings.HasPrefix(l.b.dir, p.dir+"/") {
		t.Errorf("the profile %s is not in the pool's directory %s", l.b.dir, p.dir)
	}

	navigate(t, l, srv.URL)
	if got := eval[int](t, l, "6 * 7"); got != 42 {
		t.Errorf("6 * 7 = %d", got)
	}
	title, err := chromedp.Run(l.Context(), chromedp.Title())
	if err != nil || title != "pool test" {
		t.Errorf("title %q, %v", title, err)
	}
	if l.Err() != nil {
		t.Errorf("live lease has Err %v", l.Err())
	}

	l.Release()
	if err := waitDone(t, l, time.Second); !errors.Is(err, ErrReleased) {
		t.Errorf("Err after Release = %v, want ErrReleased", err)
	}
	l.Release() // a second Release is harmless
	s := p.Stats()
	if s.Leases != 1 || s.Busy != 0 || s.Browsers != 1 || s.BrowsersStarted != 1 {
		t.Errorf("stats after one lease: %+v", s)
	}
}

// A lease's cookies and storage live in its own browser context, and that
// context is disposed of on Release.
func TestLeasesDoNotShareCookies(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/set" {
			http.SetCookie(w, &http.Cookie{Name: "sid", Value: "secret", Path: "/"})
		}
		fmt.Fprintf(w, `<!doctype html><p id=cookie>%s</p>`, r.Header.Get("Cookie"))
	}))
	defer srv.Close()
	p := newPool(t, testConfig(t))

	first := lease(t, p)
	navigate(t, first, srv.URL+"/set")
	eval[chromedp.Void](t, first, `localStorage.setItem("k", "v")`)
	if got := eval[string](t, first, "document.cookie"); got != "sid=secret" {
		t.Fatalf("the first lease's cookie = %q", got)
	}
	firstContext := first.browserContext
	first.Release()

	second := lease(t, p)
	if second.b != first.b {
		t.Fatal("the second lease is not in the same browser: the test proves nothing")
	}
	navigate(t, second, srv.URL+"/get")
	if got := eval[string](t, second, "document.getElementById('cookie').textContent"); got != "" {
		t.Errorf("the server got Cookie %q in the second lease", got)
	}
	if got := eval[string](t, second, "document.cookie"); got != "" {
		t.Errorf("the second lease sees cookie %q", got)
	}
	if got := eval[any](t, second, `localStorage.getItem("k")`); got != nil {
		t.Errorf("the second lease sees localStorage %v", got)
	}
	ctx, cancel := context.WithTimeout(second.Context(), 5*time.Second)
	defer cancel()
	res, err := chromedp.CallBrowser(ctx, target.GetBrowserContexts, cdp.Empty{})
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(res.BrowserContextIDs, firstContext) {
		t.Errorf("the first lease's browser context %s still exists", firstContext)
	}
}

func TestCapacity(t *testing.T) {
	cfg := testConfig(t)
	cfg.QueueLength = 1
	cfg.WaitTimeout = time.Second
	p := newPool(t, cfg)

	first := lease(t, p)

	type result struct {
		l   *Lease
		err error
	}
	queued := make(chan result, 1)
	go func() {
		l, err := p.Lease(t.Context())
		queued <- result{l, err}
	}()
	eventually(t, 5*time.Second, "the second Lease queues", func() bool { return p.Stats().Waiting == 1 })

	start := time.Now()
	_, err := p.Lease(t.Context())
	if !errors.Is(err, ErrCapacity) {
		t.Fatalf("Lease with a full queue: %v, want ErrCapacity", err)
	}
	if d := time.Since(start); d > 200*time.Millisecond {
		t.Errorf("Lease with a full queue took %s; it must fail at once", d)
	}
	if !strings.HasPrefix(err.Error(), "rendering capacity full, DOM mode still available") {
		t.Errorf("error text %q", err)
	}

	first.Release()
	var second *Lease
	select {
	case r := <-queued:
		if r.err != nil {
			t.Fatalf("the queued Lease failed: %v", r.err)
		}
		second = r.l
		t.Cleanup(second.Release)
	case <-time.After(5 * time.Second):
		t.Fatal("the queued Lease did not get the released tab")
	}
	if got := eval[int](t, second, "1 + 1"); got != 2 {
		t.Errorf("the queued lease's tab: 1 + 1 = %d", got)
	}

	// With the tab busy, a Lease waits WaitTimeout and gives up.
	start = time.Now()
	_, err = p.Lease(t.Context())
	d := time.Since(start)
	if !errors.Is(err, ErrCapacity) {
		t.Fatalf("Lease after the wait: %v, want ErrCapacity", err)
	}
	if d < cfg.WaitTimeout || d > cfg.WaitTimeout+2*time.Second {
		t.Errorf("Lease gave up after %s, want about WaitTimeout %s", d, cfg.WaitTimeout)
	}

	// A canceled context ends the wait with its own error.
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(100*time.Millisecond, cancel)
	start = time.Now()
	_, err = p.Lease(ctx)
	if !errors.Is(err, context.Canceled) || errors.Is(err, ErrCapacity) {
		t.Errorf("Lease with a canceled context: %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("the canceled Lease returned after %s", d)
	}
	if _, err := p.Lease(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Lease with a context canceled before: %v", err)
	}

	s := p.Stats()
	want := Stats{Leases: 2, Waits: 3, Rejections: 1, Timeouts: 1, BrowsersStarted: 1, Browsers: 1, Busy: 1}
	if s != want {
		t.Errorf("stats:\n got %+v\nwant %+v", s, want)
	}
}

func TestBrowserCrashIsReplaced(t *testing.T) {
	cfg := testConfig(t)
	cfg.TabsPerBrowser = 2
	p := newPool(t, cfg)

	l := lease(t, p)
	navigate(t, l, "data:text/html,<p>before the crash</p>")
	pid, dir := l.b.pid, l.b.dir

	killed := time.Now()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err := waitDone(t, l, 5*time.Second)
	noticed := time.Since(killed)
	if !errors.Is(err, ErrBrowserLost) {
		t.Fatalf("Err after the crash = %v, want ErrBrowserLost", err)
	}
	t.Logf("lease ended %s after SIGKILL: %v", noticed.Round(time.Millisecond), err)

	var next *Lease
	eventually(t, 10*time.Second, "a Lease on the replacement", func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		next, err = p.Lease(ctx)
		return err == nil
	})
	recovered := time.Since(killed)
	t.Cleanup(next.Release)
	t.Logf("crash recovery: a new lease works %s after SIGKILL of the browser", recovered.Round(time.Millisecond))
	if next.b.pid == pid {
		t.Fatal("the new lease is on the killed browser")
	}
	if got := eval[int](t, next, "2 + 3"); got != 5 {
		t.Errorf("2 + 3 = %d on the replacement", got)
	}

	start := time.Now()
	l.Release()
	if d := time.Since(start); d > time.Second {
		t.Errorf("releasing the lease of a dead browser took %s", d)
	}
	eventually(t, 5*time.Second, "the dead browser's processes and profile are gone", func() bool { return gone(dir) })
	if s := p.Stats(); s.BrowsersLost != 1 || s.BrowsersStarted != 2 || s.Browsers != 1 {
		t.Errorf("stats: %+v", s)
	}
}

// A tab that crashes or is closed ends its own lease, not the browser's
// other leases, and the browser goes on serving.
func TestTabLossEndsOnlyThatLease(t *testing.T) {
	cfg := testConfig(t)
	cfg.TabsPerBrowser = 2
	p := newPool(t, cfg)
	other := lease(t, p)
	pid := other.b.pid

	for _, tt := range []struct {
		name string
		kill func(l *Lease)
		want string
	}{
		{"crash", func(l *Lease) {
			// Page.crash never gets an answer: the renderer is gone.
			go chromedp.Call(l.Context(), page.Crash, cdp.Empty{})
		}, "Inspector.targetCrashed"},
		{"close", func(l *Lease) {
			ctx, cancel := context.WithTimeout(other.Context(), 5*time.Second)
			defer cancel()
			if _, err := chromedp.CallBrowser(ctx, target.CloseTarget, target.CloseTargetParams{TargetID: l.tab.TargetID}); err != nil {
				t.Fatal(err)
			}
		}, "detached"},
	} {
		l := lease(t, p)
		navigate(t, l, "data:text/html,<p>"+tt.name+"</p>")
		tt.kill(l)
		err := waitDone(t, l, 5*time.Second)
		if !errors.Is(err, ErrTabLost) || !strings.Contains(err.Error(), tt.want) {
			t.Fatalf("%s: Err = %v, want ErrTabLost for %s", tt.name, err, tt.want)
		}
		if other.Err() != nil {
			t.Fatalf("%s: the other lease ended too: %v", tt.name, other.Err())
		}
		if got := eval[int](t, other, "3 * 3"); got != 9 {
			t.Errorf("%s: 3 * 3 = %d in the other tab", tt.name, got)
		}
		l.Release()
	}
	again := lease(t, p)
	if again.b.pid != pid {
		t.Errorf("losing tabs replaced the browser")
	}
	if got := eval[int](t, again, "4 * 4"); got != 16 {
		t.Errorf("4 * 4 = %d in a new tab", got)
	}
	if s := p.Stats(); s.TabsLost != 2 || s.BrowsersLost != 0 {
		t.Errorf("stats: %+v", s)
	}
}

// A tab or a browser that stops answering fails its probe.
func TestUnresponsive(t *testing.T) {
	t.Run("tab", func(t *testing.T) {
		cfg := testConfig(t)
		cfg.ProbeTimeout = 500 * time.Millisecond
		p := newPool(t, cfg)
		l := lease(t, p)
		go func() {
			// Blocks the renderer's main thread until the tab closes.
			_, _ = chromedp.Run(l.Context(), chromedp.Evaluate[chromedp.Void]("for (;;) {}"))
		}()
		err := waitDone(t, l, 5*time.Second)
		if !errors.Is(err, ErrTabLost) || !strings.Contains(err.Error(), "Runtime.evaluate") {
			t.Fatalf("Err of a hung tab = %v, want ErrTabLost after a probe", err)
		}
		start := time.Now()
		l.Release()
		t.Logf("releasing the hung tab took %s", time.Since(start).Round(time.Millisecond))
		if got := eval[int](t, lease(t, p), "5 + 5"); got != 10 {
			t.Errorf("5 + 5 = %d in the next tab", got)
		}
	})

	t.Run("browser", func(t *testing.T) {
		cfg := testConfig(t)
		cfg.ProbeTimeout = 500 * time.Millisecond
		cfg.QueueLength = 1 // the next Lease waits for the replacement
		p := newPool(t, cfg)
		l := lease(t, p)
		pid, dir := l.b.pid, l.b.dir
		if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		err := waitDone(t, l, 5*time.Second)
		if !errors.Is(err, ErrBrowserLost) || !strings.Contains(err.Error(), "Browser.getVersion") {
			t.Fatalf("Err of a hung browser = %v, want ErrBrowserLost after a probe", err)
		}
		l.Release()
		next := lease(t, p)
		if next.b.pid == pid {
			t.Fatal("the new lease is on the hung browser")
		}
		eventually(t, 5*time.Second, "the hung browser is killed", func() bool { return gone(dir) })
	})
}

func TestRecycleAfterLeases(t *testing.T) {
	cfg := testConfig(t)
	cfg.TabsPerBrowser = 2
	cfg.QueueLength = 1
	cfg.RecycleAfterLeases = 2
	p := newPool(t, cfg)

	first, inFlight := lease(t, p), lease(t, p) // the second lease reaches the limit
	old, dir := inFlight.b.pid, inFlight.b.dir
	navigate(t, inFlight, "data:text/html,<p>in flight</p>")
	first.Release()

	// The draining browser takes no lease: this one waits for the
	// replacement.
	next := lease(t, p)
	if next.b.pid == old {
		t.Fatal("a lease went to the draining browser")
	}
	if inFlight.Err() != nil {
		t.Fatalf("recycling ended the lease in flight: %v", inFlight.Err())
	}
	if got := eval[string](t, inFlight, "document.body.textContent"); got != "in flight" {
		t.Errorf("the lease in flight reads %q", got)
	}
	if gone(dir) {
		t.Fatal("the draining browser stopped before its last lease was released")
	}
	inFlight.Release()
	// The browser's files and processes go first; the pool forgets it when
	// its supervisor returns, a moment later.
	eventually(t, 5*time.Second, "the drained browser stops", func() bool { return gone(dir) && p.Stats().Browsers == 1 })
	if s := p.Stats(); s.BrowsersRecycled != 1 || s.BrowsersLost != 0 || s.Browsers != 1 {
		t.Errorf("stats: %+v", s)
	}
}

func TestRecycleOnAgeAndMemory(t *testing.T) {
	tests := []struct {
		name string
		set  func(*Config)
	}{
		{"age", func(c *Config) { c.RecycleAfter = 500 * time.Millisecond }},
		{"memory", func(c *Config) { c.MaxRSSMiB = 1 }}, // every browser is over it
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.QueueLength = 1
			tt.set(&cfg)
			p := newPool(t, cfg)

			l := lease(t, p)
			old := l.b.pid
			if rss, err := groupRSS(old); err != nil || rss < 10<<20 {
				t.Fatalf("RSS of the browser's process group: %d bytes, %v", rss, err)
			}
			eventually(t, 5*time.Second, "the browser drains", func() bool { return p.Stats().BrowsersRecycled >= 1 })
			if l.Err() != nil {
				t.Fatalf("draining ended the lease: %v", l.Err())
			}
			if got := eval[int](t, l, "1 + 2"); got != 3 {
				t.Errorf("1 + 2 = %d on the draining browser", got)
			}
			l.Release()
			if next := lease(t, p); next.b.pid == old {
				t.Error("a lease went to the drained browser")
			}
		})
	}
}

func TestCloseLeavesNothing(t *testing.T) {
	cfg := testConfig(t)
	cfg.Browsers = 2
	cfg.QueueLength = 1
	p := newPool(t, cfg)
	l := lease(t, p)
	navigate(t, l, "data:text/html,<p>open at Close</p>")
	if n := len(processesUsing(p.dir)); n < 4 {
		t.Fatalf("only %d processes name the pool's directory; the check below would prove nothing", n)
	}
	queued := make(chan error, 1)
	go func() {
		if other, err := p.Lease(t.Context()); err == nil { // the second browser's tab
			defer other.Release()
		}
		_, err := p.Lease(t.Context())
		queued <- err
	}()
	eventually(t, 5*time.Second, "a Lease queues", func() bool { return p.Stats().Waiting == 1 })

	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if left := processesUsing(p.dir); len(left) > 0 {
		t.Errorf("processes still run after Close: %v", left)
	}
	if _, err := os.Stat(p.dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the pool's directory is still there: %v", err)
	}
	if err := waitDone(t, l, time.Second); !errors.Is(err, ErrClosed) {
		t.Errorf("Err of a lease at Close = %v, want ErrClosed", err)
	}
	if err := <-queued; !errors.Is(err, ErrClosed) {
		t.Errorf("a queued Lease at Close got %v, want ErrClosed", err)
	}
	start := time.Now()
	l.Release()
	if d := time.Since(start); d > time.Second {
		t.Errorf("Release after Close took %s", d)
	}
	if _, err := p.Lease(t.Context()); !errors.Is(err, ErrClosed) {
		t.Errorf("Lease after Close: %v, want ErrClosed", err)
	}
	if err := p.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// childEnv makes the test binary run the child side of
// TestBrowsersDieWithTheServer.
const childEnv = "BROWSERPOOL_TEST_CHILD_DIR"

// When the Go process is killed, no Chromium process of its pool remains.
func TestBrowsersDieWithTheServer(t *testing.T) {
	if dir := os.Getenv(childEnv); dir != "" {
		runChild(t, dir)
		return
	}
	// Not t.TempDir: its long name would not fit Chromium's socket paths.
	tmp, err := os.MkdirTemp("", "bp-child-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(tmp) })
	cmd := exec.Command(os.Args[0], "-test.run=^TestBrowsersDieWithTheServer$", "-test.count=1")
	cmd.Env = append(os.Environ(), childEnv+"="+tmp)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if left := processesUsing(tmp); len(left) > 0 {
			killLeftovers(tmp)
			t.Errorf("processes left: %v", left)
		}
	})
	ready := make(chan string, 1)
	var childOut strings.Builder // written before ready closes
	go func() {
		defer close(ready)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if dir, ok := strings.CutPrefix(sc.Text(), "READY "); ok {
				ready <- dir
				io.Copy(io.Discard, out)
				return
			}
			childOut.WriteString(sc.Text() + "\n")
		}
	}()
	var dir string
	select {
	case d, ok := <-ready:
		if !ok {
			t.Fatalf("the child exited before its pool started:\n%s", childOut.String())
		}
		dir = d
	case <-time.After(30 * time.Second):
		t.Fatal("the child did not start its pool")
	}
	if n := len(processesUsing(dir)); n < 4 {
		t.Fatalf("only %d processes of the child's pool", n)
	}
	killed := time.Now()
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	eventually(t, 10*time.Second, "every browser process of the killed server ends", func() bool {
		return len(processesUsing(dir)) == 0
	})
	t.Logf("the browsers ended %s after SIGKILL of their Go process", time.Since(killed).Round(time.Millisecond))

	// Nobody deleted the profiles; the next pool in the same directory
	// does, once they are old enough.
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("the killed pool's directory: %v", err)
	}
	old := time.Now().Add(-2 * staleAfter)
	if err := os.Chtimes(dir, old, old); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t)
	cfg.TempDir = tmp
	newPool(t, cfg)
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the next pool left the killed pool's profiles: %v", err)
	}
}

// runChild starts a pool with a leased tab, says where it lives and waits to
// be killed.
func runChild(t *testing.T, tmp string) {
	cfg := testConfig(t)
	cfg.TempDir = tmp
	cfg.Browsers = 2
	p, err := New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	l, err := p.Lease(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(l.Context(), chromedp.Navigate("data:text/html,<p>child</p>")); err != nil {
		t.Fatal(err)
	}
	fmt.Printf("READY %s\n", p.dir)
	time.Sleep(time.Minute) // killed long before
}

func TestProcParsing(t *testing.T) {
	for _, tt := range []struct {
		stat string
		want int
	}{
		{"123 (chromium) S 1 123 123 0 -1", 123},
		{"456 (a) b) (c) R 7 89 89 0 -1", 89},
		{"garbage", -1},
	} {
		if got := statPgrp([]byte(tt.stat)); got != tt.want {
			t.Errorf("statPgrp(%q) = %d, want %d", tt.stat, got, tt.want)
		}
	}
	status := "Name:\tchromium\nVmPeak:\t  999 kB\nVmRSS:\t  2048 kB\nThreads: 3\n"
	if got := kBField([]byte(status), "VmRSS:"); got != 2048<<10 {
		t.Errorf("VmRSS = %d", got)
	}
	if rss, err := groupRSS(syscall.Getpgrp()); err != nil || rss <= 0 {
		t.Errorf("groupRSS of the test's own group: %d, %v", rss, err)
	}
	if pss, err := groupPSS(syscall.Getpgrp()); err != nil || pss <= 0 {
		t.Errorf("groupPSS of the test's own group: %d, %v", pss, err)
	}
}

// BenchmarkLeaseRelease measures a lease of a fresh incognito tab and its
// release, on one running browser.
func BenchmarkLeaseRelease(b *testing.B) {
	p, err := New(b.Context(), Config{ChromePath: testChrome, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	for b.Loop() {
		l, err := p.Lease(b.Context())
		if err != nil {
			b.Fatal(err)
		}
		l.Release()
	}
}
