package viewer

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// agentCookie carries a signed login: "<unix expiry>.<mac>". The MAC key is
// derived from the agent token, so changing the token signs everyone out.
const agentCookie = "cobrowse_agent"

// loginLifetime is how long an agent stays signed in.
const loginLifetime = 12 * time.Hour

type auth struct {
	tokenHash [sha256.Size]byte
	key       []byte
}

func newAuth(token string) auth {
	key := sha256.Sum256([]byte("cobrowse agent cookie\x00" + token))
	return auth{tokenHash: sha256.Sum256([]byte(token)), key: key[:]}
}

// tokenOK compares hashes in constant time, so that neither the token's
// content nor its length shows in the time a wrong guess takes.
func (a auth) tokenOK(candidate string) bool {
	h := sha256.Sum256([]byte(candidate))
	return subtle.ConstantTimeCompare(h[:], a.tokenHash[:]) == 1
}

func (a auth) mac(expiry string) string {
	m := hmac.New(sha256.New, a.key)
	m.Write([]byte(expiry))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// loginCookie returns a cookie that signs the agent in until now+loginLifetime.
func (a auth) loginCookie(now time.Time, secure bool) *http.Cookie {
	expiry := strconv.FormatInt(now.Add(loginLifetime).Unix(), 10)
	return &http.Cookie{
		Name:     agentCookie,
		Value:    expiry + "." + a.mac(expiry),
		Path:     "/",
		Expires:  now.Add(loginLifetime),
		HttpOnly: true,
		Secure:   secure,
		// Strict: no other site can make the agent's browser send it, which
		// is what protects the POST forms and the WebSocket from CSRF.
		SameSite: http.SameSiteStrictMode,
	}
}

// authenticated reports whether the request carries the agent token as a
// Bearer credential or a valid, unexpired login cookie. A Bearer credential,
// when present, decides alone; other Authorization schemes (say, Basic added
// by a proxy in front) leave the decision to the cookie.
func (a auth) authenticated(r *http.Request, now time.Time) bool {
	scheme, credential, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if strings.EqualFold(scheme, "Bearer") {
		return a.tokenOK(strings.TrimSpace(credential))
	}
	c, err := r.Cookie(agentCookie)
	if err != nil {
		return false
	}
	expiry, mac, ok := strings.Cut(c.Value, ".")
	if !ok || !hmac.Equal([]byte(mac), []byte(a.mac(expiry))) {
		return false
	}
	unix, err := strconv.ParseInt(expiry, 10, 64)
	return err == nil && now.Unix() < unix
}
