package session

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"

	"github.com/cobrowse/cobrowse/internal/forwarded"
)

// VisitorPath is where the visitor script connects, on the visitor listener.
const VisitorPath = "/__cobrowse/ws"

// VisitorHandler serves the visitor WebSocket (VisitorPath): it identifies the
// visitor by its signed cookie (minting one on the first connection), attaches
// the tab to the hub and acknowledges every batch. The protocol is described
// in docs/protocol.md.
type VisitorHandler struct {
	Hub      *Hub
	Identity *Identity
	// CookieName names the visitor cookie. Default DefaultCookieName.
	CookieName string
	// MaxMessageBytes bounds one visitor message after decompression. Larger
	// messages close the connection with code 1009. Default 32 MiB (the
	// visitor script keeps each batch under 8 Mi characters, at most 24 MiB).
	MaxMessageBytes int64
	// Logger receives structured logs; nil means slog.Default().
	Logger *slog.Logger
	// TrustedProxies are the reverse proxies in front whose
	// X-Forwarded-Proto says whether the visitor's browser used https,
	// which makes the visitor cookie Secure. The zero value trusts no one:
	// the cookie is Secure when the request came over TLS to this server.
	TrustedProxies forwarded.Proxies
}

const (
	visitorPongWait     = 60 * time.Second
	visitorPingInterval = 25 * time.Second
	visitorWriteWait    = 10 * time.Second
	maxURLBytes         = 4096
	maxTitleBytes       = 1024
)

// SessionOf returns the session of the visitor that sent r, from its signed
// cookie, and whether r carries a valid one. Any request of the visitor's
// browser to the visitor listener does (the cookie's path is "/").
func (h *VisitorHandler) SessionOf(r *http.Request) (id string, ok bool) {
	c, err := r.Cookie(h.cookieName())
	if err != nil {
		return "", false
	}
	return h.Identity.Verify(c.Value)
}

// Identify returns the session of the visitor that sent r. A request
// without a valid cookie starts a new session: Identify adds to w's header
// the Set-Cookie that makes the browser send its id from now on, so call it
// before the response is written. cmd wires it in front of the proxy, so
// that the server-side asset fetcher knows whose cookies each request
// carries from the visitor's first page load on. The cookie is Secure if
// the visitor's browser used https (TrustedProxies.Scheme).
func (h *VisitorHandler) Identify(w http.ResponseWriter, r *http.Request) string {
	return h.identify(w.Header(), r)
}

func (h *VisitorHandler) identify(header http.Header, r *http.Request) string {
	if id, ok := h.SessionOf(r); ok {
		return id
	}
	id := NewID()
	cookie := &http.Cookie{
		Name:     h.cookieName(),
		Value:    h.Identity.Sign(id),
		Path:     "/",
		HttpOnly: true,
		Secure:   h.TrustedProxies.Scheme(r) == "https",
		SameSite: http.SameSiteLaxMode,
	}
	header.Add("Set-Cookie", cookie.String())
	return id
}

// visitorMessage is any message a visitor sends. A batch has no type.
type visitorMessage struct {
	Type   string            `json:"type"`
	Seq    uint64            `json:"seq"`
	Events []json.RawMessage `json:"events"`
	URL    string            `json:"url"`
	Title  string            `json:"title"`
	// PixelRatio is window.devicePixelRatio, sent with "page".
	PixelRatio float64 `json:"pixelRatio"`
	// Allow is the visitor's answer in "consent".
	Allow bool `json:"allow"`
	// Text of a "chat" message; the refusal's reason in "input.result".
	Text string `json:"text"`
	// "input.result": the agent and sequence number of the input action
	// it answers, and whether it was applied.
	Agent    string `json:"agent"`
	InputSeq int64  `json:"inputSeq"`
	OK       bool   `json:"ok"`
}

func (h *VisitorHandler) logger() *slog.Logger {
	if h.Logger != nil {
		return h.Logger
	}
	return slog.Default()
}

func (h *VisitorHandler) cookieName() string {
	if h.CookieName != "" {
		return h.CookieName
	}
	return DefaultCookieName
}

// DefaultCookieName is the visitor cookie's name unless
// VisitorHandler.CookieName says otherwise.
const DefaultCookieName = "__cobrowse_sid"

func (h *VisitorHandler) maxMessageBytes() int64 {
	if h.MaxMessageBytes > 0 {
		return h.MaxMessageBytes
	}
	return 32 << 20
}

// sameOrigin accepts only WebSocket handshakes sent by pages of the site this
// listener serves. Without it any other site could open a socket with the
// visitor's cookie and write into the visitor's session.
func sameOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return false
	}
	u, err := url.Parse(origin)
	return err == nil && u.Host == r.Host
}

func (h *VisitorHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	tabID, pageID := q.Get("tab"), q.Get("page")
	if !validID(tabID) || !validID(pageID) {
		http.Error(w, "tab and page must be 8 to 64 URL-safe characters", http.StatusBadRequest)
		return
	}
	if !sameOrigin(r) {
		http.Error(w, "cross-origin visitor connection refused", http.StatusForbidden)
		return
	}

	// The upgrade's response carries the cookie of a new visitor.
	header := http.Header{}
	sessionID := h.identify(header, r)

	v, ack, err := h.Hub.Attach(sessionID, tabID, pageID)
	if err != nil {
		h.logger().Warn("visitor refused", "session", sessionID, "err", err)
		http.Error(w, "cobrowse cannot take this visitor now: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	defer v.Detach()
	upgrader := websocket.Upgrader{
		EnableCompression: true,
		CheckOrigin:       sameOrigin,
	}
	conn, err := upgrader.Upgrade(w, r, header)
	if err != nil {
		return // Upgrade has replied with an HTTP error
	}
	defer conn.Close()

	log := h.logger().With("session", sessionID, "tab", tabID)
	log.Debug("visitor connected", "page", pageID, "ack", ack)

	replies := make(chan []byte, 64)
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		h.writeLoop(conn, v, replies)
	}()
	replies <- mustJSON(map[string]any{"type": "welcome", "session": sessionID, "ack": ack, "join": h.Hub.cfg.Join})

	err = h.readLoop(conn, v, replies)
	close(replies)
	<-writerDone
	var closeErr *websocket.CloseError
	if err != nil && !errors.As(err, &closeErr) && !errors.Is(err, io.EOF) {
		log.Info("visitor connection closed", "reason", err)
	}
}

// readLoop handles the visitor's messages until the connection fails.
func (h *VisitorHandler) readLoop(conn *websocket.Conn, v *Visitor, replies chan<- []byte) error {
	limit := h.maxMessageBytes()
	conn.SetReadDeadline(time.Now().Add(visitorPongWait))
	conn.SetPongHandler(func(string) error {
		return conn.SetReadDeadline(time.Now().Add(visitorPongWait))
	})
	for {
		kind, r, err := conn.NextReader()
		if err != nil {
			return err
		}
		conn.SetReadDeadline(time.Now().Add(visitorPongWait))
		if kind != websocket.TextMessage {
			return closeWith(conn, websocket.CloseUnsupportedData, "only JSON text messages are accepted")
		}
		// The read limit of the websocket package counts compressed bytes;
		// this one bounds what a message inflates to.
		data, err := io.ReadAll(io.LimitReader(r, limit+1))
		if err != nil {
			return err
		}
		if int64(len(data)) > limit {
			return closeWith(conn, websocket.CloseMessageTooBig, fmt.Sprintf("message over %d bytes", limit))
		}
		reply, err := h.handleMessage(v, data)
		if err != nil {
			var refused *refusal
			if errors.As(err, &refused) {
				return closeWith(conn, refused.code, refused.reason)
			}
			return err
		}
		if reply != nil {
			replies <- reply
		}
	}
}

// refusal is a visitor message the server will not take: the connection is
// closed with code and reason.
type refusal struct {
	code   int
	reason string
}

func (r *refusal) Error() string { return r.reason }

// handleMessage applies one visitor message to the hub and returns the reply
// to send, if any. A *refusal error means the connection must be closed.
func (h *VisitorHandler) handleMessage(v *Visitor, data []byte) ([]byte, error) {
	// Parts of events reach agents byte for byte (policies passes what it
	// need not change), and a browser drops a WebSocket on a text message
	// that is not UTF-8: checked once here, for everything.
	if !utf8.Valid(data) {
		return nil, &refusal{websocket.CloseInvalidFramePayloadData, "message is not valid UTF-8"}
	}
	var msg visitorMessage
	if err := json.Unmarshal(data, &msg); err != nil {
		return nil, &refusal{websocket.CloseUnsupportedData, "message is not valid JSON"}
	}
	switch msg.Type {
	case "":
		if _, err := v.Batch(msg.Seq, msg.Events); err != nil {
			if errors.Is(err, ErrDetached) && h.Hub.ShuttingDown() {
				return nil, &refusal{websocket.CloseServiceRestart, "service restart"}
			}
			return nil, &refusal{websocket.ClosePolicyViolation, err.Error()}
		}
		return mustJSON(map[string]any{"type": "ack", "seq": msg.Seq}), nil
	case "page":
		v.SetPage(truncate(msg.URL, maxURLBytes), truncate(msg.Title, maxTitleBytes))
		v.SetPixelRatio(msg.PixelRatio)
	case "focus":
		v.Focus()
	case "consent":
		v.Consent(msg.Allow)
	case "end":
		v.End()
	case "chat":
		if err := v.Chat(msg.Text); err != nil {
			h.logger().Debug("visitor chat refused", "err", err)
		}
	case "control":
		v.ControlAnswer(msg.Allow)
	case "control.revoke":
		v.RevokeControl()
	case "code.request":
		v.RequestCode()
	case "input.result":
		v.InputResult(msg.Agent, msg.InputSeq, msg.OK, msg.Text)
	default:
		h.logger().Debug("ignoring unknown visitor message", "type", truncate(msg.Type, 64))
	}
	return nil, nil
}

// writeLoop is the connection's only writer: replies from the read loop,
// messages from the hub, and keep-alive pings. It returns when replies is
// closed (the read loop ended) and closes the connection on any failure, which
// ends the read loop.
func (h *VisitorHandler) writeLoop(conn *websocket.Conn, v *Visitor, replies <-chan []byte) {
	defer func() {
		conn.Close()
		for range replies { // let the read loop finish without blocking
		}
	}()
	ping := time.NewTicker(visitorPingInterval)
	defer ping.Stop()
	for {
		var msg []byte
		var ok bool
		select {
		case msg, ok = <-replies:
			if !ok {
				return
			}
		case msg, ok = <-v.Downlink():
			if !ok { // detached by the hub
				if v.Restart() {
					closeWith(conn, websocket.CloseServiceRestart, "service restart")
				} else {
					closeWith(conn, websocket.CloseNormalClosure, "replaced by a newer connection of this tab")
				}
				return
			}
		case <-ping.C:
			if err := conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(visitorWriteWait)); err != nil {
				return
			}
			continue
		}
		conn.SetWriteDeadline(time.Now().Add(visitorWriteWait))
		if err := conn.WriteMessage(websocket.TextMessage, msg); err != nil {
			return
		}
	}
}

// closeWith sends a close frame with a reason and returns an error that says
// why the connection ends.
func closeWith(conn *websocket.Conn, code int, reason string) error {
	conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), time.Now().Add(visitorWriteWait))
	return fmt.Errorf("closed the connection: %s", reason)
}

// truncate cuts s to at most n bytes without splitting a UTF-8 sequence.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "")
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("session: encoding a reply cannot fail: %v", err))
	}
	return b
}
