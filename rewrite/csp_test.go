package rewrite

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"unsafe"
)

// testAllowance is the allowance of every CSP test: the page is served from
// https://shop.example.com, which is also where the visitor script is and
// where it connects.
var testAllowance = VisitorAllowance{
	Nonce:   "r4nd0mN0nce",
	Script:  "https://shop.example.com/__cobrowse/visitor.js",
	Connect: []string{"wss://shop.example.com", "https://shop.example.com"},
}

// Shorthands for what AllowVisitor adds with testAllowance, to be
// concatenated into expected policies.
const (
	ourNonce    = "'nonce-r4nd0mN0nce'"
	ourScript   = "https://shop.example.com/__cobrowse/visitor.js"
	ourSocket   = "wss://shop.example.com"
	ourOrigin   = "https://shop.example.com"
	pageHash    = "'sha256-bhHHL3z2vDgxUt0W3dWQOrprscmda2Y5pLsLg4GF+pI='" // of "alert(1)"
	pageHashURL = "'sha256-LXEWQrcmsEQBYnyp-6wy9chTD7GQPMTbAiWHF5IaSIE='" // base64url
)

// cspCases are policies and what AllowVisitor makes of them with
// testAllowance; want "" means unchanged. They also seed FuzzAllowVisitor.
var cspCases = []struct {
	name, in, want string
	refused        bool // AllowVisitor returns an error wrapping ErrCSPRefused
}{
	{name: "no policy", in: ""},
	{name: "blank policy", in: "  "},
	{name: "default-src only",
		in:   "default-src 'self'",
		want: "default-src 'self'; script-src 'self' " + ourNonce + "; connect-src 'self' " + ourSocket},
	{name: "default-src with other directives",
		in:   "default-src 'self' https://cdn.example   ; img-src *; frame-ancestors 'none'",
		want: "default-src 'self' https://cdn.example; script-src 'self' https://cdn.example " + ourNonce + "; connect-src 'self' https://cdn.example " + ourSocket + "   ; img-src *; frame-ancestors 'none'"},
	{name: "script-src 'self'",
		in:   "script-src 'self'; img-src *",
		want: "script-src 'self' " + ourNonce + "; img-src *"},
	{name: "strict nonce-based policy",
		in:   "script-src 'nonce-abc' 'strict-dynamic'; object-src 'none'; base-uri 'none'",
		want: "script-src 'nonce-abc' 'strict-dynamic' " + ourNonce + "; object-src 'none'; base-uri 'none'"},
	{name: "strict policy with fallbacks for old browsers",
		in:   "script-src 'nonce-abc' 'strict-dynamic' 'unsafe-inline' https: 'report-sample'; object-src 'none'",
		want: "script-src 'nonce-abc' 'strict-dynamic' 'unsafe-inline' https: 'report-sample' " + ourNonce + "; object-src 'none'"},
	{name: "script-src 'none'",
		in:   "script-src 'none'",
		want: "script-src " + ourNonce},
	{name: "'none' among other sources",
		in:   "script-src\t'none'\t https://cdn.example  'NONE';",
		want: "script-src\t https://cdn.example " + ourNonce + ";"},
	{name: "empty script-src",
		in:   "script-src; img-src 'self'",
		want: "script-src " + ourNonce + "; img-src 'self'"},
	{name: "script-src-elem and script-src",
		in:   "script-src-elem 'self'; script-src 'unsafe-inline'",
		want: "script-src-elem 'self' " + ourNonce + "; script-src 'unsafe-inline' " + ourScript},
	{name: "script-src-elem only",
		in:   "script-src-elem https://cdn.example",
		want: "script-src-elem https://cdn.example " + ourNonce},
	{name: "script-src-elem and default-src",
		in:   "default-src https://cdn.example; script-src-elem https://cdn.example 'unsafe-inline'",
		want: "default-src https://cdn.example; script-src https://cdn.example " + ourNonce + "; connect-src https://cdn.example " + ourSocket + " " + ourOrigin + "; script-src-elem https://cdn.example 'unsafe-inline' " + ourScript},
	{name: "'unsafe-inline' without nonce",
		in:   "script-src 'unsafe-inline' https://cdn.example",
		want: "script-src 'unsafe-inline' https://cdn.example " + ourScript},
	{name: "'unsafe-inline' and 'self'",
		in: "script-src 'self' 'unsafe-inline' 'unsafe-eval'"},
	{name: "'unsafe-inline' and *",
		in: "script-src * 'unsafe-inline'"},
	{name: "'unsafe-inline' and the scheme",
		in: "script-src 'unsafe-inline' HTTPS:"},
	{name: "'unsafe-inline' and the origin",
		in: "script-src 'unsafe-inline' https://SHOP.example.com/"},
	{name: "'unsafe-inline' and the script",
		in: "script-src 'unsafe-inline' HTTPS://Shop.Example.com/__cobrowse/visitor.js"},
	{name: "'unsafe-inline' and the script in another case",
		in:   "script-src 'unsafe-inline' https://shop.example.com/__cobrowse/VISITOR.js",
		want: "script-src 'unsafe-inline' https://shop.example.com/__cobrowse/VISITOR.js " + ourScript},
	{name: "'unsafe-inline' and another path",
		in:   "script-src 'unsafe-inline' https://shop.example.com/js/",
		want: "script-src 'unsafe-inline' https://shop.example.com/js/ " + ourScript},
	{name: "'unsafe-inline' and 'none'",
		in:   "script-src 'none' 'unsafe-inline'",
		want: "script-src 'unsafe-inline' " + ourScript},
	{name: "'unsafe-inline' in default-src",
		in:   "default-src https://cdn.example 'unsafe-inline'",
		want: "default-src https://cdn.example 'unsafe-inline'; script-src https://cdn.example 'unsafe-inline' " + ourScript + "; connect-src https://cdn.example 'unsafe-inline' " + ourSocket + " " + ourOrigin},
	{name: "'unsafe-inline' with a hash",
		in:   "script-src 'unsafe-inline' " + pageHash,
		want: "script-src 'unsafe-inline' " + pageHash + " " + ourNonce},
	{name: "'unsafe-inline' with a base64url hash",
		in:   "script-src 'unsafe-inline' " + pageHashURL,
		want: "script-src 'unsafe-inline' " + pageHashURL + " " + ourNonce},
	{name: "'unsafe-inline' with a nonce",
		in:   "script-src 'unsafe-inline' 'nonce-abc'",
		want: "script-src 'unsafe-inline' 'nonce-abc' " + ourNonce},
	{name: "'unsafe-inline' with 'strict-dynamic' and no nonce",
		in:   "script-src 'unsafe-inline' 'strict-dynamic'",
		want: "script-src 'unsafe-inline' 'strict-dynamic' " + ourNonce},
	{name: "'unsafe-inline' with malformed hash and nonce",
		in:   "script-src 'unsafe-inline' 'sha256-abc' 'nonce-' 'nonce-a=b' 'sha1-" + pageHash[8:],
		want: "script-src 'unsafe-inline' 'sha256-abc' 'nonce-' 'nonce-a=b' 'sha1-" + pageHash[8:] + " " + ourScript},
	{name: "hashes only",
		in:   "script-src " + pageHash + " 'unsafe-hashes'",
		want: "script-src " + pageHash + " 'unsafe-hashes' " + ourNonce},
	{name: "connect-src 'self'",
		in:   "connect-src 'self'",
		want: "connect-src 'self' " + ourSocket},
	{name: "connect-src 'none'",
		in:   "connect-src 'none'",
		want: "connect-src " + ourSocket + " " + ourOrigin},
	{name: "connect-src *",
		in:   "connect-src *",
		want: "connect-src * " + ourSocket},
	{name: "connect-src by scheme",
		in: "connect-src wss: https:"},
	{name: "connect-src with our origins",
		in: "connect-src wss://shop.example.com/ HTTPS://shop.example.com"},
	{name: "connect-src with another port",
		in:   "connect-src wss://shop.example.com:8443 https://api.example",
		want: "connect-src wss://shop.example.com:8443 https://api.example " + ourSocket + " " + ourOrigin},
	{name: "default-src 'none'",
		in:   "default-src 'none'; img-src 'self'",
		want: "default-src 'none'; script-src " + ourNonce + "; connect-src " + ourSocket + " " + ourOrigin + "; img-src 'self'"},
	{name: "empty default-src",
		in:   "default-src;",
		want: "default-src; script-src " + ourNonce + "; connect-src " + ourSocket + " " + ourOrigin + ";"},
	{name: "default-src 'self' 'unsafe-inline'",
		in:   "default-src 'self' 'unsafe-inline'",
		want: "default-src 'self' 'unsafe-inline'; connect-src 'self' 'unsafe-inline' " + ourSocket},
	{name: "multiple policies",
		in:   "default-src 'self', script-src 'unsafe-inline' 'self'; connect-src 'none' ,script-src-elem 'none'",
		want: "default-src 'self'; script-src 'self' " + ourNonce + "; connect-src 'self' " + ourSocket + ", script-src 'unsafe-inline' 'self'; connect-src " + ourSocket + " " + ourOrigin + " ,script-src-elem " + ourNonce},
	{name: "empty policies in a list",
		in:   ",, script-src 'self' ,",
		want: ",, script-src 'self' " + ourNonce + " ,"},
	{name: "duplicate directives",
		in:   "script-src 'self'; connect-src 'self'; script-src 'unsafe-inline'; connect-src *",
		want: "script-src 'self' " + ourNonce + "; connect-src 'self' " + ourSocket + "; script-src 'unsafe-inline'; connect-src *"},
	{name: "duplicate default-src",
		in:   "default-src 'none'; default-src *",
		want: "default-src 'none'; script-src " + ourNonce + "; connect-src " + ourSocket + " " + ourOrigin + "; default-src *"},
	{name: "uppercase names and keywords",
		in:   "SCRIPT-SRC 'SELF' 'UNSAFE-INLINE'; Connect-Src 'NONE'; Default-Src 'NONE'",
		want: "SCRIPT-SRC 'SELF' 'UNSAFE-INLINE'; Connect-Src " + ourSocket + " " + ourOrigin + "; Default-Src 'NONE'"},
	{name: "report-only value",
		in:   "default-src 'none'; script-src 'nonce-abc'; report-uri /csp-report; report-to csp",
		want: "default-src 'none'; connect-src " + ourSocket + " " + ourOrigin + "; script-src 'nonce-abc' " + ourNonce + "; report-uri /csp-report; report-to csp"},
	{name: "trailing ';' and empty directives",
		in:   " ; script-src 'self' ;; img-src 'self';",
		want: " ; script-src 'self' " + ourNonce + " ;; img-src 'self';"},
	{name: "whitespace kept",
		in:   "\tconnect-src\f'self'\r\n ;\nimg-src  a",
		want: "\tconnect-src\f'self' " + ourSocket + "\r\n ;\nimg-src  a"},
	{name: "Trusted Types untouched",
		in:   "require-trusted-types-for 'script'; trusted-types default dompurify 'allow-duplicates'; script-src 'nonce-abc'",
		want: "require-trusted-types-for 'script'; trusted-types default dompurify 'allow-duplicates'; script-src 'nonce-abc' " + ourNonce},
	{name: "unknown and other directives untouched",
		in:   "navigate-to x; foo-bar  baz;upgrade-insecure-requests;sandbox allow-scripts;script-src-attr 'none';worker-src 'none';script-src 'self'",
		want: "navigate-to x; foo-bar  baz;upgrade-insecure-requests;sandbox allow-scripts;script-src-attr 'none';worker-src 'none';script-src 'self' " + ourNonce},
	{name: "names are whole words",
		in: "script-src-attr 'none'; xscript-src 'none'; script-src-elements 'none'; 'script-src' 'none'"},
	{name: "already edited",
		in: "default-src 'self'; script-src 'self' " + ourNonce + "; connect-src 'self' " + ourSocket},
	{name: "too large",
		in:      "default-src 'none'; img-src " + strings.Repeat("a", MaxCSPSize),
		refused: true},
	{name: "too many directives",
		in:      "default-src 'none'" + strings.Repeat(";", MaxCSPDirectives),
		refused: true},
	{name: "as many directives as allowed",
		in:   "default-src 'none'" + strings.Repeat(";", MaxCSPDirectives-1),
		want: "default-src 'none'; script-src " + ourNonce + "; connect-src " + ourSocket + " " + ourOrigin + strings.Repeat(";", MaxCSPDirectives-1)},
	{name: "non-ASCII",
		in:      "script-src 'none' https://bücher.example; script-src *",
		refused: true},
	{name: "control character",
		in:      "script-src\v'self'",
		refused: true},
}

func TestAllowVisitor(t *testing.T) {
	for _, c := range cspCases {
		t.Run(c.name, func(t *testing.T) {
			want := c.want
			if want == "" {
				want = c.in
			}
			got, err := AllowVisitor(c.in, testAllowance)
			if got != want {
				t.Errorf("AllowVisitor(%q)\n got %q\nwant %q", c.in, got, want)
			}
			if c.refused != errors.Is(err, ErrCSPRefused) || !c.refused && err != nil {
				t.Errorf("AllowVisitor(%q): error %v, want refused %v", c.in, err, c.refused)
			}
			if err := checkCSPEdit(c.in, got, testAllowance); err != nil {
				t.Error(err)
			}
			if again, _ := AllowVisitor(got, testAllowance); again != got {
				t.Errorf("AllowVisitor is not idempotent on %q:\n once %q\ntwice %q", c.in, got, again)
			}
		})
	}
}

// TestAllowVisitorUnchanged checks that a policy that needs no edit comes
// back as the same string, with at most the one allocation of the nonce
// source.
func TestAllowVisitorUnchanged(t *testing.T) {
	in := "script-src 'self' 'unsafe-inline'; connect-src wss: https:"
	got, err := AllowVisitor(in, testAllowance)
	if err != nil || unsafe.StringData(got) != unsafe.StringData(in) {
		t.Errorf("AllowVisitor(%q) = %q, %v; want the same string", in, got, err)
	}
	if n := testing.AllocsPerRun(100, func() { AllowVisitor(in, testAllowance) }); n > 1 {
		t.Errorf("AllowVisitor allocates %v times on a policy it leaves alone", n)
	}
}

func TestAllowVisitorMeta(t *testing.T) {
	for _, c := range []struct {
		in, want string
		refused  bool
	}{
		{in: "default-src 'self'", want: "default-src 'self'; script-src 'self' " + ourNonce + "; connect-src 'self' " + ourSocket},
		{in: "script-src 'unsafe-inline'", want: "script-src 'unsafe-inline' " + ourScript},
		{in: "script-src 'none', connect-src 'none'", refused: true},
		{in: "", want: ""},
	} {
		got, err := AllowVisitorMeta(c.in, testAllowance)
		want := c.want
		if c.refused {
			want = c.in
		}
		if got != want || c.refused != errors.Is(err, ErrCSPRefused) || !c.refused && err != nil {
			t.Errorf("AllowVisitorMeta(%q) = %q, %v; want %q, refused %v", c.in, got, err, want, c.refused)
		}
	}
}

func TestAllowVisitorBadAllowance(t *testing.T) {
	good := testAllowance
	for _, c := range []struct {
		name string
		edit func(a *VisitorAllowance)
	}{
		{"empty nonce", func(a *VisitorAllowance) { a.Nonce = "" }},
		{"nonce with a quote", func(a *VisitorAllowance) { a.Nonce = "a' *" }},
		{"nonce with three =", func(a *VisitorAllowance) { a.Nonce = "abc===" }},
		{"nonce with = inside", func(a *VisitorAllowance) { a.Nonce = "a=b" }},
		{"no script", func(a *VisitorAllowance) { a.Script = "" }},
		{"relative script", func(a *VisitorAllowance) { a.Script = "/__cobrowse/visitor.js" }},
		{"script without path", func(a *VisitorAllowance) { a.Script = "https://shop.example.com" }},
		{"script with query", func(a *VisitorAllowance) { a.Script = "https://shop.example.com/v.js?x" }},
		{"script with ';'", func(a *VisitorAllowance) { a.Script = "https://shop.example.com/v.js;script-src" }},
		{"script with space", func(a *VisitorAllowance) { a.Script = "https://shop.example.com/v.js *" }},
		{"script over ftp", func(a *VisitorAllowance) { a.Script = "ftp://shop.example.com/v.js" }},
		{"script with user", func(a *VisitorAllowance) { a.Script = "https://u@shop.example.com/v.js" }},
		{"script on IPv6", func(a *VisitorAllowance) { a.Script = "https://[::1]:8080/v.js" }},
		{"script with empty label", func(a *VisitorAllowance) { a.Script = "https://shop..example/v.js" }},
		{"script with bad port", func(a *VisitorAllowance) { a.Script = "https://shop.example.com:x/v.js" }},
		{"upper-case scheme", func(a *VisitorAllowance) { a.Script = "HTTPS://shop.example.com/v.js" }},
		{"connect with path", func(a *VisitorAllowance) { a.Connect = []string{"wss://shop.example.com/__cobrowse/ws"} }},
		{"connect with comma", func(a *VisitorAllowance) { a.Connect = []string{"wss://a,b"} }},
		{"connect over ftp", func(a *VisitorAllowance) { a.Connect = []string{"ftp://shop.example.com"} }},
		{"connect wildcard", func(a *VisitorAllowance) { a.Connect = []string{"wss://*.example.com"} }},
	} {
		a := good
		a.Connect = slices.Clone(good.Connect)
		c.edit(&a)
		in := "default-src 'none'"
		got, err := AllowVisitor(in, a)
		if err == nil || errors.Is(err, ErrCSPRefused) || got != in {
			t.Errorf("%s: AllowVisitor(%q, %+v) = %q, %v; want it unchanged with an error about the allowance", c.name, in, a, got, err)
		}
	}
	a := good
	a.Connect = nil
	a.Script = "http://localhost:8080/__cobrowse/visitor.js"
	if got, err := AllowVisitor("script-src 'unsafe-inline'", a); err != nil || got != "script-src 'unsafe-inline' "+a.Script {
		t.Errorf("plain HTTP allowance on localhost: %q, %v", got, err)
	}
}

// TestAllowVisitorSemantics checks on every case that the edited policy
// allows what the unedited one did, the visitor script and socket, and
// nothing else, as evaluated by cspBrowsers on cspProbes.
func TestAllowVisitorSemantics(t *testing.T) {
	for _, c := range cspCases {
		if c.refused {
			continue
		}
		got, _ := AllowVisitor(c.in, testAllowance)
		if err := checkCSPSemantics(c.in, got); err != nil {
			t.Errorf("%s: %v\n  in: %q\n out: %q", c.name, err, c.in, got)
		}
	}
}

// TestCSPModel checks the test's own browser model on policies whose
// verdicts are well known, so that TestAllowVisitorSemantics can rely on it.
func TestCSPModel(t *testing.T) {
	for _, c := range []struct {
		policy, probe string
		modern, old   bool
	}{
		{"", "evil script", true, true},
		{"default-src 'self'", "same-origin script", true, true},
		{"default-src 'self'", "visitor socket", true, false},
		{"default-src 'self'", "inline script", false, false},
		{"script-src 'self' 'unsafe-inline'", "inline script", true, true},
		{"script-src 'self' 'unsafe-inline'", "event handler", true, true},
		{"script-src 'self' 'unsafe-inline' 'nonce-abc'", "inline script", false, false},
		{"script-src 'self' 'unsafe-inline' 'nonce-abc'", "inline script with the page's nonce", true, true},
		{"script-src 'unsafe-inline' 'strict-dynamic'", "inline script", false, true},
		{"script-src 'nonce-abc' 'strict-dynamic' https:", "cdn script", false, true},
		{"script-src 'nonce-abc' 'strict-dynamic' https:", "script with the page's nonce", true, true},
		{"script-src 'nonce-abc' 'strict-dynamic'", "same-origin worker", true, false},
		{"script-src " + pageHash, "inline script with the page's hash", true, true},
		{"script-src-elem 'none'; script-src *", "cdn script", false, true},
		{"script-src 'none' 'self'", "same-origin script", true, true},
		{"script-src 'none'", "same-origin script", false, false},
		{"script-src", "same-origin script", false, false},
		{"script-src https://shop.example.com/js/", "same-origin script", false, false},
		{"script-src https://shop.example.com/js/", "same-origin script in /js/", true, true},
		{"script-src *.example", "cdn script", true, true},
		{"connect-src *", "evil socket", true, false},
		{"connect-src *", "evil fetch", true, true},
		{"connect-src 'self'", "same-origin fetch", true, true},
		{"connect-src wss:", "evil socket", true, true},
		{"default-src 'none'; connect-src 'self'", "visitor socket", true, false},
		{"script-src 'self', script-src 'none'", "same-origin script", false, false},
	} {
		for _, b := range cspBrowsers {
			want := c.modern
			if !b.modern {
				want = c.old
			}
			if got := b.allows(parseCSPModel(c.policy), cspProbeNamed(c.probe)); got != want {
				t.Errorf("%s browser, policy %q, %s: allowed %v, want %v", b.name, c.policy, c.probe, got, want)
			}
		}
	}
}

func FuzzAllowVisitor(f *testing.F) {
	for _, c := range cspCases {
		if len(c.in) < 1024 {
			f.Add(c.in)
		}
	}
	a := testAllowance
	nonce := "'nonce-" + a.Nonce + "'"
	// The most AllowVisitor adds to one policy besides copies of
	// default-src: a source for script-src-elem and script-src, two
	// directive names, the Connect origins.
	perPolicy := 2*(1+max(len(nonce), len(a.Script))) + len("; script-src; connect-src")
	for _, o := range a.Connect {
		perPolicy += 1 + len(o)
	}
	f.Fuzz(func(t *testing.T, policy string) {
		// Random bytes rarely spell a directive name: also try the input
		// as the sources of the directives that AllowVisitor edits.
		for _, prefix := range []string{"", "script-src ", "default-src ", "connect-src "} {
			checkAllowVisitor(t, prefix+policy, a, perPolicy)
		}
	})
}

// checkAllowVisitor checks everything FuzzAllowVisitor promises about one
// policy.
func checkAllowVisitor(t *testing.T, in string, a VisitorAllowance, perPolicy int) {
	t.Helper()
	out, err := AllowVisitor(in, a)
	wantRefused := len(in) > MaxCSPSize ||
		strings.Count(in, ";")+strings.Count(in, ",")+1 > MaxCSPDirectives ||
		strings.ContainsFunc(in, func(r rune) bool {
			return (r < 0x20 || r > 0x7e) && !strings.ContainsRune(" \t\n\f\r", r)
		})
	if wantRefused != errors.Is(err, ErrCSPRefused) || !wantRefused && err != nil {
		t.Fatalf("AllowVisitor(%q): error %v, want refused %v", in, err, wantRefused)
	}
	if err != nil && out != in {
		t.Fatalf("AllowVisitor(%q) changed the policy with an error: %q", in, out)
	}
	if limit := 3*len(in) + (strings.Count(in, ",")+1)*perPolicy; len(out) > limit {
		t.Fatalf("AllowVisitor(%q) is %d bytes long, more than %d", in, len(out), limit)
	}
	if err := checkCSPEdit(in, out, a); err != nil {
		t.Fatal(err)
	}
	if again, _ := AllowVisitor(out, a); again != out {
		t.Fatalf("AllowVisitor is not idempotent on %q:\n once %q\ntwice %q", in, out, again)
	}
	if err == nil {
		if err := checkCSPSemantics(in, out); err != nil {
			t.Fatalf("%v\n  in: %q\n out: %q", err, in, out)
		}
	}
	meta, merr := AllowVisitorMeta(in, a)
	if strings.Contains(in, ",") {
		if meta != in || !errors.Is(merr, ErrCSPRefused) {
			t.Fatalf("AllowVisitorMeta(%q) = %q, %v; want it refused", in, meta, merr)
		}
	} else if meta != out || (merr == nil) != (err == nil) {
		t.Fatalf("AllowVisitorMeta(%q) = %q, %v; AllowVisitor gives %q, %v", in, meta, merr, out, err)
	}
}

func BenchmarkAllowVisitor(b *testing.B) {
	for _, policy := range []string{
		"default-src 'self'; script-src 'nonce-abc' 'strict-dynamic'; connect-src 'self'; object-src 'none'; base-uri 'none'; require-trusted-types-for 'script'",
		"script-src 'self' 'unsafe-inline'; connect-src wss://shop.example.com https://shop.example.com",
	} {
		b.Run(policy[:strings.IndexByte(policy, ';')], func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				AllowVisitor(policy, testAllowance)
			}
		})
	}
}

// A cspPiece is one directive of a policy as written: the bytes between two
// separators, split into leading whitespace, name, sources (each with the
// whitespace before it) and trailing whitespace.
type cspPiece struct {
	lead, name string
	sources    []string
	trail      string
	sep        byte // the separator after the piece: ';', ',' or 0 at the end
}

func (p cspPiece) String() string {
	return p.lead + p.name + strings.Join(p.sources, "") + p.trail + string(p.sep)
}

// cspPieces splits a policy list into pieces, by policy.
func cspPieces(s string) [][]cspPiece {
	isSpace := func(r rune) bool { return strings.ContainsRune(" \t\n\f\r", r) }
	var policies [][]cspPiece
	var cur []cspPiece
	for {
		i := strings.IndexAny(s, ";,")
		text := s
		if i >= 0 {
			text = s[:i]
		}
		var p cspPiece
		rest := strings.TrimLeftFunc(text, isSpace)
		p.lead = text[:len(text)-len(rest)]
		body := strings.TrimRightFunc(rest, isSpace)
		p.trail = rest[len(body):]
		n := strings.IndexFunc(body, isSpace)
		if n < 0 {
			n = len(body)
		}
		p.name, body = body[:n], body[n:]
		for body != "" {
			ws := len(body) - len(strings.TrimLeftFunc(body, isSpace))
			end := strings.IndexFunc(body[ws:], isSpace)
			if end < 0 {
				end = len(body) - ws
			}
			p.sources = append(p.sources, body[:ws+end])
			body = body[ws+end:]
		}
		if i < 0 {
			return append(policies, append(cur, p))
		}
		p.sep = s[i]
		cur = append(cur, p)
		if p.sep == ',' {
			policies = append(policies, cur)
			cur = nil
		}
		s = s[i+1:]
	}
}

// withoutNone returns sources without 'none'.
func withoutNone(sources []string) []string {
	return slices.DeleteFunc(slices.Clone(sources), func(s string) bool {
		return strings.EqualFold(strings.TrimLeft(s, " \t\n\f\r"), "'none'")
	})
}

// checkCSPEdit checks that out is in edited as AllowVisitor documents: the
// same pieces, except that the first script-src-elem, script-src and
// connect-src of a policy may have lost 'none' and gained sources of a at
// the end, and that a script-src and a connect-src absent from a policy may
// have been added right after its default-src, as a copy of it without 'none'
// plus sources of a.
func checkCSPEdit(in, out string, a VisitorAllowance) error {
	ours := append([]string{"'nonce-" + a.Nonce + "'", a.Script}, a.Connect...)
	// added checks that sources are base plus one or more of ours, each after
	// a space.
	added := func(sources, base []string) bool {
		if len(sources) <= len(base) || !slices.Equal(sources[:len(base)], base) {
			return false
		}
		for _, s := range sources[len(base):] {
			if s[0] != ' ' || !slices.Contains(ours, s[1:]) {
				return false
			}
		}
		return true
	}
	ip, op := cspPieces(in), cspPieces(out)
	if len(ip) != len(op) {
		return fmt.Errorf("%q has %d policies, the edit %q has %d", in, len(ip), out, len(op))
	}
	for n := range ip {
		I, O := ip[n], op[n]
		has := func(name string) bool {
			return slices.ContainsFunc(I, func(p cspPiece) bool { return strings.EqualFold(p.name, name) })
		}
		seen := map[string]bool{}
		j := 0
		for _, p := range I {
			if j >= len(O) {
				return fmt.Errorf("policy %d of %q: the edit %q lost directives", n, in, out)
			}
			q := O[j]
			j++
			name := strings.ToLower(p.name)
			first := !seen[name]
			seen[name] = true
			if name == "default-src" && first {
				var made []cspPiece
				for _, name := range []string{"script-src", "connect-src"} {
					if j < len(O) && O[j].name == name && !has(name) {
						made = append(made, O[j])
						j++
					}
				}
				if len(made) == 0 {
					if q.String() != p.String() {
						return fmt.Errorf("policy %d of %q: default-src %q became %q", n, in, p, q)
					}
					continue
				}
				if q.lead != p.lead || q.name != p.name || !slices.Equal(q.sources, p.sources) || q.trail != "" || q.sep != ';' {
					return fmt.Errorf("policy %d of %q: default-src %q became %q before the added directives", n, in, p, q)
				}
				for k, m := range made {
					trail, sep := "", byte(';')
					if k == len(made)-1 {
						trail, sep = p.trail, p.sep
					}
					if m.lead != " " || m.trail != trail || m.sep != sep || !added(m.sources, withoutNone(p.sources)) {
						return fmt.Errorf("policy %d of %q: added directive %q is not default-src %q and our sources", n, in, m, p)
					}
				}
				continue
			}
			switch {
			case q.String() == p.String():
			case first && (name == "script-src-elem" || name == "script-src" || name == "connect-src"):
				if q.lead != p.lead || q.name != p.name || q.trail != p.trail || q.sep != p.sep || !added(q.sources, withoutNone(p.sources)) {
					return fmt.Errorf("policy %d of %q: %q became %q", n, in, p, q)
				}
			default:
				return fmt.Errorf("policy %d of %q: %q became %q", n, in, p, q)
			}
		}
		if j != len(O) {
			return fmt.Errorf("policy %d of %q: the edit %q has extra directives %q", n, in, out, O[j:])
		}
	}
	return nil
}

// A cspBrowser is a model of how a browser applies a policy list, enough to
// evaluate cspProbes on the page https://shop.example.com. modern follows CSP
// Level 3 as Chromium and Firefox do; the other one is an older browser
// (such as Safari before 15.4): no script-src-elem or 'strict-dynamic', and
// neither 'self' nor * matches WebSocket URLs.
type cspBrowser struct {
	name   string
	modern bool
}

var cspBrowsers = []cspBrowser{{"modern", true}, {"old", false}}

// A cspProbe is something a page does that its policy may block.
type cspProbe struct {
	name  string
	kind  string // "script" (a <script src> element), "inline" (a <script> element), "handler" (an event handler attribute), "worker", "connect"
	url   string
	nonce string // on the element
	hash  string // of the inline script
}

// cspProbes are the probes of the semantic tests. The ones marked ours may
// go from blocked to allowed; "visitor script" and "visitor socket" must be
// allowed after the edit.
var cspProbes = []struct {
	cspProbe
	ours bool
}{
	{cspProbe{name: "visitor script", kind: "script", url: ourScript, nonce: testAllowance.Nonce}, true},
	{cspProbe{name: "visitor socket", kind: "connect", url: "wss://shop.example.com/__cobrowse/ws"}, true},
	{cspProbe{name: "inline script with our nonce", kind: "inline", nonce: testAllowance.Nonce}, true},
	{cspProbe{name: "same-origin fetch", kind: "connect", url: "https://shop.example.com/api/cart"}, true},
	{cspProbe{name: "evil script", kind: "script", url: "https://evil.example/x.js"}, false},
	{cspProbe{name: "cdn script", kind: "script", url: "https://cdn.example/lib.js"}, false},
	{cspProbe{name: "same-origin script", kind: "script", url: "https://shop.example.com/app.js"}, false},
	{cspProbe{name: "same-origin script in /js/", kind: "script", url: "https://shop.example.com/js/app.js"}, false},
	{cspProbe{name: "script with the page's nonce", kind: "script", url: "https://evil.example/y.js", nonce: "abc"}, false},
	{cspProbe{name: "inline script", kind: "inline"}, false},
	{cspProbe{name: "inline script with the page's nonce", kind: "inline", nonce: "abc"}, false},
	{cspProbe{name: "inline script with the page's hash", kind: "inline", hash: pageHash}, false},
	{cspProbe{name: "event handler", kind: "handler"}, false},
	{cspProbe{name: "same-origin worker", kind: "worker", url: "https://shop.example.com/worker.js"}, false},
	{cspProbe{name: "evil socket", kind: "connect", url: "wss://evil.example/"}, false},
	{cspProbe{name: "evil fetch", kind: "connect", url: "https://evil.example/"}, false},
	{cspProbe{name: "cdn fetch", kind: "connect", url: "https://cdn.example/data"}, false},
}

func cspProbeNamed(name string) cspProbe {
	for _, p := range cspProbes {
		if p.name == name {
			return p.cspProbe
		}
	}
	panic("no probe " + name)
}

// checkCSPSemantics compares the verdicts of every browser on every probe
// under the policies in and out.
func checkCSPSemantics(in, out string) error {
	pin, pout := parseCSPModel(in), parseCSPModel(out)
	for _, b := range cspBrowsers {
		for _, p := range cspProbes {
			before, after := b.allows(pin, p.cspProbe), b.allows(pout, p.cspProbe)
			switch {
			case (p.name == "visitor script" || p.name == "visitor socket") && !after:
				return fmt.Errorf("%s browser: %s blocked after the edit", b.name, p.name)
			case before == after, p.ours && after:
			case !b.modern && (p.kind == "inline" || p.kind == "handler") && b.inlineLossExpected(pin):
				// The documented loss: see inlineLossExpected.
			default:
				return fmt.Errorf("%s browser: %s allowed %v before the edit, %v after", b.name, p.name, before, after)
			}
		}
	}
	return nil
}

// inlineLossExpected reports whether a nonce added to a list with
// 'unsafe-inline' and 'strict-dynamic' but no nonce or hash, which modern
// browsers read as allowing no inline script already, switches
// 'unsafe-inline' off in an old browser that ignores 'strict-dynamic'.
func (b cspBrowser) inlineLossExpected(policies []map[string][]string) bool {
	for _, pol := range policies {
		list, ok := b.effective(pol, "script-src", "default-src")
		if ok && b.has(list, "'unsafe-inline'") && (cspBrowser{modern: true}).has(list, "'strict-dynamic'") && !b.nonceOrHash(list) {
			return true
		}
	}
	return false
}

// parseCSPModel returns the policies in a list as browsers read them: the
// sources of the first directive of each name.
func parseCSPModel(policies string) []map[string][]string {
	var out []map[string][]string
	for _, pol := range strings.Split(policies, ",") {
		m := map[string][]string{}
		for _, d := range strings.Split(pol, ";") {
			f := strings.FieldsFunc(d, func(r rune) bool { return strings.ContainsRune(" \t\n\f\r", r) })
			if len(f) == 0 {
				continue
			}
			name := strings.ToLower(f[0])
			if _, dup := m[name]; !dup {
				m[name] = f[1:]
			}
		}
		out = append(out, m)
	}
	return out
}

// effective returns the list of the first directive of names that pol has.
func (b cspBrowser) effective(pol map[string][]string, names ...string) ([]string, bool) {
	for _, n := range names {
		if list, ok := pol[n]; ok {
			return list, true
		}
	}
	return nil, false
}

// allows reports whether every policy allows p.
func (b cspBrowser) allows(policies []map[string][]string, p cspProbe) bool {
	for _, pol := range policies {
		var names []string
		switch p.kind {
		case "script", "inline":
			names = []string{"script-src-elem", "script-src", "default-src"}
		case "handler":
			names = []string{"script-src-attr", "script-src", "default-src"}
		case "worker":
			names = []string{"worker-src", "child-src", "script-src", "default-src"}
		case "connect":
			names = []string{"connect-src", "default-src"}
		}
		if !b.modern && (names[0] == "script-src-elem" || names[0] == "script-src-attr") {
			names = names[1:]
		}
		if list, ok := b.effective(pol, names...); ok && !b.listAllows(list, p) {
			return false
		}
	}
	return true
}

func (b cspBrowser) has(list []string, keyword string) bool {
	return slices.ContainsFunc(list, func(s string) bool { return strings.EqualFold(s, keyword) })
}

func (b cspBrowser) nonceOrHash(list []string) bool {
	return slices.ContainsFunc(list, func(s string) bool {
		s = strings.ToLower(s)
		return strings.HasPrefix(s, "'nonce-") || strings.HasPrefix(s, "'sha256-") || strings.HasPrefix(s, "'sha384-") || strings.HasPrefix(s, "'sha512-")
	})
}

func (b cspBrowser) listAllows(list []string, p cspProbe) bool {
	if len(list) == 0 || len(list) == 1 && strings.EqualFold(list[0], "'none'") {
		return false
	}
	strictDynamic := b.modern && b.has(list, "'strict-dynamic'")
	nonce := p.nonce != "" && slices.ContainsFunc(list, func(s string) bool {
		return len(s) > 7 && strings.EqualFold(s[:7], "'nonce-") && s[7:] == p.nonce+"'"
	})
	switch p.kind {
	case "inline", "handler":
		if p.kind == "inline" && (nonce || p.hash != "" && slices.Contains(list, p.hash)) {
			return true
		}
		return b.has(list, "'unsafe-inline'") && !b.nonceOrHash(list) && !strictDynamic
	case "script":
		if nonce {
			return true
		}
		if strictDynamic {
			return false // host sources are ignored for parser-inserted scripts
		}
	case "worker":
		if strictDynamic {
			return true // a worker is not parser-inserted
		}
	}
	return slices.ContainsFunc(list, func(s string) bool { return b.matches(s, p.url) })
}

// matches reports whether the source expression src matches url, on the
// page https://shop.example.com. url has the default port of its scheme.
func (b cspBrowser) matches(src, url string) bool {
	scheme, rest, _ := strings.Cut(url, "://")
	host, path, _ := strings.Cut(rest, "/")
	path = "/" + path
	socket := scheme == "ws" || scheme == "wss"
	switch {
	case src == "*":
		return scheme == "http" || scheme == "https" || b.modern && socket
	case strings.EqualFold(src, "'self'"):
		return host == "shop.example.com" && (scheme == "https" || b.modern && scheme == "wss")
	case strings.HasPrefix(src, "'"):
		return false
	case strings.HasSuffix(src, ":") && !strings.Contains(src, "/"):
		return strings.EqualFold(src, scheme+":")
	}
	sScheme, sRest, ok := strings.Cut(src, "://")
	if !ok {
		sScheme, sRest = "", src
	}
	if sScheme == "" && scheme != "https" && !(b.modern && scheme == "wss") || sScheme != "" && !strings.EqualFold(sScheme, scheme) {
		return false
	}
	sHost, sPath, hasPath := strings.Cut(sRest, "/")
	sPath = "/" + sPath
	if h, port, ok := strings.Cut(sHost, ":"); ok {
		def := map[string]string{"http": "80", "ws": "80", "https": "443", "wss": "443"}[scheme]
		if port != "*" && port != def {
			return false
		}
		sHost = h
	}
	switch {
	case sHost == "*":
	case strings.HasPrefix(sHost, "*."):
		if !strings.HasSuffix(strings.ToLower(host), strings.ToLower(sHost[1:])) {
			return false
		}
	case !strings.EqualFold(sHost, host):
		return false
	}
	if !hasPath || sPath == "/" {
		return true
	}
	if strings.HasSuffix(sPath, "/") {
		return strings.HasPrefix(path, sPath)
	}
	return path == sPath
}
