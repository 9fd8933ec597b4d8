package assets

import (
	"container/list"
	"net"
	"strings"
	"sync"
)

const (
	// DefaultCookieSessions is the number of sessions a Cookies made with
	// NewCookies(0) remembers: the hub's limit on sessions.
	DefaultCookieSessions = 10000
	// maxCookieHosts is how many hosts a session's cookies are remembered
	// for; past it the least recently remembered host is forgotten.
	maxCookieHosts = 32
	// maxCookieHeader is the longest Cookie header remembered. Longer ones
	// are not kept (a cut header would be a wrong one), and the host's
	// previous header is forgotten.
	maxCookieHeader = 64 << 10
)

// Cookies remembers, in memory only, the Cookie header that each visitor's
// own browser last sent, per session and host, so that the renderer can
// fetch the session's same-origin assets as that visitor (Request.Cookie).
// It never sees a Set-Cookie: it holds what the browser chose to send.
//
// Hosts are compared without their port and case-insensitively (cookies are
// not scoped to ports). At most maxSessions sessions are remembered: past
// that, the session least recently given to Remember is forgotten. A Cookies
// is safe for concurrent use.
type Cookies struct {
	maxSessions int

	mu        sync.Mutex
	lru       list.List // of *cookieJar, most recently remembered at the front
	bySession map[string]*list.Element
}

// cookieJar is one session's Cookie headers, the most recently remembered
// host last.
type cookieJar struct {
	session string
	hosts   []hostCookie
}

type hostCookie struct{ host, header string }

// NewCookies returns a Cookies that remembers at most maxSessions sessions;
// 0 or less means DefaultCookieSessions.
func NewCookies(maxSessions int) *Cookies {
	if maxSessions <= 0 {
		maxSessions = DefaultCookieSessions
	}
	return &Cookies{maxSessions: maxSessions, bySession: make(map[string]*list.Element)}
}

// Remember records cookieHeader as what the session's browser last sent to
// host (a Host header: a name or IP, with or without a port). An empty
// cookieHeader forgets the host: the browser sends no cookie there now.
func (c *Cookies) Remember(sessionID, host, cookieHeader string) {
	host = cookieHost(host)
	c.mu.Lock()
	defer c.mu.Unlock()
	el := c.bySession[sessionID]
	if cookieHeader == "" || len(cookieHeader) > maxCookieHeader {
		if el != nil {
			jar := el.Value.(*cookieJar)
			jar.forget(host)
			if len(jar.hosts) == 0 {
				c.drop(el)
			}
		}
		return
	}
	if el == nil {
		el = c.lru.PushFront(&cookieJar{session: sessionID})
		c.bySession[sessionID] = el
		if c.lru.Len() > c.maxSessions {
			c.drop(c.lru.Back())
		}
	} else {
		c.lru.MoveToFront(el)
	}
	jar := el.Value.(*cookieJar)
	jar.forget(host)
	if len(jar.hosts) == maxCookieHosts {
		jar.hosts = jar.hosts[1:]
	}
	jar.hosts = append(jar.hosts, hostCookie{host, cookieHeader})
}

// Lookup returns the Cookie header the session's browser last sent to host,
// or "".
func (c *Cookies) Lookup(sessionID, host string) string {
	host = cookieHost(host)
	c.mu.Lock()
	defer c.mu.Unlock()
	if el := c.bySession[sessionID]; el != nil {
		for _, hc := range el.Value.(*cookieJar).hosts {
			if hc.host == host {
				return hc.header
			}
		}
	}
	return ""
}

// Forget drops everything remembered for the session.
func (c *Cookies) Forget(sessionID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el := c.bySession[sessionID]; el != nil {
		c.drop(el)
	}
}

// drop removes a session. c.mu is held.
func (c *Cookies) drop(el *list.Element) {
	delete(c.bySession, el.Value.(*cookieJar).session)
	c.lru.Remove(el)
}

func (jar *cookieJar) forget(host string) {
	for i, hc := range jar.hosts {
		if hc.host == host {
			jar.hosts = append(jar.hosts[:i], jar.hosts[i+1:]...)
			return
		}
	}
}

// cookieHost returns host without its port and trailing dot, in lower case.
func cookieHost(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimPrefix(strings.TrimSuffix(host, "]"), "[")
	return strings.ToLower(strings.TrimSuffix(host, "."))
}
