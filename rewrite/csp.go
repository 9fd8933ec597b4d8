package rewrite

import (
	"cmp"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// MaxCSPSize is the length in bytes beyond which AllowVisitor leaves a
// policy as it is. Real policies are a few hundred bytes; the bound keeps the
// work on a hostile header small.
const MaxCSPSize = 64 << 10

// MaxCSPDirectives is the number of directives beyond which AllowVisitor
// leaves a policy as it is. It counts every piece between ';' and ','
// separators, empty ones included (one more than the number of separators),
// so it also bounds the number of policies in a list, and with it how much
// AllowVisitor can add.
const MaxCSPDirectives = 256

// ErrCSPRefused is wrapped by the errors of AllowVisitor and AllowVisitorMeta
// when they leave a policy as it is because of what the policy is (too large,
// or something browsers disagree about), rather than because of the
// VisitorAllowance. The page is then served with its own policy, which may
// block the visitor script or its connection.
var ErrCSPRefused = errors.New("rewrite: Content-Security-Policy left as it is")

// VisitorAllowance describes what the visitor script needs from a page's
// Content-Security-Policy.
type VisitorAllowance struct {
	// Nonce is the value of the nonce attribute of the injected <script>
	// element: base64 or base64url characters, with at most two '=' at the
	// end. It admits any element that carries it, so it must be fresh and
	// unpredictable for every response (128 bits from crypto/rand), as for
	// any nonce-based policy. Required.
	Nonce string

	// Script is the absolute URL of the visitor script, on the origin the
	// page is served from (the proxy's), for example
	// "https://shop.example.com/__cobrowse/visitor.js". It is added as a
	// source where a nonce must not be (see AllowVisitor), and its origin is
	// what 'self' stands for. The scheme is "http" or "https" in lower case,
	// the host a name or IPv4 address (a CSP source cannot name an IPv6
	// literal), the path plain: no query, fragment, quote, ';' or ','.
	// Required.
	Script string

	// Connect lists the origins the script connects to, such as
	// "wss://shop.example.com" for its WebSocket: scheme ("http", "https",
	// "ws" or "wss", in lower case), host and optional port, no path.
	Connect []string
}

// AllowVisitor edits the value of a Content-Security-Policy or
// Content-Security-Policy-Report-Only header so that it allows the visitor
// script and its connections, and nothing else that it did not allow before.
// It returns policy itself, the same string, when nothing needs to change.
//
// policy is a list of policies separated by commas, as in one header field or
// several joined with ", ". A browser enforces each of them, so each is edited
// on its own. Within a policy, directive names are matched in any case and
// only the first directive of a name counts, as in browsers; later duplicates
// are left as they are.
//
// Which directive governs what (CSP Level 3, "get the effective directive"
// and its fallback lists): the <script src> element by script-src-elem, else
// script-src, else default-src; in a browser without script-src-elem (Safari
// before 15.4, Firefox before 108), by script-src, else default-src. The
// WebSocket and other connections by connect-src, else default-src. So in
// each policy:
//
//   - script-src-elem, if present, and script-src, if present, each get the
//     source that the table below picks for their own sources;
//   - if script-src is absent and default-src present, a script-src is added
//     right after default-src, with default-src's sources plus the pick for
//     them: every kind of script it now governs (elements in old browsers,
//     attributes, workers) keeps default-src's rules, plus that source;
//   - connect-src, if present, gets every origin of Connect that it does not
//     already cover; if it is absent and default-src present, a connect-src
//     with default-src's sources plus those origins is added after
//     default-src (and after the added script-src, if any);
//   - with none of these directives scripts and connections are unrestricted,
//     and nothing is added.
//
// Every other directive is left alone: script-src-attr, worker-src,
// report-uri, report-to, frame-ancestors, sandbox, trusted-types,
// require-trusted-types-for and any unknown one.
//
// The source picked for a script directive, where N is Nonce:
//
//	its sources include                              added
//	---------------------------------------------    ------------------------
//	'nonce-N' already                                nothing
//	'strict-dynamic', with anything                  'nonce-N'
//	a nonce or hash, no 'strict-dynamic'             'nonce-N'
//	'unsafe-inline', no nonce, hash or               Script, unless 'self', *,
//	'strict-dynamic'                                 Script's scheme ("https:"),
//	                                                 Script or its origin is
//	                                                 listed: then nothing
//	none of these ('self', hosts, 'none', nothing)   'nonce-N'
//
// With 'strict-dynamic', host sources, 'self' and 'unsafe-inline' are ignored
// and only a nonce or hash admits a script written in the page. A nonce or
// hash already present has switched 'unsafe-inline' off, and without
// 'unsafe-inline' inline scripts are blocked either way: in those rows the
// nonce admits our element (and any other carrying N, hence its freshness)
// and changes nothing else. In the 'unsafe-inline' row a nonce would switch
// 'unsafe-inline' off and break the page's inline scripts and event handlers,
// so the script is admitted by its URL, which admits exactly that file.
// Nonces and hashes count only when well formed (a hash must be padded base64
// of a digest of the right length): a malformed one, which a browser may
// ignore, does not switch 'unsafe-inline' off. One case has no edit that is
// right everywhere: 'unsafe-inline' and 'strict-dynamic' without a nonce or
// hash. Current browsers allow no inline script there and need the nonce for
// ours; a browser too old for 'strict-dynamic' (Safari before 15.4) ignores
// it, so the nonce switches 'unsafe-inline' off there. The nonce is added.
//
// An origin of Connect is covered by a list that holds it (with or without a
// trailing '/') or its scheme ("wss:"); an http or https origin also by '*',
// and by 'self' if it is Script's origin. A ws or wss origin is added even
// when the list has '*' or 'self': CSP Level 3 lets those match WebSocket
// URLs, but WebKit long did not. Other sources that happen to admit an origin
// (host wildcards, ports, scheme-less hosts) are not interpreted: the origin
// is then added although it is already allowed, which changes nothing.
//
// Everything that is not edited keeps its bytes: spelling, case, order,
// whitespace, empty directives, duplicates. An added source goes after the
// last source of its directive, after one space. An added directive goes
// right after default-src's last source, as "; script-src" or
// "; connect-src" followed by default-src's sources as written (each with the
// whitespace before it) and the added sources. A directive that gets a source loses its 'none' sources, together
// with the whitespace before each: 'none' with other sources is ignored by
// browsers and reported as an error. Applying AllowVisitor to its own result
// changes nothing.
//
// AllowVisitor returns policy unchanged, with an error, if the allowance is
// not valid (see VisitorAllowance), or, with an error wrapping ErrCSPRefused,
// if policy is longer than MaxCSPSize, has more than MaxCSPDirectives
// directives, or holds a byte other than printable ASCII and the ASCII
// whitespace of CSP (space, tab, LF, FF, CR): such bytes are not allowed in a
// policy and browsers disagree on which directive they spoil. Otherwise the
// result is at most three times as long as policy (default-src copied into two
// new directives) plus the added names and sources, once per policy.
//
// A report-only policy is edited the same way, so that it does not report the
// visitor script.
func AllowVisitor(policy string, a VisitorAllowance) (string, error) {
	e := cspEditor{src: policy, a: a}
	if err := e.prepare(); err != nil {
		return policy, err
	}
	if len(policy) > MaxCSPSize {
		return policy, fmt.Errorf("%w: it is %d bytes long, more than %d", ErrCSPRefused, len(policy), MaxCSPSize)
	}
	if n := strings.Count(policy, ";") + strings.Count(policy, ",") + 1; n > MaxCSPDirectives {
		return policy, fmt.Errorf("%w: it has %d directives, more than %d", ErrCSPRefused, n, MaxCSPDirectives)
	}
	for i := 0; i < len(policy); i++ {
		if c := policy[i]; (c < 0x20 || c > 0x7e) && !isCSPSpace(c) {
			return policy, fmt.Errorf("%w: it has the byte %#04x at offset %d, which a policy may not contain", ErrCSPRefused, c, i)
		}
	}
	for start := 0; start <= len(policy); {
		end := start + strings.IndexByte(policy[start:], ',')
		if end < start {
			end = len(policy)
		}
		e.policy(start, end)
		start = end + 1
	}
	return e.apply(), nil
}

// AllowVisitorMeta is AllowVisitor for the content attribute of a
// <meta http-equiv="Content-Security-Policy"> element, after character
// references are decoded; the caller escapes the result for the attribute
// (the added sources contain "'"). A meta element cannot carry a report-only
// policy.
//
// The HTML standard parses the content as one policy, and Firefox does so,
// but Chromium and WebKit split it at commas into several, as they split a
// header. No edit means the same to both readings, so a content with a comma
// is left as it is, with an error wrapping ErrCSPRefused.
//
// A meta policy governs only what comes after the element: a script element
// before it is not checked against it, but the WebSocket opened later is.
func AllowVisitorMeta(content string, a VisitorAllowance) (string, error) {
	if i := strings.IndexByte(content, ','); i >= 0 {
		return content, fmt.Errorf("%w: the <meta> policy has a ',' at offset %d, which Chromium and WebKit read as the start of another policy and Firefox does not", ErrCSPRefused, i)
	}
	return AllowVisitor(content, a)
}

// cspEditor holds the state of one AllowVisitor call.
type cspEditor struct {
	src          string
	a            VisitorAllowance
	nonce        string // the nonce source, "'nonce-N'"
	scriptOrigin string // Script up to its path
	edits        []cspEdit
}

// cspEdit replaces src[at:end] with text; at == end inserts.
type cspEdit struct {
	at, end int
	text    string
}

// cspDirective locates the first directive of a name in a policy: its
// sources are in src[value:end], right after its name; end is 0 if the policy
// has no such directive.
type cspDirective struct {
	value, end int
}

func (d cspDirective) present() bool { return d.end > 0 }

// prepare checks the allowance and derives what the edits need from it.
func (e *cspEditor) prepare() error {
	a := &e.a
	if !isBase64Value(a.Nonce) {
		return fmt.Errorf("rewrite: VisitorAllowance.Nonce %q is not a base64 value; use base64.StdEncoding or RawURLEncoding of random bytes", a.Nonce)
	}
	origin, path, ok := splitOrigin(a.Script, "http", "https")
	if !ok || !isCSPPath(path) {
		return fmt.Errorf("rewrite: VisitorAllowance.Script %q is not an http or https URL with a host name or IPv4 address and a plain path, which a CSP source can express", a.Script)
	}
	for _, c := range a.Connect {
		if _, path, ok := splitOrigin(c, "http", "https", "ws", "wss"); !ok || path != "" {
			return fmt.Errorf("rewrite: VisitorAllowance.Connect origin %q is not an http, https, ws or wss origin with a host name or IPv4 address and no path, which a CSP source can express", c)
		}
	}
	e.nonce = "'nonce-" + a.Nonce + "'"
	e.scriptOrigin = origin
	return nil
}

// policy edits the policy in src[start:end].
func (e *cspEditor) policy(start, end int) {
	var elem, script, connect, def cspDirective
	for i := start; i < end; {
		j := i + strings.IndexByte(e.src[i:end], ';')
		if j < i {
			j = end
		}
		s, t := i, j
		for s < t && isCSPSpace(e.src[s]) {
			s++
		}
		for t > s && isCSPSpace(e.src[t-1]) {
			t--
		}
		v := s
		for v < t && !isCSPSpace(e.src[v]) {
			v++
		}
		d := cspDirective{v, t}
		var first *cspDirective
		switch name := e.src[s:v]; {
		case s == t:
		case strings.EqualFold(name, "script-src-elem"):
			first = &elem
		case strings.EqualFold(name, "script-src"):
			first = &script
		case strings.EqualFold(name, "connect-src"):
			first = &connect
		case strings.EqualFold(name, "default-src"):
			first = &def
		}
		if first != nil && !first.present() {
			*first = d
		}
		i = j + 1
	}

	if elem.present() {
		e.add(elem, e.scriptSource(elem))
	}
	if script.present() {
		e.add(script, e.scriptSource(script))
	}
	if connect.present() {
		e.add(connect, e.connectSources(connect))
	}
	if !def.present() {
		return
	}
	var text string
	if !script.present() {
		if add := e.scriptSource(def); add != "" {
			text = "; script-src" + e.sourcesWithoutNone(def) + add
		}
	}
	if !connect.present() {
		if add := e.connectSources(def); add != "" {
			text += "; connect-src" + e.sourcesWithoutNone(def) + add
		}
	}
	if text != "" {
		e.edits = append(e.edits, cspEdit{def.end, def.end, text})
	}
}

// add appends the sources in text (each after a space) to d and removes its
// 'none' sources; text "" leaves d alone.
func (e *cspEditor) add(d cspDirective, text string) {
	if text == "" {
		return
	}
	prev := d.value
	for s, t := nextCSPToken(e.src, d.value, d.end); s < t; s, t = nextCSPToken(e.src, t, d.end) {
		if strings.EqualFold(e.src[s:t], "'none'") {
			e.edits = append(e.edits, cspEdit{prev, t, ""})
		}
		prev = t
	}
	e.edits = append(e.edits, cspEdit{d.end, d.end, text})
}

// sourcesWithoutNone returns d's sources as written, each with the
// whitespace before it, except 'none'.
func (e *cspEditor) sourcesWithoutNone(d cspDirective) string {
	var b strings.Builder
	prev := d.value
	for s, t := nextCSPToken(e.src, d.value, d.end); s < t; s, t = nextCSPToken(e.src, t, d.end) {
		if !strings.EqualFold(e.src[s:t], "'none'") {
			b.WriteString(e.src[prev:t])
		}
		prev = t
	}
	return b.String()
}

// scriptSource returns what to append to the script directive d, per the
// table of AllowVisitor: " 'nonce-N'", " "+Script, or "".
func (e *cspEditor) scriptSource(d cspDirective) string {
	var unsafeInline, nonceOrHash, strictDynamic, ours, covered bool
	for s, t := nextCSPToken(e.src, d.value, d.end); s < t; s, t = nextCSPToken(e.src, t, d.end) {
		switch src := e.src[s:t]; {
		case src == e.nonce:
			ours, nonceOrHash = true, true
		case strings.EqualFold(src, "'unsafe-inline'"):
			unsafeInline = true
		case strings.EqualFold(src, "'strict-dynamic'"):
			strictDynamic = true
		case isNonceOrHashSource(src):
			nonceOrHash = true
		case src == "*", strings.EqualFold(src, "'self'"),
			isSchemeSource(src, schemeOf(e.a.Script)),
			strings.EqualFold(strings.TrimSuffix(src, "/"), e.scriptOrigin),
			e.isScript(src):
			covered = true
		}
	}
	switch {
	case unsafeInline && !nonceOrHash && !strictDynamic:
		if covered {
			return ""
		}
		return " " + e.a.Script
	case ours:
		return ""
	}
	return " " + e.nonce
}

// isScript reports whether the source src is Script: its scheme and host in
// any case, its path exactly, as browsers compare them.
func (e *cspEditor) isScript(src string) bool {
	n := len(e.scriptOrigin)
	return len(src) == len(e.a.Script) && strings.EqualFold(src[:n], e.scriptOrigin) && src[n:] == e.a.Script[n:]
}

// connectSources returns what to append to the connect directive d: each
// origin of Connect that d does not cover, after a space; "" if none.
func (e *cspEditor) connectSources(d cspDirective) string {
	var b strings.Builder
	for i, o := range e.a.Connect {
		if slices.Contains(e.a.Connect[:i], o) || e.covers(d, o) {
			continue
		}
		b.WriteByte(' ')
		b.WriteString(o)
	}
	return b.String()
}

// covers reports whether the sources of d certainly admit the origin o in
// every browser; see AllowVisitor.
func (e *cspEditor) covers(d cspDirective, o string) bool {
	scheme := schemeOf(o)
	web := scheme == "http" || scheme == "https"
	for s, t := nextCSPToken(e.src, d.value, d.end); s < t; s, t = nextCSPToken(e.src, t, d.end) {
		switch src := e.src[s:t]; {
		case strings.EqualFold(strings.TrimSuffix(src, "/"), o),
			isSchemeSource(src, scheme),
			web && src == "*",
			web && strings.EqualFold(src, "'self'") && strings.EqualFold(o, e.scriptOrigin):
			return true
		}
	}
	return false
}

// apply returns src with the edits made.
func (e *cspEditor) apply() string {
	if len(e.edits) == 0 {
		return e.src
	}
	slices.SortStableFunc(e.edits, func(x, y cspEdit) int { return cmp.Compare(x.at, y.at) })
	n := len(e.src)
	for _, ed := range e.edits {
		n += len(ed.text) - (ed.end - ed.at)
	}
	var b strings.Builder
	b.Grow(n)
	pos := 0
	for _, ed := range e.edits {
		b.WriteString(e.src[pos:ed.at])
		b.WriteString(ed.text)
		pos = ed.end
	}
	b.WriteString(e.src[pos:])
	return b.String()
}

// nextCSPToken returns the bounds of the first source expression in
// s[i:end], or end, end if there is none.
func nextCSPToken(s string, i, end int) (start, stop int) {
	for i < end && isCSPSpace(s[i]) {
		i++
	}
	start = i
	for i < end && !isCSPSpace(s[i]) {
		i++
	}
	return start, i
}

// isCSPSpace reports whether c is ASCII whitespace, which separates the
// parts of a directive.
func isCSPSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r'
}

// isNonceOrHashSource reports whether src is a well-formed nonce or hash
// source expression, in the strictest sense any browser has: a hash must be
// padded base64 (or base64url) of a digest of its algorithm's size.
func isNonceOrHashSource(src string) bool {
	if len(src) < 2 || src[0] != '\'' || src[len(src)-1] != '\'' {
		return false
	}
	kind, value, ok := strings.Cut(src[1:len(src)-1], "-")
	if !ok {
		return false
	}
	var size int
	switch strings.ToLower(kind) {
	case "nonce":
		return isBase64Value(value)
	case "sha256":
		size = 32
	case "sha384":
		size = 48
	case "sha512":
		size = 64
	default:
		return false
	}
	b, err := base64.StdEncoding.Strict().DecodeString(value)
	if err != nil {
		b, err = base64.URLEncoding.Strict().DecodeString(value)
	}
	return err == nil && len(b) == size
}

// isBase64Value reports whether s matches CSP's base64-value: one or more
// of ALPHA, DIGIT, '+', '/', '-', '_', then at most two '='.
func isBase64Value(s string) bool {
	body := strings.TrimRight(s, "=")
	if body == "" || len(s)-len(body) > 2 {
		return false
	}
	for i := 0; i < len(body); i++ {
		switch c := body[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			c == '+', c == '/', c == '-', c == '_':
		default:
			return false
		}
	}
	return true
}

// splitOrigin splits the absolute URL u into its origin ("scheme://host" or
// "scheme://host:port") and the rest. ok is false unless the scheme is one of
// schemes and a CSP host source can name the host: labels of ASCII letters,
// digits and '-' separated by dots, and a port of decimal digits.
func splitOrigin(u string, schemes ...string) (origin, rest string, ok bool) {
	scheme, after, found := strings.Cut(u, "://")
	if !found || !slices.Contains(schemes, scheme) {
		return "", "", false
	}
	hostport := after
	if i := strings.IndexByte(after, '/'); i >= 0 {
		hostport, rest = after[:i], after[i:]
	}
	host, port, hasPort := strings.Cut(hostport, ":")
	if !isCSPHost(host) || hasPort && !isCSPPort(port) {
		return "", "", false
	}
	return u[:len(u)-len(rest)], rest, true
}

// isSchemeSource reports whether src is the scheme source for scheme, such
// as "https:" for "https".
func isSchemeSource(src, scheme string) bool {
	return len(src) == len(scheme)+1 && src[len(scheme)] == ':' && strings.EqualFold(src[:len(scheme)], scheme)
}

// schemeOf returns the scheme of a URL that splitOrigin accepted.
func schemeOf(u string) string {
	scheme, _, _ := strings.Cut(u, "://")
	return scheme
}

func isCSPHost(h string) bool {
	for label := range strings.SplitSeq(h, ".") {
		if label == "" {
			return false
		}
		for i := 0; i < len(label); i++ {
			switch c := label[i]; {
			case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-':
			default:
				return false
			}
		}
	}
	return true
}

func isCSPPort(p string) bool {
	if p == "" || len(p) > 5 {
		return false
	}
	for i := 0; i < len(p); i++ {
		if p[i] < '0' || p[i] > '9' {
			return false
		}
	}
	return true
}

// isCSPPath reports whether p is a path that a host source can carry
// verbatim: a '/' and then unreserved characters, and the sub-delimiters,
// ':' and '@' of RFC 3986, except the ',' and ';' and quote that CSP reserves.
// Percent escapes are left out: browsers decode them before matching.
func isCSPPath(p string) bool {
	if !strings.HasPrefix(p, "/") {
		return false
	}
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("-._~!$&()*+=:@/", c) >= 0:
		default:
			return false
		}
	}
	return true
}
