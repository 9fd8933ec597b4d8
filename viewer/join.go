package viewer

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"

	"github.com/cobrowse/cobrowse/session"
)

// joinByCode opens the session whose support code the agent entered
// (--join code): POST /api/join with {"code":"123456"} answers {"id":"…"};
// the agent's console then opens /sessions/{id}.
func (s *Server) joinByCode(w http.ResponseWriter, r *http.Request) error {
	var req struct{ Code string }
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<10)).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, `send {"code":"123456"}: the visitor's 6-digit support code`)
		return nil
	}
	id, err := s.hub.Redeem(req.Code)
	if errors.Is(err, session.ErrBadCode) {
		s.audit.Record("agent.code", "remote", s.trusted.Client(r), "ok", false)
		writeError(w, http.StatusNotFound, err.Error())
		return nil
	}
	if err != nil {
		return err
	}
	s.audit.Record("agent.code", "remote", s.trusted.Client(r), "ok", true, "session", id)
	return writeJSON(w, map[string]string{"id": id})
}
