package rewrite

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// markURL maps every URL to <URL>, except "keep", which it leaves.
func markURL(ref string) (string, bool) {
	if ref == "keep" {
		return "", false
	}
	return "<" + ref + ">", true
}

var cssURLCases = []struct {
	name, in, want string
}{
	{"unquoted", `a{background:url(a.png)}`, `a{background:url("<a.png>")}`},
	{"single quotes", `a{b:url('a.png')}`, `a{b:url("<a.png>")}`},
	{"double quotes and spaces", `a{b:url( "a.png" )}`, `a{b:url( "<a.png>" )}`},
	{"spaces around unquoted", "a{b:url(  a.png\t)}", `a{b:url("<a.png>")}`},
	{"upper case", `a{b:URL(a.png)}`, `a{b:URL("<a.png>")}`},
	{"escaped function name", `a{b:u\72l(a.png) u\0052 L(b)}`, `a{b:u\72l("<a.png>") u\0052 L("<b>")}`},
	{"escaped paren in unquoted", `url(a\)b.png)`, `url("<a)b.png>")`},
	{"escaped quote in string", `url("a\"b")`, `url("<a\"b>")`},
	{"hex escape with its space", `url(\61 .png)`, `url("<a.png>")`},
	{"hex escape with CRLF", "url(\\61\r\n.png)", `url("<a.png>")`},
	{"zero escape is U+FFFD", `url(a\0 b)`, "url(\"<a\uFFFDb>\")"},
	{"NUL byte is U+FFFD", "url(a\x00b)", "url(\"<a\uFFFDb>\")"},
	{"escaped newline in a string", "url(\"a\\\nb\")", `url("<ab>")`},
	{"comment inside unquoted url is the URL", `url(/*x*/a.png)`, `url("</*x*/a.png>")`},
	{"data URL goes to mapURL", `url(data:image/png;base64,AAAA)`, `url("<data:image/png;base64,AAAA>")`},
	{"several", `a{b:url(1)}c{d:url("2"),url('3')}`, `a{b:url("<1>")}c{d:url("<2>"),url("<3>")}`},

	{"import string", `@import "a.css";`, `@import "<a.css>";`},
	{"import single-quoted, upper case", `@IMPORT 'a.css' screen;`, `@IMPORT "<a.css>" screen;`},
	{"import after a comment", `@import /* c */ "a.css";`, `@import /* c */ "<a.css>";`},
	{"import url", `@import url(a.css) layer(x);`, `@import url("<a.css>") layer(x);`},
	{"escaped import", `@\69mport "a.css";`, `@\69mport "<a.css>";`},
	{"import's second string is no URL", `@import "a.css" supports(display: "x");`, `@import "<a.css>" supports(display: "x");`},

	{"image-set strings", `a{b:image-set("a.png" 1x, url(b.png) 2x)}`, `a{b:image-set("<a.png>" 1x, url("<b.png>") 2x)}`},
	{"webkit image-set", `a{b:-webkit-image-set('a.png' 1x)}`, `a{b:-webkit-image-set("<a.png>" 1x)}`},
	{"image-set after a nested function", `a{b:image-set(linear-gradient(red, blue) 1x, "a.png" 2x)}`, `a{b:image-set(linear-gradient(red, blue) 1x, "<a.png>" 2x)}`},
	{"string after image-set closed", `a{b:image-set("a" 1x) "b"}`, `a{b:image-set("<a>" 1x) "b"}`},
	{"string in a function inside image-set", `a{b:image-set(f("a") 1x)}`, `a{b:image-set(f("a") 1x)}`},

	{"comment", `/* url(a.png) @import "b"; */ a{}`, `/* url(a.png) @import "b"; */ a{}`},
	{"unclosed comment", `a{} /* url(a.png)`, `a{} /* url(a.png)`},
	{"string that is not a URL", `a::before{content:"url(a.png)"}`, `a::before{content:"url(a.png)"}`},
	{"font-face", `@font-face{font-family:"url(x)";src:local("A"),url(f.woff2) format("woff2")}`, `@font-face{font-family:"url(x)";src:local("A"),url("<f.woff2>") format("woff2")}`},
	{"media block strings", `@media print{.x{content:"a.css"}}`, `@media print{.x{content:"a.css"}}`},
	{"namespace url", `@namespace svg url(http://www.w3.org/2000/svg); a{b:url(c)}`, `@namespace svg url(http://www.w3.org/2000/svg); a{b:url("<c>")}`},
	{"namespace string", `@namespace "http://www.w3.org/1999/xhtml"; a{}`, `@namespace "http://www.w3.org/1999/xhtml"; a{}`},
	{"other function names", `a{b:myurl(a) -url(b) --url(c) _url(d) url2(e)}`, `a{b:myurl(a) -url(b) --url(c) _url(d) url2(e)}`},
	{"hash, number, dimension", `a{b:#url(a) 1url(b) 1.5url(c) 1e3url(d)}`, `a{b:#url(a) 1url(b) 1.5url(c) 1e3url(d)}`},
	{"not a function", `a{b:url (a) url\(a)}`, `a{b:url (a) url\(a)}`},
	{"plus before url", `a{b:+url(a)}`, `a{b:+url("<a>")}`},
	{"local references", `a{mask:url(#m) url( "#n") url() url("")}`, `a{mask:url(#m) url( "#n") url() url("")}`},
	{"kept", `a{b:url(keep) url( "keep" ) @import 'keep'}`, `a{b:url(keep) url( "keep" ) @import 'keep'}`},

	{"bad url: space inside", `a{b:url(a b) url(c)}`, `a{b:url(a b) url("<c>")}`},
	{"bad url: quote", `a{b:url(a"b) url(c)}`, `a{b:url(a"b) url("<c>")}`},
	{"bad url: open paren", `a{b:url(a(b) url(c)}`, `a{b:url(a(b) url("<c>")}`},
	{"bad url: control", "a{b:url(a\x01b) url(c)}", "a{b:url(a\x01b) url(\"<c>\")}"},
	{"bad url: escaped newline", "a{b:url(a\\\nb) url(c)}", "a{b:url(a\\\nb) url(\"<c>\")}"},
	{"bad url remnants skip escaped paren", `a{b:url(a b\) url(c)) url(d)}`, `a{b:url(a b\) url(c)) url("<d>")}`},
	{"bad string", "@import \"a.css\n; a{b:url(c)}", "@import \"a.css\n; a{b:url(\"<c>\")}"},
	{"bad string in url()", "a{b:url(\"a\n)} c{d:url(e)}", "a{b:url(\"a\n)} c{d:url(\"<e>\")}"},
	{"a quote after a bad string opens a string", "@import \"a\n\"; a{b:url(c)}", "@import \"a\n\"; a{b:url(c)}"},

	{"ends inside unquoted url", `a{b:url(a.png`, `a{b:url("<a.png>"`},
	{"ends after spaces in url", `a{b:url(a.png  `, `a{b:url("<a.png>"`},
	{"ends inside a string", `@import "a.css`, `@import "<a.css>"`},
	{"ends after a backslash in a string", `@import "a\`, `@import "<a>"`},
	{"ends after url(", `a{b:url(`, `a{b:url(`},
	{"empty", ``, ``},
}

func TestAppendCSSURLs(t *testing.T) {
	for _, tc := range cssURLCases {
		t.Run(tc.name, func(t *testing.T) {
			got := string(AppendCSSURLs(nil, []byte(tc.in), markURL))
			if got != tc.want {
				t.Errorf("AppendCSSURLs(%q)\n got %q\nwant %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestAppendCSSURLsAppends(t *testing.T) {
	got := AppendCSSURLs([]byte("prefix;"), []byte("a{b:url(c)}"), markURL)
	if want := `prefix;a{b:url("<c>")}`; string(got) != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// The replacement is written as a CSS string that reads back as itself.
func TestAppendCSSURLsEscapesTheReplacement(t *testing.T) {
	weird := "a\"b\\c\nd\re\ff\tg\x01h\x7fi'j(k)l m é/*n*/"
	got := AppendCSSURLs(nil, []byte("a{b:url(x)}"), func(string) (string, bool) { return weird, true })
	want := `a{b:url("a\"b\\c\a d\d e\c f\9 g\1 h\7f i'j(k)l m é/*n*/")}`
	if string(got) != want {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
	if refs := cssRefs(got); !slices.Equal(refs, []string{weird}) {
		t.Errorf("read back as %q, want %q", refs, weird)
	}
}

// cssRefs returns the URLs AppendCSSURLs finds in css, in order.
func cssRefs(css []byte) []string {
	var refs []string
	AppendCSSURLs(nil, css, func(ref string) (string, bool) {
		refs = append(refs, ref)
		return "", false
	})
	return refs
}

func FuzzAppendCSSURLs(f *testing.F) {
	for _, tc := range cssURLCases {
		f.Add([]byte(tc.in))
	}
	f.Add([]byte(`@charset "utf-8"; @import url("x.css") print; @font-face { src: url(a.woff2) format("woff2"), url('b.ttf'); } .a { background: image-set("c.png" 1x, url(d.png) 2x) no-repeat, url(#e); } /* url(f) */`))
	// Replacements with every character that needs care in a CSS string.
	markers := []string{"m0", `m1"'\`, "m2\n\r\f\t", "m3()/**/ é", "m4\x01\x7f#"}
	f.Fuzz(func(t *testing.T, css []byte) {
		// Nothing mapped: the output is the input.
		if got := AppendCSSURLs(nil, css, func(string) (string, bool) { return "", false }); !bytes.Equal(got, css) {
			t.Fatalf("with nothing mapped, the output differs:\n in: %q\nout: %q", css, got)
		}
		// Every URL written back as itself reads back as itself: the
		// escaping is right, and no token around a URL changed.
		var refs []string
		same := AppendCSSURLs(nil, css, func(ref string) (string, bool) {
			if strings.HasPrefix(ref, "#") || strings.TrimLeft(ref, "\x00\x01\x02\x03\x04\x05\x06\x07\x08\t\n\v\f\r\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f ") == "" {
				t.Fatalf("mapURL got the local reference %q", ref)
			}
			refs = append(refs, ref)
			return ref, true
		})
		if again := cssRefs(same); !slices.Equal(again, refs) {
			t.Fatalf("URLs written back as themselves read back differently:\n in: %q\nout: %q\nfound %q\n then %q", css, same, refs, again)
		}
		// Replacements are found again where they were written, in order.
		var want []string
		marked := AppendCSSURLs(nil, css, func(string) (string, bool) {
			m := markers[len(want)%len(markers)] + fmt.Sprint(len(want))
			want = append(want, m)
			return m, true
		})
		if len(want) != len(refs) {
			t.Fatalf("mapURL called %d times, then %d times for the same input %q", len(refs), len(want), css)
		}
		if got := cssRefs(marked); !slices.Equal(got, want) {
			t.Fatalf("replacements read back differently:\n in: %q\nout: %q\nwrote %q\nfound %q", css, marked, want, got)
		}
	})
}

func BenchmarkAppendCSSURLs(b *testing.B) {
	var css bytes.Buffer
	for i := range 200 {
		fmt.Fprintf(&css, ".c%d { background: url(\"/img/%d.png\") no-repeat; font: 12px/1.4 \"Helvetica Neue\", sans-serif; content: \"url(x)\"; }\n", i, i)
	}
	css.WriteString(`@font-face { font-family: X; src: url(/f.woff2) format("woff2"); }`)
	mapped := func(ref string) (string, bool) { return "/api/sessions/s/asset?url=" + ref, true }
	dst := make([]byte, 0, 2*css.Len())
	b.SetBytes(int64(css.Len()))
	b.ReportAllocs()
	for b.Loop() {
		dst = AppendCSSURLs(dst[:0], css.Bytes(), mapped)
	}
}
