package viewer

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/gorilla/websocket"

	"github.com/cobrowse/cobrowse/session"
)

const (
	// agentWriteWait bounds one write to an agent. An agent that cannot take
	// a message within it is dropped; one that is merely slow is resynced by
	// the hub long before.
	agentWriteWait    = 10 * time.Second
	agentPongWait     = 60 * time.Second
	agentPingInterval = 25 * time.Second
	// CloseNoSession is the close code that tells the agent page (or any
	// client of the live socket) that the session does not exist,
	// so it stops reconnecting.
	CloseNoSession = 4404
)

// live streams a session to an agent over a WebSocket: a "reset" first, then
// "events" and "info" messages (docs/protocol.md).
func (s *Server) live(w http.ResponseWriter, r *http.Request) error {
	upgrader := websocket.Upgrader{
		EnableCompression: true,
		CheckOrigin:       sameOriginOrNone,
	}
	conn, err := s.upgrade(&upgrader, w, r)
	if err != nil {
		return nil // Upgrade has replied with an HTTP error
	}
	defer conn.Close()

	sessionID := r.PathValue("id")
	sub, err := s.hub.Join(r.Context(), sessionID, r.URL.Query().Get("name"), true)
	if err != nil {
		conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(CloseNoSession, "no such session"), time.Now().Add(agentWriteWait))
		return nil
	}
	defer sub.Close()
	agent := sub.Agent()
	remote := s.trusted.Client(r)
	log := s.logFor(r).With("session", sessionID, "agent", remote, "agent_id", agent.ID)
	log.Info("agent joined")
	joined := time.Now()
	s.audit.Record("agent.join", "session", sessionID, "remote", remote, "agent", agent.Name, "agent_id", agent.ID)
	defer func() {
		s.audit.Record("agent.leave", "session", sessionID, "remote", remote, "agent", agent.Name, "agent_id", agent.ID,
			"seconds", int(time.Since(joined).Seconds()))
	}()

	// First, who the agent is to the visitor (its id names it in the
	// session's Info, e.g. as the agent in control).
	hello, _ := json.Marshal(map[string]any{"type": "hello", "agent": agent}) // plain struct: cannot fail
	conn.SetWriteDeadline(time.Now().Add(agentWriteWait))
	if err := conn.WriteMessage(websocket.TextMessage, hello); err != nil {
		return nil
	}

	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	// The agent's messages (pointer, asking again) go to the hub; one the
	// hub refuses is logged, not fatal: the console may race the visitor.
	keepAlive(ctx, cancel, conn, func(data []byte) {
		var msg session.AgentMessage
		if err := json.Unmarshal(data, &msg); err != nil {
			log.Debug("agent message is not JSON", "err", err)
			return
		}
		if err := sub.Send(msg); err != nil {
			log.Debug("agent message refused", "type", msg.Type, "err", err)
		}
	})

	for {
		msgs, err := sub.Next(ctx)
		if err != nil {
			if errors.Is(err, session.ErrSessionEnded) {
				conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "session ended"), time.Now().Add(agentWriteWait))
			}
			log.Info("agent left", "reason", err)
			return nil
		}
		for _, msg := range msgs {
			conn.SetWriteDeadline(time.Now().Add(agentWriteWait))
			if err := conn.WriteMessage(websocket.TextMessage, msg); err != nil {
				log.Info("agent dropped: write failed", "err", err)
				return nil
			}
		}
	}
}

// keepAlive reads the agent's socket, handing each text message to
// onMessage (nil discards them), and pings it, on goroutines of its own; it
// calls cancel when the agent goes away or stops answering pings. They end
// with ctx.
func keepAlive(ctx context.Context, cancel context.CancelFunc, conn *websocket.Conn, onMessage func([]byte)) {
	go func() {
		defer cancel()
		conn.SetReadLimit(64 << 10)
		conn.SetReadDeadline(time.Now().Add(agentPongWait))
		conn.SetPongHandler(func(string) error { return conn.SetReadDeadline(time.Now().Add(agentPongWait)) })
		for {
			kind, data, err := conn.ReadMessage()
			if err != nil {
				return
			}
			if kind == websocket.TextMessage && onMessage != nil {
				onMessage(data)
			}
		}
	}()
	go func() {
		ping := time.NewTicker(agentPingInterval)
		defer ping.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-ping.C:
				if conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(agentWriteWait)) != nil {
					cancel()
					return
				}
			}
		}
	}()
}

// sameOriginOrNone accepts WebSocket handshakes from the agent console's own
// pages and from non-browser clients (which send no Origin and must hold the
// Bearer token). The login cookie is SameSite=Strict as well.
func sameOriginOrNone(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	return err == nil && u.Host == r.Host
}
