package session

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cobrowse/cobrowse/internal/rrwebtest"
)

// downlink returns the messages queued for the visitor's connection now.
func downlink(t *testing.T, v *Visitor) []map[string]any {
	t.Helper()
	var out []map[string]any
	for {
		select {
		case raw, ok := <-v.Downlink():
			if !ok {
				return append(out, map[string]any{"type": "(closed)"})
			}
			var m map[string]any
			if err := json.Unmarshal(raw, &m); err != nil {
				t.Fatalf("downlink message is not JSON: %s", raw)
			}
			out = append(out, m)
		default:
			return out
		}
	}
}

func types(msgs []map[string]any) string {
	var ts []string
	for _, m := range msgs {
		ts = append(ts, fmt.Sprint(m["type"]))
	}
	return strings.Join(ts, ",")
}

// recorder collects Config.Record events.
type recorder struct {
	mu     sync.Mutex
	events []string
}

func (r *recorder) record(event string, fields ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, event+fmt.Sprintf("%v", fields))
}

func (r *recorder) all() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.events, "\n")
}

func TestConsentGatesEverythingAgentsSee(t *testing.T) {
	rec := &recorder{}
	hub := quietHub(Config{Join: JoinConsent, Record: rec.record})
	v, _ := mustAttach(t, hub, "s1", "tab-0001", "page-0001")
	page := rrwebtest.Page(1000, "https://shop.test/", 2)
	mustBatch(t, v, 1, page)
	s, _ := hub.Session("s1")
	if got := s.Info().Consent; got != ConsentNotAsked {
		t.Errorf("consent before any agent: %q", got)
	}

	// The renderer's feed neither asks nor sees.
	feed, err := s.SubscribeFeed()
	if err != nil {
		t.Fatal(err)
	}
	if msgs := next(t, feed); len(msgs) != 1 || msgs[0].Type != "reset" || len(msgs[0].Events) != 0 {
		t.Fatalf("feed before consent: %+v", msgs)
	}
	if got := downlink(t, v); len(got) != 0 {
		t.Fatalf("the renderer's feed made the visitor see %v", got)
	}

	// An agent joins: the visitor is asked, the agent sees no page.
	sub, err := s.Subscribe("Alice")
	if err != nil {
		t.Fatal(err)
	}
	msgs := next(t, sub)
	if len(msgs) != 1 || msgs[0].Type != "reset" || len(msgs[0].Events) != 0 {
		t.Fatalf("agent before consent: %+v", msgs)
	}
	asked := downlink(t, v)
	if types(asked) != "consent" || asked[0]["agent"].(map[string]any)["name"] != "Alice" {
		t.Fatalf("visitor got %v, want a consent request naming Alice", asked)
	}
	if got := s.Info().Consent; got != ConsentPending {
		t.Errorf("consent while asking: %q", got)
	}
	mustBatch(t, v, 2, []json.RawMessage{rrwebtest.MouseMove(2000, 7)})
	if len(s.Events()) != 0 {
		t.Errorf("the REST events show %d events before consent", len(s.Events()))
	}
	if err := sub.Send(AgentMessage{Type: "pointer", X: 1, Y: 2}); !errors.Is(err, ErrNotWatching) {
		t.Errorf("pointer before consent: %v", err)
	}

	// The visitor accepts: the page, with what happened meanwhile.
	v.Consent(true)
	msgs = next(t, sub)
	last := msgs[len(msgs)-1]
	if last.Type != "reset" || len(last.Events) != len(page)+1 || last.Session.Consent != ConsentGranted {
		t.Fatalf("agent after consent: %+v", msgs)
	}
	if msgs := next(t, feed); msgs[len(msgs)-1].Type != "reset" || len(msgs[len(msgs)-1].Events) == 0 {
		t.Errorf("the renderer's feed after consent: %+v", msgs)
	}
	got := downlink(t, v)
	if types(got) != "consent.closed,agents" {
		t.Fatalf("visitor after accepting got %v", got)
	}
	agents := got[1]["agents"].([]any)
	if len(agents) != 1 || agents[0].(map[string]any)["name"] != "Alice" || agents[0].(map[string]any)["color"] == "" {
		t.Errorf("presence %v, want Alice with a colour (not the renderer)", agents)
	}

	// The agent's pointer reaches the visitor.
	if err := sub.Send(AgentMessage{Type: "pointer", X: 10, Y: 20}); err != nil {
		t.Fatal(err)
	}
	if got := downlink(t, v); types(got) != "pointer" || got[0]["x"] != 10.0 || got[0]["agent"] != sub.Agent().ID {
		t.Errorf("visitor got %v, want Alice's pointer at 10,20", got)
	}
	for _, bad := range []AgentMessage{{Type: "pointer", X: 1e300}, {Type: "teleport"}} {
		if err := sub.Send(bad); err == nil {
			t.Errorf("Send(%+v) accepted", bad)
		}
	}

	// A second agent: the visitor is not asked again, and sees both.
	bob, _ := s.Subscribe("Bob")
	if msgs := next(t, bob); len(msgs[0].Events) == 0 {
		t.Errorf("a second agent after consent sees no page")
	}
	if got := downlink(t, v); types(got) != "agents" || len(got[0]["agents"].([]any)) != 2 {
		t.Errorf("visitor after Bob joined: %v", got)
	}
	bob.Close()
	if got := downlink(t, v); types(got) != "agents" || len(got[0]["agents"].([]any)) != 1 {
		t.Errorf("visitor after Bob left: %v", got)
	}
	if r := rec.all(); !strings.Contains(r, "visitor.consent.asked[session s1 agent Alice]") || !strings.Contains(r, "visitor.consent[session s1 granted true]") {
		t.Errorf("recorded:\n%s", r)
	}
}

func TestDeclinedConsent(t *testing.T) {
	hub := quietHub(Config{Join: JoinConsent})
	v, _ := mustAttach(t, hub, "s1", "tab-0001", "page-0001")
	other, _ := mustAttach(t, hub, "s1", "tab-0002", "page-0002")
	mustBatch(t, v, 1, rrwebtest.Page(1000, "https://shop.test/", 1))
	s, _ := hub.Session("s1")
	sub, _ := s.Subscribe("Alice")
	next(t, sub)
	if types(downlink(t, v)) != "consent" || types(downlink(t, other)) != "consent" {
		t.Fatal("not every tab of the visitor was asked")
	}

	other.Consent(false)
	msgs := next(t, sub)
	if last := msgs[len(msgs)-1]; last.Type != "info" || last.Session.Consent != ConsentDeclined || len(last.Events) != 0 {
		t.Fatalf("agent after the visitor declined: %+v", msgs)
	}
	if types(downlink(t, v)) != "consent.closed" {
		t.Error("the other tab's question was not closed")
	}
	mustBatch(t, v, 2, []json.RawMessage{rrwebtest.MouseMove(2000, 1)})
	v.Consent(true) // nobody asked: ignored
	if s.Info().Consent != ConsentDeclined || len(s.Events()) != 0 {
		t.Errorf("an unasked 'yes' changed the answer: %q, %d events", s.Info().Consent, len(s.Events()))
	}
	// Asking again at once does not nag the visitor.
	if err := sub.Send(AgentMessage{Type: "ask"}); err != nil {
		t.Fatal(err)
	}
	if got := downlink(t, v); len(got) != 0 {
		t.Errorf("visitor asked again at once: %v", got)
	}
}

func TestVisitorEndsTheSession(t *testing.T) {
	var ended []string
	hub := quietHub(Config{Join: JoinConsent, OnSessionEnd: func(id string) { ended = append(ended, id) }})
	v, _ := mustAttach(t, hub, "s1", "tab-0001", "page-0001")
	mustBatch(t, v, 1, rrwebtest.Page(1000, "https://shop.test/", 1))
	s, _ := hub.Session("s1")
	sub, _ := s.Subscribe("Alice")
	next(t, sub)
	v.Consent(true)
	next(t, sub)
	downlink(t, v)

	v.End()
	msgs := next(t, sub)
	if last := msgs[len(msgs)-1]; last.Type != "info" || !last.Session.Ended {
		t.Fatalf("agent after the visitor ended: %+v", msgs)
	}
	if got := types(downlink(t, v)); got != "ended,(closed)" {
		t.Errorf("visitor connection got %s, want ended, then closed", got)
	}
	if _, err := hub.Session("s1"); !errors.Is(err, ErrNoSession) || len(ended) != 1 {
		t.Errorf("session after End: %v; OnSessionEnd %v", err, ended)
	}
	if _, err := v.Batch(2, []json.RawMessage{rrwebtest.MouseMove(2000, 1)}); err == nil {
		t.Error("the ended connection still takes batches")
	}
	// The visitor's next page starts a new session, which asks again.
	v2, _ := mustAttach(t, hub, "s1", "tab-0001", "page-0002")
	mustBatch(t, v2, 1, rrwebtest.Page(3000, "https://shop.test/next", 0))
	s2, _ := hub.Session("s1")
	if s2 == s || s2.Info().Consent != ConsentNotAsked {
		t.Errorf("after the end: same session %v, consent %q", s2 == s, s2.Info().Consent)
	}
}

func TestParseJoinMode(t *testing.T) {
	for _, ok := range []string{"consent", "none", "code"} {
		if m, err := ParseJoinMode(ok); err != nil || string(m) != ok {
			t.Errorf("ParseJoinMode(%q) = %q, %v", ok, m, err)
		}
	}
	if _, err := ParseJoinMode("pin"); err == nil || !strings.Contains(err.Error(), `"consent"`) {
		t.Errorf("ParseJoinMode(pin): %v", err)
	}
}

func TestChatAndWhatANewPageIsTold(t *testing.T) {
	hub := quietHub(Config{Join: JoinConsent})
	v, _ := mustAttach(t, hub, "s1", "tab-0001", "page-0001")
	mustBatch(t, v, 1, rrwebtest.Page(1000, "https://shop.test/", 1))
	s, _ := hub.Session("s1")
	alice, _ := s.Subscribe("Alice")
	next(t, alice)
	if err := alice.Send(AgentMessage{Type: "chat", Text: "hello?"}); !errors.Is(err, ErrNotWatching) {
		t.Errorf("chat before consent: %v", err)
	}
	// A navigation while the question is open asks again on the new page.
	v2, _ := mustAttach(t, hub, "s1", "tab-0001", "page-0002")
	if got := types(downlink(t, v2)); got != "consent" {
		t.Errorf("a new page while asking got %q, want the question again", got)
	}
	v2.Consent(true)
	next(t, alice)
	downlink(t, v2)

	if err := alice.Send(AgentMessage{Type: "chat", Text: "  Hi, I am Alice  "}); err != nil {
		t.Fatal(err)
	}
	if err := v2.Chat("Hello!"); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"", "   ", strings.Repeat("x", maxChatText+1)} {
		if err := v2.Chat(bad); err == nil {
			t.Errorf("Chat(%.20q…) accepted", bad)
		}
	}
	var lines []string
	for _, m := range next(t, alice) {
		lines = append(lines, m.Type)
	}
	if strings.Join(lines, ",") != "chat,chat" {
		t.Errorf("agent got %v, want two chat messages", lines)
	}
	got := downlink(t, v2)
	if types(got) != "chat,chat" || got[0]["message"].(map[string]any)["text"] != "Hi, I am Alice" ||
		got[1]["message"].(map[string]any)["from"].(map[string]any)["id"] != "" {
		t.Errorf("visitor got %v", got)
	}

	// The next page gets who watches and the chat so far; a late agent gets
	// the chat with its reset.
	v3, _ := mustAttach(t, hub, "s1", "tab-0001", "page-0003")
	if got := types(downlink(t, v3)); got != "agents,chat.history" {
		t.Errorf("a new page after consent got %q, want the presence and the chat", got)
	}
	bob, _ := s.Subscribe("Bob")
	raws, _ := bob.Next(t.Context())
	var reset struct{ Chat []ChatMessage }
	json.Unmarshal(raws[0], &reset)
	if len(reset.Chat) != 2 || reset.Chat[0].From.Name != "Alice" {
		t.Errorf("a late agent's reset has chat %+v", reset.Chat)
	}
}

func TestAgentEndsTheSession(t *testing.T) {
	var ended []string
	hub := quietHub(Config{OnSessionEnd: func(id string) { ended = append(ended, id) }})
	v, _ := mustAttach(t, hub, "s1", "tab-0001", "page-0001")
	mustBatch(t, v, 1, rrwebtest.Page(1000, "https://shop.test/", 1))
	s, _ := hub.Session("s1")
	alice, _ := s.Subscribe("Alice")
	bob, _ := s.Subscribe("Bob")
	next(t, bob)
	downlink(t, v)
	if err := alice.Send(AgentMessage{Type: "end"}); err != nil {
		t.Fatal(err)
	}
	if got := types(downlink(t, v)); got != "ended,(closed)" {
		t.Errorf("visitor got %s", got)
	}
	msgs := next(t, bob)
	if last := msgs[len(msgs)-1]; !last.Session.Ended {
		t.Errorf("Bob's last message: %+v", last)
	}
	if _, err := hub.Session("s1"); !errors.Is(err, ErrNoSession) || len(ended) != 1 {
		t.Errorf("after the agent ended it: %v, OnSessionEnd %v", err, ended)
	}
	if err := bob.Send(AgentMessage{Type: "end"}); err != nil {
		t.Errorf("ending an ended session: %v", err)
	}
}

func TestRemoteControl(t *testing.T) {
	rec := &recorder{}
	hub := quietHub(Config{Record: rec.record})
	v, _ := mustAttach(t, hub, "s1", "tab-0001", "page-0001")
	mustBatch(t, v, 1, rrwebtest.Page(1000, "https://shop.test/", 1))
	s, _ := hub.Session("s1")
	alice, _ := s.Subscribe("Alice")
	bob, _ := s.Subscribe("Bob")
	next(t, alice)
	next(t, bob)
	downlink(t, v)

	click := AgentMessage{Type: "input", Action: "click", X: 10, Y: 20, Seq: 1}
	if err := alice.Send(click); err == nil {
		t.Fatal("input without control accepted")
	}
	if err := alice.Send(AgentMessage{Type: "control.request"}); err != nil {
		t.Fatal(err)
	}
	if got := downlink(t, v); types(got) != "control.request" || got[0]["agent"].(map[string]any)["name"] != "Alice" {
		t.Fatalf("visitor got %v", got)
	}
	if err := bob.Send(AgentMessage{Type: "control.request"}); err == nil || !strings.Contains(err.Error(), "Alice is asking") {
		t.Errorf("a second request meanwhile: %v", err)
	}
	if info := s.Info().Control; info == nil || info.State != "requested" {
		t.Errorf("Info.Control while asking: %+v", info)
	}
	v.ControlAnswer(true)
	if got := types(downlink(t, v)); got != "control.closed,control" {
		t.Errorf("visitor after allowing: %s", got)
	}
	if info := s.Info().Control; info == nil || info.State != "granted" || info.Agent.Name != "Alice" {
		t.Errorf("Info.Control: %+v", info)
	}

	// Alice's input reaches the page; Bob's does not; bad input is refused.
	if err := alice.Send(click); err != nil {
		t.Fatal(err)
	}
	got := downlink(t, v)
	if types(got) != "input" || got[0]["action"] != "click" || got[0]["x"] != 10.0 || got[0]["agent"] != alice.Agent().ID {
		t.Errorf("visitor got %v", got)
	}
	if err := bob.Send(click); err == nil {
		t.Error("Bob's input accepted while Alice has control")
	}
	for _, bad := range []AgentMessage{
		{Type: "input", Action: "teleport"},
		{Type: "input", Action: "text", Text: strings.Repeat("x", maxInputText+1)},
		{Type: "input", Action: "click", X: 1e300},
	} {
		if err := alice.Send(bad); err == nil {
			t.Errorf("Send(%+v) accepted", bad.Action)
		}
	}

	// The visitor script refuses an action (a masked field): Alice, and
	// only Alice, is told.
	next(t, alice)
	next(t, bob)
	v.InputResult(alice.Agent().ID, 7, false, "this field is masked by policy")
	raws, err := alice.Next(t.Context())
	var refused struct {
		Type   string
		Seq    int64
		Reason string
	}
	if err != nil || len(raws) != 1 || json.Unmarshal(raws[0], &refused) != nil ||
		refused.Type != "refused" || refused.Seq != 7 || refused.Reason != "this field is masked by policy" {
		t.Errorf("Alice got %q (%v), want the refusal of input 7", raws, err)
	}

	// The visitor takes control back: input stops at once.
	v.RevokeControl()
	if got := types(downlink(t, v)); got != "control.ended" {
		t.Errorf("visitor after revoking: %s", got)
	}
	if err := alice.Send(click); err == nil {
		t.Error("input accepted after the visitor took control back")
	}
	if r := rec.all(); !strings.Contains(r, "control.requested") || !strings.Contains(r, "control.granted") ||
		!strings.Contains(r, "control.input[session s1 agent Alice agent_id a001 action click]") || !strings.Contains(r, "control.revoked") {
		t.Errorf("recorded:\n%s", r)
	}
}

func TestHighlightAndDraw(t *testing.T) {
	hub := quietHub(Config{})
	v, _ := mustAttach(t, hub, "s1", "tab-0001", "page-0001")
	mustBatch(t, v, 1, rrwebtest.Page(1000, "https://shop.test/", 1))
	s, _ := hub.Session("s1")
	alice, _ := s.Subscribe("Alice")
	downlink(t, v)
	if err := alice.Send(AgentMessage{Type: "highlight", X: 5, Y: 6}); err != nil {
		t.Fatal(err)
	}
	if err := alice.Send(AgentMessage{Type: "draw", Stroke: 1, Points: [][2]float64{{1, 2}, {3, 4}}}); err != nil {
		t.Fatal(err)
	}
	got := downlink(t, v)
	if types(got) != "highlight,draw" || got[0]["x"] != 5.0 || len(got[1]["points"].([]any)) != 2 || got[1]["stroke"] != 1.0 {
		t.Errorf("visitor got %v", got)
	}
	for _, bad := range []AgentMessage{
		{Type: "draw"},
		{Type: "draw", Points: make([][2]float64, maxDrawPoints+1)},
		{Type: "draw", Points: [][2]float64{{1e300, 0}}},
		{Type: "highlight", X: 1e300},
	} {
		if err := alice.Send(bad); err == nil {
			t.Errorf("Send(%s with %d points) accepted", bad.Type, len(bad.Points))
		}
	}
}

// An agent can show another tab of the visitor than the one the visitor is
// on, and go back to following the visitor.
func TestAgentFollowsATab(t *testing.T) {
	hub := quietHub(Config{})
	a, _ := mustAttach(t, hub, "s1", "tab-000a", "page-000a")
	mustBatch(t, a, 1, rrwebtest.Page(1000, "https://shop.test/a", 0))
	b, _ := mustAttach(t, hub, "s1", "tab-000b", "page-000b")
	mustBatch(t, b, 1, rrwebtest.Page(2000, "https://shop.test/b", 0)) // b is active now
	s, _ := hub.Session("s1")
	alice, _ := s.Subscribe("Alice")
	bob, _ := s.Subscribe("Bob")
	next(t, alice)
	next(t, bob)
	if list := s.Info().TabList; len(list) != 2 || !list[1].Active || list[0].URL != "https://shop.test/a" {
		t.Errorf("TabList %+v", list)
	}

	if err := alice.Send(AgentMessage{Type: "follow", Tab: "tab-000a"}); err != nil {
		t.Fatal(err)
	}
	raws, _ := alice.Next(t.Context())
	var reset struct{ Type, Tab string }
	if json.Unmarshal(raws[len(raws)-1], &reset); reset.Type != "reset" || reset.Tab != "tab-000a" {
		t.Fatalf("Alice after following tab a: %s", raws[len(raws)-1])
	}
	// Events of tab a go to Alice only, tab b's to Bob only.
	mustBatch(t, a, 2, []json.RawMessage{rrwebtest.MouseMove(3000, 1)})
	mustBatch(t, b, 2, []json.RawMessage{rrwebtest.MouseMove(3001, 2)})
	if msgs := next(t, alice); len(msgs) != 1 || string(msgs[0].Events[0]) != string(rrwebtest.MouseMove(3000, 1)) {
		t.Errorf("Alice got %+v, want tab a's move", msgs)
	}
	if msgs := next(t, bob); len(msgs) != 1 || string(msgs[0].Events[0]) != string(rrwebtest.MouseMove(3001, 2)) {
		t.Errorf("Bob got %+v, want tab b's move", msgs)
	}
	if err := alice.Send(AgentMessage{Type: "follow", Tab: "nope"}); err == nil {
		t.Error("following an unknown tab accepted")
	}
	if err := alice.Send(AgentMessage{Type: "follow"}); err != nil {
		t.Fatal(err)
	}
	raws, _ = alice.Next(t.Context())
	if json.Unmarshal(raws[len(raws)-1], &reset); reset.Tab != "tab-000b" {
		t.Errorf("Alice back to following the visitor shows %q, want tab b", reset.Tab)
	}
}

func TestSupportCode(t *testing.T) {
	hub := quietHub(Config{Join: JoinCode})
	v, _ := mustAttach(t, hub, "s1", "tab-0001", "page-0001")
	mustBatch(t, v, 1, rrwebtest.Page(1000, "https://shop.test/", 1))
	s, _ := hub.Session("s1")
	alice, _ := s.Subscribe("Alice")
	if msgs := next(t, alice); len(msgs[0].Events) != 0 {
		t.Fatal("an agent sees a code-mode session before the code")
	}
	if got := downlink(t, v); len(got) != 0 {
		t.Errorf("the visitor was asked something in code mode: %v", got)
	}
	v.RequestCode()
	got := downlink(t, v)
	code, _ := got[0]["code"].(string)
	if types(got) != "code" || len(code) != 6 || strings.Trim(code, "0123456789") != "" {
		t.Fatalf("visitor got %v, want a 6-digit code", got)
	}
	v.RequestCode()
	if again := downlink(t, v); again[0]["code"] != code {
		t.Errorf("a second request gave %v, want the same code %s", again[0]["code"], code)
	}
	wrong := "000000"
	if code == wrong {
		wrong = "111111"
	}
	if _, err := hub.Redeem(wrong); !errors.Is(err, ErrBadCode) {
		t.Errorf("a wrong code: %v", err)
	}
	id, err := hub.Redeem(code)
	if err != nil || id != "s1" {
		t.Fatalf("Redeem = %q, %v", id, err)
	}
	msgs := next(t, alice)
	if last := msgs[len(msgs)-1]; last.Type != "reset" || len(last.Events) == 0 {
		t.Errorf("Alice after the code: %+v", msgs)
	}
	if got := types(downlink(t, v)); got != "code.used,agents" {
		t.Errorf("visitor after the code was used: %s", got)
	}
	if _, err := hub.Redeem(code); !errors.Is(err, ErrBadCode) {
		t.Errorf("a used code again: %v", err)
	}
	// Not in the other modes.
	other := quietHub(Config{Join: JoinConsent})
	w, _ := mustAttach(t, other, "s2", "tab-0001", "page-0001")
	w.RequestCode()
	if got := downlink(t, w); len(got) != 0 {
		t.Errorf("a code in consent mode: %v", got)
	}
}

func TestIdleSessionEnds(t *testing.T) {
	var ended []string
	hub := quietHub(Config{SessionIdle: 30 * time.Minute, OnSessionEnd: func(id string) { ended = append(ended, id) }})
	v, _ := mustAttach(t, hub, "s1", "tab-0001", "page-0001")
	mustBatch(t, v, 1, rrwebtest.Page(1000, "https://shop.test/", 1))
	s, _ := hub.Session("s1")
	alice, _ := s.Subscribe("Alice")
	next(t, alice)
	downlink(t, v)
	hub.Expire(time.Now().Add(29 * time.Minute))
	if len(ended) != 0 {
		t.Fatal("ended before SessionIdle")
	}
	hub.Expire(time.Now().Add(31 * time.Minute))
	if len(ended) != 1 {
		t.Fatal("an idle session did not end")
	}
	if got := types(downlink(t, v)); got != "ended,(closed)" {
		t.Errorf("visitor of the idle session got %s", got)
	}
	if msgs := next(t, alice); !msgs[len(msgs)-1].Session.Ended {
		t.Errorf("agent got %+v", msgs)
	}
}

func TestVisitorLabel(t *testing.T) {
	rec := &recorder{}
	hub := quietHub(Config{Record: rec.record})
	hub.SetLabel("s1", "  user-42  ") // the first page comes before the session
	v, _ := mustAttach(t, hub, "s1", "tab-0001", "page-0001")
	mustBatch(t, v, 1, rrwebtest.Page(1000, "https://shop.test/", 0))
	s, _ := hub.Session("s1")
	if got := s.Info().Label; got != "user-42" {
		t.Errorf("label %q, want user-42", got)
	}
	if !strings.Contains(rec.all(), "session.started[session s1 label user-42]") {
		t.Errorf("recorded:\n%s", rec.all())
	}
	alice, _ := s.Subscribe("Alice")
	next(t, alice)
	hub.SetLabel("s1", strings.Repeat("x", 500))
	if msgs := next(t, alice); msgs[0].Type != "info" || len(msgs[0].Session.Label) != maxLabel {
		t.Errorf("after a new label the agent got %+v", msgs)
	}
}
