package policies

import (
	"net"
	"net/url"
	"path"
	"strings"

	"github.com/bmatcuk/doublestar/v4"
)

// hostPattern matches host names: exactly, or, for "*.example.com", any
// subdomain of example.com at any depth but not example.com itself.
type hostPattern struct {
	name     string // lower case; for a wildcard, the suffix with its leading dot
	wildcard bool
}

func (h hostPattern) match(host string) bool {
	if h.wildcard {
		return len(host) > len(h.name) && strings.HasSuffix(host, h.name)
	}
	return host == h.name
}

// matches reports whether the rule applies to a page: some host pattern
// matches (or the rule has none) and some page pattern matches one of the
// forms of the page's path (or the rule has none).
func (r *rule) matches(host string, paths []string) bool {
	if len(r.hosts) > 0 && !matchesHost(r.hosts, host) {
		return false
	}
	if len(r.pages) == 0 {
		return true
	}
	for _, pat := range r.pages {
		for _, p := range paths {
			// Patterns are validated by Parse, so Match cannot fail.
			if ok, _ := doublestar.Match(pat, p); ok {
				return true
			}
		}
	}
	return false
}

func matchesHost(hs []hostPattern, host string) bool {
	for _, h := range hs {
		if h.match(host) {
			return true
		}
	}
	return false
}

// normalizeHost returns host in lower case without a port, IPv6 brackets or
// a trailing dot.
func normalizeHost(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimPrefix(host, "[")
	host = strings.TrimSuffix(host, "]")
	host = strings.TrimSuffix(host, ".")
	return strings.ToLower(host)
}

// pathForms returns the forms of a URL path that page patterns are matched
// against, in lower case: as given (without query or fragment), and
// percent-decoded with dot segments and repeated slashes removed. A server
// may treat all of them as the same page.
func pathForms(p string) []string {
	if i := strings.IndexAny(p, "?#"); i >= 0 {
		p = p[:i]
	}
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	p = strings.ToLower(p)
	clean := p
	if d, err := url.PathUnescape(clean); err == nil {
		clean = strings.ToLower(d)
	}
	trailing := strings.HasSuffix(clean, "/")
	clean = path.Clean("/" + clean)
	if trailing && clean != "/" {
		clean += "/"
	}
	if clean == p {
		return []string{p}
	}
	return []string{p, clean}
}
