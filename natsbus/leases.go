package natsbus

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
)

// A lease is something this node serves for a peer node until the peer
// says it is done or stops pinging: a relay of an agent's feed (relay.go),
// a render worker's view (render.go).
type lease interface {
	// end stops serving it.
	end()
	// pinged holds when the peer last pinged it, in Unix nanoseconds.
	pinged() *atomic.Int64
}

// served is a lease whose work is a goroutine (stopped by cancel) that
// relays what, a feed or a view, to the subject to.
type served[T interface{ Close() }] struct {
	what     T
	to       string
	cancel   context.CancelFunc
	lastPing atomic.Int64
}

func (s *served[T]) end() {
	s.cancel()
	s.what.Close()
}

func (s *served[T]) pinged() *atomic.Int64 { return &s.lastPing }

// leases are a node's leases by id.
type leases[T lease] struct {
	mu sync.Mutex
	m  map[string]T
}

func newLeases[T lease]() *leases[T] { return &leases[T]{m: make(map[string]T)} }

// add serves l under id, pinged now.
func (ls *leases[T]) add(id string, l T) {
	l.pinged().Store(time.Now().UnixNano())
	ls.mu.Lock()
	defer ls.mu.Unlock()
	ls.m[id] = l
}

func (ls *leases[T]) get(id string) (T, bool) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	l, ok := ls.m[id]
	return l, ok
}

// answerPing records a peer's ping of lease id and answers it: "ok", or
// "gone" for a lease this node no longer serves (pinger.lost).
func (ls *leases[T]) answerPing(id string, m *nats.Msg) {
	l, ok := ls.get(id)
	if !ok {
		m.Respond([]byte("gone"))
		return
	}
	l.pinged().Store(time.Now().UnixNano())
	m.Respond([]byte("ok"))
}

// remove ends lease id, if it is served.
func (ls *leases[T]) remove(id string) {
	ls.mu.Lock()
	l, ok := ls.m[id]
	delete(ls.m, id)
	ls.mu.Unlock()
	if ok {
		l.end()
	}
}

// expire ends the leases not pinged within timeout.
func (ls *leases[T]) expire(timeout time.Duration) {
	limit := time.Now().Add(-timeout).UnixNano()
	ls.mu.Lock()
	var stale []string
	for id, l := range ls.m {
		if l.pinged().Load() < limit {
			stale = append(stale, id)
		}
	}
	ls.mu.Unlock()
	for _, id := range stale {
		ls.remove(id)
	}
}
