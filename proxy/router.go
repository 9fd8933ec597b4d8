package proxy

import (
	"fmt"
	"html"
	"net"
	"net/http"
	"strings"
)

// Router fronts several sites at once: it sends each request to the handler
// configured for its Host header (host name only; the port is ignored), and
// requests for any other host to the fallback. Only configured upstreams are
// ever contacted: a request for an unknown host without a fallback is
// answered 421 Misdirected Request here.
type Router struct {
	byHost   map[string]http.Handler
	fallback http.Handler
}

// NewRouter returns a Router. routes maps host names (case-insensitive, no
// port) to their handlers; fallback, which may be nil, serves every other
// host. A host name RouteHost rejects, or that appears twice, is an error.
func NewRouter(routes map[string]http.Handler, fallback http.Handler) (*Router, error) {
	r := &Router{byHost: make(map[string]http.Handler, len(routes)), fallback: fallback}
	for host, h := range routes {
		name, err := RouteHost(host)
		if err != nil {
			return nil, err
		}
		if _, dup := r.byHost[name]; dup {
			return nil, fmt.Errorf("route host %q is configured twice", host)
		}
		r.byHost[name] = h
	}
	if len(r.byHost) == 0 && fallback == nil {
		return nil, fmt.Errorf("nothing to front: configure an upstream or at least one route")
	}
	return r, nil
}

// RouteHost returns the name a Router knows host by: lower-cased, without
// a trailing dot. A host that is empty, or has a scheme, port, path or
// space, is an error.
func RouteHost(host string) (string, error) {
	name := strings.ToLower(strings.TrimSuffix(host, "."))
	if name == "" || strings.ContainsAny(name, ":/ ") {
		return "", fmt.Errorf("route host %q: give a host name such as shop.example.com, without scheme or port", host)
	}
	return name, nil
}

// hostName returns the request's host without port, lower-cased.
func hostName(r *http.Request) string {
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	return strings.ToLower(strings.TrimSuffix(host, "."))
}

func (rt *Router) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h, ok := rt.byHost[hostName(r)]; ok {
		h.ServeHTTP(w, r)
		return
	}
	if rt.fallback != nil {
		rt.fallback.ServeHTTP(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(http.StatusMisdirectedRequest)
	fmt.Fprintf(w, "<!doctype html><title>Unknown site</title><h1>Unknown site</h1><p>No site is configured for %s here.</p>\n", html.EscapeString(hostName(r)))
}
