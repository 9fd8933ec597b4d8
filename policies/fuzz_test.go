package policies

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// FuzzParse checks that Parse never panics, takes bounded time, and either
// compiles a usable policy or reports Errors whose positions are in the file.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		example,
		matchPolicy,
		"version: 1\n",
		"",
		"version: 1\nrules:\n  - name: r\n    mask: ['a:not(.b)', '[x=\"y\" i]']\n    hosts: ['*.example.com']\n",
		"version: 1\ncustom_detectors:\n  - {name: x, pattern: '(a|b)+c'}\n",
		"version: 1\nrules:\n  - &r {name: a, block_page: true}\n  - *r\n",
		"version: 1\nrules:\n  - name: x\n    pages: ['/a']\n   mask: [a]\n",
		"version: 1\n---\nversion: 1\n",
		"a: [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		start := time.Now()
		p, err := Parse("fuzz.yaml", data)
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("Parse took %v", d)
		}
		if err != nil {
			if p != nil {
				t.Fatal("a policy with an error")
			}
			var errs Errors
			if !errors.As(err, &errs) || len(errs) == 0 {
				t.Fatalf("error is not a non-empty Errors: %v", err)
			}
			// An upper bound on the lines, as YAML may also break them at
			// \r and Unicode line separators.
			lines := 1
			for _, br := range []string{"\n", "\r", "\u0085", "\u2028", "\u2029"} {
				lines += strings.Count(string(data), br)
			}
			for _, e := range errs {
				switch {
				case e.Line == 0:
					// Only problems with the whole file have no line.
					if !strings.Contains(e.Msg, "the file") {
						t.Errorf("positional error without a line: %v", e)
					}
				case e.Line < 0 || e.Line > lines+1 || e.Column < 0:
					t.Errorf("error outside the file (%d lines): %v", lines, e)
				}
				if e.Msg == "" || e.File != "fuzz.yaml" {
					t.Errorf("bad error: %+v", e)
				}
			}
			return
		}
		for _, path := range []string{"/", "/account/x", "/admin", "/%41"} {
			pg := p.ForPage("shop.example.com", path)
			if pg.Detectors == nil {
				t.Fatal("nil Detectors")
			}
			if _, err := json.Marshal(pg.Client()); err != nil {
				t.Fatal(err)
			}
			checkRanges(t, "fuzz", string(data), pg.Detectors.Find(string(data)))
		}
	})
}

// FuzzDetectors checks that Find returns sorted, in-bounds, non-overlapping
// ranges, the same as without the detectors' prefilter (detector.needs),
// and that Mask keeps the rune count.
func FuzzDetectors(f *testing.F) {
	for _, seed := range []string{
		"",
		"card 4111 1111 1111 1111, IBAN DE89 3704 0044 0532 0130 00, SSN 123-45-6789",
		"mail jörg@bücher.de or +44 (0)20 7946 0958 or (415) 555-2671",
		"ORD-12345678ORD-87654321 a@b.io@c.io",
		"01.02.2024 12:30 06 12 34 56 78 +1 4111 1111 1111 1111",
		"\xff\xfe4111111111111111\xff",
		strings.Repeat("1 ", 40),
	} {
		f.Add(seed)
	}
	p := mustParse(f, "version: 1\ncustom_detectors:\n  - {name: order_id, pattern: 'ORD-[0-9]{8}'}\n  - {name: word, pattern: '(?i)\\bsecret\\w*'}\n")
	d := p.ForPage("x", "/").Detectors
	unfiltered := &Detectors{}
	for _, det := range d.list {
		det := *det
		det.needs = 0
		unfiltered.list = append(unfiltered.list, &det)
	}
	f.Fuzz(func(t *testing.T, text string) {
		ranges := d.Find(text)
		checkRanges(t, "Find", text, ranges)
		if want := unfiltered.Find(text); !slices.Equal(ranges, want) {
			t.Fatalf("Find(%q) = %v, without the prefilter %v", text, ranges, want)
		}
		masked, ok := d.Mask(text)
		if ok != (len(ranges) > 0) {
			t.Fatalf("Mask said %v with %d ranges", ok, len(ranges))
		}
		if utf8.RuneCountInString(masked) != utf8.RuneCountInString(text) {
			t.Fatalf("Mask changed the rune count: %q -> %q", text, masked)
		}
		if !ok && masked != text {
			t.Fatal("Mask changed text without a match")
		}
	})
}
