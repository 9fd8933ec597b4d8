package policies

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// only returns Detectors with the named built-in detectors.
func only(names ...string) *Detectors {
	d := &Detectors{}
	for _, b := range builtins {
		if slices.Contains(names, b.name) {
			d.list = append(d.list, b)
		}
	}
	return d
}

// found returns the substrings of text that d finds.
func found(d *Detectors, text string) []string {
	var out []string
	for _, r := range d.Find(text) {
		out = append(out, text[r[0]:r[1]])
	}
	return out
}

type detectCase struct {
	text string
	want []string // the substrings found; nil for none
}

func runDetect(t *testing.T, d *Detectors, cases []detectCase) {
	t.Helper()
	for _, tc := range cases {
		if got := found(d, tc.text); !slices.Equal(got, tc.want) {
			t.Errorf("Find(%q) = %q, want %q", tc.text, got, tc.want)
		}
	}
}

func TestCardNumber(t *testing.T) {
	runDetect(t, only("card_number"), []detectCase{
		// Matches: test numbers of the major networks, in the usual groupings.
		{"4111111111111111", []string{"4111111111111111"}},
		{"card 4111 1111 1111 1111 exp 12/29", []string{"4111 1111 1111 1111"}},
		{"4111-1111-1111-1111.", []string{"4111-1111-1111-1111"}},
		{"Amex 3782 822463 10005", []string{"3782 822463 10005"}},
		{"378282246310005", []string{"378282246310005"}},
		{"5555555555554444", []string{"5555555555554444"}},
		{"Diners 30569309025904", []string{"30569309025904"}},
		{"13 digits: 4222222222222", []string{"4222222222222"}},
		{"19 digits: 6304 0000 0000 0000 018", []string{"6304 0000 0000 0000 018"}},
		{"two: 4111111111111111, 5555555555554444", []string{"4111111111111111", "5555555555554444"}},
		{"year then card: 2024 4111111111111111", []string{"4111111111111111"}},
		{"x4111111111111111y", []string{"4111111111111111"}},
		// Non-matches.
		{"4111111111111112", nil},         // Luhn-invalid
		{"4111 1111 1111 1112", nil},      // Luhn-invalid
		{"411111111111", nil},             // 12 digits
		{"12344111111111111111567", nil},  // part of a longer digit run
		{"14111111111111111", nil},        // 17 digits, Luhn-invalid as a whole
		{"41 11 1111 1111 1111", nil},     // groups too short
		{"4111  1111 1111 1111", nil},     // double space splits the groups
		{"4111_1111_1111_1111", nil},      // not a separator
		{"call 0049 30 1234567 now", nil}, // a phone number
		{"price 1 234 567 890 123", nil},  // Luhn-invalid, groups too short
		{"", nil},
	})
}

func TestIBAN(t *testing.T) {
	runDetect(t, only("iban"), []detectCase{
		{"DE89 3704 0044 0532 0130 00", []string{"DE89 3704 0044 0532 0130 00"}},
		{"DE89370400440532013000", []string{"DE89370400440532013000"}},
		{"IBAN: de89 3704 0044 0532 0130 00.", []string{"de89 3704 0044 0532 0130 00"}},
		{"GB82 WEST 1234 5698 7654 32 BIC NWBKGB2L", []string{"GB82 WEST 1234 5698 7654 32"}},
		{"FR14 2004 1010 0505 0001 3M02 606", []string{"FR14 2004 1010 0505 0001 3M02 606"}},
		{"NL91ABNA0417164300", []string{"NL91ABNA0417164300"}},
		{"BE68 5390 0754 7034 then", []string{"BE68 5390 0754 7034"}},
		{"CH93 0076 2011 6238 5295 7", []string{"CH93 0076 2011 6238 5295 7"}},
		{"ES91 2100 0418 4502 0005 1332", []string{"ES91 2100 0418 4502 0005 1332"}},
		{"IT60 X054 2811 1010 0000 0123 456", []string{"IT60 X054 2811 1010 0000 0123 456"}},
		{"AT61 1904 3002 3457 3201", []string{"AT61 1904 3002 3457 3201"}},
		{"PL61 1090 1014 0000 0712 1981 2874", []string{"PL61 1090 1014 0000 0712 1981 2874"}},
		{"NO9386011117947", []string{"NO9386011117947"}},
		{"ref AB12 DE89 3704 0044 0532 0130 00", []string{"DE89 3704 0044 0532 0130 00"}},
		{"(DE89370400440532013000)", []string{"DE89370400440532013000"}},
		// Non-matches.
		{"DE89 3704 0044 0532 0130 01", nil}, // checksum
		{"DE88370400440532013000", nil},      // checksum
		{"DE8937040044053201300", nil},       // too short for DE
		{"DE893704004405320130000", nil},     // too long for DE
		{"XDE89370400440532013000", nil},     // inside a word
		{"DE89370400440532013000X", nil},     // inside a word
		{"DE89 370 4004 4053 2013 000", nil}, // grouped wrongly
		{"AB12 3456 7890 1234 5", nil},       // unknown country, checksum
		{"Order AB1234567890123456 shipped", nil},
	})
}

func TestSSN(t *testing.T) {
	runDetect(t, only("ssn"), []detectCase{
		{"SSN 123-45-6789", []string{"123-45-6789"}},
		{"078 05 1120", []string{"078 05 1120"}},
		{"(665-01-0001)", []string{"665-01-0001"}},
		{"899-99-9999", []string{"899-99-9999"}},
		// Non-matches: ranges never issued, wrong forms, longer numbers.
		{"000-12-3456", nil},
		{"666-12-3456", nil},
		{"900-12-3456", nil},
		{"999-12-3456", nil},
		{"123-00-4567", nil},
		{"123-45-0000", nil},
		{"123-45 6789", nil},
		{"123456789", nil},
		{"1234-56-7890", nil},
		{"123-45-67890", nil},
		{"1-123-45-6789", nil},
		{"123-45-6789-1", nil},
		{"123.45.6789", nil},
	})
}

func TestEmail(t *testing.T) {
	runDetect(t, only("email"), []detectCase{
		{"mail john.doe@example.com today", []string{"john.doe@example.com"}},
		{"<a+b@sub.example.co.uk>", []string{"a+b@sub.example.co.uk"}},
		{"jörg@bücher.de", []string{"jörg@bücher.de"}},
		{"o'brien@example.ie.", []string{"o'brien@example.ie"}},
		{"x@xn--bcher-kva.example", []string{"x@xn--bcher-kva.example"}},
		{"a@b.io, c@d.io", []string{"a@b.io", "c@d.io"}},
		{"first@a.com@b.com", []string{"first@a.com"}},
		// Non-matches.
		{"no at sign here", nil},
		{"x@y.c", nil},
		{"john@localhost", nil},
		{"@example.com", nil},
		{"john@.com", nil},
		{"john@-example.com", nil},
		{"a@@b.com", nil},
		{"@@@@", nil},
	})
}

func TestPhone(t *testing.T) {
	runDetect(t, only("phone"), []detectCase{
		{"call +49 30 1234567 now", []string{"+49 30 1234567"}},
		{"+1 (415) 555-2671", []string{"+1 (415) 555-2671"}},
		{"+44 (0)20 7946 0958", []string{"+44 (0)20 7946 0958"}},
		{"+4930123456", []string{"+4930123456"}},
		{"+33 1 23 45 67 89", []string{"+33 1 23 45 67 89"}},
		{"0049 30 1234567", []string{"0049 30 1234567"}},
		{"(415) 555-2671", []string{"(415) 555-2671"}},
		{"415-555-2671", []string{"415-555-2671"}},
		{"415.555.2671", []string{"415.555.2671"}},
		{"1 415 555 2671", []string{"1 415 555 2671"}},
		{"Tel. 030 1234567, Fax 030 7654321", []string{"030 1234567", "030 7654321"}},
		{"020 7946 0958", []string{"020 7946 0958"}},
		{"06 12 34 56 78", []string{"06 12 34 56 78"}},
		{"(030) 123-4567", []string{"(030) 123-4567"}},
		{"0171-1234567", []string{"0171-1234567"}},
		{"item 3 030 1234567", []string{"030 1234567"}},
		// Non-matches: prices, years, dates, plain numbers, addresses.
		{"$1,234.56", nil},
		{"€ 1.234.567,00", nil},
		{"in 2024", nil},
		{"1999-2024", nil},
		{"2024-01-15", nil},
		{"01.02.2024", nil},
		{"01.02.2024 12:30", nil},
		{"01-02-24", nil},
		{"01-02-24 030 1234567", []string{"030 1234567"}},
		{"01.23.45.67.89", []string{"01.23.45.67.89"}},
		{"order 12345678", nil},
		{"01712345678", nil},
		{"0.99 1.99 2.99", nil},
		{"192.168.1.10", nil},
		{"415-123-4567", nil}, // exchange 1xx is not North American
		{"+12", nil},
		{"+0 30 1234567", nil},
		{"v1.2.3", nil},
		{"12 345 678", nil},
		{"(415 555-2671", nil}, // unbalanced
	})
}

func TestCardWinsOverPhone(t *testing.T) {
	d := only("card_number", "phone")
	runDetect(t, d, []detectCase{
		{"4111 1111 1111 1111", []string{"4111 1111 1111 1111"}},
		{"+1 4111 1111 1111 1111", []string{"4111 1111 1111 1111"}},
		{"0 4111 1111 1111 1111", []string{"4111 1111 1111 1111"}},
		{"4111111111111111 and 030 1234567", []string{"4111111111111111", "030 1234567"}},
	})
}

func TestCustomAndMerge(t *testing.T) {
	d := &Detectors{list: []*detector{
		builtins[3], // email
		customDetector("order_id", 5, regexp.MustCompile(`ORD-[0-9]{8}`)),
		customDetector("word", 6, regexp.MustCompile(`\bsecret\w*`)),
		customDetector("maybe_empty", 7, regexp.MustCompile(`x*`)),
	}}
	runDetect(t, d, []detectCase{
		{"order ORD-12345678 for a@b.io", []string{"ORD-12345678", "a@b.io"}},
		{"ORD-12345678ORD-87654321", []string{"ORD-12345678ORD-87654321"}}, // touching: merged
		{"secretORD-12345678", []string{"secretORD-12345678"}},             // overlapping: merged
		{"secrets@example.com", []string{"secrets@example.com"}},           // contained: merged
		{"ORD-1234567", nil},
		{"xxxx", []string{"xxxx"}}, // empty matches of x* are skipped, others kept
	})
	if got := d.Names(); !slices.Equal(got, []string{"email", "order_id", "word", "maybe_empty"}) {
		t.Errorf("Names() = %q", got)
	}
}

func TestNilDetectors(t *testing.T) {
	var d *Detectors
	if got := d.Find("4111111111111111"); got != nil {
		t.Errorf("nil Find = %v", got)
	}
	if got, ok := d.Mask("a@b.io"); got != "a@b.io" || ok {
		t.Errorf("nil Mask = %q, %v", got, ok)
	}
	if d.Names() != nil {
		t.Error("nil Names not nil")
	}
}

func TestMask(t *testing.T) {
	d := Default().ForPage("example.com", "/").Detectors
	tests := []struct {
		in, want string
		changed  bool
	}{
		{"Pay with 4111 1111 1111 1111 today", "Pay with **** **** **** **** today", true},
		{"mail jörg@bücher.de", "mail **************", true},
		{"nothing to see", "nothing to see", false},
		{"", "", false},
		{"SSN 123-45-6789\nIBAN DE89 3704 0044 0532 0130 00", "SSN ***********\nIBAN **** **** **** **** **** **", true},
	}
	for _, tc := range tests {
		got, changed := d.Mask(tc.in)
		if got != tc.want || changed != tc.changed {
			t.Errorf("Mask(%q) = %q, %v; want %q, %v", tc.in, got, changed, tc.want, tc.changed)
		}
	}
}

func TestMaskString(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"abc", "***"},
		{"a b\tc\nd", "* *\t*\n*"},
		{"héllo", "*****"},
		{"日本語 テキスト", "*** ****"},
		{"\u00a0x\u2003", "\u00a0*\u2003"}, // Unicode spaces are kept
		{"\xff\xfe", "**"},                 // invalid UTF-8: one * per byte
		{"e\u0301", "**"},                  // a combining mark is a rune
	}
	for _, tc := range tests {
		got := MaskString(tc.in)
		if got != tc.want {
			t.Errorf("MaskString(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if utf8.RuneCountInString(got) != utf8.RuneCountInString(tc.in) {
			t.Errorf("MaskString(%q) changed the rune count", tc.in)
		}
	}
}

func TestFindLinearOnHostileText(t *testing.T) {
	// Texts that make naive scanners quadratic: each must finish in about
	// the time of a normal text of the same size (checked loosely by the
	// benchmark; here, that it finishes and finds sane ranges).
	d := Default().ForPage("example.com", "/").Detectors
	for name, text := range map[string]string{
		"digits":  strings.Repeat("1 ", 50_000),
		"ats":     strings.Repeat("@", 100_000),
		"emails":  strings.Repeat("a@b.", 25_000),
		"ibanish": strings.Repeat("ab12", 25_000),
		"dashes":  strings.Repeat("123-45-", 15_000),
		"parens":  strings.Repeat("(1)", 30_000),
		"mixed":   strings.Repeat("4111111111111111 030 1234567 ", 3_500),
	} {
		checkRanges(t, name, text, d.Find(text))
	}
}

// checkRanges fails t unless ranges are in bounds, non-empty, sorted and
// apart.
func checkRanges(t testing.TB, name, text string, ranges [][2]int) {
	t.Helper()
	last := -1
	for _, r := range ranges {
		if r[0] <= last || r[0] >= r[1] || r[1] > len(text) {
			t.Fatalf("%s: bad ranges %v", name, ranges)
		}
		last = r[1]
	}
}

// benchText returns about 100 KB of prose with a few sensitive values.
func benchText() string {
	var b strings.Builder
	words := strings.Fields("the order was shipped on 2024-01-15 for a total of $123.45 and the customer asked about version 1.2.3 of the app in room 101")
	for i := 0; b.Len() < 100_000; i++ {
		b.WriteString(words[i%len(words)])
		b.WriteByte(' ')
		if i%2000 == 1000 {
			fmt.Fprintf(&b, "card 4111 1111 1111 1111, mail jane.doe@example.com, call +49 30 1234567, IBAN DE89 3704 0044 0532 0130 00, SSN 123-45-6789. ")
		}
	}
	return b.String()
}

func BenchmarkFind(b *testing.B) {
	d := Default().ForPage("example.com", "/").Detectors
	text := benchText()
	b.SetBytes(int64(len(text)))
	var n int
	for b.Loop() {
		n = len(d.Find(text))
	}
	b.ReportMetric(float64(n), "matches")
}
