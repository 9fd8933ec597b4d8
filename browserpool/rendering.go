package browserpool

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"
)

// State is how a session's rendering stands.
type State string

const (
	// StateStarting: waiting for a tab, the replay page or the first frame.
	StateStarting State = "starting"
	// StateLive: frames are flowing.
	StateLive State = "live"
	// StateRecovering: the tab or its browser was lost; a new tab is being
	// built from the session's snapshot and tail.
	StateRecovering State = "recovering"
	// StateUnavailable: no tab could be leased (capacity full, or the pool
	// failed); the renderer keeps trying while someone watches.
	StateUnavailable State = "unavailable"
	// StateEnded: the session is over; no frame follows.
	StateEnded State = "ended"
)

// Status is a State with the reason for it, in words for the agent.
type Status struct {
	State  State  `json:"state"`
	Reason string `json:"reason,omitempty"`
}

// Frame is one screencast frame of a session's tab.
type Frame struct {
	JPEG []byte
	// Width and Height are the visitor's viewport in CSS pixels that the
	// frame shows (the JPEG may be scaled down to MaxWidth×MaxHeight).
	Width, Height int
	// At is when the renderer received the frame.
	At time.Time
}

// Update is what a Viewer's Next returns: a new status, or a new frame.
type Update struct {
	Status *Status
	Frame  *Frame
}

// ErrViewerClosed is returned by Next after Close.
var ErrViewerClosed = errors.New("browserpool: viewer closed")

// errRenderingOver is returned by Next once the rendering stopped and its
// last status was delivered.
var errRenderingOver = errors.New("browserpool: the rendering stopped")

// rendering is one session's tab and its viewers. Its run loop leases a
// tab, replays the session in it and, when the tab is lost, does it again.
type rendering struct {
	r    *Renderer
	id   string
	log  *slog.Logger
	stop context.CancelFunc

	// taken receives a value when a viewer takes a frame: the screencast
	// acknowledges a frame only then (or after a short wait), so the browser
	// renders no faster than the fastest viewer reads.
	taken chan struct{}

	mu       sync.Mutex
	viewers  map[*Viewer]struct{}
	status   Status
	frame    *Frame
	frameSeq uint64
	tab      *replayTab // the tab in use, nil between tabs
	linger   *time.Timer
	finished bool // run returned: no status or frame follows
}

// Viewer is one agent's view of a session's rendering. Stale frames are
// dropped: Next returns the newest frame the viewer has not seen, never a
// queue of old ones, and every change of status.
type Viewer struct {
	rd   *rendering
	wake chan struct{} // capacity 1: "something changed"

	// guarded by rd.mu
	seenStatus Status
	seenFrame  uint64
	closed     bool
}

func (rd *rendering) addViewer() *Viewer {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	if rd.linger != nil {
		rd.linger.Stop()
		rd.linger = nil
	}
	v := &Viewer{rd: rd, wake: make(chan struct{}, 1)}
	rd.viewers[v] = struct{}{}
	v.signal()
	return v
}

// Close ends the view. The session's tab keeps rendering for Linger in case
// an agent comes back.
func (v *Viewer) Close() {
	rd := v.rd
	rd.mu.Lock()
	defer rd.mu.Unlock()
	if v.closed {
		return
	}
	v.closed = true
	v.signal()
	delete(rd.viewers, v)
	if len(rd.viewers) == 0 && !rd.finished {
		rd.linger = time.AfterFunc(rd.r.cfg.Linger, rd.stopIfUnwatched)
	}
}

// stopIfUnwatched stops the rendering when nobody watches it any more. A
// Watch that comes meanwhile finds it gone from the Renderer and starts a
// new one.
func (rd *rendering) stopIfUnwatched() {
	r := rd.r
	r.mu.Lock()
	defer r.mu.Unlock()
	rd.mu.Lock()
	defer rd.mu.Unlock()
	if len(rd.viewers) > 0 {
		return
	}
	if r.renderings[rd.id] == rd {
		delete(r.renderings, rd.id)
	}
	rd.stop()
}

func (v *Viewer) signal() {
	select {
	case v.wake <- struct{}{}:
	default:
	}
}

// Next blocks until the status changed or a newer frame exists, and returns
// that (a status first). It returns ErrViewerClosed after Close, and an
// error once the rendering stopped for good (the session ended, or the
// renderer closed) and its last status was returned.
func (v *Viewer) Next(ctx context.Context) (Update, error) {
	rd := v.rd
	for {
		rd.mu.Lock()
		switch {
		case v.closed:
			rd.mu.Unlock()
			return Update{}, ErrViewerClosed
		case v.seenStatus != rd.status:
			v.seenStatus = rd.status
			status := rd.status
			rd.mu.Unlock()
			return Update{Status: &status}, nil
		case rd.frameSeq > v.seenFrame:
			v.seenFrame = rd.frameSeq
			frame := rd.frame
			rd.mu.Unlock()
			select {
			case rd.taken <- struct{}{}:
			default:
			}
			return Update{Frame: frame}, nil
		case rd.finished:
			rd.mu.Unlock()
			return Update{}, errRenderingOver
		}
		rd.mu.Unlock()
		select {
		case <-ctx.Done():
			return Update{}, ctx.Err()
		case <-v.wake:
		}
	}
}

// wakeLocked tells every viewer that something changed.
func (rd *rendering) wakeLocked() {
	for v := range rd.viewers {
		v.signal()
	}
}

func (rd *rendering) setStatus(s Status) {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	if rd.status != s {
		rd.status = s
		rd.wakeLocked()
	}
}

func (rd *rendering) publish(f *Frame) {
	rd.r.frames.Add(1)
	rd.mu.Lock()
	defer rd.mu.Unlock()
	rd.frame = f
	rd.frameSeq++
	if rd.status.State != StateLive {
		rd.status = Status{State: StateLive}
	}
	rd.wakeLocked()
}

func (rd *rendering) setTab(t *replayTab) {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	rd.tab = t
}

// finish marks the rendering as stopped; viewers get its last status and
// then an error.
func (rd *rendering) finish() {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	rd.finished = true
	rd.tab = nil
	if rd.linger != nil {
		rd.linger.Stop()
	}
	rd.wakeLocked()
}

// run leases a tab and replays the session in it until the session ends or
// the rendering is stopped; a lost tab is replaced at once.
func (rd *rendering) run(ctx context.Context) {
	const retryUnavailable = 2 * time.Second
	for ctx.Err() == nil {
		lease, err := rd.r.cfg.Pool.Lease(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			rd.log.Warn("no tab for a rendered view", "err", err)
			rd.setStatus(Status{State: StateUnavailable, Reason: unavailableReason(err)})
			if errors.Is(err, ErrClosed) {
				return
			}
			sleep(ctx, retryUnavailable)
			continue
		}
		started := time.Now()
		err = rd.replay(ctx, lease)
		lease.Release()
		switch {
		case ctx.Err() != nil:
			return
		case rd.r.cfg.SessionEnded(err):
			rd.setStatus(Status{State: StateEnded, Reason: "the session ended"})
			return
		}
		rd.log.Warn("rendered view lost; rebuilding it in a new tab", "err", err)
		rd.setStatus(Status{State: StateRecovering, Reason: "the rendering browser tab was lost; rebuilding the view"})
		if time.Since(started) < time.Second {
			// A tab that fails at once would fail again: do not spin.
			sleep(ctx, time.Second)
		}
	}
}

// unavailableReason says, for an agent, why no tab could be leased.
func unavailableReason(err error) string {
	if errors.Is(err, ErrCapacity) {
		return "rendering capacity full, DOM mode still available"
	}
	return "the rendering service failed (" + err.Error() + "); DOM mode still available"
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
