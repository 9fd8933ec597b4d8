package session

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/cobrowse/cobrowse/internal/forwarded"
	"github.com/cobrowse/cobrowse/internal/rrwebtest"
)

type visitorServer struct {
	hub *Hub
	srv *httptest.Server
}

func newVisitorServer(t *testing.T, maxMessage int64) *visitorServer {
	return newVisitorServerWith(t, Config{}, maxMessage)
}

func newVisitorServerWith(t *testing.T, cfg Config, maxMessage int64) *visitorServer {
	t.Helper()
	identity, err := NewIdentity([]byte(strings.Repeat("k", MinKeyBytes)))
	if err != nil {
		t.Fatal(err)
	}
	hub := quietHub(cfg)
	srv := httptest.NewServer(&VisitorHandler{Hub: hub, Identity: identity, MaxMessageBytes: maxMessage, Logger: hub.cfg.Logger})
	t.Cleanup(srv.Close)
	return &visitorServer{hub: hub, srv: srv}
}

// dial opens a visitor socket; cookie may be empty. It returns the
// connection, the welcome message and the cookie the server set, if any.
func (vs *visitorServer) dial(t *testing.T, tab, page, cookie, origin string) (*websocket.Conn, map[string]any, string, error) {
	t.Helper()
	header := http.Header{"Origin": {origin}}
	if cookie != "" {
		header.Set("Cookie", cookie)
	}
	url := "ws" + strings.TrimPrefix(vs.srv.URL, "http") + VisitorPath + "?tab=" + tab + "&page=" + page
	dialer := websocket.Dialer{EnableCompression: true, HandshakeTimeout: 5 * time.Second}
	conn, resp, err := dialer.Dial(url, header)
	if err != nil {
		if resp != nil {
			return nil, nil, "", &httpStatusError{resp.StatusCode}
		}
		return nil, nil, "", err
	}
	t.Cleanup(func() { conn.Close() })
	setCookie := ""
	if cs := resp.Cookies(); len(cs) > 0 {
		setCookie = cs[0].Name + "=" + cs[0].Value
		if !cs[0].HttpOnly {
			t.Error("visitor cookie is not HttpOnly")
		}
	}
	return conn, readJSON(t, conn), setCookie, nil
}

type httpStatusError struct{ status int }

func (e *httpStatusError) Error() string { return http.StatusText(e.status) }

func readJSON(t *testing.T, conn *websocket.Conn) map[string]any {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	var m map[string]any
	if err := conn.ReadJSON(&m); err != nil {
		t.Fatalf("reading from the visitor socket: %v", err)
	}
	return m
}

func TestVisitorCookieContinuesTheSessionAcrossPages(t *testing.T) {
	vs := newVisitorServer(t, 0)
	origin := vs.srv.URL
	conn, welcome, cookie, err := vs.dial(t, "tab-0001", "page-0001", "", origin)
	if err != nil {
		t.Fatal(err)
	}
	if cookie == "" {
		t.Fatal("first connection set no visitor cookie")
	}
	session := welcome["session"].(string)
	if welcome["type"] != "welcome" || welcome["ack"].(float64) != 0 {
		t.Fatalf("welcome = %v", welcome)
	}
	events, _ := json.Marshal(rrwebtest.Page(1000, "https://shop.test/", 2))
	conn.WriteMessage(websocket.TextMessage, []byte(`{"seq":1,"events":`+string(events)+`}`))
	if ack := readJSON(t, conn); ack["type"] != "ack" || ack["seq"].(float64) != 1 {
		t.Fatalf("ack = %v", ack)
	}
	conn.Close()

	// Next page, same cookie: same session, new page load.
	_, welcome, again, err := vs.dial(t, "tab-0001", "page-0002", cookie, origin)
	if err != nil {
		t.Fatal(err)
	}
	if again != "" {
		t.Error("server minted a new cookie for a valid one")
	}
	if welcome["session"] != session {
		t.Fatalf("navigation started session %v, want %v", welcome["session"], session)
	}
	if n := len(vs.hub.Sessions()); n != 1 {
		t.Fatalf("hub has %d sessions, want 1", n)
	}

	// A forged cookie gets a fresh session, not the one it names.
	forged := strings.Split(cookie, ".")[0] + ".forged"
	_, welcome, _, err = vs.dial(t, "tab-0002", "page-0003", forged, origin)
	if err != nil {
		t.Fatal(err)
	}
	if welcome["session"] == session {
		t.Fatal("a forged cookie joined the victim's session")
	}
}

func TestVisitorHandshakeRejectsBadRequests(t *testing.T) {
	vs := newVisitorServer(t, 0)
	tests := []struct {
		name, tab, page, origin string
		status                  int
	}{
		{"cross-origin page", "tab-0001", "page-0001", "https://evil.test", http.StatusForbidden},
		{"no origin", "tab-0001", "page-0001", "", http.StatusForbidden},
		{"short tab id", "t", "page-0001", vs.srv.URL, http.StatusBadRequest},
		{"bad page id", "tab-0001", "page%200001", vs.srv.URL, http.StatusBadRequest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, _, err := vs.dial(t, tc.tab, tc.page, "", tc.origin)
			var status *httpStatusError
			if !errors.As(err, &status) || status.status != tc.status {
				t.Fatalf("err = %v, want HTTP %d", err, tc.status)
			}
		})
	}
}

func TestVisitorMessageBoundIsEnforcedAfterInflation(t *testing.T) {
	vs := newVisitorServer(t, 64<<10)
	conn, _, _, err := vs.dial(t, "tab-0001", "page-0001", "", vs.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	// 1 MiB of one repeated byte compresses to about a kilobyte on the wire.
	huge := `{"seq":1,"events":[{"type":3,"timestamp":1,"data":"` + strings.Repeat("a", 1<<20) + `"}]}`
	conn.WriteMessage(websocket.TextMessage, []byte(huge))
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _, err = conn.ReadMessage()
	var closeErr *websocket.CloseError
	if !errors.As(err, &closeErr) || closeErr.Code != websocket.CloseMessageTooBig {
		t.Fatalf("err = %v, want close 1009", err)
	}
}

func TestVisitorMalformedMessagesCloseWithAReason(t *testing.T) {
	for _, tt := range []struct {
		name, msg string
		code      int
	}{
		{"not JSON", `{"seq":1,"events":[`, websocket.CloseUnsupportedData},
		// A browser would drop an agent's socket on such bytes passed on.
		{"not UTF-8", "{\"seq\":1,\"events\":[{\"type\":3,\"data\":{\"x\":\"\xff\xfe\"}}]}", websocket.CloseInvalidFramePayloadData},
	} {
		t.Run(tt.name, func(t *testing.T) {
			vs := newVisitorServer(t, 0)
			conn, _, _, err := vs.dial(t, "tab-0001", "page-0001", "", vs.srv.URL)
			if err != nil {
				t.Fatal(err)
			}
			conn.WriteMessage(websocket.TextMessage, []byte(tt.msg))
			conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, _, err = conn.ReadMessage()
			var closeErr *websocket.CloseError
			if !errors.As(err, &closeErr) || closeErr.Code != tt.code {
				t.Fatalf("err = %v, want close %d", err, tt.code)
			}
		})
	}
}

func TestVisitorRefusedWithAReasonWhenTheHubIsFull(t *testing.T) {
	vs := newVisitorServerWith(t, Config{MaxSessions: 1}, 0)
	if _, _, _, err := vs.dial(t, "tab-0001", "page-0001", "", vs.srv.URL); err != nil {
		t.Fatal(err)
	}
	_, _, _, err := vs.dial(t, "tab-0002", "page-0002", "", vs.srv.URL)
	var status *httpStatusError
	if !errors.As(err, &status) || status.status != http.StatusServiceUnavailable {
		t.Fatalf("second visitor: err = %v, want HTTP 503", err)
	}
}

// A visitor identified by its first page request (Identify, in front of the
// proxy) keeps that session when its script connects.
func TestIdentifyBeforeTheSocket(t *testing.T) {
	vs := newVisitorServer(t, 0)
	h := vs.srv.Config.Handler.(*VisitorHandler)

	first := httptest.NewRecorder()
	id := h.Identify(first, httptest.NewRequest("GET", "/account", nil))
	cookies := first.Result().Cookies()
	if id == "" || len(cookies) != 1 || !cookies[0].HttpOnly || cookies[0].Path != "/" {
		t.Fatalf("Identify = %q, cookies %v; want a new session and its HttpOnly cookie", id, cookies)
	}
	cookie := cookies[0].Name + "=" + cookies[0].Value

	again := httptest.NewRecorder()
	r := httptest.NewRequest("GET", "/private.png", nil)
	r.Header.Set("Cookie", "auth=ok; "+cookie)
	if got := h.Identify(again, r); got != id || again.Header().Get("Set-Cookie") != "" {
		t.Errorf("with its cookie: Identify = %q (Set-Cookie %q), want %q and no new cookie", got, again.Header().Get("Set-Cookie"), id)
	}
	if got, ok := h.SessionOf(r); !ok || got != id {
		t.Errorf("SessionOf = %q, %v", got, ok)
	}

	_, welcome, minted, err := vs.dial(t, "tab-0001", "page-0001", cookie, vs.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if welcome["session"] != id || minted != "" {
		t.Errorf("the socket joined session %v (new cookie %q); want %q, the one of the first page", welcome["session"], minted, id)
	}
}

func TestVisitorPageMessageCarriesThePixelRatio(t *testing.T) {
	vs := newVisitorServer(t, 0)
	conn, welcome, _, err := vs.dial(t, "tab-0001", "page-0001", "", vs.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	s, err := vs.hub.Session(welcome["session"].(string))
	if err != nil {
		t.Fatal(err)
	}
	conn.WriteMessage(websocket.TextMessage, []byte(`{"type":"page","url":"https://shop.test/","title":"Shop","pixelRatio":2}`))
	deadline := time.Now().Add(5 * time.Second)
	for s.Info().PixelRatio != 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := s.Info().PixelRatio; got != 2 {
		t.Errorf("Info.PixelRatio = %v after a page message with 2", got)
	}

	// Values no screen has are ignored.
	v, _, err := vs.hub.Attach(s.ID(), "tab-0001", "page-0002")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ set, want float64 }{{1.5, 1.5}, {0, 1.5}, {1e9, 1.5}, {-1, 1.5}, {0.5, 0.5}} {
		v.SetPixelRatio(tt.set)
		if got := s.Info().PixelRatio; got != tt.want {
			t.Errorf("SetPixelRatio(%v): Info.PixelRatio = %v, want %v", tt.set, got, tt.want)
		}
	}
}

// The visitor cookie is Secure when the browser used https: over TLS to
// this server, or as a trusted proxy in front says in X-Forwarded-Proto.
// httptest's requests come from 192.0.2.1.
func TestIdentifyCookieIsSecureOverHTTPS(t *testing.T) {
	tests := []struct {
		name    string
		trusted string // "" trusts no one
		proto   string // X-Forwarded-Proto, if not ""
		overTLS bool
		want    bool
	}{
		{"plain http", "", "", false, false},
		{"TLS", "", "", true, true},
		{"trusted proxy, https", "192.0.2.0/24", "https", false, true},
		{"trusted proxy, http over TLS", "192.0.2.0/24", "http", true, false},
		{"trusted proxy, bad proto", "192.0.2.0/24", "ftp", false, false},
		{"untrusted peer, https", "10.0.0.0/8", "https", false, false},
		{"no trusted proxies, https", "", "https", false, false},
	}
	identity, err := NewIdentity([]byte(strings.Repeat("k", MinKeyBytes)))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		h := &VisitorHandler{Hub: quietHub(Config{}), Identity: identity}
		if tt.trusted != "" {
			if h.TrustedProxies, err = forwarded.ParseProxies(tt.trusted); err != nil {
				t.Fatal(err)
			}
		}
		r := httptest.NewRequest("GET", "/", nil)
		r.TLS = nil
		if tt.overTLS {
			r.TLS = &tls.ConnectionState{}
		}
		if tt.proto != "" {
			r.Header.Set("X-Forwarded-Proto", tt.proto)
		}
		rec := httptest.NewRecorder()
		h.Identify(rec, r)
		cookies := rec.Result().Cookies()
		if len(cookies) != 1 || cookies[0].Secure != tt.want {
			t.Errorf("%s: cookies %v, want one with Secure %v", tt.name, cookies, tt.want)
		}
	}
}
