package browserpool

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"
	"sync"
	"time"

	"github.com/chromedp/cdproto"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/inspector"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/cdproto/target"
	"github.com/chromedp/chromedp"
)

// Lease is one tab of the pool, in an incognito browser context of its own.
// Its methods are safe for concurrent use; the chromedp context it gives is
// not (one tab runs one action at a time, see chromedp.NewContext).
type Lease struct {
	pool *Pool
	b    *browser

	ctx            context.Context // chromedp's context of the tab
	tab            *chromedp.Target
	browserContext cdp.BrowserContextID
	stopWatch      context.CancelFunc // ends the tab's watchers

	done    chan struct{}
	mu      sync.Mutex
	err     error // set once, when done closes
	release sync.Once
}

// Context returns the chromedp context of the lease's tab: chromedp.Run,
// chromedp.Do, chromedp.Events and chromedp.CallBrowser work on it (and on
// contexts derived from it). It is canceled when the lease is released and
// when its browser stops; watch Done for the reason.
func (l *Lease) Context() context.Context { return l.ctx }

// Done returns a channel that is closed when the lease ends: its tab crashed,
// was detached or failed a probe (ErrTabLost), its browser died or failed a
// probe (ErrBrowserLost), the pool closed (ErrClosed) or it was released
// (ErrReleased). Err tells which. After a loss the owner releases the lease
// and leases again.
func (l *Lease) Done() <-chan struct{} { return l.done }

// Err returns nil while Done is open, and then why the lease ended.
func (l *Lease) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// Release ends the lease: it closes the tab and disposes of its browser
// context, so that no page, cookie or cache entry of the lease is left, and
// gives the tab's place to the next Lease call. It waits for that: on a
// hung browser at most chromedp's 5 s for closing the tab plus CallTimeout.
// It is safe to call more than once, after the lease was lost and after the
// pool closed.
func (l *Lease) Release() {
	l.release.Do(func() {
		l.fail(ErrReleased)
		l.stopWatch()
		// chromedp detaches from the tab, closes it and disposes of the
		// browser context the tab's context owns, within 5 s; on a dead
		// browser each step fails at once.
		cancelErr := chromedp.Cancel(l.ctx)
		p := l.pool
		// On a browser that stopped, this fails at once, and there is
		// nothing left to dispose of.
		if err := l.ensureDisposed(); err != nil && !l.b.isStopping(p) {
			l.b.log.Warn("disposing of a lease's browser context failed; recycling the browser",
				"err", err, "cancel_err", cancelErr)
			p.mu.Lock()
			p.drainLocked(l.b, "a browser context could not be disposed of")
			p.mu.Unlock()
		}
		p.mu.Lock()
		delete(l.b.leases, l)
		p.unreserveLocked(l.b)
		p.mu.Unlock()
	})
}

// open opens a tab in a new browser context of b, on which the caller has
// reserved a place, within Config.CallTimeout, and starts watching it.
func (p *Pool) open(ctx context.Context, b *browser) (*Lease, error) {
	tabCtx, cancel := chromedp.NewContext(b.ctx, chromedp.WithNewBrowserContext())
	// The first Do on tabCtx binds the tab to tabCtx, so the deadline of
	// the setup (and ctx) interrupt it from outside instead.
	setup, cancelSetup := context.WithTimeout(ctx, p.cfg.CallTimeout)
	defer cancelSetup()
	interrupt := context.AfterFunc(setup, cancel)
	err := chromedp.Do(tabCtx)
	if !interrupt() && err == nil {
		err = setup.Err()
	}
	if err != nil {
		cancel()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("browserpool: opening a tab in browser %d (pid %d) within CallTimeout %s: %w",
			b.id, b.pid, p.cfg.CallTimeout, err)
	}

	c := chromedp.FromContext(tabCtx)
	watchCtx, stopWatch := context.WithCancel(tabCtx)
	l := &Lease{
		pool:           p,
		b:              b,
		ctx:            tabCtx,
		tab:            c.Target,
		browserContext: c.BrowserContextID,
		stopWatch:      stopWatch,
		done:           make(chan struct{}),
	}
	p.mu.Lock()
	if b.stopping {
		p.mu.Unlock()
		stopWatch()
		cancel()
		return nil, fmt.Errorf("%w: browser %d (pid %d) stopped while a tab opened", ErrBrowserLost, b.id, b.pid)
	}
	b.leases[l] = struct{}{}
	p.stats.Leases++
	b.watchers.Add(2)
	p.mu.Unlock()
	// Subscribe now, so that no crash between here and the goroutine's
	// start is missed.
	crashes := cdp.Events(watchCtx, l.tab, inspector.TargetCrashed)
	go func() {
		defer b.watchers.Done()
		l.watchCrash(crashes)
	}()
	go func() {
		defer b.watchers.Done()
		l.watchProbe(watchCtx)
	}()
	return l, nil
}

// fail ends the lease with err, unless it has ended already. It reports
// whether it did.
func (l *Lease) fail(err error) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		return false
	}
	l.err = err
	close(l.done)
	return true
}

// tabLost ends the lease because its tab died.
func (l *Lease) tabLost(cause error) {
	err := fmt.Errorf("%w: browser %d (pid %d): %v", ErrTabLost, l.b.id, l.b.pid, cause)
	if !l.fail(err) {
		return
	}
	p := l.pool
	p.mu.Lock()
	p.stats.TabsLost++
	p.mu.Unlock()
	l.b.log.Warn("leased tab lost", "err", cause)
}

// watchCrash ends the lease when its renderer crashes. chromedp delivers the
// events from a queue of their own, so nothing here can block the browser's
// reader. The iteration ends with the watch context.
func (l *Lease) watchCrash(crashes iter.Seq2[inspector.EventTargetCrashed, error]) {
	for _, err := range crashes {
		if err == nil {
			l.tabLost(errors.New("the renderer crashed (Inspector.targetCrashed)"))
		}
		return
	}
}

// watchProbe ends the lease when the browser detaches its tab, or when the
// tab does not answer a probe in time.
func (l *Lease) watchProbe(ctx context.Context) {
	detached, err := chromedp.Detached(l.ctx)
	if err != nil {
		l.tabLost(err)
		return
	}
	tick := time.NewTicker(l.pool.cfg.ProbeInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-detached:
			l.tabLost(errors.New("the browser detached the tab (Target.detachedFromTarget)"))
			return
		case <-tick.C:
			if err := l.probe(ctx); err != nil {
				l.tabLost(err)
				return
			}
		}
	}
}

// probe evaluates "1" in the tab within ProbeTimeout. Any answer, an error
// answer included, shows that the renderer lives. It returns nil when the
// lease was released or the browser was lost meanwhile: that is not the
// tab's failure.
func (l *Lease) probe(ctx context.Context) error {
	cfg := l.pool.cfg
	pctx, cancel := context.WithTimeout(ctx, cfg.ProbeTimeout)
	defer cancel()
	_, err := cdp.Call(pctx, l.tab, runtime.Evaluate, runtime.EvaluateParams{Expression: "1", ReturnByValue: new(true)})
	var answer *cdproto.Error
	if err == nil || errors.As(err, &answer) || ctx.Err() != nil {
		return nil
	}
	select {
	case <-l.b.cdp.LostConnection:
		return nil // the browser's monitor reports it
	default:
	}
	if errors.Is(err, chromedp.ErrTargetDetached) {
		return fmt.Errorf("the browser detached the tab: %w", err)
	}
	return fmt.Errorf("no answer to Runtime.evaluate within ProbeTimeout %s: %w", cfg.ProbeTimeout, err)
}

// ensureDisposed checks that the lease's browser context is gone, and
// disposes of it if chromedp could not.
func (l *Lease) ensureDisposed() error {
	ctx, cancel := context.WithTimeout(l.b.ctx, l.pool.cfg.CallTimeout)
	defer cancel()
	res, err := cdp.Call(ctx, l.b.cdp, target.GetBrowserContexts, cdp.Empty{})
	if err != nil {
		return fmt.Errorf("listing browser contexts: %w", err)
	}
	if !slices.Contains(res.BrowserContextIDs, l.browserContext) {
		return nil
	}
	_, err = cdp.Call(ctx, l.b.cdp, target.DisposeBrowserContext, target.DisposeBrowserContextParams{BrowserContextID: l.browserContext})
	return err
}
