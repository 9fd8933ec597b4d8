package natsbus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/cobrowse/cobrowse/browserpool"
)

// Render workers (`cobrowse render-worker`) run the Chromium pool on other
// hosts. Each advertises itself in the bucket cobrowse-render-workers (its
// capacity and the sessions it renders), refreshed every adInterval. A node
// without browsers of its own shows Rendered mode through a RenderClient:
// a view goes to the worker that already renders the session, else to the
// one with the most room; the worker renders it as its own agents would
// see it (its feed and assets come from the node holding the session) and
// publishes the view's status changes and frames to the node. A worker
// that stops answering the view's pings is replaced by another.

const (
	workerBucket = "cobrowse-render-workers"
	adInterval   = time.Second
	// adFresh is how old an advertisement may be for its worker to count
	// as alive.
	adFresh = 3 * adInterval
	// viewPing is how often a node pings the worker of a view; the worker
	// drops a view not pinged for viewTimeout.
	viewPing    = time.Second
	viewTimeout = 10 * viewPing
	// exportTimeout bounds a screenshot or document export by a worker.
	exportTimeout = 30 * time.Second
)

// Headers of a view's messages (worker → node).
const (
	hdrStatus = "Cobrowse-Status" // a browserpool.Status, JSON; without it the data is a JPEG frame
	hdrSize   = "Cobrowse-Size"   // a frame's viewport, "WIDTHxHEIGHT" in CSS pixels
	hdrError  = "Cobrowse-Error"  // a failed request's reason
)

func workerSubject(worker, what string) string { return "cobrowse.render." + worker + "." + what }

// workerAd is a render worker's advertisement.
type workerAd struct {
	Capacity int       `json:"capacity"`
	Sessions []string  `json:"sessions"`
	Updated  time.Time `json:"updated"`
}

func (b *Bus) workerBucket(ctx context.Context) (jetstream.KeyValue, error) {
	kv, err := b.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      workerBucket,
		Description: "cobrowse: the render workers of the cluster, their room and their sessions",
		History:     1,
		TTL:         adFresh,
	})
	if err != nil {
		return nil, fmt.Errorf("JetStream bucket %s: %w", workerBucket, err)
	}
	return kv, nil
}

// ServeRendering makes this node a render worker: it advertises r, with
// room for capacity sessions, and answers the views, screenshots and
// document exports other nodes ask it for, until ctx is done.
func (b *Bus) ServeRendering(ctx context.Context, r *browserpool.Renderer, capacity int) error {
	kv, err := b.workerBucket(ctx)
	if err != nil {
		return err
	}
	w := &worker{bus: b, r: r, views: newLeases[*workerView]()}
	advertise := func() error {
		ad, _ := json.Marshal(workerAd{Capacity: capacity, Sessions: r.SessionIDs(), Updated: time.Now().UTC()}) // plain data
		_, err := kv.Put(ctx, b.cfg.Node, ad)
		return err
	}
	if err := advertise(); err != nil {
		return fmt.Errorf("advertising render worker %s: %w", b.cfg.Node, err)
	}
	if _, err := b.nc.Subscribe(workerSubject(b.cfg.Node, ">"), w.handle); err != nil {
		return err
	}
	go func() {
		tick := time.NewTicker(adInterval)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				kv.Delete(context.Background(), b.cfg.Node)
				return
			case <-tick.C:
				if err := advertise(); err != nil {
					b.log.Warn("NATS: advertising this render worker failed", "err", err)
				}
				w.views.expire(viewTimeout)
			}
		}
	}()
	return nil
}

// worker answers the requests of a render worker.
type worker struct {
	bus   *Bus
	r     *browserpool.Renderer
	views *leases[*workerView]
}

// workerView is a view a node asked for, relayed to that node.
type workerView = served[browserpool.View]

// viewRequest asks a worker for a view (or an export) of a session.
type viewRequest struct {
	Session string `json:"session"`
	View    string `json:"view,omitempty"`
	To      string `json:"to,omitempty"`
}

func (w *worker) handle(m *nats.Msg) {
	what := strings.TrimPrefix(m.Subject, workerSubject(w.bus.cfg.Node, ""))
	var req viewRequest
	if !strings.HasPrefix(what, "view.") && json.Unmarshal(m.Data, &req) != nil {
		respondError(m, "malformed request")
		return
	}
	switch {
	case what == "watch":
		w.watch(m, req)
	case what == "screenshot":
		go w.export(m, func(ctx context.Context) ([]byte, error) { return w.r.Screenshot(ctx, req.Session) })
	case what == "document":
		go w.export(m, func(ctx context.Context) ([]byte, error) {
			doc, err := w.r.Document(ctx, req.Session)
			return []byte(doc), err
		})
	case strings.HasPrefix(what, "view."):
		w.control(strings.TrimPrefix(what, "view."), m)
	}
}

// watch starts a view and relays its updates.
func (w *worker) watch(m *nats.Msg, req viewRequest) {
	if !validToken(req.View) || !strings.HasPrefix(req.To, "cobrowse.view.") {
		respondError(m, "malformed watch request")
		return
	}
	view, err := w.r.Watch(req.Session)
	if err != nil {
		respondError(m, err.Error())
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	wv := &workerView{what: view, to: req.To, cancel: cancel}
	w.views.add(req.View, wv)
	m.Respond([]byte("ok"))
	go func() {
		defer w.views.remove(req.View)
		for {
			u, err := view.Next(ctx)
			if err != nil {
				return
			}
			msg := &nats.Msg{Subject: wv.to, Header: nats.Header{}}
			if u.Status != nil {
				st, _ := json.Marshal(u.Status) // plain data
				msg.Header.Set(hdrStatus, string(st))
			} else {
				msg.Header.Set(hdrSize, fmt.Sprintf("%dx%d", u.Frame.Width, u.Frame.Height))
				msg.Data = u.Frame.JPEG
			}
			if err := w.bus.nc.PublishMsg(msg); err != nil {
				w.bus.log.Warn("NATS: sending a rendered frame failed", "err", err)
			}
		}
	}()
}

// control takes a node's ping or close of a view.
func (w *worker) control(id string, m *nats.Msg) {
	if m.Header.Get(hdrKind) == "close" {
		w.views.remove(id)
		return
	}
	w.views.answerPing(id, m)
}

func (w *worker) export(m *nats.Msg, get func(ctx context.Context) ([]byte, error)) {
	ctx, cancel := context.WithTimeout(context.Background(), exportTimeout)
	defer cancel()
	data, err := get(ctx)
	switch {
	case err != nil:
		respondError(m, err.Error())
	case len(data) > w.bus.maxPayload():
		respondError(m, fmt.Sprintf("the export is %d bytes, more than a NATS message holds here", len(data)))
	default:
		m.Respond(data)
	}
}

func respondError(m *nats.Msg, reason string) {
	r := &nats.Msg{Header: nats.Header{}}
	r.Header.Set(hdrError, reason)
	m.RespondMsg(r)
}

// RenderClient shows the Rendered mode of this node's agents with the
// cluster's render workers. It implements browserpool.Rendering.
type RenderClient struct {
	bus *Bus
	ads jetstream.KeyValue
	// avoid holds workers that failed a request lately, until when.
	mu    sync.Mutex
	avoid map[string]time.Time
}

// RenderClient returns the node's client of the cluster's render workers.
func (b *Bus) RenderClient(ctx context.Context) (*RenderClient, error) {
	kv, err := b.workerBucket(ctx)
	if err != nil {
		return nil, err
	}
	return &RenderClient{bus: b, ads: kv, avoid: make(map[string]time.Time)}, nil
}

// errNoWorker is the status reason when no render worker can take a view.
var errNoWorker = errors.New("no render worker of the cluster has room (start one with: cobrowse render-worker --nats …); DOM mode is still available")

// pick returns the workers to try for a session, best first: those that
// render it already, then by free room.
func (c *RenderClient) pick(ctx context.Context, sessionID string) []string {
	lister, err := c.ads.ListKeys(ctx)
	if err != nil {
		return nil
	}
	type candidate struct {
		name      string
		rendering bool
		room      int
	}
	var cands []candidate
	now := time.Now()
	for name := range lister.Keys() {
		e, err := c.ads.Get(ctx, name)
		if err != nil {
			continue
		}
		var ad workerAd
		if json.Unmarshal(e.Value(), &ad) != nil || now.Sub(ad.Updated) > adFresh {
			continue
		}
		c.mu.Lock()
		avoided := now.Before(c.avoid[name])
		c.mu.Unlock()
		if avoided {
			continue
		}
		rendering := slices.Contains(ad.Sessions, sessionID)
		if !rendering && len(ad.Sessions) >= ad.Capacity {
			continue
		}
		cands = append(cands, candidate{name, rendering, ad.Capacity - len(ad.Sessions)})
	}
	slices.SortFunc(cands, func(a, b candidate) int {
		if a.rendering != b.rendering {
			if a.rendering {
				return -1
			}
			return 1
		}
		return b.room - a.room
	})
	names := make([]string, len(cands))
	for i, cd := range cands {
		names[i] = cd.name
	}
	return names
}

// shun keeps a worker that failed out of the picks for a while.
func (c *RenderClient) shun(worker string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.avoid[worker] = time.Now().Add(10 * time.Second)
}

// request sends a request about a session to the best worker that answers
// it, and returns the answer.
func (c *RenderClient) request(ctx context.Context, what, sessionID string, req viewRequest) ([]byte, string, error) {
	data, _ := json.Marshal(req) // plain data
	for _, w := range c.pick(ctx, sessionID) {
		resp, err := c.bus.nc.RequestWithContext(ctx, workerSubject(w, what), data)
		if errors.Is(err, nats.ErrNoResponders) { // gone since its last advertisement
			c.shun(w)
			continue
		}
		if err != nil {
			return nil, w, err
		}
		if reason := resp.Header.Get(hdrError); reason != "" {
			return nil, w, &browserpool.RenderError{Status: browserpool.Status{State: browserpool.StateUnavailable, Reason: reason}}
		}
		return resp.Data, w, nil
	}
	return nil, "", &browserpool.RenderError{Status: browserpool.Status{State: browserpool.StateUnavailable, Reason: errNoWorker.Error()}}
}

// Screenshot returns the session's rendered view as a PNG, from a worker.
func (c *RenderClient) Screenshot(ctx context.Context, sessionID string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, exportTimeout)
	defer cancel()
	png, _, err := c.request(ctx, "screenshot", sessionID, viewRequest{Session: sessionID})
	return png, err
}

// Document returns the document the session's rendered view shows, from a
// worker.
func (c *RenderClient) Document(ctx context.Context, sessionID string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, exportTimeout)
	defer cancel()
	doc, _, err := c.request(ctx, "document", sessionID, viewRequest{Session: sessionID})
	return string(doc), err
}

// Watch returns a view of the session rendered by a worker: the best one
// now, and another when that one fails.
func (c *RenderClient) Watch(sessionID string) (browserpool.View, error) {
	ctx, cancel := context.WithCancel(context.Background())
	v := &clientView{c: c, session: sessionID, id: nuid.Next(), cancel: cancel, wake: make(chan struct{}, 1)}
	v.sub = make(chan *nats.Msg, 64)
	sub, err := c.bus.nc.ChanSubscribe("cobrowse.view."+c.bus.cfg.Node+"."+v.id, v.sub)
	if err != nil {
		cancel()
		return nil, err
	}
	v.natsSub = sub
	v.set(browserpool.Update{Status: &browserpool.Status{State: browserpool.StateStarting}})
	go v.run(ctx)
	return v, nil
}

// clientView is a view whose frames come from a render worker.
type clientView struct {
	c       *RenderClient
	session string
	id      string
	cancel  context.CancelFunc
	sub     chan *nats.Msg
	natsSub *nats.Subscription
	wake    chan struct{}

	mu      sync.Mutex
	pending []browserpool.Update // statuses in order, and at most one frame, last
	closed  bool
	ended   bool // the worker said the session is over: no other worker is asked
}

// set queues an update: a frame replaces a frame not yet taken.
func (v *clientView) set(u browserpool.Update) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if n := len(v.pending); u.Frame != nil && n > 0 && v.pending[n-1].Frame != nil {
		v.pending[n-1] = u
	} else {
		v.pending = append(v.pending, u)
	}
	select {
	case v.wake <- struct{}{}:
	default:
	}
}

// run keeps a worker rendering the view: it asks one, relays its updates,
// pings it, and moves to another when it fails.
func (v *clientView) run(ctx context.Context) {
	to := "cobrowse.view." + v.c.bus.cfg.Node + "." + v.id
	for ctx.Err() == nil {
		rctx, cancel := context.WithTimeout(ctx, requestTimeout)
		_, worker, err := v.c.request(rctx, "watch", v.session, viewRequest{Session: v.session, View: v.id, To: to})
		cancel()
		if err != nil {
			st := browserpool.Status{State: browserpool.StateUnavailable, Reason: err.Error()}
			if re, ok := errors.AsType[*browserpool.RenderError](err); ok {
				st = re.Status
			}
			v.set(browserpool.Update{Status: &st})
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			continue
		}
		v.follow(ctx, worker)
		if v.over() {
			return
		}
		if ctx.Err() == nil {
			v.c.shun(worker)
			v.set(browserpool.Update{Status: &browserpool.Status{State: browserpool.StateRecovering,
				Reason: "the render worker " + worker + " was lost; another one takes over"}})
		}
	}
}

// follow relays the worker's updates until the worker stops answering the
// pings, the rendering ends, or ctx is done.
func (v *clientView) follow(ctx context.Context, worker string) {
	control := workerSubject(worker, "view."+v.id)
	defer func() {
		m := &nats.Msg{Subject: control, Header: nats.Header{}}
		m.Header.Set(hdrKind, "close")
		v.c.bus.nc.PublishMsg(m)
	}()
	ping := time.NewTicker(viewPing)
	defer ping.Stop()
	p := pinger{nc: v.c.bus.nc, subject: control, timeout: viewPing}
	for {
		select {
		case <-ctx.Done():
			return
		case m := <-v.sub:
			v.deliver(m)
			if v.over() {
				return
			}
		case <-ping.C:
			if p.lost() {
				return
			}
		}
	}
}

// over reports whether the session's rendering ended for good.
func (v *clientView) over() bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.ended
}

// deliver turns one message of the worker into an update.
func (v *clientView) deliver(m *nats.Msg) {
	if st := m.Header.Get(hdrStatus); st != "" {
		var s browserpool.Status
		if json.Unmarshal([]byte(st), &s) == nil {
			if s.State == browserpool.StateEnded {
				v.mu.Lock()
				v.ended = true
				v.mu.Unlock()
			}
			v.set(browserpool.Update{Status: &s})
		}
		return
	}
	w, h, _ := strings.Cut(m.Header.Get(hdrSize), "x")
	width, _ := strconv.Atoi(w)
	height, _ := strconv.Atoi(h)
	v.set(browserpool.Update{Frame: &browserpool.Frame{JPEG: m.Data, Width: width, Height: height, At: time.Now()}})
}

// Next returns the next status change or the newest frame.
func (v *clientView) Next(ctx context.Context) (browserpool.Update, error) {
	for {
		v.mu.Lock()
		if v.closed {
			v.mu.Unlock()
			return browserpool.Update{}, browserpool.ErrViewerClosed
		}
		if len(v.pending) > 0 {
			u := v.pending[0]
			v.pending = v.pending[1:]
			v.mu.Unlock()
			return u, nil
		}
		v.mu.Unlock()
		select {
		case <-ctx.Done():
			return browserpool.Update{}, ctx.Err()
		case <-v.wake:
		}
	}
}

// Close ends the view and the worker's.
func (v *clientView) Close() {
	v.mu.Lock()
	v.closed = true
	v.mu.Unlock()
	v.cancel()
	v.natsSub.Unsubscribe()
	select {
	case v.wake <- struct{}{}:
	default:
	}
}
