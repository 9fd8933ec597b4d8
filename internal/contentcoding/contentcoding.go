// Package contentcoding negotiates HTTP content codings: it reads a
// request's Accept-Encoding (RFC 9110, section 12.5.3) for the servers that
// choose how to encode a body (the proxy for the pages it rewrites and the
// codings it asks the upstream for, web for the visitor script).
//
// Every function here reads the header the same way. A coding's own entry
// decides whether it is accepted, else "*" does; "x-gzip" is an alias of
// "gzip". A quality of zero, in any spelling, refuses; so does a quality that
// does not parse (identity is always safe to send). A request without
// Accept-Encoding accepts nothing but identity: RFC 9110 would read it as
// "anything", but the clients that omit it (curl, scripts, health checks)
// expect an unencoded body.
package contentcoding

import (
	"cmp"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// Accepts reports whether a request with header h accepts a body in coding
// (e.g. "gzip").
func Accepts(h http.Header, coding string) bool {
	var buf [maxInline]element
	return weigh(parse(h, buf[:0]), normal(coding)) > 0
}

// Preferred returns the codings among offered that a request with header h
// accepts, best first: in decreasing order of the quality the request gives
// them, and in the order of offered where qualities are equal. It returns
// nil if the request accepts none of them.
func Preferred(h http.Header, offered ...string) []string {
	type weighed struct {
		coding string
		q      float64
	}
	var ws []weighed
	var buf [maxInline]element
	accept := parse(h, buf[:0])
	for _, c := range offered {
		if q := weigh(accept, normal(c)); q > 0 {
			ws = append(ws, weighed{c, q})
		}
	}
	slices.SortStableFunc(ws, func(a, b weighed) int { return cmp.Compare(b.q, a.q) })
	var codings []string
	for _, w := range ws {
		codings = append(codings, w.coding)
	}
	return codings
}

// Choose returns the coding among offered in which to encode a response to
// a request with header h: the one the request gives the highest quality,
// the earliest in offered among equals. It returns "", meaning identity, if
// the request accepts none of offered, or names identity with a quality
// higher than theirs (as in "identity, gzip;q=0.5"); an identity that the
// header does not name never outranks a coding.
func Choose(h http.Header, offered ...string) string {
	best, bestQ := "", 0.0
	var buf [maxInline]element
	accept := parse(h, buf[:0])
	for _, c := range offered {
		if q := weigh(accept, normal(c)); q > bestQ {
			best, bestQ = c, q
		}
	}
	if best != "" && named(accept, "identity") > bestQ {
		return ""
	}
	return best
}

// An element is one entry of an Accept-Encoding header: a coding (or "*"),
// in lower case and without the "x-" prefix of an old name, and its
// quality.
type element struct {
	coding string
	q      float64
}

// maxInline is how many elements Accepts, Preferred and Choose hold without
// allocating: browsers send four or five.
const maxInline = 8

// parse appends the elements of the Accept-Encoding lines of header h to
// accept. Accepts, Preferred and Choose parse the header once and weigh
// every coding against the elements: reading it again per coding cost more
// than the rest of the proxy's request rewriting. It indexes h by the
// canonical name, as net/http stores the headers it reads: Values would
// canonicalise the name again on every call.
func parse(h http.Header, accept []element) []element {
	for _, v := range h["Accept-Encoding"] {
		for part := range strings.SplitSeq(v, ",") {
			name, params, _ := strings.Cut(part, ";")
			accept = append(accept, element{normal(name), quality(params)})
		}
	}
	return accept
}

// weigh returns the quality that the elements accept give coding (as normal
// returns it): its own element's, else that of "*", else -1 if neither is
// present.
func weigh(accept []element, coding string) float64 {
	if q := named(accept, coding); q >= 0 {
		return q
	}
	return named(accept, "*")
}

// named returns the highest quality of the elements of accept that name
// coding (as normal returns it), or -1 if there are none. "*" is only
// matched by "*".
func named(accept []element, coding string) float64 {
	best := -1.0
	for _, e := range accept {
		if e.coding == coding {
			best = max(best, e.q)
		}
	}
	return best
}

// normal returns a coding's name without surrounding spaces, in lower case
// (which allocates only if it is not) and without the "x-" prefix of its
// old name, such as x-gzip.
func normal(coding string) string {
	coding = strings.ToLower(strings.TrimSpace(coding))
	if len(coding) > 2 && coding[:2] == "x-" {
		return coding[2:]
	}
	return coding
}

// quality returns the weight in the parameters of an Accept-Encoding element
// ("q=0.5"): 1 without one, 0 if it is malformed or out of range.
func quality(params string) float64 {
	for p := range strings.SplitSeq(params, ";") {
		name, value, _ := strings.Cut(p, "=")
		if strings.EqualFold(strings.TrimSpace(name), "q") {
			q, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
			if err != nil || !(q >= 0 && q <= 1) { // NaN too
				return 0
			}
			return q
		}
	}
	return 1
}
