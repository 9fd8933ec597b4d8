package policies

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// example is the file of the issue that specified the format.
const example = `version: 1
detectors: [card_number, iban, ssn, email, phone]
custom_detectors:            # optional: named regexes (RE2 syntax)
  - name: order_id
    pattern: 'ORD-[0-9]{8}'
inputs: sensitive
rules:
  - name: account-secrets
    pages: ["/account/**"]
    mask: [".secret", "#holder"]
    remove: ["#ssn-block"]
    no_control: ["button.pay"]
    inputs: all
    detectors: [order_id]
  - name: admin
    pages: ["/admin/**"]
    block_page: true
`

func mustParse(t testing.TB, src string) *Policy {
	t.Helper()
	p, err := Parse("policy.yaml", []byte(src))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return p
}

func sources(ss []Selector) []string {
	var out []string
	for _, s := range ss {
		out = append(out, s.Source)
	}
	return out
}

func TestParseExample(t *testing.T) {
	p := mustParse(t, example)
	if got := p.Rules(); !slices.Equal(got, []string{"account-secrets", "admin"}) {
		t.Errorf("Rules() = %q", got)
	}
	pg := p.ForPage("shop.example.com", "/account/settings")
	if !slices.Equal(pg.Rules, []string{"account-secrets"}) || pg.Block {
		t.Errorf("rules %q block %v", pg.Rules, pg.Block)
	}
	if got := sources(pg.Mask); !slices.Equal(got, []string{".secret", "#holder"}) {
		t.Errorf("Mask = %q", got)
	}
	if got := sources(pg.Remove); !slices.Equal(got, []string{"#ssn-block"}) {
		t.Errorf("Remove = %q", got)
	}
	if got := sources(pg.NoControl); !slices.Equal(got, []string{"button.pay"}) {
		t.Errorf("NoControl = %q", got)
	}
	if pg.Inputs != MaskAllInputs {
		t.Errorf("Inputs = %v", pg.Inputs)
	}
	if got := pg.Detectors.Names(); !slices.Equal(got, []string{"card_number", "iban", "ssn", "email", "phone", "order_id"}) {
		t.Errorf("Detectors = %q", got)
	}
	if got, _ := pg.Detectors.Mask("ORD-12345678"); got != "************" {
		t.Errorf("custom detector on its page: %q", got)
	}
	home := p.ForPage("shop.example.com", "/")
	if len(home.Rules) != 0 || home.Inputs != MaskSensitiveInputs || slices.Contains(home.Detectors.Names(), "order_id") {
		t.Errorf("home page: %+v %q", home, home.Detectors.Names())
	}
	if admin := p.ForPage("shop.example.com", "/admin/users"); !admin.Block {
		t.Error("admin page not blocked")
	}
}

func TestParseGood(t *testing.T) {
	tests := []struct {
		name, src string
		check     func(t *testing.T, p *Policy)
	}{
		{"minimal file: all built-in detectors, sensitive inputs", "version: 1\n", func(t *testing.T, p *Policy) {
			pg := p.ForPage("a.example", "/")
			if got := pg.Detectors.Names(); !slices.Equal(got, builtinNames()) {
				t.Errorf("Detectors = %q", got)
			}
			if pg.Inputs != MaskSensitiveInputs || len(p.Rules()) != 0 {
				t.Errorf("page %+v", pg)
			}
		}},
		{"detectors: [] turns them off", "version: 1\ndetectors: []\n", func(t *testing.T, p *Policy) {
			if got := p.ForPage("a.example", "/").Detectors.Names(); len(got) != 0 {
				t.Errorf("Detectors = %q", got)
			}
		}},
		{"detectors in canonical order without repeats", "version: 1\ndetectors: [phone, email, phone]\n", func(t *testing.T, p *Policy) {
			if got := p.ForPage("a.example", "/").Detectors.Names(); !slices.Equal(got, []string{"email", "phone"}) {
				t.Errorf("Detectors = %q", got)
			}
		}},
		{"custom detectors are on everywhere when detectors is omitted", "version: 1\ncustom_detectors:\n  - {name: ticket, pattern: 'T-[0-9]+'}\n", func(t *testing.T, p *Policy) {
			if got := p.ForPage("a.example", "/").Detectors.Names(); !slices.Contains(got, "ticket") {
				t.Errorf("Detectors = %q", got)
			}
		}},
		{"inputs: all at the top", "version: 1\ninputs: all\n", func(t *testing.T, p *Policy) {
			if p.ForPage("a.example", "/").Inputs != MaskAllInputs {
				t.Error("not all")
			}
		}},
		{"comments, quoting styles and block lists", `# Security team: contact sec@example.com
version: 1   # format version
rules:
  - name: "quoted name"
    mask:
      - '.a'
      - ".b"
      - .c
      - input[name="card"]
      - 'div > span:not(.public):nth-child(2n+1)'
`, func(t *testing.T, p *Policy) {
			if got := sources(p.ForPage("x", "/").Mask); !slices.Equal(got, []string{".a", ".b", ".c", `input[name="card"]`, "div > span:not(.public):nth-child(2n+1)"}) {
				t.Errorf("Mask = %q", got)
			}
		}},
		{"a document start marker and a BOM", "\ufeff---\nversion: 1\n", nil},
		{"block_page: false with another effect", "version: 1\nrules:\n  - name: r\n    block_page: false\n    inputs: sensitive\n", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := mustParse(t, tc.src)
			if tc.check != nil {
				tc.check(t, p)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string // "line:column: part of the message", one per error, in order
	}{
		{"empty file", "", []string{"0:0: the file is empty"}},
		{"only comments", "# nothing\n\n", []string{"0:0: the file is empty"}},
		{"null document", "~\n", []string{"0:0: the file has no settings"}},
		{"not a mapping", "- version: 1\n", []string{"1:1: a policy file is a mapping"}},
		{"missing version", "rules: []\n", []string{`1:1: missing version: add "version: 1"`}},
		{"version 2", "version: 2\nfuture_key: x\n", []string{`1:10: version "2" is not supported`}},
		{"version as text", "version: \"1\"\n", []string{`1:10: version must be the number 1; found "1"`}},
		{"version 1.0", "version: 1.0\n", []string{"1:10: version must be the number 1; found the number 1.0"}},
		{"unknown top key with suggestion", "version: 1\ndetector: [email]\n", []string{`2:1: unknown key "detector" in the policy file; did you mean "detectors"?`}},
		{"unknown top key without suggestion", "version: 1\nzzzzzzzzzz: 1\n", []string{`2:1: unknown key "zzzzzzzzzz" in the policy file; valid keys: version, detectors`}},
		{"typo in mask", "version: 1\nrules:\n  - name: r\n    pages: [\"/a\"]\n    maks: [\".x\"]\n", []string{
			`5:5: unknown key "maks" in a rule; did you mean "mask"?`}},
		{"key set twice", "version: 1\nrules:\n  - name: r\n    mask: [.a]\n    mask: [.b]\n", []string{"5:5: mask is set twice in a rule (first at line 4); remove one"}},
		{"mask as a string", "version: 1\nrules:\n  - name: r\n    mask: .secret\n", []string{`4:11: mask must be a list, even of one item: write mask: [".secret"]`}},
		{"mask as a mapping", "version: 1\nrules:\n  - name: r\n    mask: {a: b}\n", []string{"4:11: mask must be a list like"}},
		{"mask without value", "version: 1\nrules:\n  - name: r\n    mask:\n", []string{"4:10: mask has no value"}},
		{"selector as a number", "version: 1\nrules:\n  - name: r\n    mask: [12]\n", []string{"4:12: each item of mask must be text; found the number 12: put it in quotes"}},
		{"empty selector", "version: 1\nrules:\n  - name: r\n    mask: ['', .a]\n", []string{"4:12: mask has an empty item"}},
		{"invalid selector", "version: 1\nrules:\n  - name: r\n    mask: ['div >', '.ok', '[x']\n", []string{
			`4:12: mask: invalid CSS selector "div >": expected selector, found EOF instead`,
			`4:28: mask: invalid CSS selector "[x"`}},
		{"selector list in one item", "version: 1\nrules:\n  - name: r\n    remove: ['.a, .b']\n", []string{`4:14: remove: ".a, .b" is a list of selectors; write one selector per list item`}},
		{"cascadia-only selector", "version: 1\nrules:\n  - name: r\n    mask: ['p:contains(\"x\")', '[a!=b]', 'a:hover']\n", []string{
			"4:12: mask: selector \"p:contains(\\\"x\\\")\" uses :contains, an extension",
			`4:31: mask: selector "[a!=b]" uses [attr!=...], an extension`,
			`4:41: mask: selector "a:hover" uses :hover, which depends on what the visitor does`}},
		{"pseudo-element", "version: 1\nrules:\n  - name: r\n    mask: ['p::before']\n", []string{`4:12: mask: invalid CSS selector "p::before"`}},
		{"unknown detector", "version: 1\ndetectors: [email, credit_card]\n", []string{`2:20: unknown detector "credit_card"; valid detectors: card_number, iban, ssn, email, phone`}},
		{"detector typo", "version: 1\ndetectors: [emial]\n", []string{`2:13: unknown detector "emial"; did you mean "email"?`}},
		{"unknown detector in a rule lists custom ones", "version: 1\ncustom_detectors: [{name: ticket, pattern: 'T-1'}]\nrules:\n  - name: r\n    detectors: [tiket]\n", []string{
			`5:17: unknown detector "tiket"; did you mean "ticket"? (valid detectors: card_number, iban, ssn, email, phone, ticket)`}},
		{"invalid regex", "version: 1\ncustom_detectors:\n  - name: x\n    pattern: 'a(b'\n", []string{"4:14: invalid regular expression \"a(b\": missing closing ): `a(b`"}},
		{"regex matching empty", "version: 1\ncustom_detectors:\n  - name: x\n    pattern: 'a*'\n", []string{`4:14: pattern "a*" matches empty text`}},
		{"custom detector problems", `version: 1
detectors: [email]
custom_detectors:
  - name: Order
    pattern: x
  - name: email
    pattern: x
  - pattern: x
  - name: ok
  - name: ok2
    pattern: x
    patern: y
  - name: ok2
    pattern: y
  - just a string
`, []string{
			`4:11: custom detector name "Order" must be lower-case`,
			`6:11: "email" is the name of a built-in detector`,
			"8:5: this custom detector has no name",
			"9:5: this custom detector has no pattern",
			`10:5: custom detector "ok2" is not used: add it to detectors`,
			`12:5: unknown key "patern" in a custom detector; did you mean "pattern"?`,
			`13:11: custom detector "ok2" is defined twice`,
			"15:5: each custom detector is a mapping"}},
		{"unused custom detector", "version: 1\ndetectors: [email]\ncustom_detectors: [{name: t, pattern: x}]\n", []string{`3:20: custom detector "t" is not used`}},
		{"invalid glob", "version: 1\nrules:\n  - name: r\n    pages: ['/a/[b']\n    block_page: true\n", []string{`4:13: invalid page pattern "/a/[b": check that every [ and { is closed`}},
		{"glob without slash", "version: 1\nrules:\n  - name: r\n    pages: ['account/**']\n    block_page: true\n", []string{`4:13: page pattern "account/**" must start with /, like /account/**`}},
		{"glob with host", "version: 1\nrules:\n  - name: r\n    pages: ['https://shop.example.com/a']\n    block_page: true\n", []string{"4:13: page pattern \"https://shop.example.com/a\" must be a path like /account/**; put the host name in the rule's hosts"}},
		{"glob with query", "version: 1\nrules:\n  - name: r\n    pages: ['/checkout?step=pay']\n    block_page: true\n", []string{`4:13: page pattern "/checkout?step=pay" has a query string`}},
		{"glob with fragment", "version: 1\nrules:\n  - name: r\n    pages: ['/a#b']\n    block_page: true\n", []string{`4:13: page pattern "/a#b" has a #fragment`}},
		{"bad hosts", "version: 1\nrules:\n  - name: r\n    hosts: ['shop.example.com:8080', 'https://x.com', '*.com', 'a*.example.com', 'a..b']\n    block_page: true\n", []string{
			`4:13: host "shop.example.com:8080" must be a host name alone`,
			`4:38: host "https://x.com" must be a host name alone`,
			`4:55: host "*.com": a wildcard covers the subdomains of one domain`,
			`4:64: host "a*.example.com" is not a host name`,
			`4:82: host "a..b" is not a host name`}},
		{"duplicate rule name", "version: 1\nrules:\n  - name: r\n    block_page: true\n  - name: r\n    block_page: true\n", []string{`5:5: rule name "r" is already used at line 3`}},
		{"rule without name", "version: 1\nrules:\n  - pages: ['/a']\n    block_page: true\n", []string{"3:5: this rule has no name"}},
		{"rule with empty name", "version: 1\nrules:\n  - name: ' '\n    block_page: true\n", []string{"3:11: rule name is empty"}},
		{"rule doing nothing", "version: 1\nrules:\n  - name: r\n    pages: ['/a']\n", []string{`3:5: rule "r" changes nothing`}},
		{"rule as a string", "version: 1\nrules:\n  - admin\n", []string{"3:5: each rule is a mapping"}},
		{"rules as a mapping", "version: 1\nrules:\n  name: r\n", []string{"3:3: rules must be a list of rules"}},
		{"block_page not a bool", "version: 1\nrules:\n  - name: r\n    block_page: yes\n", []string{`4:17: block_page must be true or false; found "yes"`}},
		{"inputs unknown", "version: 1\ninputs: some\n", []string{`2:9: inputs must be "sensitive"`}},
		{"anchors and aliases", "version: 1\nrules:\n  - &r\n    name: a\n    block_page: true\n  - *r\n", []string{
			"3:5: policy files may not use YAML anchors", "6:5: policy files may not use YAML anchors"}},
		{"merge key", "version: 1\nrules:\n  - name: a\n    <<: {block_page: true}\n", []string{"4:5: policy files may not use YAML anchors, aliases or merge keys"}},
		{"two documents", "version: 1\n---\nversion: 1\n", []string{"2:1: a second YAML document starts here"}},
		{"tab indentation", "version: 1\nrules:\n\t- name: r\n", []string{"3:0: invalid YAML: found character that cannot start any token; YAML does not allow tabs"}},
		{"bad indentation is found at its line", "version: 1\nrules:\n  - name: x\n    pages: ['/a']\n   mask: [a]\n", []string{"5:0: invalid YAML: did not find expected '-' indicator"}},
		{"unclosed bracket", "version: 1\nrules:\n  - name: a\n    mask: [\"a\"\n    block_page: true\n", []string{"4:0: invalid YAML: did not find expected ',' or ']'"}},
		{"unclosed quote", "version: 1\nrules:\n  - name: 'a\n", []string{"invalid YAML: found unexpected end of stream; a quote or bracket opened here is never closed"}},
		{"unknown alias", "version: 1\nrules: *x\n", []string{"invalid YAML: unknown anchor 'x' referenced; policy files may not use YAML anchors"}},
		{"all errors of a file are collected", `version: 1
detectors: [email, cards]
inputs: everything
rules:
  - name: one
    mask: ['>']
    bloc_page: true
  - name: one
    pages: ['/a/{b']
    block_page: true
`, []string{
			`2:20: unknown detector "cards"`,
			`3:9: inputs must be`,
			`6:12: mask: invalid CSS selector ">"`,
			`7:5: unknown key "bloc_page" in a rule; did you mean "block_page"?`,
			`8:5: rule name "one" is already used at line 5`,
			`9:13: invalid page pattern "/a/{b"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Parse("policy.yaml", []byte(tc.src))
			if err == nil {
				t.Fatalf("Parse succeeded: %+v", p)
			}
			if p != nil {
				t.Error("Parse returned a policy with an error")
			}
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("error %T is not Errors: %v", err, err)
			}
			var got []string
			for _, e := range errs {
				got = append(got, fmt.Sprintf("%d:%d: %s", e.Line, e.Column, e.Msg))
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %d errors, want %d:\n%s", len(got), len(tc.want), strings.Join(got, "\n"))
			}
			for i := range got {
				if !strings.Contains(got[i], tc.want[i]) {
					t.Errorf("error %d:\n got: %s\nwant: %s", i, got[i], tc.want[i])
				}
			}
		})
	}
}

func TestErrorFormat(t *testing.T) {
	_, err := Parse("/etc/cobrowse/policy.yaml", []byte("version: 1\nrules:\n  - name: r\n    maks: [.a]\n    mask: [.a]\n"))
	want := `/etc/cobrowse/policy.yaml:4:5: unknown key "maks" in a rule; did you mean "mask"? (valid keys: name, hosts, pages, mask, remove, no_control, inputs, detectors, block_page)`
	if err == nil || err.Error() != want {
		t.Errorf("got  %v\nwant %s", err, want)
	}
	var e *Error
	if !errors.As(err, &e) || e.Line != 4 || e.Column != 5 {
		t.Errorf("errors.As *Error: %+v", e)
	}
	for _, tc := range []struct {
		e    Error
		want string
	}{
		{Error{File: "p.yaml", Msg: "m"}, "p.yaml: m"},
		{Error{File: "p.yaml", Line: 3, Msg: "m"}, "p.yaml:3: m"},
		{Error{File: "p.yaml", Line: 3, Column: 7, Msg: "m"}, "p.yaml:3:7: m"},
	} {
		if got := tc.e.Error(); got != tc.want {
			t.Errorf("Error() = %q, want %q", got, tc.want)
		}
	}
	two := Errors{{File: "a", Line: 1, Msg: "x"}, {File: "a", Line: 2, Msg: "y"}}
	if got := two.Error(); got != "a:1: x\na:2: y" {
		t.Errorf("Errors.Error() = %q", got)
	}
}

func TestParseLimits(t *testing.T) {
	big := "version: 1\n" + strings.Repeat("# padding\n", MaxFileSize/10)
	_, err := Parse("big.yaml", []byte(big))
	if err == nil || !strings.Contains(err.Error(), "more than the 1048576 bytes a policy file may have") {
		t.Errorf("large file: %v", err)
	}

	// Billion laughs: refused for its anchors, without expanding them.
	var b strings.Builder
	b.WriteString("version: 1\na0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n")
	for i := 1; i < 10; i++ {
		fmt.Fprintf(&b, "a%d: &a%d [*a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d]\n", i, i, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1)
	}
	_, err = Parse("laughs.yaml", []byte(b.String()))
	if err == nil || !strings.Contains(err.Error(), "may not use YAML anchors") {
		t.Errorf("billion laughs: %v", err)
	}

	// Many problems: reported up to a bound.
	var many strings.Builder
	many.WriteString("version: 1\n")
	for i := range 300 {
		fmt.Fprintf(&many, "bad%d: 1\n", i)
	}
	_, err = Parse("many.yaml", []byte(many.String()))
	var errs Errors
	if !errors.As(err, &errs) || len(errs) != maxErrors+1 || !strings.Contains(errs[maxErrors].Msg, "too many problems") {
		t.Errorf("many errors: %d", len(errs))
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	if err := os.WriteFile(good, []byte(example), 0o600); err != nil {
		t.Fatal(err)
	}
	if p, err := Load(good); err != nil || len(p.Rules()) != 2 {
		t.Errorf("Load(good) = %v, %v", p, err)
	}

	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("version: 1\nmaks: []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(bad)
	var errs Errors
	if !errors.As(err, &errs) || errs[0].File != bad || errs[0].Line != 2 {
		t.Errorf("Load(bad) = %v", err)
	}

	if _, err := Load(filepath.Join(dir, "missing.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load(missing) = %v", err)
	}

	huge := filepath.Join(dir, "huge.yaml")
	if err := os.WriteFile(huge, make([]byte, 2*MaxFileSize), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(huge); err == nil || !strings.Contains(err.Error(), "more than") {
		t.Errorf("Load(huge) = %v", err)
	}
}

func TestDefault(t *testing.T) {
	p := Default()
	pg := p.ForPage("shop.example.com", "/checkout")
	if pg.Inputs != MaskSensitiveInputs || pg.Block || len(pg.Rules) != 0 {
		t.Errorf("page %+v", pg)
	}
	if got := pg.Detectors.Names(); !slices.Equal(got, builtinNames()) {
		t.Errorf("Detectors = %q", got)
	}
	// The default is the same as a file with only a version.
	if f := mustParse(t, "version: 1\n").ForPage("shop.example.com", "/checkout"); !slices.Equal(f.Detectors.Names(), pg.Detectors.Names()) || f.Inputs != pg.Inputs {
		t.Errorf("file with only a version differs from Default: %+v", f)
	}
}
