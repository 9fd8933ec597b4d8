package rewrite

import (
	"strconv"
	"strings"
)

// An Origin is an http or https origin (scheme, host and port), normalised as
// browsers compare origins: scheme and host in ASCII lower case, the
// scheme's default port when none is written. Two Origins are equal (==)
// when they are the same origin. The zero Origin is no origin: no URL is on
// it, and IsZero reports it.
//
// Only hosts that can be written into an HTML attribute, a header or a CSP
// source as they are make an Origin: names of ASCII letters, digits, '.',
// '-' and '_', IPv4 addresses, and IPv6 addresses in brackets.
type Origin struct {
	scheme    string // "http" or "https"
	host      string // ASCII lower case; an IPv6 address in brackets
	port      int
	authority string // host, and ":port" unless port is the scheme's default
}

// NewOrigin returns the origin of the authority host[:port] (no userinfo)
// for scheme, http or https in any case. An empty port is the scheme's
// default and a zero-padded one is read as browsers read it; ok is false for
// another scheme, a host that an Origin cannot hold, or a port that is not a
// number up to 65535.
func NewOrigin(scheme, authority string) (o Origin, ok bool) {
	if scheme = strings.ToLower(scheme); scheme != "http" && scheme != "https" {
		return Origin{}, false
	}
	host, port, ok := splitHostPort(authority)
	if !ok || len(host) == 0 {
		return Origin{}, false
	}
	inner, ipv6 := host, host[0] == '['
	if ipv6 {
		inner = host[1 : len(host)-1] // splitHostPort found the ']'
	}
	if len(inner) == 0 {
		return Origin{}, false
	}
	for i := range len(inner) {
		c := inner[i]
		isHex := '0' <= c && c <= '9' || 'a' <= lower(c) && lower(c) <= 'f'
		if !(ipv6 && (isHex || c == ':' || c == '.') ||
			!ipv6 && (isHex || isLetter(c) || c == '.' || c == '-' || c == '_')) {
			return Origin{}, false
		}
	}
	o = Origin{scheme: scheme, host: strings.ToLower(host)}
	if o.port, ok = parsePort(port, scheme); !ok {
		return Origin{}, false
	}
	o.authority = o.host
	if o.port != defaultPort(scheme) {
		o.authority += ":" + strconv.Itoa(o.port)
	}
	return o, true
}

// ParseOrigin parses "scheme://host[:port]", with no path, as NewOrigin
// reads scheme and authority.
func ParseOrigin(s string) (Origin, bool) {
	scheme, authority, ok := strings.Cut(s, "://")
	if !ok {
		return Origin{}, false
	}
	return NewOrigin(scheme, authority)
}

// IsZero reports whether o is the zero Origin, no origin.
func (o Origin) IsZero() bool { return o.scheme == "" }

// Scheme returns o's scheme, "http" or "https".
func (o Origin) Scheme() string { return o.scheme }

// Host returns o's authority as a URL writes it: the host (an IPv6 address
// in brackets), and ":port" unless the port is the scheme's default.
func (o Origin) Host() string { return o.authority }

// Hostname returns o's host without brackets or port, as cookie domains
// are compared with it.
func (o Origin) Hostname() string { return strings.TrimSuffix(strings.TrimPrefix(o.host, "["), "]") }

// String returns o as scheme://host[:port], without the scheme's default
// port, or "" for the zero Origin.
func (o Origin) String() string {
	if o.IsZero() {
		return ""
	}
	return o.scheme + "://" + o.authority
}

// RebaseURL returns ref with from's origin replaced by to's if ref is a URL
// on from's origin, and ref itself otherwise. Which URLs, and what is
// replaced, is described at URLRewriter: only the scheme (if written), the
// slashes and the host and port change; leading and trailing spaces and
// controls, userinfo, path, query and fragment stay byte for byte. A zero
// from or to changes nothing.
func RebaseURL(ref string, from, to Origin) string {
	span, ok := findOrigin(from, ref)
	if !ok || to.IsZero() {
		return ref
	}
	b := make([]byte, 0, len(ref)+len(to.scheme)+len(to.authority))
	b = append(b, ref[:span.start]...)
	b = appendRebased(b, ref, span, to)
	return string(append(b, ref[span.end:]...))
}

// originSpan is where a URL writes the origin that findOrigin found:
// ref[start:end] holds the scheme (if withScheme), the slashes and the
// authority, and ref[user:host] the userinfo with its '@' (empty if there is
// none).
type originSpan struct {
	start, user, host, end int
	withScheme             bool
}

// appendRebased appends to dst what replaces ref[s.start:s.end] to put the
// URL on to's origin: to's scheme and "//" (or "//" alone if ref has no
// scheme, which takes the page's), ref's userinfo, and to's authority.
func appendRebased[T string | []byte](dst []byte, ref T, s originSpan, to Origin) []byte {
	if s.withScheme {
		dst = append(dst, to.scheme...)
		dst = append(dst, ':')
	}
	dst = append(dst, "//"...)
	dst = append(dst, ref[s.user:s.host]...)
	return append(dst, to.authority...)
}

// findOrigin finds o's origin at the start of ref, a URL as written (before
// trimming), as described at URLRewriter; ok is false if ref is not a URL on
// o's origin.
func findOrigin[T string | []byte](o Origin, ref T) (span originSpan, ok bool) {
	if o.IsZero() {
		return span, false
	}
	end := len(ref)
	for end > 0 && ref[end-1] <= ' ' {
		end--
	}
	start := 0
	for start < end && ref[start] <= ' ' {
		start++
	}
	ref = ref[:end]
	i := start
	if n := schemeLen(ref[i:]); n > 0 {
		if !equalFoldASCII(ref[i:i+n], o.scheme) {
			return span, false
		}
		i += n + 1
		span.withScheme = true
	}
	if len(ref)-i < 2 || !isSlash(ref[i]) || !isSlash(ref[i+1]) {
		return span, false // relative, or not hierarchical
	}
	for i += 2; i < len(ref) && isSlash(ref[i]); i++ {
	}
	user, host := i, i
	for i < len(ref) && !isSlash(ref[i]) && ref[i] != '?' && ref[i] != '#' {
		if ref[i] == '@' {
			host = i + 1 // the userinfo ends at the authority's last '@'
		}
		i++
	}
	hostname, port, ok := splitHostPort(ref[host:i])
	if !ok || !equalFoldASCII(hostname, o.host) {
		return span, false
	}
	if p, ok := parsePort(port, o.scheme); !ok || p != o.port {
		return span, false
	}
	span.start, span.user, span.host, span.end = start, user, host, i
	return span, true
}

// defaultPort returns the port of the lower-case scheme http or https.
func defaultPort(scheme string) int {
	if scheme == "https" {
		return 443
	}
	return 80
}

// splitHostPort splits an authority into its host (with the brackets of an
// IPv6 address) and the port after ':', which may be empty.
func splitHostPort[T string | []byte](hp T) (host, port T, ok bool) {
	if len(hp) > 0 && hp[0] == '[' {
		for end := range len(hp) {
			if hp[end] != ']' {
				continue
			}
			host, port = hp[:end+1], hp[end+1:]
			if len(port) > 0 && port[0] != ':' {
				return host, port, false
			}
			if len(port) > 0 {
				port = port[1:]
			}
			return host, port, true
		}
		return host, port, false
	}
	for i := len(hp) - 1; i >= 0; i-- {
		if hp[i] == ':' {
			return hp[:i], hp[i+1:], true
		}
	}
	return hp, port, true
}

// parsePort returns the decimal port p, or the scheme's default if p is
// empty, as browsers read it (leading zeros allowed, up to 65535).
func parsePort[T string | []byte](p T, scheme string) (int, bool) {
	if len(p) == 0 {
		return defaultPort(scheme), true
	}
	n := 0
	for i := range len(p) {
		if c := p[i]; c < '0' || c > '9' {
			return 0, false
		}
		if n = n*10 + int(p[i]-'0'); n > 65535 {
			return 0, false
		}
	}
	return n, true
}

// schemeLen returns the length of the URL scheme that s starts with, before
// its ':', or 0 if s does not start with one.
func schemeLen[T string | []byte](s T) int {
	for i := range len(s) {
		switch c := s[i]; {
		case isLetter(c):
		case i > 0 && ('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.'):
		case i > 0 && c == ':':
			return i
		default:
			return 0
		}
	}
	return 0
}

// isSlash reports whether c separates the parts of an http(s) URL for a
// browser.
func isSlash(c byte) bool { return c == '/' || c == '\\' }
