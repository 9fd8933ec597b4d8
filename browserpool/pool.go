// Package browserpool runs a pool of headless Chromium processes, driven over
// the DevTools protocol with chromedp, and lends out their tabs.
//
// A Lease is one tab in a fresh incognito browser context
// (Target.createBrowserContext) of one of the pool's browsers; Release
// disposes of the context, and with it every page, cookie and cache entry of
// the lease. When every tab is busy a Lease call waits in a bounded FIFO
// queue for at most Config.WaitTimeout, and fails with ErrCapacity when the
// queue is full or the wait ends: it never hangs.
//
// The pool watches its browsers and the leased tabs: a periodic probe with a
// deadline, crash and detach events, and the end of the browser's DevTools
// pipe. A dead browser is killed with its whole process group and replaced;
// the Done channel of every lease it held is closed, with the reason in Err,
// so that the lease's owner can lease again and rebuild. Browsers are also
// recycled after a number of leases, an age or a memory cap: a recycled
// browser first drains (it takes no new lease, its replacement starts at
// once) and stops when its last lease is released.
//
// Process hygiene: each browser runs in its own process group with a
// parent-death signal, in a profile directory under the pool's temporary
// directory; stopping a browser kills the group and every process that
// still names the profile on its command line, then deletes the profile.
// Close does that for every browser and deletes the pool's directory.
//
// The pool never blocks inside a CDP event handler: it reads events through
// chromedp's iterators and channels, in goroutines of its own. Every CDP call
// it makes has a deadline.
package browserpool

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/chromedp/chromedp"
)

var (
	// ErrCapacity is returned by Lease when every tab is busy and the queue
	// is full, or the wait for a tab took longer than Config.WaitTimeout.
	// Its text is meant for the agent; the wrapping error adds the numbers
	// an operator needs.
	ErrCapacity = errors.New("rendering capacity full, DOM mode still available")

	// ErrClosed is returned by Lease after Close, and is the Err of the
	// leases that Close ended.
	ErrClosed = errors.New("browserpool: the pool is closed")

	// ErrReleased is the Err of a lease after Release.
	ErrReleased = errors.New("browserpool: the lease was released")

	// ErrTabLost is the Err of a lease whose tab crashed, was closed or
	// stopped answering while its browser lived on. Release the lease and
	// lease again.
	ErrTabLost = errors.New("browserpool: the leased tab died; release the lease and lease again")

	// ErrBrowserLost is the Err of a lease whose browser died or stopped
	// answering; the pool is already starting a replacement. Release the
	// lease and lease again.
	ErrBrowserLost = errors.New("browserpool: the browser of the lease died; release the lease and lease again")
)

// Stats are the pool's counters since New, and its occupancy now.
type Stats struct {
	Leases     uint64 // leases handed out
	Waits      uint64 // Lease calls that had to queue for a tab
	Rejections uint64 // Lease calls refused at once because the queue was full
	Timeouts   uint64 // Lease calls that waited WaitTimeout for a tab in vain
	TabsLost   uint64 // leases ended by a tab crash, detach or failed probe

	BrowsersStarted  uint64 // browser processes started, replacements included
	BrowsersLost     uint64 // browsers that died or failed a probe
	BrowsersRecycled uint64 // browsers drained for their lease count, age or memory

	Browsers int // browsers running now, draining ones included
	Busy     int // tabs leased or being opened now
	Waiting  int // Lease calls in the queue now
}

// Pool is a pool of headless Chromium browsers. Its methods are safe for
// concurrent use. Create it with New and end it with Close.
type Pool struct {
	cfg       Config
	log       *slog.Logger
	dir       string                         // the pool's temporary directory
	allocOpts []chromedp.ExecAllocatorOption // shared by every browser

	// ctx is the parent of every browser process; Close cancels it.
	ctx    context.Context
	cancel context.CancelFunc

	// wg counts the supervisors and the goroutines that watch and stop
	// browsers; Close waits for it.
	wg sync.WaitGroup

	mu       sync.Mutex
	closed   bool
	browsers []*browser // started and not yet stopped, in start order
	waiters  list.List  // of *waiter, oldest first
	nextID   int
	stats    Stats // counters only; the gauges are computed by Stats
}

const (
	// dirPattern names a pool's temporary directory (os.MkdirTemp replaces
	// the "*"; removeStale globs it).
	dirPattern = "cobrowse-bp-*"

	// maxSocketPath is the longest path of a unix socket on Linux.
	maxSocketPath = 107
	// socketSuffix is as long as the longest path Chromium's singleton
	// socket takes under the pool's directory: the profile directory of
	// browser number 1e9 - 1, then Chromium's own directory and name.
	socketSuffix = "/b999999999/org.chromium.Chromium.XXXXXX/SingletonSocket"
)

// waiter is a Lease call in the queue. The pool hands it a reserved tab of b,
// or an error, and then closes ready.
type waiter struct {
	ready chan struct{}
	b     *browser
	err   error
}

// New starts a pool: it checks the config, creates the pool's temporary
// directory and starts cfg.Browsers browsers, in parallel. It fails if any of
// them does not start, so that a broken installation shows at once; ctx
// bounds only this start.
func New(ctx context.Context, cfg Config) (*Pool, error) {
	if err := checkPlatform(); err != nil {
		return nil, err
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	log := cfg.Logger.With("component", "browserpool")
	for _, stale := range removeStale(cfg.TempDir) {
		log.Info("deleted the browser profiles a killed pool left behind", "dir", stale)
	}
	dir, err := os.MkdirTemp(cfg.TempDir, dirPattern)
	if err != nil {
		return nil, fmt.Errorf("browserpool: creating the temporary directory for browser profiles (set Config.TempDir to a writable directory): %w", err)
	}
	// Chromium puts a unix socket in its TMPDIR, which start sets to the
	// profile directory, and a socket path has at most 107 bytes.
	if n := len(dir) + len(socketSuffix); n > maxSocketPath {
		os.Remove(dir)
		return nil, fmt.Errorf("browserpool: the temporary directory %s is too long: Chromium's socket path in it would have %d bytes, over the %d a unix socket allows; set Config.TempDir to a shorter directory (such as /tmp)",
			dir, n, maxSocketPath)
	}
	p := &Pool{
		cfg:       cfg,
		log:       log,
		dir:       dir,
		allocOpts: allocatorOptions(cfg.ChromePath),
	}
	p.ctx, p.cancel = context.WithCancel(context.Background())

	// ctx ending stops the start; the browsers that did start are then
	// cleaned up below.
	stopStart := context.AfterFunc(ctx, p.cancel)
	first := make([]*browser, cfg.Browsers)
	errs := make([]error, cfg.Browsers)
	var wg sync.WaitGroup
	for i := range first {
		wg.Go(func() { first[i], errs[i] = p.start() })
	}
	wg.Wait()
	err = errors.Join(errs...)
	if !stopStart() {
		err = fmt.Errorf("browserpool: start interrupted: %w", ctx.Err())
	}
	if err != nil {
		for _, b := range first {
			if b != nil {
				p.wg.Go(func() { p.stop(b) })
			}
		}
		return nil, errors.Join(err, p.Close())
	}
	for _, b := range first {
		p.register(b)
		p.wg.Go(func() { p.supervise(b) })
	}
	p.log.Info("browser pool started", "browsers", cfg.Browsers, "tabs_per_browser", cfg.TabsPerBrowser,
		"queue", cfg.QueueLength, "chrome", cfg.ChromePath, "dir", dir)
	return p, nil
}

// Lease returns a tab in a fresh incognito browser context. When every tab is
// busy it waits in the queue, at most Config.WaitTimeout; it fails with an
// error wrapping ErrCapacity when the queue is full or the wait times out,
// with ctx.Err() when ctx ends first, and with ErrClosed after Close. The
// caller must call Release on the lease when done, also after its Done
// channel closed.
func (p *Pool) Lease(ctx context.Context) (*Lease, error) {
	deadline := time.Now().Add(p.cfg.WaitTimeout)
	for attempt := 1; ; attempt++ {
		b, err := p.reserve(ctx, deadline)
		if err != nil {
			return nil, err
		}
		l, err := p.open(ctx, b)
		if err == nil {
			return l, nil
		}
		p.unreserve(b)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		// A browser that died while the tab opened is being replaced:
		// try once more, on another browser or on the replacement.
		if attempt == 1 && b.isStopping(p) {
			continue
		}
		return nil, err
	}
}

// Stats returns the pool's counters and occupancy.
func (p *Pool) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.stats
	s.Browsers = len(p.browsers)
	for _, b := range p.browsers {
		s.Busy += b.active
	}
	s.Waiting = p.waiters.Len()
	return s
}

// Close ends every lease (their Err is ErrClosed), fails the queued Lease
// calls, kills every browser with its process group and deletes the pool's
// temporary directory. It waits for all of this, and is safe to call more
// than once. Release stays safe to call on the leases it ended.
func (p *Pool) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		p.wg.Wait()
		return nil
	}
	p.closed = true
	for e := p.waiters.Front(); e != nil; e = p.waiters.Front() {
		w := p.waiters.Remove(e).(*waiter)
		w.err = ErrClosed
		close(w.ready)
	}
	var leases []*Lease
	var stop []*browser
	for _, b := range p.browsers {
		for l := range b.leases {
			leases = append(leases, l)
		}
		if b.state == ready {
			close(b.retired)
		}
		b.state = lost
		if !b.stopping {
			b.stopping = true
			stop = append(stop, b)
		}
	}
	p.mu.Unlock()

	for _, l := range leases {
		l.fail(ErrClosed)
	}
	p.cancel()
	for _, b := range stop {
		p.wg.Go(func() { p.stop(b) })
	}
	p.wg.Wait()

	// Every browser has been stopped; this sweep only finds a process that
	// escaped both its group and its own profile's sweep.
	if n := killLeftovers(p.dir); n > 0 {
		p.log.Warn("killed leftover browser processes", "count", n, "dir", p.dir)
	}
	if err := removeAllRetry(p.dir); err != nil {
		return fmt.Errorf("browserpool: deleting the temporary directory %s (delete it by hand): %w", p.dir, err)
	}
	p.log.Info("browser pool closed")
	return nil
}

// reserve takes a free tab, or queues for one until deadline. On success the
// tab is reserved on the returned browser (its active count includes it).
func (p *Pool) reserve(ctx context.Context, deadline time.Time) (*browser, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, ErrClosed
	}
	// Queued calls go first: a new call takes a free tab only when nobody
	// waits.
	if p.waiters.Len() == 0 {
		if b := p.pickLocked(); b != nil {
			p.reserveLocked(b)
			p.mu.Unlock()
			return b, nil
		}
	}
	if p.waiters.Len() >= p.cfg.QueueLength {
		p.stats.Rejections++
		busy, waiting := p.busyLocked(), p.waiters.Len()
		p.mu.Unlock()
		return nil, fmt.Errorf("%w (browserpool: %d of %d tabs busy or starting, %d Lease calls queued, queue length %d; raise Browsers, TabsPerBrowser or QueueLength)",
			ErrCapacity, busy, p.cfg.Browsers*p.cfg.TabsPerBrowser, waiting, p.cfg.QueueLength)
	}
	w := &waiter{ready: make(chan struct{})}
	e := p.waiters.PushBack(w)
	p.stats.Waits++
	p.mu.Unlock()

	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	timedOut := false
	select {
	case <-w.ready:
		return w.b, w.err
	case <-timer.C:
		timedOut = true
	case <-ctx.Done():
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-w.ready:
		// Served while we gave up. A timed-out call keeps the tab; a
		// canceled one hands it on.
		if w.err != nil || timedOut {
			return w.b, w.err
		}
		p.unreserveLocked(w.b)
		return nil, ctx.Err()
	default:
		p.waiters.Remove(e)
	}
	if !timedOut {
		return nil, ctx.Err()
	}
	p.stats.Timeouts++
	return nil, fmt.Errorf("%w (browserpool: no tab free after waiting %s; raise Browsers, TabsPerBrowser or WaitTimeout)", ErrCapacity, p.cfg.WaitTimeout)
}

// pickLocked returns the ready browser with the fewest busy tabs that has a
// free one, or nil.
func (p *Pool) pickLocked() *browser {
	var best *browser
	for _, b := range p.browsers {
		if b.state != ready || b.active >= p.cfg.TabsPerBrowser {
			continue
		}
		if best == nil || b.active < best.active {
			best = b
		}
	}
	return best
}

// reserveLocked counts a tab of b as busy, and starts draining b when it
// reached its lease limit.
func (p *Pool) reserveLocked(b *browser) {
	b.active++
	b.served++
	if n := p.cfg.RecycleAfterLeases; n > 0 && b.served >= n {
		p.drainLocked(b, fmt.Sprintf("served %d leases", b.served))
	}
}

// unreserve gives back a tab reserved for a lease that did not open.
func (p *Pool) unreserve(b *browser) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.unreserveLocked(b)
}

// unreserveLocked frees a busy tab of b: it hands the tab to the queue, or
// stops b if it is draining and this was its last tab.
func (p *Pool) unreserveLocked(b *browser) {
	b.active--
	if b.state == draining && b.active == 0 && !b.stopping {
		b.stopping = true
		p.wg.Go(func() { p.stop(b) })
	}
	p.dispatchLocked()
}

// dispatchLocked hands free tabs to the queued Lease calls, oldest first.
func (p *Pool) dispatchLocked() {
	for p.waiters.Len() > 0 {
		b := p.pickLocked()
		if b == nil {
			return
		}
		w := p.waiters.Remove(p.waiters.Front()).(*waiter)
		p.reserveLocked(b)
		w.b = b
		close(w.ready)
	}
}

// busyLocked returns the number of busy tabs of the browsers that take
// leases, plus the tabs of the browsers still starting.
func (p *Pool) busyLocked() int {
	busy, readyBrowsers := 0, 0
	for _, b := range p.browsers {
		if b.state == ready {
			busy += b.active
			readyBrowsers++
		}
	}
	return busy + max(0, p.cfg.Browsers-readyBrowsers)*p.cfg.TabsPerBrowser
}

// removeAllRetry deletes dir, trying again for a few seconds: a dying
// browser process can still create files in its profile.
func removeAllRetry(dir string) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := os.RemoveAll(dir)
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// slogf adapts chromedp's printf-style log funcs to the pool's logger. Its
// messages are about the protocol plumbing, so they go to Debug.
func slogf(log *slog.Logger, msg string) func(string, ...any) {
	return func(format string, args ...any) {
		log.Debug(msg, "detail", fmt.Sprintf(format, args...))
	}
}

// allocatorOptions returns the chromedp options every browser of the pool
// starts with: chromedp's defaults (headless and the quiet flags Puppeteer
// uses) and more flags that keep a browser from calling home, plus the
// process attributes of setProcAttr. The per-browser profile directory and
// environment come in browser.go.
func allocatorOptions(chromePath string) []chromedp.ExecAllocatorOption {
	opts := slices.Clone(chromedp.DefaultExecAllocatorOptions[:])
	opts = append(opts,
		chromedp.ExecPath(chromePath),
		chromedp.Headless,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-breakpad", true),
		// The browser gets only the environment that start gives it,
		// none of the server's secrets.
		chromedp.NoInheritEnv,
		chromedp.ModifyCmdFunc(setProcAttr),
	)
	if os.Geteuid() == 0 {
		// Chromium refuses to run as root with its sandbox.
		opts = append(opts, chromedp.NoSandbox)
	}
	return opts
}
