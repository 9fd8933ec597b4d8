package policies

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"

	"golang.org/x/net/html"

	"github.com/cobrowse/cobrowse/internal/rrweb"
)

// Most of a visitor's events carry no content at all: pointer moves,
// scrolls, clicks, viewport and media changes are numbers (positions, node
// ids, times). Decoding and re-encoding each with encoding/json, as Redact
// does for everything else, made redaction cost twice the hub's own work per
// event (BenchmarkHubEvent). numbersOnly recognises these events with a
// small scanner, so that Redact can send them as they came: an event passes
// only if every key is one it expects for that event and every value is a
// JSON number (or, where rrweb has them, a boolean or an array of such
// objects), with no key twice. typedValue and textChanges read typed
// values and text-only mutations the same way, for Redact to pass when
// nothing in them needs masking. Anything else, including a key written
// with escapes, takes the full decode path, which drops what it does not
// know. FuzzNumericEvent checks that the two paths send the same.

// fastKeys lists, by incremental source, the keys the data object of an
// event of that source may have besides "source", the kind of each value,
// and whether it must be there (the full path would otherwise make one up).
var fastKeys = map[int][]fastKey{
	sourceMouseMove:        {{"positions", keyPositions, true}},
	sourceTouchMove:        {{"positions", keyPositions, true}},
	sourceDrag:             {{"positions", keyPositions, true}},
	sourceMouseInteraction: {{"type", keyNumber, true}, {"id", keyNumber, true}, {"x", keyNumber, false}, {"y", keyNumber, false}, {"pointerType", keyNumber, false}},
	sourceScroll:           {{"id", keyNumber, true}, {"x", keyNumber, true}, {"y", keyNumber, true}},
	sourceViewportResize:   {{"width", keyNumber, true}, {"height", keyNumber, true}},
	sourceMediaInteraction: {{"type", keyNumber, true}, {"id", keyNumber, true}, {"currentTime", keyNumber, false}, {"volume", keyNumber, false},
		{"muted", keyBool, false}, {"loop", keyBool, false}, {"playbackRate", keyNumber, false}},
}

// positionKeys are the keys of one entry of a positions list, and
// eventKeys those of an event.
var (
	positionKeys = []fastKey{{"x", keyNumber, true}, {"y", keyNumber, true}, {"id", keyNumber, true}, {"timeOffset", keyNumber, true}}
	eventKeys    = []fastKey{{"type", keyNumber, true}, {"timestamp", keyNumber, true}, {"delay", keyNumber, false}, {"data", keyData, true}}
)

// eventTypeKey is the index of "type" in eventKeys.
const eventTypeKey = 0

type fastKey struct {
	name     string
	kind     keyKind
	required bool
}

// complete reports whether seen, a set of indexes in keys, holds every
// required key.
func complete(keys []fastKey, seen uint) bool {
	for i, k := range keys {
		if k.required && seen&(1<<i) == 0 {
			return false
		}
	}
	return true
}

type keyKind uint8

const (
	keyNumber keyKind = iota + 1
	keyBool
	keyPositions
	keyData
	keyString
)

// inputKeys are the keys of an Input event's data besides "source".
var inputKeys = []fastKey{{"id", keyNumber, true}, {"text", keyString, true}, {"isChecked", keyBool, true}, {"userTriggered", keyBool, false}}

// lookup returns the index of key in keys, or -1.
func lookup(keys []fastKey, key []byte) int {
	for i, k := range keys {
		if k.name == string(key) {
			return i
		}
	}
	return -1
}

// typedValue reports whether data, an IncrementalSnapshot's, is an Input
// made of the keys rrweb sends, and returns the field's node id and the
// value typed. Redact passes such an event as it is when the value needs no
// masking.
func typedValue(data []byte) (id int64, text string, ok bool) {
	var seen uint
	var sources int
	d := scanner{b: data}
	ok = d.object(func(key []byte) bool {
		if string(key) == "source" {
			sources++
			n, ok := d.number()
			return ok && n == sourceInput
		}
		i := lookup(inputKeys, key)
		if i < 0 || seen&(1<<i) != 0 {
			return false
		}
		seen |= 1 << i
		switch inputKeys[i].kind {
		case keyString:
			var ok bool
			text, ok = d.str()
			return ok
		case keyNumber:
			var ok bool
			id, ok = d.integer()
			return ok
		}
		return d.value(inputKeys[i].kind)
	})
	if !ok || sources != 1 || !complete(inputKeys, seen) || !d.end() {
		return 0, "", false
	}
	return id, text, true
}

// parseEnvelope reads an event's type, data, timestamp and delay without
// decoding or copying its data, which can be a snapshot of tens of
// kilobytes: each kind of event decodes (and so checks) its data itself.
// The type must be a small integer, the timestamp and delay numbers, the
// data an object; other keys are skipped, and no key may come twice. plain
// reports that there was no other key, so that the event may be passed on
// as it came if its data allows.
func parseEnvelope(raw []byte) (ev event, plain, ok bool) {
	s := scanner{b: raw}
	var seen uint
	plain = true
	ok = s.object(func(key []byte) bool {
		i := lookup(eventKeys, key)
		if i < 0 {
			plain = false
			return s.skipValue()
		}
		if seen&(1<<i) != 0 {
			return false
		}
		seen |= 1 << i
		s.ws()
		start := s.i
		if eventKeys[i].kind == keyData {
			if seen&(1<<eventTypeKey) != 0 && ev.Type == rrweb.FullSnapshot && s.i < len(s.b) && s.b[s.i] == '{' {
				// Tens of kilobytes: decoded as they are read, not skipped
				// here and read again. Data that does not decode is
				// skipped, and fullSnapshot finds it malformed.
				s.text = aliasString(raw)
				var decoded bool
				if ev.snapshot, decoded = s.snapshot(); decoded {
					ev.Data = raw[start:s.i]
					return true
				}
				ev.snapshot, s.i = nil, start
			}
			if !s.skipObject() {
				return false
			}
			ev.Data = raw[start:s.i]
			return true
		}
		n, ok := s.number()
		switch eventKeys[i].name {
		case "type":
			ev.Type = n
			return ok && n >= 0
		case "timestamp":
			ev.Timestamp = json.Number(raw[start:s.i])
		case "delay":
			delay := json.Number(raw[start:s.i])
			ev.Delay = &delay
		}
		return ok
	})
	ok = ok && s.end() && complete(eventKeys, seen)
	if !ok {
		ev.snapshot.release()
		ev.snapshot = nil
	}
	return ev, plain, ok
}

// textChange is one entry of a Mutation's texts, as textChanges reads
// it.
type textChange struct {
	id    int64
	value string
}

// textChanges reports whether data, an IncrementalSnapshot's, is a
// Mutation that only changes the text of nodes (texts entries with a string
// value; attributes, removes and adds present and empty; no other key), and
// returns the changes. Redact passes such an event as it is when none of
// the texts needs masking.
func textChanges(data []byte) ([]textChange, bool) {
	var changes []textChange
	var seen uint
	keys := []string{"source", "texts", "attributes", "removes", "adds"}
	d := scanner{b: data}
	ok := d.object(func(key []byte) bool {
		i := slices.Index(keys, string(key))
		if i < 0 || seen&(1<<i) != 0 {
			return false
		}
		seen |= 1 << i
		switch i {
		case 0:
			n, ok := d.number()
			return ok && n == sourceMutation
		case 1:
			return d.array(func() bool {
				var c textChange
				var fields uint
				valid := d.object(func(key []byte) bool {
					var read bool
					switch {
					case string(key) == "id" && fields&1 == 0:
						fields |= 1
						c.id, read = d.integer()
					case string(key) == "value" && fields&2 == 0:
						fields |= 2
						c.value, read = d.str()
					}
					return read
				})
				changes = append(changes, c)
				return valid && fields == 3
			})
		default:
			return d.consume('[') && d.consume(']')
		}
	})
	return changes, ok && seen == 1<<len(keys)-1 && d.end()
}

// numbersOnly reports whether data, an IncrementalSnapshot's, is of a
// source in fastKeys and its every value is a number, a boolean or a list
// of positions, as described above.
func numbersOnly(data []byte) bool {
	// The data object: its source decides which keys it may have.
	source, ok := dataSource(data)
	if !ok {
		return false
	}
	keys := fastKeys[source]
	if keys == nil {
		return false
	}
	d := scanner{b: data}
	var seen uint
	ok = d.object(func(key []byte) bool {
		if string(key) == "source" {
			_, ok := d.number()
			return ok
		}
		i := lookup(keys, key)
		if i < 0 || seen&(1<<i) != 0 {
			return false
		}
		seen |= 1 << i
		return d.value(keys[i].kind)
	})
	return ok && complete(keys, seen) && d.end()
}

// dataSource returns the source of an IncrementalSnapshot's data: the
// value of its one "source" key (spelt so), a small non-negative integer.
// The other values are skipped, not checked: the caller decodes them.
func dataSource(data []byte) (source int, ok bool) {
	sources := 0
	s := scanner{b: data}
	if !s.object(func(key []byte) bool {
		if string(key) != "source" {
			return s.skipValue()
		}
		sources++
		source, ok = s.number()
		return ok
	}) || sources != 1 || source < 0 {
		return 0, false
	}
	return source, true
}

// scanner reads JSON from b at i, without allocating (but for the keys it
// hands out, which are short). nodes, kids and attrs are the snapshot and
// mutation decoders'.
type scanner struct {
	b []byte
	i int
	// text, if set, is b as a string (aliasString): the strings that str
	// reads without escapes are then parts of it rather than copies, for
	// a snapshot's hundreds of strings.
	text string

	nodes    []snode     // see newSnode
	kids     []*snode    // see snode
	attrs    []attribute // see rawValues
	attrRoom attributes  // see attributeList

	// mirror, if set, is the mirror that snode builds a snapshot's nodes
	// into, with the nodes built and not yet given to their parent on
	// built, and a scratch snode per depth.
	mirror  *mirror
	built   []*html.Node
	scratch *scratchNodes
}

// aliasString returns b as a string without copying it: b must not change
// as long as the string, or any part of it, is in use. The Redactor uses
// it on an event's bytes, which the hub never changes (session.Redactor),
// so that a snapshot's mirror keeps the visitor's event alive rather than
// a copy of it: a copy was a fifth of what a recorded session allocated.
func aliasString(b []byte) string {
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// The scanner's loops work on local copies of b and i, which the compiler
// keeps in registers (through s, it loads them again at every byte).

func (s *scanner) ws() {
	b, i := s.b, s.i
	if i < len(b) && b[i] > ' ' {
		return // the common case: rrweb writes no white space
	}
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	s.i = i
}

// end reports whether only white space is left.
func (s *scanner) end() bool {
	s.ws()
	return s.i == len(s.b)
}

func (s *scanner) consume(c byte) bool {
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// object reads an object, calling member for each key with the scanner at
// its value, which member must read; it fails on any key with an escape.
// The key aliases the scanner's bytes.
func (s *scanner) object(member func(key []byte) bool) bool {
	if !s.consume('{') {
		return false
	}
	if s.consume('}') {
		return true
	}
	for {
		key, ok := s.plainString()
		if !ok || !s.consume(':') || !member(key) {
			return false
		}
		if s.consume('}') {
			return true
		}
		if !s.consume(',') {
			return false
		}
	}
}

// skipValue reads a value of any content, without checking it beyond
// finding its end (its content is checked by another pass, or not used).
func (s *scanner) skipValue() bool {
	s.ws()
	if s.i >= len(s.b) {
		return false
	}
	switch c := s.b[s.i]; c {
	case '{', '[':
		return s.skipObject()
	case '"':
		return s.skipString()
	}
	start := s.i
	for s.i < len(s.b) && strings.IndexByte(",}] \t\n\r", s.b[s.i]) < 0 {
		s.i++
	}
	return s.i > start
}

// skipString reads a string, at s.i, without checking its content beyond
// finding its end: the first quote that an odd run of backslashes does not
// escape.
func (s *scanner) skipString() bool {
	if s.i >= len(s.b) || s.b[s.i] != '"' {
		return false
	}
	for s.i++; ; {
		q := bytes.IndexByte(s.b[s.i:], '"')
		if q < 0 {
			s.i = len(s.b)
			return false
		}
		end := s.i + q
		backslashes := 0 // the byte before s.i is a quote: the run stops there
		for k := end - 1; k >= s.i && s.b[k] == '\\'; k-- {
			backslashes++
		}
		s.i = end + 1
		if backslashes%2 == 0 {
			return true
		}
	}
}

// skipObject reads an object or an array of any content.
func (s *scanner) skipObject() bool {
	s.ws()
	if s.i >= len(s.b) || s.b[s.i] != '{' && s.b[s.i] != '[' {
		return false
	}
	b, depth := s.b, 0
	for i := s.i; i < len(b); i++ {
		switch b[i] {
		case '"':
			s.i = i
			if !s.skipString() {
				return false
			}
			i = s.i - 1 // the closing quote
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				s.i = i + 1
				return true
			}
		}
	}
	s.i = len(b)
	return false
}

// plainString reads a string without escapes or control characters.
func (s *scanner) plainString() ([]byte, bool) {
	if !s.consume('"') {
		return nil, false
	}
	b, start := s.b, s.i
	for i := start; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			s.i = i + 1
			return b[start:i], true
		case c == '\\' || c < 0x20:
			s.i = i
			return nil, false
		}
	}
	s.i = len(b)
	return nil, false
}

// value reads a value of the kind expected.
func (s *scanner) value(kind keyKind) bool {
	switch kind {
	case keyNumber:
		_, ok := s.number()
		return ok
	case keyBool:
		s.ws()
		for _, lit := range []string{"true", "false"} {
			if len(s.b)-s.i >= len(lit) && string(s.b[s.i:s.i+len(lit)]) == lit {
				s.i += len(lit)
				return true
			}
		}
		return false
	case keyPositions:
		if !s.consume('[') {
			return false
		}
		if s.consume(']') {
			return true
		}
		for {
			var seen uint
			ok := s.object(func(key []byte) bool {
				i := lookup(positionKeys, key)
				if i < 0 || seen&(1<<i) != 0 {
					return false
				}
				seen |= 1 << i
				return s.value(positionKeys[i].kind)
			})
			if !ok || !complete(positionKeys, seen) {
				return false
			}
			if s.consume(']') {
				return true
			}
			if !s.consume(',') {
				return false
			}
		}
	}
	return false
}

// number reads a JSON number; n is its value if it is a small non-negative
// integer (for type and source), -1 otherwise.
func (s *scanner) number() (n int, ok bool) {
	s.ws()
	b, start := s.b, s.i
	i := start
	if i < len(b) && b[i] == '-' {
		i++
	}
	first := i
	i = skipDigits(b, i)
	digits := i - first
	if digits == 0 || digits > 1 && b[first] == '0' {
		s.i = i
		return -1, false
	}
	integer := i
	if i < len(b) && b[i] == '.' {
		if i = skipDigits(b, i+1); i == integer+1 {
			s.i = i
			return -1, false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		exp := i
		if i = skipDigits(b, i); i == exp {
			s.i = i
			return -1, false
		}
	}
	s.i = i
	n = -1
	if i == integer && b[start] != '-' && digits <= 4 {
		n = 0
		for _, c := range b[start:integer] {
			n = 10*n + int(c-'0')
		}
	}
	return n, true
}

// array reads an array, calling item with the scanner at each element,
// which item must read.
func (s *scanner) array(item func() bool) bool {
	if !s.consume('[') {
		return false
	}
	if s.consume(']') {
		return true
	}
	for {
		if !item() {
			return false
		}
		if s.consume(']') {
			return true
		}
		if !s.consume(',') {
			return false
		}
	}
}

// integer reads a number that is an integer as encoding/json decodes one
// into an int64.
func (s *scanner) integer() (int64, bool) {
	s.ws()
	start := s.i
	if _, ok := s.number(); !ok {
		return 0, false
	}
	lit := s.b[start:s.i]
	digits := lit
	if lit[0] == '-' {
		digits = lit[1:]
	}
	if skipDigits(digits, 0) < len(digits) || len(digits) > 18 {
		// A fraction or an exponent, which ParseInt refuses as
		// encoding/json does, or what may not fit.
		n, err := strconv.ParseInt(string(lit), 10, 64)
		return n, err == nil
	}
	var n int64
	for _, c := range digits {
		n = 10*n + int64(c-'0')
	}
	if lit[0] == '-' {
		n = -n
	}
	return n, true
}

// str reads a string and returns its value.
func (s *scanner) str() (string, bool) {
	s.ws()
	start := s.i
	if !s.skipString() {
		return "", false
	}
	q := s.b[start+1 : s.i-1]
	if s.text != "" && plainPrefix(q) == len(q) {
		return s.text[start+1 : s.i-1], true
	}
	return unquote(q)
}

// indentation returns the value of q, a JSON string's content, without
// allocating, if it is a line break followed by spaces or by tabs: the
// text between the elements of an indented page, which makes most of a
// snapshot's text nodes.
func indentation(q []byte) (string, bool) {
	if len(q) < 2 || q[0] != '\\' || q[1] != 'n' {
		return "", false
	}
	rest := q[2:]
	switch {
	case repeats(rest, " ") && len(rest) < len(newlineSpaces):
		return newlineSpaces[:1+len(rest)], true
	case repeats(rest, `\t`) && len(rest)/2 < len(newlineTabs):
		return newlineTabs[:1+len(rest)/2], true
	}
	return "", false
}

// repeats reports whether b is unit repeated (or empty).
func repeats(b []byte, unit string) bool {
	for len(b) >= len(unit) && string(b[:len(unit)]) == unit {
		b = b[len(unit):]
	}
	return len(b) == 0
}

const (
	newlineSpaces = "\n                                                                "
	newlineTabs   = "\n\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t"
)

// plainPrefix returns the length of the longest prefix of q, a JSON
// string's content, without escapes or control characters. It reads eight
// bytes at a time: a snapshot's strings are a third of its bytes.
func plainPrefix(q []byte) int {
	i := 0
	for ; i+8 <= len(q) && !escapeOrControl(binary.LittleEndian.Uint64(q[i:])); i += 8 {
	}
	for ; i < len(q); i++ {
		if c := q[i]; c == '\\' || c < 0x20 {
			return i
		}
	}
	return len(q)
}

// escapeOrControl reports whether one of the eight bytes of w is a
// backslash or below 0x20 (the "haszero" and "hasless" tests of Bit
// Twiddling Hacks: a byte's high bit is set in (b - 1) &^ b only where the
// byte was zero, and in (b - 0x20) &^ b only where it was below 0x20).
func escapeOrControl(w uint64) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	backslashes := w ^ (ones * '\\') // zero where w has a backslash
	return ((backslashes-ones)&^backslashes|(w-ones*0x20)&^w)&highs != 0
}

// validQuoted reports whether unquote(q) would succeed, without building
// the string: no control characters, and only valid escapes.
func validQuoted(q []byte) bool {
	for i := plainPrefix(q); i < len(q); i += plainPrefix(q[i:]) {
		if q[i] < 0x20 || i+1 >= len(q) {
			return false
		}
		switch q[i+1] {
		case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			i += 2
		case 'u':
			if _, ok := hex4(q[i+2:]); !ok {
				return false
			}
			i += 6
		default:
			return false
		}
	}
	return true
}

// unquote returns the value of the JSON string whose content (between the
// quotes) is q, as encoding/json decodes it: escapes resolved, a lone
// surrogate as U+FFFD; a control character or a bad escape is an error.
func unquote(q []byte) (string, bool) {
	plain := plainPrefix(q)
	if plain == len(q) {
		return string(q), true
	}
	if ws, ok := indentation(q); ok {
		return ws, true
	}
	var b strings.Builder
	b.Grow(len(q))
	b.Write(q[:plain])
	for i := plain; i < len(q); i++ {
		c := q[i]
		switch {
		case c < 0x20:
			return "", false
		case c != '\\':
			// Up to the next escape or control character at once.
			n := plainPrefix(q[i:])
			b.Write(q[i : i+n])
			i += n - 1
			continue
		}
		if i++; i >= len(q) {
			return "", false
		}
		switch q[i] {
		case '"', '\\', '/':
			b.WriteByte(q[i])
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case 'u':
			r, ok := hex4(q[i+1:])
			if !ok {
				return "", false
			}
			i += 4
			if utf16.IsSurrogate(r) {
				if r2, ok := hex4(q[min(i+3, len(q)):]); ok && i+2 < len(q) && q[i+1] == '\\' && q[i+2] == 'u' {
					if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
						b.WriteRune(dec)
						i += 6
						continue
					}
				}
				r = utf8.RuneError
			}
			b.WriteRune(r)
		default:
			return "", false
		}
	}
	return b.String(), true
}

// hex4 reads the four hex digits of a \u escape at the start of q.
func hex4(q []byte) (rune, bool) {
	if len(q) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range q[:4] {
		if !isHex(c) {
			return 0, false
		}
		r = r<<4 | rune(unhex(c))
	}
	return r, true
}

// skipDigits returns the index of the first byte at or after b[i] that is
// not an ASCII digit.
func skipDigits(b []byte, i int) int {
	for i < len(b) && isDigit(b[i]) {
		i++
	}
	return i
}
