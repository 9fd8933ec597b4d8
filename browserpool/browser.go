package browserpool

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/chromedp"
)

// browserState is where a browser is in its life. It only moves forward.
type browserState int

const (
	ready    browserState = iota // takes leases
	draining                     // serves its leases, takes no new one, stops after the last
	lost                         // died, failed a probe, or the pool closed; its leases have failed
)

// browser is one Chromium process of the pool and its process group.
type browser struct {
	id      int
	pid     int // also the process group id
	dir     string
	started time.Time
	log     *slog.Logger

	// ctx is chromedp's context of the browser: the parent of every lease's
	// context. chromedp cancels it when the DevTools pipe closes; cancel
	// (chromedp's) kills the process and waits until it is reaped, and
	// allocCancel waits for the allocator's goroutines.
	ctx         context.Context
	cancel      context.CancelFunc
	allocCancel context.CancelFunc
	cdp         *chromedp.Browser

	// retired is closed when the browser stops taking leases, because it
	// drains or is lost; its supervisor then starts a replacement.
	retired chan struct{}

	// watchers counts the goroutines that watch the leases' tabs. stop
	// waits for them; they end with the browser's context.
	watchers sync.WaitGroup

	// Guarded by Pool.mu.
	state    browserState
	stopping bool // stop has been started (or is about to be)
	active   int  // tabs leased or being opened
	served   int  // tabs ever reserved
	leases   map[*Lease]struct{}
}

// start launches a browser in a new profile directory and waits, at most
// Config.StartTimeout, for its first answer.
func (p *Pool) start() (*browser, error) {
	p.mu.Lock()
	p.nextID++
	id := p.nextID
	p.mu.Unlock()

	dir := filepath.Join(p.dir, fmt.Sprintf("b%d", id)) // short: see socketSuffix
	// MkdirAll: a pool whose browsers all stayed down for long may have
	// lost its directory to another pool's removeStale.
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("browserpool: creating the profile directory of a browser: %w", err)
	}
	log := p.log.With("browser", id)
	opts := append(slices.Clone(p.allocOpts),
		chromedp.UserDataDir(dir),
		// HOME and TMPDIR in the profile keep every file the browser
		// writes (caches, shared memory files, crash reports) where stop
		// deletes them. They also put the directory on the command line of
		// Chromium's crashpad handlers, which leave the process group (they
		// daemonize; --disable-crashpad-for-testing would avoid them but
		// makes navigations fail), so that killLeftovers finds them.
		chromedp.Env("HOME="+dir, "TMPDIR="+dir, "PATH="+os.Getenv("PATH")),
	)
	allocCtx, allocCancel := chromedp.NewExecAllocator(p.ctx, opts...)
	ctx, cancel := chromedp.NewContext(allocCtx, chromedp.WithBrowserOption(
		chromedp.WithBrowserLogf(slogf(log, "chromedp")),
		chromedp.WithBrowserErrorf(slogf(log, "chromedp error")),
	))

	// The context of the first call owns the browser process, so it must
	// not carry a deadline; a timer bounds the start instead.
	t0 := time.Now()
	watchdog := time.AfterFunc(p.cfg.StartTimeout, cancel)
	_, err := chromedp.CallBrowser(ctx, cdpbrowser.GetVersion, cdp.Empty{})
	if !watchdog.Stop() && err == nil {
		err = context.DeadlineExceeded
	}
	if err != nil {
		cancel()
		allocCancel()
		killLeftovers(dir)
		_ = removeAllRetry(dir)
		return nil, fmt.Errorf("browserpool: starting %s within StartTimeout %s failed (run it by hand with --headless to see why; raise StartTimeout on a slow machine): %w",
			p.cfg.ChromePath, p.cfg.StartTimeout, err)
	}
	c := chromedp.FromContext(ctx)
	b := &browser{
		id:          id,
		pid:         c.Browser.Process().Pid,
		dir:         dir,
		started:     time.Now(),
		log:         log,
		ctx:         ctx,
		cancel:      cancel,
		allocCancel: allocCancel,
		cdp:         c.Browser,
		retired:     make(chan struct{}),
		leases:      make(map[*Lease]struct{}),
	}
	b.log = log.With("pid", b.pid)
	b.log.Info("browser started", "took", time.Since(t0).Round(time.Millisecond))
	return b, nil
}

// register makes a started browser take leases, serves the queue from it and
// starts its monitor. It stops the browser and returns false if the pool
// closed meanwhile.
func (p *Pool) register(b *browser) bool {
	p.mu.Lock()
	if p.closed {
		b.state, b.stopping = lost, true
		p.mu.Unlock()
		p.stop(b)
		return false
	}
	p.browsers = append(p.browsers, b)
	p.stats.BrowsersStarted++
	p.dispatchLocked()
	p.mu.Unlock()
	p.wg.Go(func() { p.monitor(b) })
	return true
}

// supervise keeps one of the pool's Config.Browsers places filled: when its
// browser retires, it starts the replacement, until the pool closes.
func (p *Pool) supervise(b *browser) {
	for {
		select {
		case <-b.retired:
		case <-p.ctx.Done():
			return
		}
		if b = p.replace(); b == nil {
			return
		}
	}
}

// replace starts and registers a new browser, retrying with a growing pause
// until it works or the pool closes (then it returns nil).
func (p *Pool) replace() *browser {
	pause := 250 * time.Millisecond
	for {
		b, err := p.start()
		if err == nil {
			if p.register(b) {
				return b
			}
			return nil
		}
		if p.ctx.Err() != nil {
			return nil
		}
		p.log.Error("starting a replacement browser failed; retrying", "err", err, "retry_in", pause)
		select {
		case <-time.After(pause):
		case <-p.ctx.Done():
			return nil
		}
		pause = min(2*pause, 30*time.Second)
	}
}

// monitor watches a browser until it stops: the end of its DevTools pipe
// (the process died), a periodic Browser.getVersion probe with a deadline,
// and the recycling limits of age and memory.
func (p *Pool) monitor(b *browser) {
	tick := time.NewTicker(p.cfg.ProbeInterval)
	defer tick.Stop()
	for {
		select {
		case <-b.cdp.LostConnection:
			p.lose(b, b.exitReason())
			return
		case <-b.ctx.Done():
			// stop canceled it, or chromedp did after the pipe closed.
			select {
			case <-b.cdp.LostConnection:
				p.lose(b, b.exitReason())
			default:
			}
			return
		case <-tick.C:
			ctx, cancel := context.WithTimeout(b.ctx, p.cfg.ProbeTimeout)
			_, err := cdp.Call(ctx, b.cdp, cdpbrowser.GetVersion, cdp.Empty{})
			cancel()
			if err != nil {
				select {
				case <-b.cdp.LostConnection:
					p.lose(b, b.exitReason())
				default:
					if b.ctx.Err() == nil {
						p.lose(b, fmt.Errorf("no answer to Browser.getVersion within ProbeTimeout %s: %w", p.cfg.ProbeTimeout, err))
					}
				}
				return
			}
			if reason := p.recycleReason(b); reason != "" {
				p.mu.Lock()
				p.drainLocked(b, reason)
				p.mu.Unlock()
			}
		}
	}
}

// exitReason describes why the DevTools pipe of b closed, with the exit
// status of the process when chromedp has it (it waits up to a second for
// the process to be reaped).
func (b *browser) exitReason() error {
	_, err := chromedp.CallBrowser(b.ctx, cdpbrowser.GetVersion, cdp.Empty{})
	return fmt.Errorf("the process exited or closed its DevTools pipe: %v", err)
}

// recycleReason returns why b must be recycled for its age or memory, or "".
func (p *Pool) recycleReason(b *browser) string {
	if d := p.cfg.RecycleAfter; d > 0 && time.Since(b.started) >= d {
		return fmt.Sprintf("running for longer than RecycleAfter %s", d)
	}
	if limit := p.cfg.MaxRSSMiB; limit > 0 {
		rss, err := groupRSS(b.pid)
		if err != nil {
			b.log.Warn("reading the browser's memory use failed", "err", err)
			return ""
		}
		if rss > int64(limit)<<20 {
			return fmt.Sprintf("resident memory %d MiB over MaxRSSMiB %d", rss>>20, limit)
		}
	}
	return ""
}

// drainLocked stops b from taking leases and has its supervisor start a
// replacement; b stops when its last lease is released, or now if it has
// none.
func (p *Pool) drainLocked(b *browser, reason string) {
	if b.state != ready {
		return
	}
	close(b.retired)
	b.state = draining
	p.stats.BrowsersRecycled++
	b.log.Info("recycling browser: draining it and starting a replacement", "reason", reason, "leases", b.active)
	if b.active == 0 && !b.stopping {
		b.stopping = true
		p.wg.Go(func() { p.stop(b) })
	}
}

// lose handles a browser that died or stopped answering: it fails its
// leases with the cause, has its supervisor start a replacement and kills
// what is left of it. A browser the pool is stopping on purpose is not lost.
func (p *Pool) lose(b *browser, cause error) {
	p.mu.Lock()
	if b.stopping {
		p.mu.Unlock()
		return
	}
	if b.state == ready {
		close(b.retired)
	}
	b.state, b.stopping = lost, true
	p.stats.BrowsersLost++
	leases := make([]*Lease, 0, len(b.leases))
	for l := range b.leases {
		leases = append(leases, l)
	}
	p.mu.Unlock()

	b.log.Warn("browser lost; replacing it", "leases", len(leases), "err", cause)
	err := fmt.Errorf("%w: browser %d (pid %d): %v", ErrBrowserLost, b.id, b.pid, cause)
	for _, l := range leases {
		l.fail(err)
	}
	p.stop(b)
}

// isStopping reports whether b is being stopped (lost, drained or closed).
func (b *browser) isStopping(p *Pool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return b.stopping
}

// stop kills b's process group, waits for chromedp and the tab watchers to
// let go of it, kills any process that still names its profile directory,
// deletes the directory and removes b from the pool. The caller has set
// b.stopping, so stop runs once per browser.
func (p *Pool) stop(b *browser) {
	killGroup(b.pid)
	b.cancel()
	b.allocCancel()
	b.watchers.Wait()
	if n := killLeftovers(b.dir); n > 0 {
		b.log.Warn("killed browser processes that had left the process group", "count", n)
	}
	if err := removeAllRetry(b.dir); err != nil {
		b.log.Error("deleting the browser profile failed; delete it by hand", "dir", b.dir, "err", err)
	}
	p.mu.Lock()
	p.browsers = slices.DeleteFunc(p.browsers, func(x *browser) bool { return x == b })
	served := b.served
	p.mu.Unlock()
	b.log.Info("browser stopped", "served", served)
}
