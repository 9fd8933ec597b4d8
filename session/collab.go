package session

import (
	"crypto/rand"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strings"
	"time"
)

// JoinMode says what it takes for agents to see a session (Config.Join).
type JoinMode string

const (
	// JoinConsent: the visitor is asked when an agent first joins, and
	// agents see nothing of the page until the visitor accepts. The default.
	JoinConsent JoinMode = "consent"
	// JoinNone: agents see a session as soon as they open it, without a
	// prompt. For internal tools whose users agreed beforehand; an explicit
	// opt-in.
	JoinNone JoinMode = "none"
	// JoinCode: the visitor asks for a 6-digit support code (the help
	// button, or window.cobrowse.showCode()) and reads it out; agents see
	// the session once one of them enters it (Hub.Redeem).
	JoinCode JoinMode = "code"
)

// ParseJoinMode returns the JoinMode named s, or an error that lists them.
func ParseJoinMode(s string) (JoinMode, error) {
	switch m := JoinMode(s); m {
	case JoinConsent, JoinNone, JoinCode:
		return m, nil
	}
	return "", fmt.Errorf("join mode %q: want %q (the visitor accepts each session), %q (the visitor reads out a support code) or %q (no prompt, for internal tools)", s, JoinConsent, JoinCode, JoinNone)
}

// Consent is the state of a session's consent in JoinConsent mode.
type Consent string

const (
	ConsentNotAsked Consent = "not asked" // no agent has joined yet
	ConsentPending  Consent = "pending"   // the visitor is being asked
	ConsentGranted  Consent = "granted"   // agents see the session
	ConsentDeclined Consent = "declined"  // agents see nothing; they may ask again
)

// askAgainAfter is how soon an agent may ask a visitor who declined again.
const askAgainAfter = 10 * time.Second

// Agent is a person watching a session, as the visitor is told about them.
type Agent struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Color string `json:"color"`
}

// agentColors are the colours agents of one session get, in joining order:
// distinct, and readable as white text's background.
var agentColors = []string{"#4f46e5", "#db2777", "#0891b2", "#ca8a04", "#16a34a", "#9333ea", "#ea580c", "#475569"}

// maxAgentName bounds an agent's display name.
const maxAgentName = 64

// ErrNotWatching is returned for an agent action that needs the visitor's
// consent before it is given.
var ErrNotWatching = errors.New("the visitor has not accepted this session")

// Viewable reports whether agents may see the pages of the session info
// describes (Session.Visible for a session of any node).
func (h *Hub) Viewable(info Info) bool {
	return h.cfg.Join == JoinNone || info.Consent == ConsentGranted
}

// JoinMode returns what it takes for agents to see a session (Config.Join).
func (h *Hub) JoinMode() JoinMode { return h.cfg.Join }

// visibleLocked reports whether agents may see the session's pages.
func (s *Session) visibleLocked() bool {
	return s.hub.cfg.Join == JoinNone || s.consent == ConsentGranted
}

// agentsLocked returns the agents watching, in joining order.
func (s *Session) agentsLocked() []Agent {
	agents := make([]Agent, 0, len(s.subs))
	for sub := range s.subs {
		if sub.agent.ID != "" {
			agents = append(agents, sub.agent)
		}
	}
	sortAgents(agents)
	return agents
}

func sortAgents(agents []Agent) {
	for i := 1; i < len(agents); i++ {
		for j := i; j > 0 && agents[j].ID < agents[j-1].ID; j-- {
			agents[j], agents[j-1] = agents[j-1], agents[j]
		}
	}
}

// newAgentLocked names the next agent of the session.
func (s *Session) newAgentLocked(name string) Agent {
	s.agentSeq++
	name = truncate(name, maxAgentName)
	if name == "" {
		name = "Support agent"
	}
	return Agent{
		ID:    fmt.Sprintf("a%03d", s.agentSeq), // sorts in joining order
		Name:  name,
		Color: agentColors[(s.agentSeq-1)%len(agentColors)],
	}
}

// toActiveLocked sends msg to the tab agents follow, if it is connected:
// what the agent points at, highlights or draws is on that page.
func (s *Session) toActiveLocked(msg []byte) {
	if t := s.active; t != nil && t.conn != nil {
		t.conn.sendLocked(msg)
	}
}

// toVisitorsLocked sends msg to every connected tab of the visitor.
func (s *Session) toVisitorsLocked(msg []byte) {
	for _, t := range s.tabs {
		if t.conn != nil {
			t.conn.sendLocked(msg)
		}
	}
}

// presenceLocked tells the visitor's tabs who is watching now: the visitor
// always sees that agents are there (the banner), and that nobody is any
// more.
func (s *Session) presenceLocked() {
	if !s.visibleLocked() {
		return
	}
	s.toVisitorsLocked(mustJSON(map[string]any{"type": "agents", "agents": s.agentsLocked()}))
}

// askConsentLocked asks the visitor's tabs to accept agent, unless the
// visitor already answered or is being asked.
func (s *Session) askConsentLocked(agent Agent) {
	if s.hub.cfg.Join != JoinConsent {
		return
	}
	switch s.consent {
	case ConsentGranted, ConsentPending:
		return
	case ConsentDeclined:
		if time.Since(s.consentAnswered) < askAgainAfter {
			return
		}
	}
	s.consent = ConsentPending
	s.toVisitorsLocked(mustJSON(map[string]any{"type": "consent", "agent": agent}))
	s.broadcastLocked(s.infoMessageLocked())
	s.hub.record("visitor.consent.asked", "session", s.id, "agent", agent.Name)
}

// Consent records the visitor's answer to the pending request: agents see
// the session from now on (allow), or nothing (deny). An answer nobody asked
// for is ignored.
func (v *Visitor) Consent(allow bool) {
	s := v.session
	s.mu.Lock()
	if s.consent != ConsentPending || v.detached {
		s.mu.Unlock()
		return
	}
	s.consentAnswered = time.Now()
	// Every tab that shows the question closes it.
	s.toVisitorsLocked([]byte(`{"type":"consent.closed"}`))
	if allow {
		s.consent = ConsentGranted
		s.broadcastResetLocked()
		s.presenceLocked()
	} else {
		s.consent = ConsentDeclined
		s.broadcastLocked(s.infoMessageLocked())
	}
	s.mu.Unlock()
	s.hub.record("visitor.consent", "session", s.id, "granted", allow)
	s.hub.changed()
}

// supportCode is a live JoinCode code and the session it opens.
type supportCode struct {
	session string
	expires time.Time
}

// randomBelow returns a uniform random number in [0, n) from crypto/rand: a
// support code must not be guessable from earlier ones.
func randomBelow(n int64) int64 {
	v, err := rand.Int(rand.Reader, big.NewInt(n))
	if err != nil {
		panic(fmt.Sprintf("session: crypto/rand failed: %v", err)) // documented never to fail
	}
	return v.Int64()
}

// codeLifetime is how long a support code can be redeemed.
const codeLifetime = 10 * time.Minute

// ErrBadCode is returned by Redeem for a code that opens no session.
var ErrBadCode = errors.New("no session has this support code (codes last 10 minutes; ask the visitor for a new one)")

// RequestCode gives the visitor's tab a support code for its session (the
// same one while it is valid): the visitor reads it to an agent, who
// enters it (Hub.Redeem). Only in JoinCode mode.
func (v *Visitor) RequestCode() {
	s, h := v.session, v.session.hub
	if h.cfg.Join != JoinCode {
		return
	}
	now := time.Now()
	h.mu.Lock()
	code := ""
	for c, sc := range h.codes {
		if now.After(sc.expires) {
			delete(h.codes, c)
		} else if sc.session == s.id {
			code = c
		}
	}
	for code == "" {
		c := fmt.Sprintf("%06d", randomBelow(1_000_000))
		if _, taken := h.codes[c]; !taken {
			code = c
			h.codes[c] = supportCode{session: s.id, expires: now.Add(codeLifetime)}
		}
	}
	expires := h.codes[code].expires
	h.mu.Unlock()
	s.mu.Lock()
	v.sendLocked(mustJSON(map[string]any{"type": "code", "code": code, "expires": expires.UTC()}))
	s.mu.Unlock()
	h.record("visitor.code", "session", s.id)
}

// Redeem opens the session whose support code an agent entered: its agents
// see it from now on, as if the visitor had accepted (reading the code out
// is the visitor's consent). The code is used up.
func (h *Hub) Redeem(code string) (string, error) {
	id, err := h.RedeemLocal(code)
	if errors.Is(err, ErrBadCode) {
		// Another node of the cluster may have given it.
		return h.cfg.Bus.Redeem(code)
	}
	return id, err
}

// RedeemLocal is Redeem for the codes this node gave (the Bus asks it on
// behalf of the other nodes).
func (h *Hub) RedeemLocal(code string) (string, error) {
	h.mu.Lock()
	sc, ok := h.codes[code]
	if ok {
		delete(h.codes, code)
	}
	s := h.sessions[sc.session]
	h.mu.Unlock()
	if !ok || time.Now().After(sc.expires) || s == nil {
		return "", ErrBadCode
	}
	s.mu.Lock()
	if s.consent != ConsentGranted {
		s.consent, s.consentAnswered = ConsentGranted, time.Now()
		s.toVisitorsLocked([]byte(`{"type":"code.used"}`))
		s.broadcastResetLocked()
		s.presenceLocked()
	}
	s.mu.Unlock()
	h.record("visitor.consent", "session", s.id, "granted", true, "by", "support code")
	h.changed()
	return s.id, nil
}

// maxLabel bounds a visitor label, in bytes.
const maxLabel = 128

// SetLabel labels a session's visitor for the dashboard (Info.Label; cmd
// takes it from a cookie or response header of the fronted site). The
// visitor's first page comes before its session starts in the hub, so a
// label for an unknown session waits for it (at most MaxSessions labels
// wait).
func (h *Hub) SetLabel(sessionID, label string) {
	label = truncate(strings.TrimSpace(label), maxLabel)
	h.mu.Lock()
	s := h.sessions[sessionID]
	if s == nil {
		if len(h.labels) >= h.cfg.MaxSessions {
			for k := range h.labels { // forget one; any will do
				delete(h.labels, k)
				break
			}
		}
		h.labels[sessionID] = label
		h.mu.Unlock()
		return
	}
	h.mu.Unlock()
	s.mu.Lock()
	changed := s.label != label
	s.label = label
	if changed {
		s.broadcastLocked(s.infoMessageLocked())
	}
	s.mu.Unlock()
	if changed {
		h.changed()
	}
}

// ChatMessage is one line of a session's chat.
type ChatMessage struct {
	// From is the agent who wrote it; zero (ID "") for the visitor.
	From Agent     `json:"from"`
	Text string    `json:"text"`
	At   time.Time `json:"at"`
}

const (
	// maxChatText bounds one chat message, in bytes.
	maxChatText = 2000
	// maxChatLog bounds the messages a session keeps; older ones go.
	maxChatLog = 200
)

// chatLocked adds a message to the session's chat and gives it to every
// agent and every tab of the visitor.
func (s *Session) chatLocked(from Agent, text string) error {
	text = strings.TrimSpace(text)
	if text == "" {
		return errors.New("chat: empty message")
	}
	if len(text) > maxChatText {
		return fmt.Errorf("chat: a message is at most %d bytes", maxChatText)
	}
	m := ChatMessage{From: from, Text: text, At: time.Now().UTC()}
	if len(s.chat) == maxChatLog {
		s.chat = append(s.chat[:0], s.chat[1:]...)
	}
	s.chat = append(s.chat, m)
	msg := mustJSON(map[string]any{"type": "chat", "message": m})
	s.broadcastLocked(msg)
	s.toVisitorsLocked(msg)
	return nil
}

// greetLocked tells a tab that just connected where the session stands: the
// pending consent question, who is watching, and the chat so far. A
// navigation reloads the visitor's UI, which starts from nothing.
func (s *Session) greetLocked(v *Visitor) {
	if s.consent == ConsentPending {
		for sub := range s.subs {
			if sub.agent.ID != "" {
				v.sendLocked(mustJSON(map[string]any{"type": "consent", "agent": sub.agent}))
				break
			}
		}
	}
	if !s.visibleLocked() {
		return
	}
	if agents := s.agentsLocked(); len(agents) > 0 {
		v.sendLocked(mustJSON(map[string]any{"type": "agents", "agents": agents}))
	}
	if len(s.chat) > 0 {
		v.sendLocked(mustJSON(map[string]any{"type": "chat.history", "messages": s.chat}))
	}
}

// Chat adds the visitor's message to the session's chat. Before the visitor
// accepted agents there is nobody to talk to.
func (v *Visitor) Chat(text string) error {
	s := v.session
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.visibleLocked() || v.detached {
		return ErrNotWatching
	}
	return s.chatLocked(Agent{}, text)
}

// control is who may act on the visitor's page. At most one agent holds it,
// after the visitor accepted that agent's request; the visitor can take it
// back at any time.
type control struct {
	holder  Agent // zero when nobody controls
	asking  Agent // zero when no request is pending
	askedAt time.Time
}

// ControlInfo is the control part of a session's Info.
type ControlInfo struct {
	State string `json:"state"` // "requested" or "granted"
	Agent Agent  `json:"agent"`
}

func (c control) info() *ControlInfo {
	switch {
	case c.holder.ID != "":
		return &ControlInfo{State: "granted", Agent: c.holder}
	case c.asking.ID != "":
		return &ControlInfo{State: "requested", Agent: c.asking}
	}
	return nil
}

// inputActions are the input actions an agent in control may send, as the
// visitor script applies them (web/visitor/control.js).
var inputActions = map[string]bool{"click": true, "text": true, "key": true, "scroll": true, "select": true}

const (
	// maxInputText bounds the text of one "text" input action.
	maxInputText = 1000
	// maxInputValue bounds a "key" name or a "select" value.
	maxInputValue = 256
)

// requestControlLocked asks the visitor whether sub's agent may control the
// page.
func (s *Session) requestControlLocked(sub *Subscriber) error {
	c := &s.control
	switch {
	case !s.visibleLocked():
		return ErrNotWatching
	case c.holder.ID == sub.agent.ID:
		return nil
	case c.holder.ID != "":
		return fmt.Errorf("%s has control of the visitor's page", c.holder.Name)
	case c.asking.ID != "" && c.asking.ID != sub.agent.ID && time.Since(c.askedAt) < askAgainAfter:
		return fmt.Errorf("%s is asking for control already", c.asking.Name)
	}
	c.asking, c.askedAt = sub.agent, time.Now()
	s.toVisitorsLocked(mustJSON(map[string]any{"type": "control.request", "agent": sub.agent}))
	s.broadcastLocked(s.infoMessageLocked())
	s.hub.record("control.requested", "session", s.id, "agent", sub.agent.Name, "agent_id", sub.agent.ID)
	return nil
}

// ControlAnswer records the visitor's answer to the pending control
// request. An answer nobody asked for is ignored.
func (v *Visitor) ControlAnswer(allow bool) {
	s := v.session
	s.mu.Lock()
	defer s.mu.Unlock()
	c := &s.control
	if c.asking.ID == "" || v.detached {
		return
	}
	agent := c.asking
	c.asking = Agent{}
	s.toVisitorsLocked([]byte(`{"type":"control.closed"}`))
	if allow {
		c.holder = agent
		s.toVisitorsLocked(mustJSON(map[string]any{"type": "control", "agent": agent}))
		s.hub.record("control.granted", "session", s.id, "agent", agent.Name, "agent_id", agent.ID)
	} else {
		s.hub.record("control.declined", "session", s.id, "agent", agent.Name, "agent_id", agent.ID)
	}
	s.broadcastLocked(s.infoMessageLocked())
}

// RevokeControl takes control back from the agent who holds it (the
// visitor's Stop button or Escape). It takes effect at once: the visitor
// script applies no input after it.
func (v *Visitor) RevokeControl() {
	s := v.session
	s.mu.Lock()
	defer s.mu.Unlock()
	s.endControlLocked("the visitor")
}

// endControlLocked ends the current control, if any, and says who ended it.
func (s *Session) endControlLocked(by string) {
	c := &s.control
	if c.holder.ID == "" {
		return
	}
	agent := c.holder
	c.holder = Agent{}
	s.toVisitorsLocked([]byte(`{"type":"control.ended"}`))
	s.broadcastLocked(s.infoMessageLocked())
	s.hub.record("control.revoked", "session", s.id, "agent", agent.Name, "agent_id", agent.ID, "by", by)
}

// inputLocked passes one input action of the agent in control to the tab
// agents follow. Only the action's kind is recorded in the audit log, never
// typed text or values.
func (s *Session) inputLocked(sub *Subscriber, msg AgentMessage) error {
	if s.control.holder.ID != sub.agent.ID || sub.agent.ID == "" {
		return errors.New("you do not have control of the visitor's page: request it first")
	}
	if !inputActions[msg.Action] {
		return fmt.Errorf("unknown input action %q", truncate(msg.Action, 32))
	}
	if !finite(msg.X) || !finite(msg.Y) || !finite(msg.DX) || !finite(msg.DY) {
		return errors.New("input: coordinates must be numbers")
	}
	if len(msg.Text) > maxInputText || len(msg.Key) > maxInputValue || len(msg.Value) > maxInputValue {
		return errors.New("input: text, key or value too long")
	}
	t := s.active
	if t == nil || t.conn == nil {
		return errors.New("the visitor's page is not connected")
	}
	t.conn.sendLocked(mustJSON(map[string]any{
		"type": "input", "agent": sub.agent.ID, "seq": msg.Seq, "action": msg.Action,
		"x": msg.X, "y": msg.Y, "dx": msg.DX, "dy": msg.DY, "text": msg.Text, "key": msg.Key, "value": msg.Value,
	}))
	s.hub.record("control.input", "session", s.id, "agent", sub.agent.Name, "agent_id", sub.agent.ID, "action", msg.Action)
	return nil
}

// InputResult passes the visitor script's answer to an input action on to
// the agent who sent it: a refusal carries the reason the agent is shown
// (a masked field, a no_control element).
func (v *Visitor) InputResult(agentID string, seq int64, ok bool, reason string) {
	s := v.session
	s.mu.Lock()
	defer s.mu.Unlock()
	if ok || agentID == "" {
		return
	}
	for sub := range s.subs {
		if sub.agent.ID == agentID {
			sub.push(mustJSON(map[string]any{"type": "refused", "seq": seq, "reason": truncate(reason, 200)}), time.Time{}, s.hub.cfg.MaxQueueBytes)
		}
	}
}

// AgentMessage is what an agent's console sends about the visitor's page
// (docs/protocol.md, "Agent → server").
type AgentMessage struct {
	Type string `json:"type"`
	// Pointer position (and an input action's point) in the visitor's
	// viewport, in CSS pixels.
	X, Y float64
	// Text of a chat message or of a "text" input action.
	Text string
	// Input action ("input" messages): its kind, a sequence number the
	// agent chooses (refusals name it), a key name, a select's value, and a
	// scroll's distance.
	Action string
	Seq    int64
	Key    string
	Value  string
	DX, DY float64
	// Drawing ("draw"): the stroke it continues (the agent's numbering)
	// and its next points, in the visitor's viewport.
	Stroke int64
	Points [][2]float64
	// Tab to show ("follow"): one of Info.TabList's ids, or "" to follow
	// the visitor's active tab.
	Tab string
}

// maxDrawPoints bounds the points of one "draw" message.
const maxDrawPoints = 256

// Send handles one message of the subscriber's agent: "pointer" moves the
// agent's pointer on the visitor's page (the tab agents follow),
// "highlight" outlines the element at a point there, "draw" adds to a
// freehand stroke that fades, "follow" chooses the tab the agent sees,
// "chat" says
// something to the visitor (and the other agents), "ask" asks a visitor who
// declined again, "end" ends the session for everyone. Other types are an
// error.
func (sub *Subscriber) Send(msg AgentMessage) error {
	s := sub.session
	if msg.Type == "end" {
		s.mu.Lock()
		ended := s.ended.Load()
		if !ended {
			s.endByLocked()
		}
		s.mu.Unlock()
		if !ended {
			s.hub.removeEnded(s, "agent "+sub.agent.Name+" ended it")
		}
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch msg.Type {
	case "ask":
		s.askConsentLocked(sub.agent)
		return nil
	case "chat":
		if !s.visibleLocked() {
			return ErrNotWatching
		}
		return s.chatLocked(sub.agent, msg.Text)
	case "follow":
		if msg.Tab != "" && s.tabs[msg.Tab] == nil {
			return fmt.Errorf("follow: the visitor has no tab %q", truncate(msg.Tab, 64))
		}
		sub.pin = msg.Tab
		sub.push(s.resetMessageLocked(sub), time.Time{}, s.hub.cfg.MaxQueueBytes)
		return nil
	case "control.request":
		return s.requestControlLocked(sub)
	case "control.release":
		if s.control.holder.ID == sub.agent.ID {
			s.endControlLocked("the agent")
		}
		return nil
	case "input":
		return s.inputLocked(sub, msg)
	case "pointer", "highlight":
		if !s.visibleLocked() {
			return ErrNotWatching
		}
		if !finite(msg.X) || !finite(msg.Y) {
			return fmt.Errorf("%s: x and y must be numbers", msg.Type)
		}
		s.toActiveLocked(mustJSON(map[string]any{"type": msg.Type, "agent": sub.agent.ID, "x": msg.X, "y": msg.Y}))
		return nil
	case "draw":
		if !s.visibleLocked() {
			return ErrNotWatching
		}
		if len(msg.Points) == 0 || len(msg.Points) > maxDrawPoints {
			return fmt.Errorf("draw: 1 to %d points", maxDrawPoints)
		}
		for _, p := range msg.Points {
			if !finite(p[0]) || !finite(p[1]) {
				return errors.New("draw: points must be numbers")
			}
		}
		s.toActiveLocked(mustJSON(map[string]any{"type": "draw", "agent": sub.agent.ID, "stroke": msg.Stroke, "points": msg.Points}))
		return nil
	}
	return fmt.Errorf("unknown agent message type %q", truncate(msg.Type, 32))
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) && math.Abs(f) < 1e7 }

// End ends the session at the visitor's request: agents are told and
// dropped, and nothing more of this visitor reaches them.
func (v *Visitor) End() {
	s := v.session
	s.mu.Lock()
	if v.detached {
		s.mu.Unlock()
		return
	}
	s.endByLocked()
	s.mu.Unlock()
	s.hub.removeEnded(s, "the visitor ended it")
}

// endByLocked ends the session for both sides: every tab of the visitor is
// told ("ended") and disconnected, every agent gets its last message.
func (s *Session) endByLocked() {
	for _, t := range s.tabs {
		if t.conn != nil {
			t.conn.sendLocked([]byte(`{"type":"ended"}`))
			t.conn.detachLocked()
		}
	}
	s.endLocked()
}
