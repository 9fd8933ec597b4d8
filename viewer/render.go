package viewer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/gorilla/websocket"

	"github.com/cobrowse/cobrowse/browserpool"
)

// noRenderer is the reason Rendered mode gives on a server without a
// rendering pool.
const noRenderer = "this server renders no views (start it with --render); DOM mode still available"

// screenshotTimeout bounds GET /api/sessions/{id}/screenshot.png, which may
// have to start a rendering first.
const screenshotTimeout = 20 * time.Second

// renderStatus is the text message the render socket sends when the state of
// the session's rendering changes (docs/protocol.md).
type renderStatus struct {
	Type string `json:"type"` // "render"
	browserpool.Status
}

// render streams a session's rendered view to an agent over a WebSocket:
// "render" status messages as text, screencast frames as binary JPEG
// messages, always the newest frame (a slow agent skips frames).
func (s *Server) render(w http.ResponseWriter, r *http.Request) error {
	// JPEG does not deflate; the status messages are tiny.
	upgrader := websocket.Upgrader{CheckOrigin: sameOriginOrNone}
	conn, err := s.upgrade(&upgrader, w, r)
	if err != nil {
		return nil // Upgrade has replied with an HTTP error
	}
	defer conn.Close()
	writeStatus := func(st browserpool.Status) error {
		msg, _ := json.Marshal(renderStatus{Type: "render", Status: st}) // plain struct: cannot fail
		conn.SetWriteDeadline(time.Now().Add(agentWriteWait))
		return conn.WriteMessage(websocket.TextMessage, msg)
	}

	sess, err := s.hub.Lookup(r.PathValue("id"))
	if err != nil {
		conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(CloseNoSession, "no such session"), time.Now().Add(agentWriteWait))
		return nil
	}
	if s.renderer == nil {
		writeStatus(browserpool.Status{State: browserpool.StateUnavailable, Reason: noRenderer})
		conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "no renderer"), time.Now().Add(agentWriteWait))
		return nil
	}
	view, err := s.renderer.Watch(sess.ID)
	if err != nil {
		writeStatus(browserpool.Status{State: browserpool.StateUnavailable, Reason: err.Error()})
		return nil
	}
	defer view.Close()
	remote := s.trusted.Client(r)
	log := s.logFor(r).With("session", sess.ID, "agent", remote)
	log.Info("agent switched to Rendered mode")
	started := time.Now()
	s.audit.Record("agent.mode", "session", sess.ID, "remote", remote, "mode", "rendered")
	defer func() {
		s.audit.Record("agent.mode", "session", sess.ID, "remote", remote, "mode", "dom",
			"seconds", int(time.Since(started).Seconds()))
	}()

	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	keepAlive(ctx, cancel, conn, nil)
	for {
		u, err := view.Next(ctx)
		if err != nil {
			log.Info("agent left Rendered mode", "reason", err)
			return nil
		}
		if u.Status != nil {
			err = writeStatus(*u.Status)
		} else {
			conn.SetWriteDeadline(time.Now().Add(agentWriteWait))
			err = conn.WriteMessage(websocket.BinaryMessage, u.Frame.JPEG)
		}
		if err != nil {
			log.Info("agent dropped from Rendered mode: write failed", "err", err)
			return nil
		}
	}
}

// screenshot answers the session's canonical render as a PNG, for tickets.
func (s *Server) screenshot(w http.ResponseWriter, r *http.Request) error {
	return s.exportRendered(w, r, "agent.screenshot", func(ctx context.Context, id string) ([]byte, error) {
		return s.renderer.Screenshot(ctx, id)
	}, "image/png", `inline; filename="%s.png"`)
}

// renderedDocument answers the document the session's rendered view shows,
// as an HTML file to download: the replayed page as the server's Chromium
// built it from the redacted events (sandboxed: it runs nothing if opened).
func (s *Server) renderedDocument(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Content-Security-Policy", "sandbox; default-src 'none'; img-src data:; style-src 'unsafe-inline'")
	return s.exportRendered(w, r, "agent.export", func(ctx context.Context, id string) ([]byte, error) {
		doc, err := s.renderer.Document(ctx, id)
		return []byte("<!doctype html>\n" + doc), err
	}, "text/html; charset=utf-8", `attachment; filename="%s.html"`)
}

// exportRendered answers what get takes from the session's rendered view,
// which it may have to start first; disposition has a %s for the session.
func (s *Server) exportRendered(w http.ResponseWriter, r *http.Request, event string,
	get func(ctx context.Context, sessionID string) ([]byte, error), contentType, disposition string) error {
	sess, err := s.hub.Lookup(r.PathValue("id"))
	if err != nil {
		return err
	}
	if s.renderer == nil {
		writeError(w, http.StatusServiceUnavailable, noRenderer)
		return nil
	}
	ctx, cancel := context.WithTimeout(r.Context(), screenshotTimeout)
	defer cancel()
	body, err := get(ctx, sess.ID)
	var unavailable *browserpool.RenderError
	switch {
	case errors.As(err, &unavailable):
		writeError(w, http.StatusServiceUnavailable, unavailable.Error())
		return nil
	case errors.Is(err, context.DeadlineExceeded):
		writeError(w, http.StatusServiceUnavailable, "the rendered view did not show within "+screenshotTimeout.String())
		return nil
	case err != nil:
		return err
	}
	s.audit.Record(event, "session", sess.ID, "remote", s.trusted.Client(r))
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Disposition", fmt.Sprintf(disposition, sess.ID))
	_, err = w.Write(body)
	return err
}
