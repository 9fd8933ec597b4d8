package viewer

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"io/fs"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/cobrowse/cobrowse/audit"
	"github.com/cobrowse/cobrowse/internal/logtest"
	"github.com/cobrowse/cobrowse/session"
	"github.com/cobrowse/cobrowse/web"
)

func TestNewValidatesConfig(t *testing.T) {
	hub := session.NewHub(session.Config{Logger: quietLogger()})
	tests := []struct {
		name    string
		cfg     Config
		wantErr string // substring; "" means New must succeed
	}{
		{"no hub", Config{Token: testToken}, "hub"},
		{"empty token", Config{Hub: hub}, "at least 16"},
		{"token one short", Config{Hub: hub, Token: strings.Repeat("x", MinTokenLength-1)}, "at least 16"},
		{"shortest token", Config{Hub: hub, Token: strings.Repeat("x", MinTokenLength)}, ""},
		{"nil logger", Config{Hub: hub, Token: testToken}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, err := New(tt.cfg)
			if tt.wantErr == "" {
				if err != nil || srv == nil {
					t.Fatalf("New = %v, %v; want a server", srv, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("New succeeded; want an error mentioning %q", tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("New error %q does not mention %q", err, tt.wantErr)
			}
		})
	}
}

type routeKind int

const (
	kindPage routeKind = iota // HTML page: unauthenticated → 303 /login
	kindAPI                   // JSON API: unauthenticated → 401 JSON
	kindSSE                   // server-sent events
	kindWS                    // WebSocket
)

// TestAuthMatrix checks every agent route against every kind of credential.
func TestAuthMatrix(t *testing.T) {
	f := newFixture(t)
	f.visit(t, "s1", "https://shop.example/", "Shop", 2)
	login := f.login(t)
	expiry, mac, ok := strings.Cut(login.Value, ".")
	if !ok {
		t.Fatalf("login cookie %q is not <expiry>.<mac>", login.Value)
	}
	unix, err := strconv.ParseInt(expiry, 10, 64)
	if err != nil {
		t.Fatalf("login cookie expiry %q: %v", expiry, err)
	}
	flipped := []byte(mac)
	if flipped[0] == 'A' {
		flipped[0] = 'B'
	} else {
		flipped[0] = 'A'
	}
	expired := f.srv.auth.loginCookie(time.Now().Add(-loginLifetime-time.Minute), false)
	otherToken := newAuth("another-agent-token-0123456789").loginCookie(time.Now(), false)

	credentials := []struct {
		name   string
		header http.Header
		query  string
		authed bool
	}{
		{name: "none"},
		{name: "wrong bearer", header: bearer("wrong-token-0123456789abc")},
		{name: "bearer with token prefix", header: bearer(testToken[:len(testToken)-1])},
		{name: "bearer with token plus one", header: bearer(testToken + "x")},
		{name: "empty bearer", header: http.Header{"Authorization": {"Bearer "}}},
		{name: "token without scheme", header: http.Header{"Authorization": {testToken}}},
		{name: "basic scheme", header: http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte("agent:"+testToken))}}},
		{name: "token in query", query: "token=" + testToken},
		{name: "right bearer", header: bearer(testToken), authed: true},
		{name: "right bearer lower-case scheme", header: http.Header{"Authorization": {"bearer " + testToken}}, authed: true},
		{name: "login cookie", header: cookieHeader(agentCookie, login.Value), authed: true},
		{name: "login cookie, wrong bearer", header: http.Header{
			"Cookie":        cookieHeader(agentCookie, login.Value)["Cookie"],
			"Authorization": {"Bearer wrong-token-0123456789abc"},
		}},
		{name: "login cookie, basic auth added by a proxy in front", header: http.Header{
			"Cookie":        cookieHeader(agentCookie, login.Value)["Cookie"],
			"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte("gateway:secret"))},
		}, authed: true},
		{name: "tampered mac", header: cookieHeader(agentCookie, expiry+"."+string(flipped))},
		{name: "extended expiry", header: cookieHeader(agentCookie, strconv.FormatInt(unix+3600, 10)+"."+mac)},
		{name: "mac only", header: cookieHeader(agentCookie, mac)},
		{name: "token as cookie", header: cookieHeader(agentCookie, testToken)},
		{name: "expired cookie", header: cookieHeader(agentCookie, expired.Value)},
		{name: "cookie of another token", header: cookieHeader(agentCookie, otherToken.Value)},
		{name: "login cookie under another name", header: cookieHeader("session", login.Value)},
	}
	routes := []struct {
		path string
		kind routeKind
		page string // kindPage: the agent page served
	}{
		{"/", kindPage, "dashboard.html"},
		{"/sessions/s1", kindPage, "session.html"},
		{"/api/sessions", kindAPI, ""},
		{"/api/sessions/s1", kindAPI, ""},
		{"/api/sessions/s1/events", kindAPI, ""},
		{"/api/sessions/stream", kindSSE, ""},
		{"/api/sessions/s1/live", kindWS, ""},
	}
	for _, rt := range routes {
		for _, cred := range credentials {
			t.Run(rt.path+"/"+cred.name, func(t *testing.T) {
				path := rt.path
				if cred.query != "" {
					path += "?" + cred.query
				}
				switch {
				case rt.kind == kindWS:
					checkLiveAuth(t, f, path, cred.header, cred.authed)
				case rt.kind == kindSSE && cred.authed:
					resp, events := f.openStream(t, cred.header)
					checkSecurityHeaders(t, resp)
					if resp.StatusCode != http.StatusOK {
						t.Fatalf("status %d, want 200", resp.StatusCode)
					}
					if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
						t.Errorf("Content-Type %q, want text/event-stream", ct)
					}
					if ev := nextSSE(t, events); ev.name != "sessions" {
						t.Errorf("first event %q, want \"sessions\"", ev.name)
					}
				case !cred.authed && rt.kind == kindPage:
					resp, _ := f.do(t, request{path: path, header: cred.header})
					checkSecurityHeaders(t, resp)
					want := "/login"
					if path != "/" {
						want += "?next=" + url.QueryEscape(path)
					}
					if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != want {
						t.Fatalf("status %d Location %q, want 303 to %s", resp.StatusCode, resp.Header.Get("Location"), want)
					}
				case !cred.authed:
					resp, body := f.do(t, request{path: path, header: cred.header})
					checkSecurityHeaders(t, resp)
					checkUnauthorized(t, resp, body)
				case rt.kind == kindPage:
					resp, body := f.do(t, request{path: path, header: cred.header})
					checkSecurityHeaders(t, resp)
					if resp.StatusCode != http.StatusOK {
						t.Fatalf("status %d, want 200", resp.StatusCode)
					}
					want, err := fs.ReadFile(web.Agent(), rt.page)
					if err != nil {
						t.Fatal(err)
					}
					if string(body) != string(want) {
						t.Errorf("served %d bytes that are not %s", len(body), rt.page)
					}
					if ct := resp.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
						t.Errorf("Content-Type %q, want text/html; charset=utf-8", ct)
					}
					if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
						t.Errorf("Cache-Control %q, want no-store", cc)
					}
				default: // authenticated API
					resp, body := f.do(t, request{path: path, header: cred.header})
					checkSecurityHeaders(t, resp)
					if resp.StatusCode != http.StatusOK {
						t.Fatalf("status %d, want 200; body %s", resp.StatusCode, body)
					}
					if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
						t.Errorf("Content-Type %q, want application/json", ct)
					}
					if !json.Valid(body) {
						t.Errorf("body is not JSON: %s", body)
					}
				}
			})
		}
	}
}

func checkUnauthorized(t *testing.T, resp *http.Response, body []byte) {
	t.Helper()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("status %d, want 401; body %s", resp.StatusCode, body)
	}
	if got := resp.Header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer ") {
		t.Errorf("WWW-Authenticate %q, want a Bearer challenge", got)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	var e struct {
		Error string `json:"error"`
	}
	if err := json.Unmarshal(body, &e); err != nil || e.Error == "" {
		t.Errorf("body %q is not a JSON error (%v)", body, err)
	}
}

// checkLiveAuth dials the live WebSocket: an authenticated agent gets the
// "reset" first; anyone else is refused before the upgrade.
func checkLiveAuth(t *testing.T, f *fixture, path string, header http.Header, authed bool) {
	t.Helper()
	conn, resp, body, err := f.dial(t, path, header)
	if authed {
		if err != nil {
			t.Fatalf("dial: %v (body %q)", err, body)
		}
		if m := readLive(t, conn); m.Type != "reset" || m.Session.ID != "s1" {
			t.Fatalf("first message %q for session %q, want a reset of s1", m.Type, m.Session.ID)
		}
		return
	}
	if err == nil {
		t.Fatal("unauthenticated WebSocket handshake succeeded")
	}
	if !errors.Is(err, websocket.ErrBadHandshake) || resp == nil {
		t.Fatalf("dial error %v, want a refused handshake", err)
	}
	checkSecurityHeaders(t, resp)
	checkUnauthorized(t, resp, body)
}

func TestAuthCookieLifetime(t *testing.T) {
	a := newAuth(testToken)
	now := time.Unix(1_700_000_000, 0)
	c := a.loginCookie(now, false)
	if !c.Expires.Equal(now.Add(loginLifetime)) {
		t.Errorf("cookie Expires %v, want %v", c.Expires, now.Add(loginLifetime))
	}
	tests := []struct {
		name string
		at   time.Time
		want bool
	}{
		{"at sign-in", now, true},
		{"an hour later", now.Add(time.Hour), true},
		{"a second before expiry", now.Add(loginLifetime - time.Second), true},
		{"at expiry", now.Add(loginLifetime), false},
		{"a day later", now.Add(24 * time.Hour), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/api/sessions", nil)
			r.AddCookie(c)
			if got := a.authenticated(r, tt.at); got != tt.want {
				t.Errorf("authenticated = %v, want %v", got, tt.want)
			}
		})
	}
	t.Run("new token signs everyone out", func(t *testing.T) {
		r := httptest.NewRequest(http.MethodGet, "/api/sessions", nil)
		r.AddCookie(c)
		if newAuth(testToken+"-rotated").authenticated(r, now) {
			t.Error("a cookie signed under the old token is accepted after the token changed")
		}
	})
}

func TestLogin(t *testing.T) {
	tests := []struct {
		name     string
		req      request
		location string
		cookie   bool
	}{
		{"query token", request{path: "/login?token=" + url.QueryEscape(testToken)}, "/", true},
		{"form token", request{method: http.MethodPost, path: "/login", form: "token=" + url.QueryEscape(testToken)}, "/", true},
		{"wrong query token", request{path: "/login?token=wrong-token-0123456789"}, "/login?error=1", false},
		{"wrong form token", request{method: http.MethodPost, path: "/login", form: "token=wrong-token-0123456789"}, "/login?error=1", false},
		{"token prefix", request{method: http.MethodPost, path: "/login", form: "token=" + testToken[:MinTokenLength]}, "/login?error=1", false},
		// A POST takes the token from its form only.
		{"form without token, token in query", request{method: http.MethodPost, path: "/login?token=" + testToken, form: "other=1"}, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			resp, _ := f.do(t, tt.req)
			checkSecurityHeaders(t, resp)
			c := findCookie(resp, agentCookie)
			if tt.location == "" {
				if resp.StatusCode != http.StatusOK || c != nil {
					t.Fatalf("status %d, cookie %v; want the sign-in page and no cookie", resp.StatusCode, c)
				}
				return
			}
			if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != tt.location {
				t.Fatalf("status %d Location %q, want 303 to %s", resp.StatusCode, resp.Header.Get("Location"), tt.location)
			}
			if !tt.cookie {
				if c != nil {
					t.Fatalf("a failed sign-in set a cookie: %v", c)
				}
				return
			}
			if c == nil {
				t.Fatalf("no %s cookie; Set-Cookie %q", agentCookie, resp.Header.Values("Set-Cookie"))
			}
			if !c.HttpOnly {
				t.Error("login cookie is not HttpOnly")
			}
			if c.SameSite != http.SameSiteStrictMode {
				t.Errorf("login cookie SameSite %v, want Strict", c.SameSite)
			}
			if c.Path != "/" {
				t.Errorf("login cookie Path %q, want /", c.Path)
			}
			if c.Secure {
				t.Error("login cookie over plain HTTP is Secure: the browser would never send it back")
			}
			if left := time.Until(c.Expires); left < loginLifetime-time.Minute || left > loginLifetime+time.Minute {
				t.Errorf("login cookie expires in %v, want about %v", left, loginLifetime)
			}
			if strings.Contains(c.Value, testToken) {
				t.Error("login cookie carries the agent token itself")
			}
			resp, body := f.do(t, request{path: "/api/sessions", header: cookieHeader(c.Name, c.Value)})
			if resp.StatusCode != http.StatusOK {
				t.Errorf("API with the new cookie: status %d, body %s", resp.StatusCode, body)
			}
		})
	}
}

func TestLoginPage(t *testing.T) {
	f := newFixture(t)
	login := f.login(t)
	loginHTML, err := fs.ReadFile(web.Agent(), "login.html")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		req      request
		status   int
		location string
	}{
		{"signed out", request{path: "/login"}, http.StatusOK, ""},
		{"after a wrong token", request{path: "/login?error=1"}, http.StatusOK, ""},
		{"signed in", request{path: "/login", header: cookieHeader(agentCookie, login.Value)}, http.StatusSeeOther, "/"},
		{"expired cookie", request{path: "/login", header: cookieHeader(agentCookie, f.srv.auth.loginCookie(time.Now().Add(-2*loginLifetime), false).Value)}, http.StatusOK, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := f.do(t, tt.req)
			checkSecurityHeaders(t, resp)
			if resp.StatusCode != tt.status || resp.Header.Get("Location") != tt.location {
				t.Fatalf("status %d Location %q, want %d %q", resp.StatusCode, resp.Header.Get("Location"), tt.status, tt.location)
			}
			if tt.status == http.StatusOK && string(body) != string(loginHTML) {
				t.Errorf("served %d bytes that are not login.html", len(body))
			}
		})
	}
}

func TestLoginCookieSecureOverTLS(t *testing.T) {
	hub := session.NewHub(session.Config{Logger: quietLogger()})
	srv, err := New(Config{Hub: hub, Token: testToken, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewTLSServer(srv)
	defer ts.Close()
	resp, err := noRedirects(ts.Client()).Get(ts.URL + "/login?token=" + testToken)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	c := findCookie(resp, agentCookie)
	if c == nil {
		t.Fatalf("no login cookie over TLS (status %d)", resp.StatusCode)
	}
	if !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode {
		t.Errorf("login cookie over TLS: Secure=%v HttpOnly=%v SameSite=%v; want Secure, HttpOnly, Strict", c.Secure, c.HttpOnly, c.SameSite)
	}
}

// Behind a TLS-terminating proxy named in --trusted-proxy, the sign-in
// cookie is Secure when the proxy says the agent used https, and the audit
// log names the agent's address; anyone else's X-Forwarded-* headers change
// nothing.
func TestLoginBehindTrustedProxy(t *testing.T) {
	forwardedHTTPS := http.Header{"X-Forwarded-Proto": {"https"}, "X-Forwarded-For": {"203.0.113.7"}}
	for _, tc := range []struct {
		name, trusted string
		header        http.Header
		secure        bool
		remote        string // "" for the TCP peer's address
	}{
		{"trusted proxy, https", "127.0.0.0/8", forwardedHTTPS, true, "203.0.113.7"},
		{"trusted proxy, http", "127.0.0.0/8", http.Header{"X-Forwarded-Proto": {"http"}}, false, ""},
		{"another network", "192.0.2.0/24", forwardedHTTPS, false, ""},
		{"no trusted proxy", "", forwardedHTTPS, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, func(_ *session.Config, c *Config) {
				if tc.trusted != "" {
					if err := c.TrustedProxies.Set(tc.trusted); err != nil {
						t.Fatal(err)
					}
				}
			})
			var log logtest.Buffer
			f.srv.audit = audit.New(&log, quietLogger())
			resp, _ := f.do(t, request{path: "/login?token=" + url.QueryEscape(testToken), header: tc.header})
			c := findCookie(resp, agentCookie)
			if c == nil {
				t.Fatalf("no login cookie (status %d)", resp.StatusCode)
			}
			if c.Secure != tc.secure {
				t.Errorf("cookie Secure = %v, want %v", c.Secure, tc.secure)
			}
			var line struct{ Remote string }
			if err := json.Unmarshal([]byte(log.String()), &line); err != nil {
				t.Fatalf("audit line %q: %v", log.String(), err)
			}
			if want := tc.remote; want == "" && !strings.HasPrefix(line.Remote, "127.0.0.1:") || want != "" && line.Remote != want {
				t.Errorf("audit remote %q, want %q (or the peer's address when empty)", line.Remote, want)
			}
		})
	}
}

func TestLogout(t *testing.T) {
	f := newFixture(t)

	t.Run("clears the cookie", func(t *testing.T) {
		login := f.login(t)
		resp, _ := f.do(t, request{method: http.MethodPost, path: "/logout", header: cookieHeader(agentCookie, login.Value)})
		checkSecurityHeaders(t, resp)
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/login" {
			t.Fatalf("status %d Location %q, want 303 to /login", resp.StatusCode, resp.Header.Get("Location"))
		}
		c := findCookie(resp, agentCookie)
		if c == nil {
			t.Fatalf("logout set no %s cookie; Set-Cookie %q", agentCookie, resp.Header.Values("Set-Cookie"))
		}
		if c.Value != "" || c.MaxAge >= 0 {
			t.Errorf("logout cookie value %q MaxAge %d; want empty and deleted", c.Value, c.MaxAge)
		}
		if c.Path != "/" || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode {
			t.Errorf("logout cookie Path=%q HttpOnly=%v SameSite=%v; want /, HttpOnly, Strict", c.Path, c.HttpOnly, c.SameSite)
		}
	})

	t.Run("only by POST", func(t *testing.T) {
		resp, _ := f.do(t, request{path: "/logout"})
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("GET /logout: status %d, want 405", resp.StatusCode)
		}
		if findCookie(resp, agentCookie) != nil {
			t.Error("GET /logout touched the cookie")
		}
	})

	t.Run("browser flow", func(t *testing.T) {
		jar, err := cookiejar.New(nil)
		if err != nil {
			t.Fatal(err)
		}
		browser := noRedirects(f.ts.Client())
		browser.Jar = jar
		step := func(method, path, form string) *http.Response {
			t.Helper()
			r, err := http.NewRequest(method, f.ts.URL+path, strings.NewReader(form))
			if err != nil {
				t.Fatal(err)
			}
			if form != "" {
				r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			}
			resp, err := browser.Do(r)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp
		}
		if resp := step(http.MethodGet, "/", ""); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("dashboard before sign-in: status %d, want 303", resp.StatusCode)
		}
		step(http.MethodPost, "/login", "token="+url.QueryEscape(testToken))
		if resp := step(http.MethodGet, "/", ""); resp.StatusCode != http.StatusOK {
			t.Fatalf("dashboard after sign-in: status %d, want 200", resp.StatusCode)
		}
		if resp := step(http.MethodGet, "/api/sessions", ""); resp.StatusCode != http.StatusOK {
			t.Fatalf("API after sign-in: status %d, want 200", resp.StatusCode)
		}
		step(http.MethodPost, "/logout", "")
		if resp := step(http.MethodGet, "/", ""); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/login" {
			t.Fatalf("dashboard after sign-out: status %d Location %q, want 303 to /login", resp.StatusCode, resp.Header.Get("Location"))
		}
		if resp := step(http.MethodGet, "/api/sessions", ""); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("API after sign-out: status %d, want 401", resp.StatusCode)
		}
	})
}

func TestLoginReturnsToTheRequestedPageOnly(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name     string
		req      request
		location string
	}{
		{"query token with next", request{path: "/login?token=" + url.QueryEscape(testToken) + "&next=%2Fsessions%2Fs1"}, "/sessions/s1"},
		{"form token with next", request{method: http.MethodPost, path: "/login", form: "token=" + url.QueryEscape(testToken) + "&next=%2Fsessions%2Fs1"}, "/sessions/s1"},
		{"wrong token keeps next", request{method: http.MethodPost, path: "/login", form: "token=wrong-token-0123456789&next=%2Fsessions%2Fs1"}, "/login?error=1&next=%2Fsessions%2Fs1"},
		{"protocol-relative next", request{path: "/login?token=" + url.QueryEscape(testToken) + "&next=%2F%2Fevil.example%2F"}, "/"},
		{"absolute next", request{path: "/login?token=" + url.QueryEscape(testToken) + "&next=https%3A%2F%2Fevil.example%2F"}, "/"},
		{"backslash next", request{path: "/login?token=" + url.QueryEscape(testToken) + "&next=%2F%5Cevil.example"}, "/"},
		{"relative next", request{path: "/login?token=" + url.QueryEscape(testToken) + "&next=sessions"}, "/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, _ := f.do(t, tt.req)
			if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != tt.location {
				t.Fatalf("status %d Location %q, want 303 to %q", resp.StatusCode, resp.Header.Get("Location"), tt.location)
			}
		})
	}
}
