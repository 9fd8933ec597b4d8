package rewrite

import (
	"unicode/utf8"
)

// AppendCSSURLs appends the stylesheet css to dst with the URL of every
// resource it makes a browser fetch replaced by what mapURL returns for it,
// and returns the extended buffer. cobrowse uses it to point a stylesheet's
// fonts, images and imports at the agent listener's asset route.
//
// Which URLs: the argument of url() (the function name in any ASCII case,
// and with CSS escapes, e.g. URL( or u\72l(), quoted or not; the string of
// @import "x" (url() forms are url()s); and the strings directly inside
// image-set() and -webkit-image-set(). Not the url() of an @namespace
// prelude, which names a namespace rather than a resource, nor anything in
// a comment, another string, or a token that only contains "url(" (myurl(,
// #url(, 1url(, url\(). Refs that are empty or, after leading spaces and C0
// controls, start with "#" are local references to the document (CSS Values
// 4) and are never passed to mapURL.
//
// mapURL gets the decoded URL: quotes removed, escapes resolved (a U+0000
// as U+FFFD), a string's escaped newlines removed; it is neither trimmed
// nor resolved. It returns the replacement and true, or false to leave the
// token byte for byte as it was. A replacement is written as a
// double-quoted CSS string (in url("…") for a url()), with '"', '\\' and
// control bytes escaped; U+0000 cannot be written in CSS and reads back as
// U+FFFD. Every byte outside the replaced tokens is copied unchanged, and
// with a mapURL that never returns true the output is the input.
//
// How css is read: as the CSS Syntax standard's tokenizer reads it, for the
// tokens that matter here (comments, strings, bad strings, url tokens and
// bad urls, identifiers, function names, at-keywords, hashes, numbers and
// dimensions, escapes), so that a browser and AppendCSSURLs agree on what is
// a URL. Bad strings and bad urls are left alone, as browsers ignore them.
// The bytes are read as ASCII-compatible (UTF-8, Latin-1, …); a stylesheet
// in UTF-16 has no URL AppendCSSURLs can find, and is copied.
//
// Unlike the package's Readers it works on a whole stylesheet that the
// caller already holds (an asset body, bounded by the fetcher's size
// limit). It makes one forward pass with one token of lookahead and holds
// nothing but dst and the URL being decoded (one buffer, reused): besides
// growing dst, it allocates that buffer and one string per URL handed to
// mapURL.
func AppendCSSURLs(dst, css []byte, mapURL func(ref string) (string, bool)) []byte {
	s := cssURLs{css: css, dst: dst, mapURL: mapURL}
	s.run()
	return append(s.dst, css[s.done:]...)
}

// cssURLs is the state of one AppendCSSURLs call.
type cssURLs struct {
	css    []byte
	dst    []byte
	done   int // css[:done] is in dst (with replacements)
	mapURL func(string) (string, bool)
	ref    []byte // the decoded URL of the token being read
}

func (s *cssURLs) run() {
	css := s.css
	depth := 0         // open functions and parentheses
	imageSet := 0      // the depth of the innermost open image-set(), or 0
	importing := false // right after @import: a string there is a URL
	namespace := false // in an @namespace prelude, where url() is not fetched
	for i := 0; i < len(css); {
		c := css[i]
		switch {
		case c == '/' && i+1 < len(css) && css[i+1] == '*':
			i = commentEnd(css, i+2)
			continue // a comment keeps an @import waiting for its URL
		case isCSSSpace(c):
			i++
			continue
		case c == '"' || c == '\'':
			url := importing || (imageSet > 0 && depth == imageSet)
			end, ok := s.str(i, url)
			if url && ok {
				s.replace(i, end)
			}
			i = end
		case c == '@' && startsIdent(css, i+1):
			end := nameEnd(css, i+1)
			importing = identIs(css[i+1:end], "import")
			namespace = identIs(css[i+1:end], "namespace")
			i = end
			continue
		case c == '#' && i+1 < len(css) && (isNameByte(css[i+1]) || validEscape(css, i+1)):
			i = nameEnd(css, i+1) // a hash token: #url( is not a url()
		case startsIdent(css, i):
			end := nameEnd(css, i)
			if end == len(css) || css[end] != '(' {
				i = end
				break
			}
			name := css[i:end]
			if identIs(name, "url") {
				var open bool
				i, open = s.url(end+1, namespace)
				if open {
					depth++ // url( with a string: a function, closed by its ")"
				}
				break
			}
			depth++
			if imageSet == 0 && (identIs(name, "image-set") || identIs(name, "-webkit-image-set")) {
				imageSet = depth
			}
			i = end + 1
		case isDigit(c):
			i = nameEnd(css, i) // a number, with its unit: 1url( is a dimension
		case c == '(':
			depth++
			i++
		case c == ')':
			if depth == imageSet {
				imageSet = 0
			}
			if depth > 0 {
				depth--
			}
			i++
		case c == ';' || c == '{' || c == '}':
			namespace = false
			i++
		default:
			i++
		}
		importing = false
	}
}

// url reads what follows "url(" (at css[start]): a url token, or a string
// that makes url( a function (open is then true and the caller counts the
// function as open). It replaces the URL unless skip is set, and returns
// where the next token starts.
func (s *cssURLs) url(start int, skip bool) (next int, open bool) {
	css := s.css
	i := start
	for i < len(css) && isCSSSpace(css[i]) {
		i++
	}
	if i < len(css) && (css[i] == '"' || css[i] == '\'') {
		end, ok := s.str(i, !skip)
		if ok && !skip {
			s.replace(i, end)
		}
		return end, true
	}
	// A url token: up to ")", with escapes; whitespace only before the ")".
	s.ref = s.ref[:0]
	for i < len(css) {
		c := css[i]
		switch {
		case c == ')':
			if !skip {
				s.replace(start, i)
			}
			return i + 1, false
		case isCSSSpace(c):
			j := i
			for j < len(css) && isCSSSpace(css[j]) {
				j++
			}
			if j < len(css) && css[j] != ')' {
				return badURLEnd(css, j), false
			}
			if !skip {
				s.replace(start, j)
			}
			return min(j+1, len(css)), false
		case c == '"' || c == '\'' || c == '(' || isNonPrintable(c):
			return badURLEnd(css, i), false
		case c == '\\':
			if !validEscape(css, i) {
				return badURLEnd(css, i), false
			}
			s.ref, i = appendEscape(s.ref, css, i+1)
		case c == 0:
			s.ref = utf8.AppendRune(s.ref, utf8.RuneError)
			i++
		default:
			s.ref = append(s.ref, c)
			i++
		}
	}
	// The stylesheet ends inside the url token, which browsers still use.
	if !skip {
		s.replace(start, len(css))
	}
	return len(css), false
}

// str reads the string token whose quote is at css[i], decoding its value
// into s.ref if decode is set. It returns the index after the token, and
// false for a bad string (cut by a newline, which is left for the next
// token). A string that the stylesheet ends inside ends there.
func (s *cssURLs) str(i int, decode bool) (end int, ok bool) {
	css := s.css
	quote := css[i]
	s.ref = s.ref[:0]
	for i++; i < len(css); {
		c := css[i]
		switch {
		case c == quote:
			return i + 1, true
		case c == '\n' || c == '\r' || c == '\f':
			return i, false
		case c == '\\':
			switch {
			case i+1 == len(css): // a backslash at the end adds nothing
				i++
			case css[i+1] == '\r' && i+2 < len(css) && css[i+2] == '\n':
				i += 3 // an escaped newline continues the string
			case css[i+1] == '\n' || css[i+1] == '\r' || css[i+1] == '\f':
				i += 2
			case decode:
				s.ref, i = appendEscape(s.ref, css, i+1)
			default:
				i = escapeEnd(css, i+1)
			}
		default:
			if decode {
				if c == 0 {
					s.ref = utf8.AppendRune(s.ref, utf8.RuneError)
				} else {
					s.ref = append(s.ref, c)
				}
			}
			i++
		}
	}
	return len(css), true
}

// replace writes the URL in s.ref, mapped, in place of css[start:end],
// unless it is a local reference or mapURL leaves it.
func (s *cssURLs) replace(start, end int) {
	i := 0
	for i < len(s.ref) && s.ref[i] <= ' ' {
		i++
	}
	if i == len(s.ref) || s.ref[i] == '#' {
		return
	}
	u, ok := s.mapURL(string(s.ref))
	if !ok {
		return
	}
	s.dst = append(s.dst, s.css[s.done:start]...)
	s.dst = appendCSSString(s.dst, u)
	s.done = end
}

// appendCSSString appends v as a double-quoted CSS string.
func appendCSSString(dst []byte, v string) []byte {
	const hexDigits = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c < 0x20 || c == 0x7f:
			// A hex escape ends at the space after it.
			if c >= 0x10 {
				dst = append(dst, '\\', hexDigits[c>>4], hexDigits[c&0xf], ' ')
			} else {
				dst = append(dst, '\\', hexDigits[c], ' ')
			}
		default:
			dst = append(dst, c)
		}
	}
	return append(dst, '"')
}

// commentEnd returns the index after the comment whose body starts at
// css[i], or len(css) for a comment that is not closed.
func commentEnd(css []byte, i int) int {
	for ; i+1 < len(css); i++ {
		if css[i] == '*' && css[i+1] == '/' {
			return i + 2
		}
	}
	return len(css)
}

// badURLEnd returns the index after the remnants of a bad url token, which
// end at a ")" that is not escaped, or at the end.
func badURLEnd(css []byte, i int) int {
	for i < len(css) {
		switch {
		case css[i] == ')':
			return i + 1
		case validEscape(css, i):
			i = escapeEnd(css, i+1)
		default:
			i++
		}
	}
	return len(css)
}

// nameEnd returns the end of the name (identifier characters and escapes)
// that starts at css[i].
func nameEnd(css []byte, i int) int {
	for i < len(css) {
		switch {
		case isNameByte(css[i]):
			i++
		case validEscape(css, i):
			i = escapeEnd(css, i+1)
		default:
			return i
		}
	}
	return i
}

// startsIdent reports whether an identifier starts at css[i].
func startsIdent(css []byte, i int) bool {
	if i >= len(css) {
		return false
	}
	switch c := css[i]; {
	case isNameStart(c):
		return true
	case c == '\\':
		return validEscape(css, i)
	case c == '-':
		return i+1 < len(css) && (isNameStart(css[i+1]) || css[i+1] == '-' || validEscape(css, i+1))
	}
	return false
}

// identIs reports whether the name (raw, with escapes) is want, a lower-case
// ASCII word, in any ASCII case.
func identIs(name []byte, want string) bool {
	k := 0
	for i := 0; i < len(name); k++ {
		var r rune
		if name[i] == '\\' {
			r, i = escapedRune(name, i+1)
		} else {
			r, i = rune(name[i]), i+1
		}
		if 'A' <= r && r <= 'Z' {
			r += 'a' - 'A'
		}
		if k == len(want) || r != rune(want[k]) {
			return false
		}
	}
	return k == len(want)
}

// validEscape reports whether css[i] is a backslash that starts an escape:
// one not followed by a newline or the end.
func validEscape(css []byte, i int) bool {
	return i+1 < len(css) && css[i] == '\\' && css[i+1] != '\n' && css[i+1] != '\r' && css[i+1] != '\f'
}

// escapedRune decodes the escape whose backslash precedes css[i] (a valid
// escape) and returns its code point and the index after it: up to six hex
// digits and one whitespace after them (U+FFFD for zero, a surrogate or
// past U+10FFFF), or any other character itself (U+FFFD for U+0000 and for
// bytes that are not UTF-8).
func escapedRune(css []byte, i int) (rune, int) {
	if !isHexDigit(css[i]) {
		r, size := utf8.DecodeRune(css[i:])
		if r == 0 {
			r = utf8.RuneError // U+0000 reads as U+FFFD before it is escaped
		}
		return r, i + size
	}
	var v rune
	j := i
	for ; j < len(css) && j-i < 6 && isHexDigit(css[j]); j++ {
		v = v<<4 | rune(hexValue(css[j]))
	}
	switch {
	case j+1 < len(css) && css[j] == '\r' && css[j+1] == '\n':
		j += 2
	case j < len(css) && isCSSSpace(css[j]):
		j++
	}
	if v == 0 || (0xD800 <= v && v <= 0xDFFF) || v > utf8.MaxRune {
		v = utf8.RuneError
	}
	return v, j
}

// appendEscape appends the code point of the escape at css[i] (see
// escapedRune) to dst.
func appendEscape(dst, css []byte, i int) ([]byte, int) {
	r, next := escapedRune(css, i)
	return utf8.AppendRune(dst, r), next
}

// escapeEnd returns the index after the escape at css[i] (see escapedRune).
func escapeEnd(css []byte, i int) int {
	_, next := escapedRune(css, i)
	return next
}

func isCSSSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f'
}

// isNameStart: a letter, "_", or a byte of a non-ASCII character; U+0000
// reads as U+FFFD, which is one.
func isNameStart(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '_' || c >= 0x80 || c == 0
}

func isNameByte(c byte) bool {
	return isNameStart(c) || isDigit(c) || c == '-'
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func isHexDigit(c byte) bool {
	return isDigit(c) || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func hexValue(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

// isNonPrintable: the control characters that make a url token bad
// (U+0000 is not one: it reads as U+FFFD).
func isNonPrintable(c byte) bool {
	return (0x01 <= c && c <= 0x08) || c == 0x0b || (0x0e <= c && c <= 0x1f) || c == 0x7f
}
