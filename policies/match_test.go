package policies

import (
	"slices"
	"testing"
)

const matchPolicy = `version: 1
detectors: [card_number]
custom_detectors:
  - {name: order_id, pattern: 'ORD-[0-9]{8}'}
rules:
  - name: everywhere
    mask: [".pii"]
  - name: account
    pages: ["/account/**"]
    mask: [".secret", ".pii"]
    detectors: [email]
  - name: account-shop
    hosts: ["shop.example.com"]
    pages: ["/account/**", "/orders/*"]
    remove: ["#ssn"]
    inputs: all
    detectors: [order_id, email]
  - name: subdomains
    hosts: ["*.example.net"]
    no_control: ["button.pay"]
  - name: one-segment
    pages: ["/help/*", "/docs/{a,b}/page-?"]
    mask: [".help"]
  - name: admin
    pages: ["/admin/**"]
    block_page: true
  - name: admin-again
    pages: ["/ADMIN/users"]
    block_page: true
    inputs: sensitive
`

func TestForPage(t *testing.T) {
	p := mustParse(t, matchPolicy)
	tests := []struct {
		host, path string
		rules      []string
	}{
		{"shop.example.com", "/", []string{"everywhere"}},
		{"shop.example.com", "/account", []string{"everywhere", "account", "account-shop"}},
		{"shop.example.com", "/account/", []string{"everywhere", "account", "account-shop"}},
		{"shop.example.com", "/account/a/b/c", []string{"everywhere", "account", "account-shop"}},
		{"shop.example.com", "/accounts", []string{"everywhere"}},
		{"other.example.com", "/account/x", []string{"everywhere", "account"}},
		{"shop.example.com", "/orders/17", []string{"everywhere", "account-shop"}},
		{"shop.example.com", "/orders/17/items", []string{"everywhere"}},
		// Hosts: case, port, trailing dot; wildcards cover subdomains only.
		{"SHOP.Example.COM", "/orders/1", []string{"everywhere", "account-shop"}},
		{"shop.example.com:8443", "/orders/1", []string{"everywhere", "account-shop"}},
		{"shop.example.com.", "/orders/1", []string{"everywhere", "account-shop"}},
		{"a.example.net", "/", []string{"everywhere", "subdomains"}},
		{"a.b.example.net", "/", []string{"everywhere", "subdomains"}},
		{"example.net", "/", []string{"everywhere"}},
		{"badexample.net", "/", []string{"everywhere"}},
		// Paths: query and fragment ignored, case, encoding and dot segments.
		{"x", "/account/settings?tab=cards#top", []string{"everywhere", "account"}},
		{"x", "/Account/Settings", []string{"everywhere", "account"}},
		{"x", "/%61ccount/settings", []string{"everywhere", "account"}},
		{"x", "/public/../account/settings", []string{"everywhere", "account"}},
		{"x", "//account//settings", []string{"everywhere", "account"}},
		{"x", "account/settings", []string{"everywhere", "account"}},
		{"x", "", []string{"everywhere"}},
		{"x", "/%zz/account", []string{"everywhere"}},
		// Globs: * within a segment, braces, ?.
		{"x", "/help/faq", []string{"everywhere", "one-segment"}},
		{"x", "/help/faq/more", []string{"everywhere"}},
		{"x", "/docs/b/page-1", []string{"everywhere", "one-segment"}},
		{"x", "/docs/c/page-1", []string{"everywhere"}},
		{"x", "/docs/a/page-12", []string{"everywhere"}},
		// Case-insensitive patterns too.
		{"x", "/admin/users", []string{"everywhere", "admin", "admin-again"}},
	}
	for _, tc := range tests {
		pg := p.ForPage(tc.host, tc.path)
		if !slices.Equal(pg.Rules, tc.rules) {
			t.Errorf("ForPage(%q, %q).Rules = %q, want %q", tc.host, tc.path, pg.Rules, tc.rules)
		}
	}
}

func TestForPageMerges(t *testing.T) {
	p := mustParse(t, matchPolicy)

	pg := p.ForPage("shop.example.com", "/account/cards")
	if got := sources(pg.Mask); !slices.Equal(got, []string{".pii", ".secret"}) {
		t.Errorf("Mask = %q (union in file order, no repeats)", got)
	}
	if got := sources(pg.Remove); !slices.Equal(got, []string{"#ssn"}) {
		t.Errorf("Remove = %q", got)
	}
	if pg.Inputs != MaskAllInputs {
		t.Error("the strictest inputs of the matching rules must win")
	}
	if got := pg.Detectors.Names(); !slices.Equal(got, []string{"card_number", "email", "order_id"}) {
		t.Errorf("Detectors = %q (file's plus rules', canonical order, no repeats)", got)
	}
	if pg.Block {
		t.Error("Block without a blocking rule")
	}

	// A later rule with inputs: sensitive does not relax an earlier all, nor
	// does a rule without block_page unblock.
	admin := p.ForPage("x", "/admin/users")
	if !admin.Block || admin.Inputs != MaskSensitiveInputs {
		t.Errorf("admin page: %+v", admin)
	}

	// The rules' extras do not leak to other pages.
	if got := p.ForPage("x", "/").Detectors.Names(); !slices.Equal(got, []string{"card_number"}) {
		t.Errorf("Detectors on the home page = %q", got)
	}
	// Pages are independent values.
	pg.Mask[0].Source = "changed"
	if p.ForPage("shop.example.com", "/account/cards").Mask[0].Source != ".pii" {
		t.Error("a Page shares its slices with the policy")
	}
}

func TestFileInputsAllIsAFloor(t *testing.T) {
	p := mustParse(t, "version: 1\ninputs: all\nrules:\n  - name: r\n    inputs: sensitive\n")
	if p.ForPage("x", "/").Inputs != MaskAllInputs {
		t.Error("a rule relaxed the file's inputs: all")
	}
}

func TestPathForms(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"/a/b", []string{"/a/b"}},
		{"/a/b/", []string{"/a/b/"}},
		{"/A/b?x=1", []string{"/a/b"}},
		{"/a/%62", []string{"/a/%62", "/a/b"}},
		{"/a/./b/../c/", []string{"/a/./b/../c/", "/a/c/"}},
		{"/a%2Fb", []string{"/a%2fb", "/a/b"}},
		{"", []string{"/"}},
		{"/%", []string{"/%"}},
	}
	for _, tc := range tests {
		if got := pathForms(tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("pathForms(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestNormalizeHost(t *testing.T) {
	for in, want := range map[string]string{
		"Shop.Example.com":      "shop.example.com",
		"shop.example.com:8080": "shop.example.com",
		"shop.example.com.":     "shop.example.com",
		"[::1]:8080":            "::1",
		"[::1]":                 "::1",
		"::1":                   "::1",
		"127.0.0.1:80":          "127.0.0.1",
	} {
		if got := normalizeHost(in); got != want {
			t.Errorf("normalizeHost(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestHostPatternForms(t *testing.T) {
	p := mustParse(t, `version: 1
rules:
  - name: r
    hosts: ["Shop.Example.COM.", "127.0.0.1", "[::1]", "*.bücher.de", "localhost"]
    block_page: true
`)
	for _, host := range []string{"shop.example.com", "127.0.0.1:8080", "[::1]:80", "www.bücher.de", "localhost"} {
		if !p.ForPage(host, "/").Block {
			t.Errorf("host %q did not match", host)
		}
	}
	for _, host := range []string{"bücher.de", "example.com", "127.0.0.2"} {
		if p.ForPage(host, "/").Block {
			t.Errorf("host %q matched", host)
		}
	}
}
