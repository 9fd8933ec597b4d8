package proxy

import (
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/cobrowse/cobrowse/internal/forwarded"
	"github.com/cobrowse/cobrowse/rewrite"
)

// This file rewrites the response headers through which an upstream points
// the browser at itself (Location, Content-Location, Refresh, Link) or scopes
// its cookies to itself (Set-Cookie), so that the visitor stays on the proxy.
//
// Only the origin (scheme, host, port) of a URL is mapped: the path, query
// and fragment are kept byte for byte, because cobrowse serves an upstream at
// the root of the public origin rather than under a prefix. For the same
// reason a cookie's Path is never changed. (An upstream URL with a path, which
// New accepts as a prefix of the request paths, is outside that assumption:
// its prefix stays in rewritten URLs and cookie paths.)

// headerValue returns the first value of the header name, given in canonical
// form, as net/http stores the headers it reads and as the constants the
// proxy uses are written. On the paths every request takes, the proxy
// indexes http.Header with canonical names rather than calling Get, Values,
// Set, Add or Del, which canonicalise the name again on every call: about
// 500 instructions a call, 5 % of the proxy's instructions per page
// (docs/benchmarks.md).
func headerValue(h http.Header, name string) string {
	if v := h[name]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// maxRewrittenHeader is the length above which a header value is passed on
// unchanged, to bound the work done on a hostile or broken upstream's headers.
const maxRewrittenHeader = 8 << 10

// origins maps the upstream's origin onto the public origin at which the
// visitor reached cobrowse. The zero value rewrites nothing.
type origins struct {
	upstream rewrite.Origin
	public   rewrite.Origin // zero if the request told no usable host
	// plainHTTP is whether the visitor reached the proxy over plain http,
	// known even when public is not.
	plainHTTP bool
}

// newOrigins returns the origins for a response to a visitor's request
// forwarded to upstream (only its scheme and host are used). The public
// origin is scheme (https or http: how the visitor's browser reached the
// proxy, forwarded.Proxies.Scheme) with host, the Host the browser asked
// for (httputil.ProxyRequest.In's, not the outbound request's), which a
// shared cache in front keys on. If host is not usable (an HTTP/1.0
// request may have none, and a Host that rewrite.NewOrigin refuses cannot
// be written into URLs and CSP sources), URLs and cookie domains are left
// unchanged, as there is no origin to point them at.
//
// Behind a TLS-terminating load balancer that is not among the Proxy's
// trusted proxies (Config.TrustedProxies), the scheme is http: absolute
// URLs are rewritten to http, and cookies lose Secure (see
// rewriteSetCookie).
func newOrigins(upstream *url.URL, scheme, host string) origins {
	o := origins{plainHTTP: scheme != "https"}
	o.upstream, _ = rewrite.NewOrigin(upstream.Scheme, upstream.Host)
	o.public, _ = rewrite.NewOrigin(scheme, host)
	return o
}

// rewriteResponseHeaders rewrites, in place, the headers of an upstream
// response that would take the visitor off the proxy or scope cookies to the
// upstream's host:
//
//   - Location, Content-Location: an absolute URL (scheme://authority...) or
//     protocol-relative one (//authority...) whose origin is the upstream's
//     gets the public origin; userinfo, path, query and fragment are kept.
//     Relative URLs and URLs on any other origin are left unchanged.
//   - Refresh: the URL part of "5; url=...", "5;URL='...'", "0, ..." and the
//     other forms browsers accept is rewritten the same way; the rest of the
//     value is kept.
//   - Link: each URI-reference between < and > that starts a link-value is
//     rewritten the same way; parameters (anchor included) are kept.
//   - Set-Cookie: see rewriteSetCookie. Every value is kept, in order.
//
// No URL is rewritten if the public origin is the upstream's. A value longer
// than 8 KiB is left unchanged. Browsers also accept backslashes for the
// slashes of an http(s) URL, and more than two of them, and so does the
// rewrite (it is the one the HTML attributes get: rewrite.RebaseURL); URLs
// that browsers would only understand after removing tabs, or
// percent-decoding the host, are left unchanged.
//
// It returns the names of the cookies that a browser will refuse because
// they carry a __Secure- or __Host- prefix and the public origin is plain
// http. They are passed on unchanged: no rewrite can make them settable. The
// proxy should log the names (never the values) once, telling the operator
// to serve cobrowse over https.
func (o origins) rewriteResponseHeaders(h http.Header) (refused []string) {
	rewriteValues(h["Location"], o.rewriteURL)
	rewriteValues(h["Content-Location"], o.rewriteURL)
	rewriteValues(h["Refresh"], o.rewriteRefresh)
	rewriteValues(h["Link"], o.rewriteLink)
	for i, v := range h["Set-Cookie"] {
		if len(v) > maxRewrittenHeader {
			continue
		}
		var name string
		h["Set-Cookie"][i], name = o.rewriteSetCookie(v)
		if name != "" {
			refused = append(refused, name)
		}
	}
	return refused
}

// rewriteValues replaces each value of vs up to maxRewrittenHeader long with
// its rewrite.
func rewriteValues(vs []string, rewrite func(string) string) {
	for i, v := range vs {
		if len(v) <= maxRewrittenHeader {
			vs[i] = rewrite(v)
		}
	}
}

// rewriteRequestHeaders rewrites, in place, the headers of a visitor's
// request that name the public origin so that they name the upstream's:
// Origin and Referer. The upstream compares them with its own origin (CSRF
// protection, CORS, WebSocket handshakes) and would otherwise refuse what
// comes through the proxy. Other origins, "null" and relative values are
// left unchanged.
func (o origins) rewriteRequestHeaders(h http.Header) {
	back := origins{upstream: o.public, public: o.upstream, plainHTTP: o.plainHTTP}
	rewriteValues(h["Origin"], back.rewriteURL)
	rewriteValues(h["Referer"], back.rewriteURL)
}

// rewritesURLs reports whether URLs on the upstream's origin must be
// rewritten: the public origin is known and is another.
func (o origins) rewritesURLs() bool {
	return !o.public.IsZero() && !o.upstream.IsZero() && o.public != o.upstream
}

// rewriteURL returns ref with its origin replaced by the public origin if ref
// is an absolute or protocol-relative URL on the upstream's origin (as
// rewrite.RebaseURL finds it: userinfo, path, query and fragment, and
// leading and trailing spaces and controls, are kept), and ref unchanged
// otherwise.
func (o origins) rewriteURL(ref string) string {
	if !o.rewritesURLs() {
		return ref
	}
	return rewrite.RebaseURL(ref, o.upstream, o.public)
}

// rewriteRefresh returns the Refresh header value v with its URL (as
// rewrite.RefreshURL finds it) rewritten by rewriteURL.
func (o origins) rewriteRefresh(v string) string {
	s, e := rewrite.RefreshURL([]byte(v))
	if s < 0 {
		return v
	}
	return v[:s] + o.rewriteURL(v[s:e]) + v[e:]
}

// rewriteLink returns the Link header value v (RFC 8288: comma-separated
// `<URI-reference>; param=value; param="quoted, value"`) with each target
// URI-reference rewritten by rewriteURL. Commas inside <> or a quoted string
// do not separate link-values; a link-value that does not start with '<' is
// skipped, and an unterminated '<' ends the rewrite.
func (o origins) rewriteLink(v string) string {
	var b strings.Builder
	done := 0 // v[:done] is in b, or unchanged if b is empty
	for i := 0; i < len(v); i++ {
		for i < len(v) && (v[i] == ' ' || v[i] == '\t') {
			i++
		}
		if i < len(v) && v[i] == '<' {
			end := strings.IndexByte(v[i+1:], '>')
			if end < 0 {
				break
			}
			start, end := i+1, i+1+end
			if uri := o.rewriteURL(v[start:end]); uri != v[start:end] {
				b.WriteString(v[done:start])
				b.WriteString(uri)
				done = end
			}
			i = end + 1
		}
		// Skip the parameters, up to the comma that ends the link-value.
		for ; i < len(v) && v[i] != ','; i++ {
			if v[i] == '"' {
				for i++; i < len(v) && v[i] != '"'; i++ {
					if v[i] == '\\' {
						i++
					}
				}
			}
		}
	}
	if done == 0 {
		return v
	}
	b.WriteString(v[done:])
	return b.String()
}

// rewriteSetCookie returns the Set-Cookie header value v rewritten for the
// public origin, or v unchanged. Attributes are rewritten in their text, so
// that every other byte (Expires, Max-Age, HttpOnly, Partitioned, Priority,
// attributes unknown today) reaches the browser as the upstream wrote it;
// http.ParseSetCookie followed by Cookie.String would drop Priority and
// unknown attributes and reformat others.
//
// Domain: if the public host name differs from the upstream's and the
// Domain attribute the browser would use (the last non-empty one) is the
// upstream's host or a parent domain of it (with or without a leading dot,
// any case), all Domain attributes are dropped, so that the cookie is set for
// the public host only. That is the one scope certain to make the cookie
// come back through the proxy, and nothing wider: widening it to a parent
// domain of the public host would send the upstream's session cookies to
// every sibling host under that domain (other sites fronted by the same
// cobrowse, unrelated services of the operator), and could name a public
// suffix, which browsers refuse.
//
// Path is never changed: the upstream is served at the root of the public
// origin, so its paths are the public paths. As no Domain is added and Path
// is kept, a __Host- cookie stays without Domain and with Path=/.
//
// If the public origin is plain http (development), the Secure attribute is
// dropped, since browsers refuse Secure cookies from insecure origins other
// than localhost; SameSite=None, which browsers refuse without Secure,
// becomes SameSite=Lax; and Partitioned, which browsers also refuse without
// Secure, is dropped (in development the cookie is then an ordinary one).
// A cookie named with a __Secure- or __Host- prefix (any case) cannot be set
// from an insecure origin at all: it is returned unchanged, and its name is
// returned as refused, for the caller to report.
func (o origins) rewriteSetCookie(v string) (cookie, refused string) {
	nameValue, _, _ := strings.Cut(v, ";")
	name, _, hasEq := strings.Cut(nameValue, "=")
	if name = strings.Trim(name, " \t"); !hasEq {
		name = "" // browsers take "value" alone as a nameless cookie
	}
	insecure := o.plainHTTP
	if insecure && (hasPrefixFold(name, "__Secure-") || hasPrefixFold(name, "__Host-")) {
		return v, name
	}

	attrs := strings.Split(v, ";")[1:]
	dropDomain := false
	if !o.public.IsZero() && !o.upstream.IsZero() && o.public.Hostname() != o.upstream.Hostname() {
		for _, a := range attrs {
			if an, av := cookieAttr(a); strings.EqualFold(an, "domain") && av != "" {
				dropDomain = o.domainMatchesUpstream(av)
			}
		}
	}
	if !dropDomain && !insecure {
		return v, ""
	}
	var b strings.Builder
	b.Grow(len(v))
	b.WriteString(nameValue)
	changed := false
	for _, a := range attrs {
		switch an, av := cookieAttr(a); {
		case dropDomain && strings.EqualFold(an, "domain"),
			insecure && (strings.EqualFold(an, "secure") || strings.EqualFold(an, "partitioned")):
			changed = true
			continue
		case insecure && strings.EqualFold(an, "samesite") && strings.EqualFold(av, "none"):
			eq := strings.IndexByte(a, '=')
			lead := eq + 1 + strings.Index(a[eq+1:], av)
			a = a[:lead] + "Lax" + a[lead+len(av):]
			changed = true
		}
		b.WriteByte(';')
		b.WriteString(a)
	}
	if !changed {
		return v, ""
	}
	return b.String(), ""
}

// cookieAttr splits a cookie attribute "name=value" as browsers do: at the
// first '=', with surrounding spaces and tabs removed from both parts.
func cookieAttr(a string) (name, value string) {
	name, value, _ = strings.Cut(a, "=")
	return strings.Trim(name, " \t"), strings.Trim(value, " \t")
}

// domainMatchesUpstream reports whether the cookie Domain attribute value d
// names the upstream's host or a parent domain of it.
func (o origins) domainMatchesUpstream(d string) bool {
	d = asciiLower(strings.TrimPrefix(d, "."))
	host := o.upstream.Hostname()
	return d != "" && (host == d || strings.HasSuffix(host, "."+d))
}

// hasPrefixFold reports whether s starts with prefix, ignoring ASCII case.
func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// asciiLower returns s with ASCII letters in lower case and every other byte
// unchanged.
func asciiLower(s string) string {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// dropCookies removes the cookies named in names from the Cookie header
// values in h (the outbound request's own, which ReverseProxy cloned), and
// the header if nothing is left (see Config.OwnCookies).
func dropCookies(h http.Header, names []string) {
	values := h["Cookie"]
	if len(values) == 0 || len(names) == 0 {
		return
	}
	kept := values[:0]
	for _, v := range values {
		if v = withoutCookies(v, names); v != "" {
			kept = append(kept, v)
		}
	}
	if len(kept) == 0 {
		delete(h, "Cookie")
		return
	}
	h["Cookie"] = kept
}

// withoutCookies returns the Cookie header value v without the cookie-pairs
// (name=value, separated by ';') whose name, trimmed of spaces and tabs, is
// one of names, compared exactly as cookie names are. The other pairs keep
// their bytes and order, trimmed and joined by "; ", and empty ones are
// left out. v itself is returned, without allocating, when none of names
// occurs in it.
func withoutCookies(v string, names []string) string {
	found := false
	for _, name := range names {
		found = found || strings.Contains(v, name)
	}
	if !found {
		return v
	}
	var b strings.Builder
	for pair := range strings.SplitSeq(v, ";") {
		pair = strings.Trim(pair, " \t")
		name, _, _ := strings.Cut(pair, "=")
		if pair == "" || slices.Contains(names, strings.Trim(name, " \t")) {
			continue
		}
		if b.Len() > 0 {
			b.WriteString("; ")
		}
		b.WriteString(pair)
	}
	return b.String()
}

// clientAddressHeaders are the headers besides X-Forwarded-For from which
// sites take a client's address, in canonical form, as the proxies and CDNs
// in front of them write them: X-Real-IP (nginx's convention),
// True-Client-IP (Akamai, Cloudflare), CF-Connecting-IP (Cloudflare),
// Fastly-Client-IP, X-Client-IP and X-Cluster-Client-IP.
var clientAddressHeaders = []string{"X-Real-Ip", "True-Client-Ip", "Cf-Connecting-Ip", "Fastly-Client-Ip", "X-Client-Ip", "X-Cluster-Client-Ip"}

// setClientAddress makes the client-address headers of out, the request to
// the upstream, say what trusted (the proxies in front of the Proxy) allows
// of in, the visitor's. A site that took them from the proxy in front of it
// before cobrowse was would believe whatever a visitor wrote there: they
// pass only from a trusted proxy. X-Real-IP names the client as
// X-Forwarded-For does (Proxies.Client), without a port.
func setClientAddress(out http.Header, trusted forwarded.Proxies, in *http.Request) {
	if !trusted.Trusts(in) {
		for _, name := range clientAddressHeaders {
			delete(out, name)
		}
	}
	client := trusted.Client(in)
	if host, _, err := net.SplitHostPort(client); err == nil {
		client = host
	}
	out["X-Real-Ip"] = []string{client}
}
