package rewrite

import (
	"bytes"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"testing/iotest"

	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"
)

// policyMark is what appendSource adds to a policy.
const policyMark = " wss://proxy.test"

// appendSource is a WithMetaCSP edit that marks what it edited.
func appendSource(policy string) (string, error) { return policy + policyMark, nil }

// policyCases are documents and what a URLRewriter with
// WithMetaCSP(appendSource) makes of them (want "" for unchanged), whether
// or not it also rewrites URLs.
var policyCases = []struct {
	name, in, want string
}{
	{"a policy in the head",
		`<head><meta http-equiv="Content-Security-Policy" content="connect-src 'self'"><title>t</title></head><body>`,
		`<head><meta http-equiv="Content-Security-Policy" content="connect-src 'self' wss://proxy.test"><title>t</title></head><body>`},
	{"after charset, title, style and script, in upper case and unquoted",
		`<head><meta charset=utf-8><title>a</title><style>p{}</style><script>x()</script>` + "\n" + `<META HTTP-EQUIV=content-security-policy CONTENT=default-src></head>`,
		`<head><meta charset=utf-8><title>a</title><style>p{}</style><script>x()</script>` + "\n" + `<META HTTP-EQUIV=content-security-policy CONTENT="default-src wss://proxy.test"></head>`},
	{"other attributes and quotes kept",
		`<head><meta id=m http-equiv='Content-Security-Policy' content='connect-src "x"' data-x='1'>`,
		`<head><meta id=m http-equiv='Content-Security-Policy' content="connect-src &quot;x&quot; wss://proxy.test" data-x='1'>`},
	{"character references decoded, then & escaped",
		`<meta http-equiv=" Content&#45;Security-Policy&#x0A;" content="a &amp; b&apos;">`,
		`<meta http-equiv=" Content&#45;Security-Policy&#x0A;" content="a &amp; b' wss://proxy.test">`},
	{"content before http-equiv",
		`<meta content="a" http-equiv="Content-Security-Policy">`,
		`<meta content="a wss://proxy.test" http-equiv="Content-Security-Policy">`},
	{"only the first content counts",
		`<meta http-equiv=content-security-policy content=a content=b>`,
		`<meta http-equiv=content-security-policy content="a wss://proxy.test" content=b>`},
	{"a policy text inside a script is not a tag",
		`<head><script>var s = '<meta http-equiv="Content-Security-Policy" content="x">';</script></head>`, ""},
	{"a policy in the body is ignored by browsers, and here",
		`<head></head><body><meta http-equiv="Content-Security-Policy" content="connect-src 'self'">`, ""},
	{"after text, the head is over",
		`<head><title>t</title>hello<meta http-equiv="Content-Security-Policy" content="a">`, ""},
	{"after </br>, the head is over",
		`<head></br><meta http-equiv="Content-Security-Policy" content="a">`, ""},
	{"no head: the implied head",
		`<meta http-equiv="Content-Security-Policy" content="a"><p>hi<meta http-equiv="Content-Security-Policy" content="b">`,
		`<meta http-equiv="Content-Security-Policy" content="a wss://proxy.test"><p>hi<meta http-equiv="Content-Security-Policy" content="b">`},
	{"after </head>, browsers still put a <meta> in the head",
		`<head></head>` + "\n" + `<meta http-equiv="Content-Security-Policy" content="a"><body>`,
		`<head></head>` + "\n" + `<meta http-equiv="Content-Security-Policy" content="a wss://proxy.test"><body>`},
	{"other end tags are ignored in the head",
		`<head></p></div><meta http-equiv="Content-Security-Policy" content="a">`,
		`<head></p></div><meta http-equiv="Content-Security-Policy" content="a wss://proxy.test">`},
	{"a template's content does not end the head",
		`<head><template><div>x</div></template><meta http-equiv="Content-Security-Policy" content="a">`,
		`<head><template><div>x</div></template><meta http-equiv="Content-Security-Policy" content="a wss://proxy.test">`},
	{"a byte order mark and whitespace",
		"\ufeff\n<!doctype html>\n<html>\n" + `<meta http-equiv="Content-Security-Policy" content="a">`,
		"\ufeff\n<!doctype html>\n<html>\n" + `<meta http-equiv="Content-Security-Policy" content="a wss://proxy.test">`},
	{"after 100 KB of inline script",
		`<head><script>` + strings.Repeat("if (a < b) { x(); }\n", 5000) + `</script><meta http-equiv="Content-Security-Policy" content="a">`,
		`<head><script>` + strings.Repeat("if (a < b) { x(); }\n", 5000) + `</script><meta http-equiv="Content-Security-Policy" content="a wss://proxy.test">`},
	{"report-only is not a meta policy", `<head><meta http-equiv="Content-Security-Policy-Report-Only" content="a">`, ""},
	{"no content", `<head><meta http-equiv="Content-Security-Policy"><meta http-equiv="Content-Security-Policy" content>`, ""},
	{"a refresh is not a policy", `<head><meta http-equiv="refresh" content="5; url=/next">`, ""},
}

func TestURLRewriterEditsMetaPolicies(t *testing.T) {
	for _, tc := range policyCases {
		t.Run(tc.name, func(t *testing.T) {
			want := tc.want
			if want == "" {
				want = tc.in
			}
			for _, to := range []string{up, pub} {
				for name, src := range map[string]io.Reader{
					"whole":      strings.NewReader(tc.in),
					"one by one": iotest.OneByteReader(strings.NewReader(tc.in)),
				} {
					u := NewURLRewriter(src, testOrigin(up), testOrigin(to), WithMetaCSP(appendSource))
					out, err := io.ReadAll(u)
					if err != nil || string(out) != want {
						t.Errorf("to %s, %s: got %q (%v)\nwant %q", to, name, out, err, want)
					}
				}
			}
		})
	}
}

// TestURLRewriterPoliciesAndURLs checks that with WithMetaCSP a URLRewriter
// from an origin to the same one edits policies and leaves URLs, and one to
// another origin does both.
func TestURLRewriterPoliciesAndURLs(t *testing.T) {
	const in = `<head><meta http-equiv="Content-Security-Policy" content="a"><link rel=icon href="` + up + `/i.ico"></head>` +
		`<body><a href="` + up + `/a">a</a>`
	tests := []struct{ to, want string }{
		{up, `<head><meta http-equiv="Content-Security-Policy" content="a wss://proxy.test"><link rel=icon href="` + up + `/i.ico"></head>` +
			`<body><a href="` + up + `/a">a</a>`},
		{pub, `<head><meta http-equiv="Content-Security-Policy" content="a wss://proxy.test"><link rel=icon href="` + pub + `/i.ico"></head>` +
			`<body><a href="` + pub + `/a">a</a>`},
	}
	for _, tc := range tests {
		u := NewURLRewriter(strings.NewReader(in), testOrigin(up), testOrigin(tc.to), WithMetaCSP(appendSource))
		if out, err := io.ReadAll(u); err != nil || string(out) != tc.want {
			t.Errorf("to %s: got %q (%v)\nwant %q", tc.to, out, err, tc.want)
		}
	}
}

func TestURLRewriterKeepsAMetaPolicyItCannotEdit(t *testing.T) {
	in := `<head><meta http-equiv="Content-Security-Policy" content="connect-src 'self'"><title>t</title>`
	refuse := func(string) (string, error) { return "", errors.New("refused") }
	u := NewURLRewriter(strings.NewReader(in), testOrigin(up), testOrigin(up), WithMetaCSP(refuse))
	if out, _ := io.ReadAll(u); string(out) != in {
		t.Fatalf("got %q, want %q", out, in)
	}
	if u.MetaCSPErr() == nil {
		t.Fatal("MetaCSPErr() = nil after a failed edit")
	}
}

// TestURLRewriterPolicyScanStreams checks that looking for policies in a
// head that arrives slowly holds nothing back but an unfinished <meta>.
func TestURLRewriterPolicyScanStreams(t *testing.T) {
	for _, tc := range []struct{ sent, want string }{
		{`<html><head><title>Slow title`, `<html><head><title>Slow title`},
		{`<html><head><link rel=icon href=/i.ico><meta http-equiv=`, `<html><head><link rel=icon href=/i.ico>`},
	} {
		src := &blockingAfter{data: []byte(tc.sent), release: make(chan struct{})}
		u := NewURLRewriter(src, testOrigin(up), testOrigin(up), WithMetaCSP(appendSource))
		if out := readWhileBlocked(t, u, len(tc.want)); out != tc.want {
			t.Errorf("after %q: got %q, want %q", tc.sent, out, tc.want)
		}
		close(src.release)
	}
}

// FuzzURLRewriterMetaCSP checks, for any document, that a URLRewriter with
// WithMetaCSP(appendSource) does not panic, gives the same output whatever
// the read sizes, and, against x/net/html: changes nothing but the content
// of <meta> policies (the token streams of its input and output differ only
// there), and edits every policy that html.Parse puts in the head.
func FuzzURLRewriterMetaCSP(f *testing.F) {
	for _, tc := range policyCases {
		if len(tc.in) < 1000 {
			f.Add([]byte(tc.in), false)
		}
	}
	f.Add([]byte(`<head><template><meta http-equiv=content-security-policy content=a></template><meta http-equiv=content-security-policy content=b>`), true)
	f.Fuzz(func(t *testing.T, input []byte, otherOrigin bool) {
		to := up
		if otherOrigin {
			to = pub
		}
		read := func(src io.Reader, opts ...RewriteOption) []byte {
			out, err := io.ReadAll(NewURLRewriter(src, testOrigin(up), testOrigin(to), opts...))
			if err != nil {
				t.Fatalf("ReadAll: %v", err)
			}
			return out
		}
		got := read(bytes.NewReader(input), WithMetaCSP(appendSource))
		if one := read(iotest.OneByteReader(bytes.NewReader(input)), WithMetaCSP(appendSource)); !bytes.Equal(one, got) {
			t.Fatalf("one byte at a time:\n got %q\nwant %q", one, got)
		}
		if withEnd := read(iotest.DataErrReader(bytes.NewReader(input)), WithMetaCSP(appendSource)); !bytes.Equal(withEnd, got) {
			t.Fatalf("the end with the last bytes:\n got %q\nwant %q", withEnd, got)
		}
		plain := read(bytes.NewReader(input))
		checkOnlyPoliciesEdited(t, plain, got)
		checkHeadPoliciesEdited(t, got)
	})
}

// checkOnlyPoliciesEdited checks that x/net/html's tokenizer finds the same
// tokens in in and out, except for <meta> policies whose content out has
// with policyMark appended.
func checkOnlyPoliciesEdited(t *testing.T, in, out []byte) {
	t.Helper()
	zin, zout := html.NewTokenizer(bytes.NewReader(in)), html.NewTokenizer(bytes.NewReader(out))
	for {
		ttIn, ttOut := zin.Next(), zout.Next()
		if ttIn != ttOut {
			t.Fatalf("token %v in the input, %v in the output:\n in: %q\nout: %q", ttIn, ttOut, in, out)
		}
		if ttIn == html.ErrorToken {
			return
		}
		rawIn, rawOut := string(zin.Raw()), string(zout.Raw())
		if rawIn == rawOut {
			continue
		}
		tokIn, tokOut := zin.Token(), zout.Token()
		want := slices.Clone(tokIn.Attr)
		if i := firstAttr(want, "content"); tokIn.DataAtom == atom.Meta && isPolicyMeta(want) && i >= 0 {
			want[i].Val += policyMark
		}
		if !slices.Equal(tokOut.Attr, want) || tokOut.Data != tokIn.Data {
			t.Fatalf("%q became %q: only a <meta> policy's content may change", rawIn, rawOut)
		}
	}
}

// checkHeadPoliciesEdited checks that every <meta> policy with a content
// that html.Parse puts in the head of out ends with policyMark. (A content
// attribute without a value is no policy: it is left alone.)
func checkHeadPoliciesEdited(t *testing.T, out []byte) {
	t.Helper()
	doc, err := html.Parse(bytes.NewReader(out))
	if err != nil {
		t.Fatalf("html.Parse: %v", err)
	}
	head := doc.FirstChild
	for head != nil && head.DataAtom != atom.Html {
		head = head.NextSibling
	}
	if head != nil {
		head = head.FirstChild // html.Parse always makes a head, first
	}
	if head == nil || head.DataAtom != atom.Head {
		return
	}
	for n := head.FirstChild; n != nil; n = n.NextSibling {
		if n.DataAtom != atom.Meta || !isPolicyMeta(n.Attr) {
			continue
		}
		if i := firstAttr(n.Attr, "content"); i >= 0 && n.Attr[i].Val != "" && !strings.HasSuffix(n.Attr[i].Val, policyMark) {
			t.Fatalf("a <meta> policy in the head was not edited: %q\nin %q", n.Attr[i].Val, out)
		}
	}
}

// isPolicyMeta reports whether the attributes of a <meta> make it a
// Content-Security-Policy, as isPolicyPragma reads them.
func isPolicyMeta(attrs []html.Attribute) bool {
	i := firstAttr(attrs, "http-equiv")
	return i >= 0 && strings.EqualFold(strings.Trim(attrs[i].Val, " \t\n\f\r"), "content-security-policy")
}

// firstAttr returns the index of the first attribute named key, or -1.
func firstAttr(attrs []html.Attribute, key string) int {
	return slices.IndexFunc(attrs, func(a html.Attribute) bool { return a.Key == key })
}

// BenchmarkHeadPolicies measures what looking for <meta> policies costs the
// proxy on a 100 KB page whose head holds 30 KB of inline script and style,
// as pages with analytics snippets and critical CSS have: the Injector and
// then a URLRewriter from and to the same origin with WithMetaCSP, as the
// proxy chains them, against the Injector alone.
func BenchmarkHeadPolicies(b *testing.B) {
	head := `<!doctype html><html><head><meta charset="utf-8"><title>Shop</title>` +
		`<script>` + strings.Repeat("window.dataLayer.push({event: 'view', value: 12345});\n", 380) + `</script>` +
		`<style>` + strings.Repeat(".card{margin:0 auto;padding:4px 8px}\n", 300) + `</style></head>`
	const line = "<p>Some text, <a href=/p/1>a link</a>.</p>\n"
	page := []byte(head + "<body>" + strings.Repeat(line, (100<<10-len(head))/len(line)) + "</body></html>")
	snippet := []byte(testSnippet)
	b.Run("injector and policies", func(b *testing.B) {
		benchmarkPage(b, page, func(r io.Reader) io.Reader {
			return NewURLRewriter(NewInjector(r, snippet), testOrigin(up), testOrigin(up), WithMetaCSP(appendSource))
		})
	})
	b.Run("injector only", func(b *testing.B) {
		benchmarkPage(b, page, func(r io.Reader) io.Reader { return NewInjector(r, snippet) })
	})
}

// TestLeavesHead checks leavesHead on every name it knows, in several
// cases, and on names it must not take for one of them.
func TestLeavesHead(t *testing.T) {
	stays := []string{"base", "basefont", "bgsound", "head", "html", "link", "meta", "noframes", "noscript", "script", "style", "template", "title"}
	for _, name := range stays {
		for _, written := range []string{name, strings.ToUpper(name), strings.ToUpper(name[:1]) + name[1:]} {
			if leavesHead([]byte(written), true) {
				t.Errorf("<%s> leaves the head", written)
			}
		}
	}
	for _, name := range []string{"", "body", "BODY", "br", "p", "div", "img", "svg", "frameset", "metas", "basefonts", "noscript1", "x-meta"} {
		if !leavesHead([]byte(name), true) {
			t.Errorf("<%s> does not leave the head", name)
		}
	}
	for _, name := range []string{"body", "Body", "html", "HTML", "br", "bR"} {
		if !leavesHead([]byte(name), false) {
			t.Errorf("</%s> does not leave the head", name)
		}
	}
	for _, name := range []string{"", "head", "HEAD", "p", "div", "title", "template", "bodyy", "b", "htm"} {
		if leavesHead([]byte(name), false) {
			t.Errorf("</%s> leaves the head", name)
		}
	}
}
