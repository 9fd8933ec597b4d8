package assets

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// forwardedRequestHeaders are the replay browser's request headers that a
// fetch passes on; Referer is passed on too, but only to its own origin.
// Everything else is dropped: Cookie and Authorization (the visitor's cookie
// comes from Request.Cookie, for Local only), Range (a whole body is what
// the cache keeps), conditionals, Origin, Sec-*.
var forwardedRequestHeaders = []string{"Accept", "Accept-Language", "User-Agent"}

// requestHeader returns the headers to send for t, picked from the browser's.
// Names are compared case-insensitively: the DevTools protocol may hand them
// over in lower case.
func requestHeader(browser http.Header, t target) http.Header {
	h := make(http.Header, len(forwardedRequestHeaders)+1)
	for name, values := range browser {
		name = http.CanonicalHeaderKey(name)
		for _, keep := range forwardedRequestHeaders {
			if name == keep {
				h[name] = append(h[name], values...)
			}
		}
		if name == "Referer" && len(values) > 0 {
			if ref, err := parseTarget(values[0]); err == nil && ref.origin == t.origin {
				h.Set("Referer", values[0])
			}
		}
	}
	return h
}

// keptResponseHeaders are the response headers an Asset carries, besides
// Access-Control-Allow-Origin: *. Cache-Control is a list; of the others the
// first value is kept.
var keptResponseHeaders = []string{"Content-Type", "Content-Language", "Cache-Control", "Last-Modified", "ETag"}

// responseHeader returns the safe subset of a response's headers.
func responseHeader(resp http.Header) http.Header {
	h := make(http.Header, len(keptResponseHeaders)+1)
	for _, name := range keptResponseHeaders {
		values := resp.Values(name)
		switch {
		case len(values) == 0:
		case name == "Cache-Control":
			h.Set(name, strings.Join(values, ", "))
		default:
			h.Set(name, values[0])
		}
	}
	// The replay page's origin is never the asset's: without this a font, or
	// anything loaded in CORS mode, would not load.
	h.Set("Access-Control-Allow-Origin", "*")
	return h
}

// scope is where the cache may index a response.
type scope int

const (
	uncached scope = iota // not kept
	private               // in the index of the session that fetched it
	shared                // in the index that every session reads, until it expires
)

const (
	// defaultSharedTTL is how long a shared entry is reused when the
	// response says nothing about freshness (no max-age, s-maxage, Expires).
	defaultSharedTTL = 10 * time.Minute
	// maxSharedTTL caps the freshness a response may claim for itself.
	maxSharedTTL = 24 * time.Hour
)

// sessionVaryHeaders are the request headers whose value may differ from one
// session to another (lower case). A response that varies on one of them is
// not shared; a response that varies on a header the Fetcher never sends
// (Origin, say) varies on nothing.
var sessionVaryHeaders = map[string]bool{
	"accept": true, "accept-language": true, "user-agent": true, "referer": true, "cookie": true,
}

// cachePolicy decides where a final response to a GET may be indexed, and
// until when a shared entry is fresh. personal is true if any hop of the
// request sent the visitor's cookie or any response on the way set a
// cookie: such a response is the visitor's own.
//
//   - Only 200 responses are kept: an error or a redirect may mean "not
//     yet", and is cheap to ask again.
//   - no-store, and Vary: *, keep nothing.
//   - personal responses, private, no-cache, a zero max-age or s-maxage, an
//     expired or invalid Expires, and a Vary on a header that differs between
//     sessions keep the response for the session that fetched it, for as long
//     as that session lasts (a replay shows the page as it was).
//   - anything else is shared for s-maxage, else max-age, else
//     Expires − Date, else defaultSharedTTL, at most maxSharedTTL.
func cachePolicy(status int, h http.Header, personal bool, now time.Time) (scope, time.Time) {
	if status != http.StatusOK {
		return uncached, time.Time{}
	}
	cc := parseCacheControl(h.Values("Cache-Control"))
	if _, ok := cc["no-store"]; ok {
		return uncached, time.Time{}
	}
	perSession := personal
	for _, v := range h.Values("Vary") {
		for _, name := range strings.Split(v, ",") {
			name = strings.ToLower(strings.TrimSpace(name))
			if name == "*" {
				return uncached, time.Time{}
			}
			perSession = perSession || sessionVaryHeaders[name]
		}
	}
	_, isPrivate := cc["private"]
	_, noCache := cc["no-cache"]
	if perSession || isPrivate || noCache {
		return private, time.Time{}
	}
	ttl, ok := cc.seconds("s-maxage")
	if !ok {
		ttl, ok = cc.seconds("max-age")
	}
	if !ok {
		ttl, ok = expiresIn(h, now)
	}
	if !ok {
		ttl = defaultSharedTTL
	}
	if ttl <= 0 {
		return private, time.Time{}
	}
	return shared, now.Add(min(ttl, maxSharedTTL))
}

// expiresIn returns the freshness that Expires gives (relative to Date if
// the response has one), and false without Expires. An Expires that does
// not parse means "already expired".
func expiresIn(h http.Header, now time.Time) (time.Duration, bool) {
	v := h.Get("Expires")
	if v == "" {
		return 0, false
	}
	exp, err := http.ParseTime(v)
	if err != nil {
		return 0, true
	}
	if date, err := http.ParseTime(h.Get("Date")); err == nil {
		now = date
	}
	return exp.Sub(now), true
}

// cacheControl holds Cache-Control directives by lower-case name; a name
// given more than once has all its values, in order.
type cacheControl map[string][]string

// seconds returns a directive's delta-seconds, the smallest if it was given
// more than once, and false if it is absent. A value that is not a number
// counts as 0 (stale), as RFC 9111 asks.
func (cc cacheControl) seconds(name string) (time.Duration, bool) {
	values, ok := cc[name]
	if !ok {
		return 0, false
	}
	best := maxSharedTTL
	for _, v := range values {
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			n = 0
		}
		best = min(best, time.Duration(n)*time.Second)
	}
	return best, true
}

// parseCacheControl reads Cache-Control header values: comma-separated
// directives, each a token optionally followed by = and a token or a quoted
// string (commas inside quotes do not separate directives).
func parseCacheControl(values []string) cacheControl {
	cc := cacheControl{}
	for _, v := range values {
		for len(v) > 0 {
			var d string
			d, v = nextDirective(v)
			name, value, _ := strings.Cut(d, "=")
			name = strings.ToLower(strings.TrimSpace(name))
			if name == "" {
				continue
			}
			value = strings.TrimSpace(value)
			if len(value) >= 2 && value[0] == '"' && value[len(value)-1] == '"' {
				value = strings.ReplaceAll(value[1:len(value)-1], `\`, "")
			}
			cc[name] = append(cc[name], value)
		}
	}
	return cc
}

// nextDirective splits s at its first comma outside a quoted string.
func nextDirective(s string) (directive, rest string) {
	quoted := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' && quoted:
			i++
		case c == '"':
			quoted = !quoted
		case c == ',' && !quoted:
			return s[:i], s[i+1:]
		}
	}
	return s, ""
}
