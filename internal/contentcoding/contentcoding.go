// Package contentcoding negotiates HTTP content codings: it reads a
// request's Accept-Encoding (RFC 9110, section 12.5.3) for the servers that
// choose how to encode a body (the proxy for the pages it rewrites, web for
// the visitor script).
package contentcoding

import (
	"net/http"
	"strconv"
	"strings"
)

// Accepts reports whether a request with header h accepts a body in coding
// (e.g. "gzip"; "x-gzip" is its alias). The coding's own entry decides, else
// "*" does. A quality of zero, in any spelling, refuses; so does a quality
// that does not parse (identity is always safe to send). A request without
// Accept-Encoding accepts nothing but identity: RFC 9110 would read it as
// "anything", but the clients that omit it (curl, scripts, health checks)
// expect an unencoded body.
func Accepts(h http.Header, coding string) bool {
	codingQ, anyQ := -1.0, -1.0
	for _, v := range h.Values("Accept-Encoding") {
		for part := range strings.SplitSeq(v, ",") {
			name, params, _ := strings.Cut(part, ";")
			name = strings.TrimSpace(name)
			switch q := quality(params); {
			case sameCoding(name, coding):
				codingQ = max(codingQ, q)
			case name == "*":
				anyQ = max(anyQ, q)
			}
		}
	}
	if codingQ >= 0 {
		return codingQ > 0
	}
	return anyQ > 0
}

func sameCoding(a, b string) bool {
	return strings.EqualFold(strings.TrimPrefix(strings.ToLower(a), "x-"), strings.TrimPrefix(strings.ToLower(b), "x-"))
}

// quality returns the weight in the parameters of an Accept-Encoding element
// ("q=0.5"): 1 without one, 0 if it is malformed or out of range.
func quality(params string) float64 {
	for p := range strings.SplitSeq(params, ";") {
		name, value, _ := strings.Cut(p, "=")
		if strings.EqualFold(strings.TrimSpace(name), "q") {
			q, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
			if err != nil || q < 0 || q > 1 {
				return 0
			}
			return q
		}
	}
	return 1
}
