package session

import (
	"context"
	"errors"
	"sync"
	"time"
)

// ErrSessionEnded is returned by Subscriber.Next after the last message of a
// session that ended.
var ErrSessionEnded = errors.New("session ended")

// errSubscriberClosed is returned by Next after Close.
var errSubscriberClosed = errors.New("subscriber closed")

// Subscriber is one agent's feed of a session: JSON messages ("reset",
// "events", "info"), in order, through a bounded queue. The hub never waits
// for a subscriber: one that falls more than Config.MaxQueueBytes behind loses
// its queue and its next read returns a fresh "reset" built from the log.
type Subscriber struct {
	session *Session
	agent   Agent         // zero for a feed that is not a person (the renderer)
	wake    chan struct{} // capacity 1: "the queue changed"
	// pin is the tab the agent chose to show ("follow"), or "" to follow
	// the visitor's active tab. Guarded by the session's lock.
	pin string

	mu    sync.Mutex
	queue [][]byte
	// arrived[i] is when the visitor batch behind queue[i] reached the hub,
	// zero for a message no batch caused (Config.OnDeliver).
	arrived     []time.Time
	queuedBytes int
	resync      bool // the queue overflowed; the next read starts from a reset
	resyncs     int
	ended       bool // the session ended; no message comes after the queue
	movedAway   bool // the session moved to another node (Hub.Release)
	closed      bool // Close was called
}

// Subscribe returns an agent's feed of the session whose first message is a
// "reset" with the page the session's agents follow. agentName is how the
// visitor is told who watches; in JoinConsent mode, the first agent makes
// the visitor's tabs ask for consent, and the feed holds no page until the
// visitor accepts.
func (s *Session) Subscribe(agentName string) (*Subscriber, error) {
	return s.subscribe(func() Agent { return s.newAgentLocked(agentName) })
}

// SubscribeFeed returns a feed like Subscribe's for a consumer that is not a
// person (the renderer): the visitor is not told about it and is not asked
// for consent because of it; it sees the pages once agents may.
func (s *Session) SubscribeFeed() (*Subscriber, error) {
	return s.subscribe(func() Agent { return Agent{} })
}

func (s *Session) subscribe(newAgent func() Agent) (*Subscriber, error) {
	s.mu.Lock()
	if s.ended.Load() {
		s.mu.Unlock()
		return nil, ErrSessionEnded
	}
	sub := &Subscriber{session: s, agent: newAgent(), wake: make(chan struct{}, 1)}
	if sub.agent.ID != "" {
		s.askConsentLocked(sub.agent) // first, so that the reset says so
	}
	s.subs[sub] = struct{}{}
	sub.push(s.resetMessageLocked(sub), time.Time{}, s.hub.cfg.MaxQueueBytes)
	if sub.agent.ID != "" {
		s.presenceLocked()
	}
	s.mu.Unlock()
	s.hub.changed()
	return sub, nil
}

// Agent returns who the feed's agent is to the visitor.
func (sub *Subscriber) Agent() Agent { return sub.agent }

// push queues msg; arrived is when the visitor batch that caused it reached
// the hub, or zero. It is called with the session's lock held, so the order
// of messages is the order of the session's changes.
func (sub *Subscriber) push(msg []byte, arrived time.Time, maxQueueBytes int) {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	if sub.closed || sub.ended || sub.resync {
		// While a resync is pending, everything published meanwhile will be
		// part of the reset that Next builds from the log.
		return
	}
	if len(sub.queue) > 0 && sub.queuedBytes+len(msg) > maxQueueBytes {
		sub.queue, sub.arrived, sub.queuedBytes, sub.resync = nil, nil, 0, true
	} else {
		sub.queue = append(sub.queue, msg)
		sub.arrived = append(sub.arrived, arrived)
		sub.queuedBytes += len(msg)
	}
	sub.signal()
}

// end queues the session's last message; Next returns ErrSessionEnded after it.
func (sub *Subscriber) end(last []byte) {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	if sub.resync {
		sub.queue, sub.arrived, sub.resync = nil, nil, false
	}
	sub.queue = append(sub.queue, last)
	sub.arrived = append(sub.arrived, time.Time{})
	sub.ended = true
	sub.signal()
}

// moved ends the feed with ErrSessionMoved: the session is held by
// another node now, and the queue's messages are left behind, since the
// feed starts over with a "reset" there.
func (sub *Subscriber) moved() {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	sub.queue, sub.arrived, sub.queuedBytes, sub.resync = nil, nil, 0, false
	sub.ended, sub.movedAway = true, true
	sub.signal()
}

func (sub *Subscriber) signal() {
	select {
	case sub.wake <- struct{}{}:
	default:
	}
}

// Next blocks until messages are available and returns all of them, in order.
// After the session ends it returns the remaining messages, then
// ErrSessionEnded.
func (sub *Subscriber) Next(ctx context.Context) ([][]byte, error) {
	for {
		sub.mu.Lock()
		switch {
		case sub.closed:
			sub.mu.Unlock()
			return nil, errSubscriberClosed
		case sub.resync:
			sub.mu.Unlock()
			return sub.resyncFromLog(), nil
		case len(sub.queue) > 0:
			msgs, arrived := sub.queue, sub.arrived
			sub.queue, sub.arrived, sub.queuedBytes = nil, nil, 0
			sub.mu.Unlock()
			sub.delivered(len(msgs), arrived)
			return msgs, nil
		case sub.ended:
			moved := sub.movedAway
			sub.mu.Unlock()
			if moved {
				return nil, ErrSessionMoved
			}
			return nil, ErrSessionEnded
		}
		sub.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-sub.wake:
		}
	}
}

// resyncFromLog replaces an overflowed queue with a reset taken under the
// session's lock: every change after it is pushed behind it, none is lost.
func (sub *Subscriber) resyncFromLog() [][]byte {
	s := sub.session
	s.mu.Lock()
	defer s.mu.Unlock()
	sub.mu.Lock()
	defer sub.mu.Unlock()
	if !sub.resync { // the session ended meanwhile; its last message is queued
		msgs := sub.queue
		sub.queue, sub.arrived, sub.queuedBytes = nil, nil, 0
		sub.delivered(len(msgs), nil)
		return msgs
	}
	sub.resync = false
	sub.resyncs++
	s.hub.counters.resyncs.Add(1)
	sub.delivered(1, nil)
	s.hub.cfg.Logger.Info("agent fell behind; resynced from the log", "session", s.id, "resyncs", sub.resyncs)
	return [][]byte{s.resetMessageLocked(sub)}
}

// delivered counts n messages handed to an agent and observes the fan-out
// latency of those a batch caused (Config.OnDeliver). The renderer's feeds
// are not counted.
func (sub *Subscriber) delivered(n int, arrived []time.Time) {
	if sub.agent.ID == "" {
		return
	}
	h := sub.session.hub
	h.counters.agentMessages.Add(uint64(n))
	if h.cfg.OnDeliver == nil {
		return
	}
	var now time.Time
	for _, at := range arrived {
		if at.IsZero() {
			continue
		}
		if now.IsZero() {
			now = time.Now()
		}
		h.cfg.OnDeliver(now.Sub(at))
	}
}

// Resync drops the feed's queue and makes its next message a fresh
// "reset": for a relay that lost messages on the way to the agent.
func (sub *Subscriber) Resync() {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	if sub.closed || sub.ended {
		return
	}
	sub.queue, sub.arrived, sub.queuedBytes, sub.resync = nil, nil, 0, true
	sub.signal()
}

// Resyncs reports how many times the subscriber fell behind and was resynced.
func (sub *Subscriber) Resyncs() int {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	return sub.resyncs
}

// Close stops the feed and removes the agent from the session.
func (sub *Subscriber) Close() {
	s := sub.session
	s.mu.Lock()
	_, present := s.subs[sub]
	delete(s.subs, sub)
	if present && sub.agent.ID != "" {
		if s.control.holder.ID == sub.agent.ID {
			s.endControlLocked("the agent left")
		}
		if s.control.asking.ID == sub.agent.ID {
			s.control.asking = Agent{}
			s.toVisitorsLocked([]byte(`{"type":"control.closed"}`))
		}
		s.presenceLocked()
	}
	s.mu.Unlock()
	sub.mu.Lock()
	sub.closed = true
	sub.signal()
	sub.mu.Unlock()
	if present {
		s.hub.changed()
	}
}
