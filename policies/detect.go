package policies

import (
	"regexp"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Detectors finds sensitive substrings in text: the built-in detectors a
// policy turns on plus its custom ones. A nil *Detectors finds nothing.
// It is immutable and safe for concurrent use.
type Detectors struct {
	list []*detector // in canonical order: built-ins first, then custom in file order
}

// detector is one named finder. find appends the byte ranges it finds in text
// to dst; ranges may overlap each other and come in any order.
type detector struct {
	name  string
	order int  // position in the canonical order, for stable unions
	weak  bool // a weak detector's matches are dropped where they overlap a strong one's
	find  func(text string, dst [][2]int) [][2]int
	// needs is what a text must hold for find to match anything in it, so
	// that a text without it is skipped at once (most page text has no
	// digit and no '@'); 0 if the detector cannot tell (custom patterns).
	needs textHas
}

// textHas is a set of kinds of byte a text holds.
type textHas uint8

const (
	hasDigit textHas = 1 << iota // an ASCII digit
	hasAt                        // '@'
)

// bytesIn returns which of the kinds of byte that detectors need text holds.
func bytesIn(text string) textHas {
	var has textHas
	for i := 0; i < len(text) && has != hasDigit|hasAt; i++ {
		switch c := text[i]; {
		case isDigit(c):
			has |= hasDigit
		case c == '@':
			has |= hasAt
		}
	}
	return has
}

// Names returns the names of the detectors in use, built-ins first.
func (d *Detectors) Names() []string {
	if d == nil {
		return nil
	}
	names := make([]string, len(d.list))
	for i, det := range d.list {
		names[i] = det.name
	}
	return names
}

// Find returns the byte ranges [start,end) of every match in text, sorted and
// non-overlapping: overlapping or touching matches are merged into one range.
// A phone number that overlaps a match of another detector (a card number, an
// IBAN, an SSN, a custom pattern) is not reported on its own: the other wins.
// It runs in time linear in len(text).
func (d *Detectors) Find(text string) [][2]int {
	return d.find(text, nil)
}

// find is Find that also calls found, if not nil, with the name of the
// detector of each match it reports (before merging).
func (d *Detectors) find(text string, found func(name string)) [][2]int {
	if d == nil || len(d.list) == 0 || text == "" {
		return nil
	}
	var strong, weak [][2]int
	var weakNames []string // of weak's ranges, for found
	has := bytesIn(text)
	for _, det := range d.list {
		if det.needs&has != det.needs {
			continue
		}
		if det.weak {
			n := len(weak)
			weak = det.find(text, weak)
			for range len(weak) - n {
				weakNames = append(weakNames, det.name)
			}
			continue
		}
		n := len(strong)
		strong = det.find(text, strong)
		for i := n; i < len(strong) && found != nil; i++ {
			found(det.name)
		}
	}
	if len(strong) == 0 && len(weak) == 0 {
		return nil
	}
	n := len(strong)
	if n > 0 {
		sortRanges(strong)
		strong = mergeRanges(strong)
		n = len(strong)
	}
	for i, w := range weak {
		if n == 0 || !overlapsAny(strong[:n], w) {
			strong = append(strong, w)
			if found != nil {
				found(weakNames[i])
			}
		}
	}
	sortRanges(strong)
	return mergeRanges(strong)
}

// Mask returns text with every match of Find replaced by MaskString of the
// same text, and whether anything matched.
func (d *Detectors) Mask(text string) (string, bool) {
	return d.mask(text, nil)
}

// mask is Mask that calls found as find does.
func (d *Detectors) mask(text string, found func(name string)) (string, bool) {
	ranges := d.find(text, found)
	if len(ranges) == 0 {
		return text, false
	}
	var b strings.Builder
	b.Grow(len(text))
	last := 0
	for _, r := range ranges {
		b.WriteString(text[last:r[0]])
		writeMask(&b, text[r[0]:r[1]])
		last = r[1]
	}
	b.WriteString(text[last:])
	return b.String(), true
}

// MaskString returns s with every rune that is not white space replaced by
// '*': the rune count and the white space are kept, so masked text keeps its
// length and line breaks. Each byte of invalid UTF-8 counts as one rune.
func MaskString(s string) string {
	var b strings.Builder
	b.Grow(utf8.RuneCountInString(s))
	writeMask(&b, s)
	return b.String()
}

func writeMask(b *strings.Builder, s string) {
	for _, r := range s {
		if unicode.IsSpace(r) {
			b.WriteRune(r)
		} else {
			b.WriteByte('*')
		}
	}
}

func sortRanges(rs [][2]int) {
	slices.SortFunc(rs, func(a, b [2]int) int {
		if a[0] != b[0] {
			return a[0] - b[0]
		}
		return a[1] - b[1]
	})
}

// mergeRanges merges overlapping and touching ranges of a sorted slice in place.
func mergeRanges(rs [][2]int) [][2]int {
	out := rs[:1]
	for _, r := range rs[1:] {
		last := &out[len(out)-1]
		if r[0] <= last[1] {
			last[1] = max(last[1], r[1])
			continue
		}
		out = append(out, r)
	}
	return out
}

// overlapsAny reports whether r overlaps a range of rs, which is sorted and
// free of overlaps, so that only the last range starting before r ends can.
func overlapsAny(rs [][2]int, r [2]int) bool {
	i, _ := slices.BinarySearchFunc(rs, r[1], func(a [2]int, end int) int { return a[0] - end })
	return i > 0 && rs[i-1][1] > r[0]
}

// The built-in detectors, in canonical order. Their names are part of the
// file format.
var builtins = []*detector{
	{name: "card_number", order: 0, find: findCards, needs: hasDigit},
	{name: "iban", order: 1, find: findIBANs, needs: hasDigit},
	{name: "ssn", order: 2, find: findSSNs, needs: hasDigit},
	{name: "email", order: 3, find: findEmails, needs: hasAt},
	{name: "phone", order: 4, weak: true, find: findPhones, needs: hasDigit},
}

func builtinNames() []string {
	names := make([]string, len(builtins))
	for i, d := range builtins {
		names[i] = d.name
	}
	return names
}

// customDetector returns a detector that reports the non-empty matches of re.
func customDetector(name string, order int, re *regexp.Regexp) *detector {
	return &detector{name: name, order: order, find: func(text string, dst [][2]int) [][2]int {
		for _, m := range re.FindAllStringIndex(text, -1) {
			if m[1] > m[0] {
				dst = append(dst, [2]int{m[0], m[1]})
			}
		}
		return dst
	}}
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func isLetter(c byte) bool { return 'a' <= c|0x20 && c|0x20 <= 'z' }

func isAlnum(c byte) bool { return isDigit(c) || isLetter(c) }

// digitGroups returns the [start,end) offsets of the runs of ASCII digits in s.
func digitGroups(s string) [][2]int {
	var gs [][2]int
	for i := 0; i < len(s); {
		if !isDigit(s[i]) {
			i++
			continue
		}
		j := i
		for j < len(s) && isDigit(s[j]) {
			j++
		}
		gs = append(gs, [2]int{i, j})
		i = j
	}
	return gs
}

// --- card_number ---

// numberRuns calls fn with each maximal run of digit groups joined by single
// spaces or dashes, the text where card numbers and SSNs are looked for.
func numberRuns(text string, fn func(start, end int)) {
	for i := 0; i < len(text); {
		if !isDigit(text[i]) {
			i++
			continue
		}
		start := i
		for {
			for i < len(text) && isDigit(text[i]) {
				i++
			}
			if i+1 < len(text) && (text[i] == ' ' || text[i] == '-') && isDigit(text[i+1]) {
				i++
				continue
			}
			break
		}
		fn(start, i)
	}
}

// findCards reports 13 to 19 digits that pass the Luhn check, written either
// without separators or in groups joined by single spaces or dashes, where
// every group but the last has at least 4 digits (4-4-4-4, 4-6-5, 4-4-4-4-3).
// A number is made of whole groups, so it is never part of a longer run of
// digits.
func findCards(text string, dst [][2]int) [][2]int {
	numberRuns(text, func(start, end int) {
		if end-start < 13 {
			return
		}
		run := text[start:end]
		gs := digitGroups(run)
		for i := 0; i < len(gs); {
			j, ok := cardAt(run, gs, i)
			if !ok {
				i++
				continue
			}
			dst = append(dst, [2]int{start + gs[i][0], start + gs[j][1]})
			i = j + 1
		}
	})
	return dst
}

// cardAt returns the last group j of the longest card number that starts at
// group i, if any.
func cardAt(s string, gs [][2]int, i int) (int, bool) {
	// The groups a number may span: at most 19 digits, and every group but
	// the last at least 4 digits long.
	last, digits := -1, 0
	for j := i; j < len(gs); j++ {
		digits += gs[j][1] - gs[j][0]
		if digits > 19 {
			break
		}
		last = j
		if gs[j][1]-gs[j][0] < 4 {
			break
		}
	}
	for j := last; j >= i; j-- {
		n := 0
		for k := i; k <= j; k++ {
			n += gs[k][1] - gs[k][0]
		}
		if n >= 13 && luhn(s, gs[i:j+1]) {
			return j, true
		}
	}
	return 0, false
}

// luhn reports whether the digits of the groups pass the Luhn check.
func luhn(s string, gs [][2]int) bool {
	sum, double := 0, false
	for g := len(gs) - 1; g >= 0; g-- {
		for k := gs[g][1] - 1; k >= gs[g][0]; k-- {
			d := int(s[k] - '0')
			if double {
				d *= 2
				if d > 9 {
					d -= 9
				}
			}
			sum += d
			double = !double
		}
	}
	return sum%10 == 0
}

// --- iban ---

// ibanLengths holds the IBAN length of each country of the IBAN registry
// (ISO 13616). An IBAN of a country not in the table may be 15 to 34 long.
var ibanLengths = map[string]int{
	"AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16,
	"BG": 22, "BH": 22, "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22,
	"CY": 28, "CZ": 24, "DE": 22, "DJ": 27, "DK": 18, "DO": 28, "EE": 20,
	"EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27, "GB": 22,
	"GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HN": 28, "HR": 21,
	"HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30,
	"KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20,
	"LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20,
	"MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23,
	"PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22,
	"RU": 33, "SA": 24, "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24,
	"SM": 27, "SO": 23, "ST": 25, "SV": 28, "TL": 23, "TN": 24, "TR": 26,
	"UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}

// findIBANs reports IBANs, in any letter case, written without spaces or
// with a space after every 4 characters, whose mod-97 checksum is valid and
// whose length is that of its country. An IBAN is not part of a longer word.
func findIBANs(text string, dst [][2]int) [][2]int {
	for i := 0; i+15 <= len(text); i++ {
		if !isDigit(text[i+2]) || !isDigit(text[i+3]) || !isLetter(text[i]) || !isLetter(text[i+1]) ||
			i > 0 && isAlnum(text[i-1]) {
			continue
		}
		if e, ok := ibanAt(text, i); ok {
			dst = append(dst, [2]int{i, e})
			i = e - 1
		}
	}
	return dst
}

// ibanAt returns the end of the IBAN that starts at text[start] with a
// country code and two digits, if there is one.
func ibanAt(text string, start int) (int, bool) {
	// chars holds the offsets of the letters and digits of the candidate.
	// Single spaces may come after every 4 characters, from the start.
	var chars [34]int
	n := 0
	for i := start; i < len(text) && n < len(chars); i++ {
		switch {
		case isAlnum(text[i]):
			chars[n] = i
			n++
			continue
		case text[i] == ' ' && n%4 == 0 && i+1 < len(text) && isAlnum(text[i+1]):
			continue
		}
		break
	}
	country := strings.ToUpper(text[start : start+2])
	lo, hi := 15, n
	if l, ok := ibanLengths[country]; ok {
		lo, hi = l, l
	}
	for l := min(hi, n); l >= lo; l-- {
		e := chars[l-1] + 1
		// The IBAN must end at a word boundary.
		if e < len(text) && isAlnum(text[e]) {
			continue
		}
		if mod97(text, chars[:l]) == 1 {
			return e, true
		}
	}
	return 0, false
}

// mod97 returns the ISO 7064 mod-97 remainder of the IBAN whose characters are
// at the given offsets: the first four moved to the end, letters as 10 to 35.
func mod97(text string, at []int) int {
	r := 0
	add := func(c byte) {
		switch {
		case isDigit(c):
			r = (r*10 + int(c-'0')) % 97
		default:
			v := int(c|0x20) - 'a' + 10
			r = (r*100 + v) % 97
		}
	}
	for _, i := range at[4:] {
		add(text[i])
	}
	for _, i := range at[:4] {
		add(text[i])
	}
	return r
}

// --- ssn ---

// findSSNs reports US social security numbers written ddd-dd-dddd or
// ddd dd dddd (one separator throughout), outside the ranges never issued:
// area 000, 666 and 900-999, group 00, serial 0000. A number that continues
// a longer run of digits or of dash-separated digits is not one.
func findSSNs(text string, dst [][2]int) [][2]int {
	numberRuns(text, func(start, end int) {
		if end-start < 11 {
			return
		}
		run := text[start:end]
		gs := digitGroups(run)
		for k := 0; k+2 < len(gs); k++ {
			a, b, c := gs[k], gs[k+1], gs[k+2]
			if a[1]-a[0] != 3 || b[1]-b[0] != 2 || c[1]-c[0] != 4 || run[a[1]] != run[b[1]] {
				continue
			}
			if k > 0 && run[a[0]-1] == '-' || k+3 < len(gs) && run[c[1]] == '-' {
				continue
			}
			area, group, serial := atoi(run[a[0]:a[1]]), atoi(run[b[0]:b[1]]), atoi(run[c[0]:c[1]])
			if area == 0 || area == 666 || area >= 900 || group == 0 || serial == 0 {
				continue
			}
			dst = append(dst, [2]int{start + a[0], start + c[1]})
		}
	})
	return dst
}

// atoi converts a string of ASCII digits.
func atoi(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		n = n*10 + int(s[i]-'0')
	}
	return n
}

// --- email ---

// email is a pragmatic address: a dot-separated local part of letters,
// digits and the specials RFC 5322 allows unquoted, "@", and a domain of
// dot-separated labels ending in a top-level domain of two or more letters
// (or an xn-- label). Letters and digits may be any script's.
var email = regexp.MustCompile(
	"[\\p{L}\\p{N}!#$%&'*+/=?^_`{|}~-]+(?:\\.[\\p{L}\\p{N}!#$%&'*+/=?^_`{|}~-]+)*" +
		`@(?:[\p{L}\p{N}](?:[\p{L}\p{N}-]{0,61}[\p{L}\p{N}])?\.)+(?:\p{L}{2,63}|xn--[a-zA-Z0-9-]{1,59})`)

// findEmails reports e-mail addresses. Only the text around each '@' that
// an address could span is searched, so text without addresses costs one
// byte scan and text full of '@' stays linear.
func findEmails(text string, dst [][2]int) [][2]int {
	done := 0 // the end of the last match: later matches start at or after it
	for pos := 0; pos < len(text); {
		i := strings.IndexByte(text[pos:], '@')
		if i < 0 {
			break
		}
		at := pos + i
		// The span of characters that may belong to an address around this
		// '@', bounded by the longest local part (64 characters of up to 4
		// bytes) and domain (253) there are.
		lo := at
		for lo > max(done, at-256) {
			r, n := utf8.DecodeLastRuneInString(text[:lo])
			if !emailLocalRune(r) {
				break
			}
			lo -= n
		}
		hi := at + 1
		for hi < min(len(text), at+1024) {
			r, n := utf8.DecodeRuneInString(text[hi:])
			if !emailDomainRune(r) {
				break
			}
			hi += n
		}
		if lo < at && hi > at+1 {
			for _, m := range email.FindAllStringIndex(text[lo:hi], -1) {
				dst = append(dst, [2]int{lo + m[0], lo + m[1]})
				done = lo + m[1]
			}
		}
		pos = hi
	}
	return dst
}

func emailLocalRune(r rune) bool {
	return r == '.' || unicode.IsLetter(r) || unicode.IsNumber(r) || r < utf8.RuneSelf && strings.ContainsRune("!#$%&'*+/=?^_`{|}~-", r)
}

func emailDomainRune(r rune) bool {
	return r == '.' || r == '-' || unicode.IsLetter(r) || unicode.IsNumber(r)
}

// --- phone ---

// findPhones reports phone numbers of 7 to 15 digits in three forms:
//   - international: "+" or "00", a country code and the number, as in
//     "+49 30 1234567", "+1 (555) 123-4567", "+44 (0)20 7946 0958";
//   - North American: "555-123-4567", "(555) 123-4567", "1 555 123 4567";
//   - national with a trunk 0: "030 1234567", "020 7946 0958", "06 12 34 56 78".
//
// Groups of digits are separated by one space, dot or dash (or parentheses).
// A number without any separator is only taken in the international form,
// so plain numbers, prices, years and dates are not phone numbers.
func findPhones(text string, dst [][2]int) [][2]int {
	// Runs of digits, spaces, dots, dashes and parentheses, starting with a
	// digit or with "+" or "(" right before one.
	last := 0
	for i := 0; i < len(text); {
		if !isDigit(text[i]) {
			i++
			continue
		}
		start := i
		if start > last && text[start-1] == '(' {
			start--
		}
		if start > last && text[start-1] == '+' {
			start--
		}
		for i < len(text) && (isDigit(text[i]) || strings.IndexByte(" ().-", text[i]) >= 0) {
			i++
		}
		last = i
		if i-start >= 7 { // the fewest digits of a phone number
			dst = phonesIn(text[start:i], start, dst)
		}
	}
	return dst
}

// phonesIn appends the phone numbers in one run s, found at off in the text.
func phonesIn(s string, off int, dst [][2]int) [][2]int {
	gs := digitGroups(s)
	for i := 0; i < len(gs); {
		if dateLike(s, gs[i:]) {
			i += 3
			continue
		}
		start, end, j, ok := phoneAt(s, gs, i)
		if !ok {
			i++
			continue
		}
		dst = append(dst, [2]int{off + start, off + end})
		i = j + 1
	}
	return dst
}

// phoneAt returns the byte range and last group of the longest phone number
// that starts at digit group i of s, if any.
func phoneAt(s string, gs [][2]int, i int) (start, end, j int, ok bool) {
	start = gs[i][0]
	plus := false
	if start > 0 && s[start-1] == '(' {
		start--
	}
	if start > 0 && s[start-1] == '+' {
		start--
		plus = true
	}
	// Extend while the gaps between groups are separators and the number
	// stays within 15 digits (16 with a "(0)" trunk after a country code).
	last, digits := i, 0
	for k := i; k < len(gs); k++ {
		if k > i && !phoneGap(s[gs[k-1][1]:gs[k][0]]) {
			break
		}
		digits += gs[k][1] - gs[k][0]
		if digits > 16 {
			break
		}
		last = k
	}
	for j = last; j >= i; j-- {
		if phoneForm(s, gs[i:j+1], plus) {
			end = gs[j][1]
			if end < len(s) && s[end] == ')' && strings.Contains(s[start:end], "(") {
				end++
			}
			if !balanced(s[start:end]) {
				continue
			}
			return start, end, j, true
		}
	}
	return 0, 0, 0, false
}

// phoneGap reports whether the text between two digit groups may separate
// the groups of one phone number: one of " ", ".", "-", or parentheses with
// at most one of those, as in ") ", ")-", " (", "(".
func phoneGap(g string) bool {
	g = strings.TrimPrefix(g, ")")
	g = strings.TrimSuffix(g, "(")
	switch g {
	case "", " ", ".", "-":
		return true
	}
	return false
}

// balanced reports whether the parentheses of s pair up without nesting.
func balanced(s string) bool {
	open := false
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '(':
			if open {
				return false
			}
			open = true
		case ')':
			if !open {
				return false
			}
			open = false
		}
	}
	return !open
}

// phoneForm reports whether the digit groups gs of s, the first preceded by
// '+' when plus, form a phone number.
func phoneForm(s string, gs [][2]int, plus bool) bool {
	glen := func(k int) int { return gs[k][1] - gs[k][0] }
	digits := 0
	for k := range gs {
		digits += glen(k)
	}
	first := s[gs[0][0]:gs[0][1]]
	switch {
	case plus || strings.HasPrefix(first, "00") && (len(first) > 2 && first[2] != '0' || len(first) == 2 && len(gs) > 1):
		// International: the country code's first digit is not 0; a "(0)"
		// trunk written after it does not count.
		if strings.HasPrefix(first, "00") {
			digits -= 2
		} else if first[0] == '0' {
			return false
		}
		for k := 1; k < len(gs); k++ {
			if glen(k) == 1 && s[gs[k][0]] == '0' && s[gs[k][0]-1] == '(' {
				digits--
			}
		}
		return 7 <= digits && digits <= 15
	case first[0] == '0':
		// National with a trunk 0: a trunk and area code of 2 to 5 digits,
		// then at least one more group; not a date like 01.02.2024.
		return len(gs) > 1 && 2 <= glen(0) && glen(0) <= 5 && 7 <= digits && digits <= 15 && !dateLike(s, gs)
	default:
		// North American: [1] NPA NXX XXXX, area code and exchange 2-9.
		if first == "1" {
			gs = gs[1:]
		}
		return len(gs) == 3 && glen(0) == 3 && glen(1) == 3 && glen(2) == 4 &&
			s[gs[0][0]] >= '2' && s[gs[1][0]] >= '2'
	}
}

// dateLike reports whether the first groups read as a date: d.m.yyyy or
// d.m.yy with one separator throughout, not continued with the same
// separator (as "01.23.45.67.89" is, a phone number).
func dateLike(s string, gs [][2]int) bool {
	if len(gs) < 3 {
		return false
	}
	l0, l1, l2 := gs[0][1]-gs[0][0], gs[1][1]-gs[1][0], gs[2][1]-gs[2][0]
	sep := s[gs[0][1]:gs[1][0]]
	if l0 > 2 || l1 > 2 || l2 != 2 && l2 != 4 || s[gs[1][1]:gs[2][0]] != sep {
		return false
	}
	return len(gs) == 3 || s[gs[2][1]:gs[3][0]] != sep
}
