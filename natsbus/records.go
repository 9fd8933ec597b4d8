package natsbus

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cobrowse/cobrowse/session"
)

// Headers of a stored batch (the record of session.BatchRecord) and of a
// relayed message. The body of a record is the JSON array of its events.
const (
	hdrPage    = "Cobrowse-Page"
	hdrSeq     = "Cobrowse-Seq"
	hdrReplace = "Cobrowse-Replace" // "1": the record starts the tab's log over
	// hdrPart numbers the parts of a body larger than the server's
	// maximum payload: "i/n", from 1. Parts are consecutive messages of
	// one subject.
	hdrPart = "Cobrowse-Part"
)

// storeTimeout bounds the wait for JetStream to store one batch; the
// visitor's acknowledgement waits for it.
const storeTimeout = 5 * time.Second

// Store writes a batch the hub accepted to the tab's subject of the event
// stream and returns when JetStream has stored it.
func (b *Bus) Store(rec session.BatchRecord) error {
	if !b.nc.IsConnected() {
		// Fail at once: the visitor's next batch waits for this one.
		b.storeFailures.Add(1)
		return errDisconnected
	}
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	body := eventsArray(rec.Events)
	subject := eventSubjects + rec.SessionID + "." + rec.TabID
	var first uint64
	for _, msg := range split(subject, body, b.maxPayload()) {
		msg.Header.Set(hdrPage, rec.Page)
		msg.Header.Set(hdrSeq, strconv.FormatUint(rec.Seq, 10))
		if rec.Replace {
			msg.Header.Set(hdrReplace, "1")
		}
		ack, err := b.js.PublishMsg(ctx, msg, jetstream.WithExpectStream(eventStream))
		if err != nil {
			b.storeFailures.Add(1)
			return fmt.Errorf("storing batch %d of tab %s: %w", rec.Seq, rec.TabID, err)
		}
		if first == 0 {
			first = ack.Sequence
		}
	}
	if rec.Replace {
		b.mu.Lock()
		b.heldLocked(rec.SessionID).logStart[rec.TabID] = first
		b.mu.Unlock()
		b.writeEntryNow(ctx, rec.SessionID)
	}
	return nil
}

// maxPayload leaves room for the headers in the server's maximum message.
func (b *Bus) maxPayload() int {
	return int(b.nc.MaxPayload()) - 4<<10
}

// split cuts body into messages to subject of at most max bytes each; a
// body that fits is one message without a part header.
func split(subject string, body []byte, max int) []*nats.Msg {
	if len(body) <= max {
		return []*nats.Msg{{Subject: subject, Header: nats.Header{}, Data: body}}
	}
	n := (len(body) + max - 1) / max
	msgs := make([]*nats.Msg, 0, n)
	for i := 0; i < n; i++ {
		part := body[i*max : min(len(body), (i+1)*max)]
		m := &nats.Msg{Subject: subject, Header: nats.Header{}, Data: part}
		m.Header.Set(hdrPart, fmt.Sprintf("%d/%d", i+1, n))
		msgs = append(msgs, m)
	}
	return msgs
}

// joiner puts split bodies back together.
type joiner struct {
	buf  bytes.Buffer
	next int // the part expected next; 0 when no body is under way
}

// add takes one message's header and data and returns the whole body once
// its last part came (done). A part out of order is an error; the joiner
// is then ready for a new body.
func (j *joiner) add(header nats.Header, data []byte) (body []byte, done bool, err error) {
	part := header.Get(hdrPart)
	if part == "" {
		if j.next != 0 {
			j.reset()
			return nil, false, errors.New("a whole message came in the middle of a split one")
		}
		return data, true, nil
	}
	i, n, ok := parsePart(part)
	if !ok || i != max(j.next, 1) {
		j.reset()
		return nil, false, fmt.Errorf("part %q out of order", part)
	}
	j.buf.Write(data)
	if i < n {
		j.next = i + 1
		return nil, false, nil
	}
	body = bytes.Clone(j.buf.Bytes())
	j.reset()
	return body, true, nil
}

func (j *joiner) reset() { j.buf.Reset(); j.next = 0 }

func parsePart(s string) (i, n int, ok bool) {
	a, c, found := strings.Cut(s, "/")
	i, err1 := strconv.Atoi(a)
	n, err2 := strconv.Atoi(c)
	return i, n, found && err1 == nil && err2 == nil && i >= 1 && i <= n
}

// eventsArray writes events as one JSON array.
func eventsArray(events []json.RawMessage) []byte {
	size := 2 + len(events)
	for _, e := range events {
		size += len(e)
	}
	out := make([]byte, 0, size)
	out = append(out, '[')
	for i, e := range events {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, e...)
	}
	return append(out, ']')
}

// restoreTab reads a tab's records from the stream: from logStart (the
// latest Replace record the holder wrote down; an earlier one replays to the
// same log). Without a logStart it reads only the last record, which says
// where the tab's stream stands: the tab then waits for a snapshot.
func (b *Bus) restoreTab(ctx context.Context, sessionID, tabID string, logStart uint64) (session.RestoredTab, error) {
	subject := eventSubjects + sessionID + "." + tabID
	rt := session.RestoredTab{ID: tabID}
	if logStart == 0 {
		last, err := b.events.GetLastMsgForSubject(ctx, subject)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return rt, nil
		}
		if err != nil {
			return rt, err
		}
		rt.Page = last.Header.Get(hdrPage)
		rt.LastSeq, _ = strconv.ParseUint(last.Header.Get(hdrSeq), 10, 64)
		return rt, nil
	}
	var j joiner
	for seq := logStart; ; {
		msg, err := b.events.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subject))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return rt, nil
		}
		if err != nil {
			return rt, err
		}
		seq = msg.Sequence + 1
		body, done, err := j.add(msg.Header, msg.Data)
		if err != nil {
			return rt, fmt.Errorf("record %d of tab %s: %w", msg.Sequence, tabID, err)
		}
		if !done {
			continue
		}
		var events []json.RawMessage
		if err := json.Unmarshal(body, &events); err != nil {
			return rt, fmt.Errorf("record %d of tab %s: %w", msg.Sequence, tabID, err)
		}
		rt.Page = msg.Header.Get(hdrPage)
		rt.LastSeq, _ = strconv.ParseUint(msg.Header.Get(hdrSeq), 10, 64)
		switch {
		case msg.Header.Get(hdrReplace) != "1":
			if rt.Log != nil { // the hub appends only to a log it has
				rt.Log = append(rt.Log, events...)
			}
		case len(events) == 0:
			rt.Log = nil // dropped: the hub waits for a snapshot
		default:
			rt.Log = events
		}
	}
}

// Takeover returns what the cluster kept of a session this node does not
// hold: after asking the node that holds it to let it go (a dead node is
// not waited for), its state and every tab's log. The entry then names this
// node.
func (b *Bus) Takeover(ctx context.Context, id string) (session.SessionState, []session.RestoredTab, bool, error) {
	if !b.nc.IsConnected() {
		return session.SessionState{}, nil, false, errDisconnected // the visitor waits for the answer
	}
	kv, err := b.sessions.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return session.SessionState{}, nil, false, nil
	}
	if err != nil {
		return session.SessionState{}, nil, false, fmt.Errorf("reading the registry: %w", err)
	}
	e, err := decodeEntry(kv.Value())
	if err != nil {
		return session.SessionState{}, nil, false, err
	}
	if e.Node != b.cfg.Node && b.release(ctx, e.Node, id) {
		// The holder wrote its last state before it answered.
		if kv, err = b.sessions.Get(ctx, id); err != nil {
			return session.SessionState{}, nil, false, fmt.Errorf("reading the registry: %w", err)
		}
		if e, err = decodeEntry(kv.Value()); err != nil {
			return session.SessionState{}, nil, false, err
		}
	}
	tabIDs := make(map[string]bool)
	for _, t := range e.State.Tabs {
		tabIDs[t.ID] = true
	}
	for t := range e.LogStart {
		tabIDs[t] = true
	}
	var tabs []session.RestoredTab
	for t := range tabIDs {
		rt, err := b.restoreTab(ctx, id, t, e.LogStart[t])
		if err != nil {
			return session.SessionState{}, nil, false, fmt.Errorf("reading the stored batches: %w", err)
		}
		if rt.Page != "" {
			tabs = append(tabs, rt)
		}
	}
	b.mu.Lock()
	delete(b.remote, id)
	delete(b.released, id) // taken back
	h := b.heldLocked(id)
	for t, seq := range e.LogStart {
		h.logStart[t] = seq
	}
	b.mu.Unlock()
	// Claim it now, so that agents' nodes find it here without waiting
	// for the next sync.
	e.Node, e.Updated = b.cfg.Node, time.Now().UTC()
	if data, err := json.Marshal(e); err == nil {
		b.sessions.Put(ctx, id, data)
	}
	b.takeovers.Add(1)
	b.log.Info("took a session over", "session", id, "tabs", len(tabs))
	return e.State, tabs, true, nil
}

func decodeEntry(data []byte) (entry, error) {
	var e entry
	if err := json.Unmarshal(data, &e); err != nil {
		return e, fmt.Errorf("unreadable registry entry: %w", err)
	}
	return e, nil
}
