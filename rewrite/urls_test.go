package rewrite

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"golang.org/x/net/html"
)

// The origins of urlCases: up is the upstream's, as pages write it, pub the
// proxy's.
const (
	up  = "https://backend.internal:8443"
	pub = "http://shop.example.com"
)

// urlCases are documents and what a URLRewriter from up to pub makes of them
// (want "" for unchanged), or from and to other origins where given. They
// also seed FuzzURLRewriter.
var urlCases = []urlCase{
	{name: "href", in: `<a href="` + up + `/p?q=1#f">x</a>`, want: `<a href="` + pub + `/p?q=1#f">x</a>`},
	{name: "src", in: `<img src="` + up + `/i.png" alt="">`, want: `<img src="` + pub + `/i.png" alt="">`},
	{name: "action", in: `<form method=post action="` + up + `/cart">`, want: `<form method=post action="` + pub + `/cart">`},
	{name: "formaction", in: `<button formaction='` + up + `/buy'>`, want: `<button formaction='` + pub + `/buy'>`},
	{name: "poster", in: `<video poster="` + up + `/v.jpg">`, want: `<video poster="` + pub + `/v.jpg">`},
	{name: "cite", in: `<q cite="` + up + `/src">q</q>`, want: `<q cite="` + pub + `/src">q</q>`},
	{name: "background", in: `<body background="` + up + `/bg.gif">`, want: `<body background="` + pub + `/bg.gif">`},
	{name: "longdesc", in: `<img longdesc="` + up + `/d">`, want: `<img longdesc="` + pub + `/d">`},
	{name: "xlink:href", in: `<svg><use xlink:href="` + up + `/s.svg#i"/></svg>`, want: `<svg><use xlink:href="` + pub + `/s.svg#i"/></svg>`},
	{name: "object data", in: `<object data="` + up + `/m.swf"></object>`, want: `<object data="` + pub + `/m.swf"></object>`},
	{name: "data elsewhere is not a URL", in: `<div data="` + up + `/x">`},
	{name: "base href", in: `<head><base href="` + up + `/">`, want: `<head><base href="` + pub + `/">`},
	{name: "link and script src", in: `<link rel=stylesheet href="` + up + `/a.css"><script src="` + up + `/a.js"></script>`,
		want: `<link rel=stylesheet href="` + pub + `/a.css"><script src="` + pub + `/a.js"></script>`},
	{name: "other attributes kept", in: `<a  class="x"  HREF = "` + up + `/" data-y='1' >`, want: `<a  class="x"  HREF = "` + pub + `/" data-y='1' >`},
	{name: "several in one tag", in: `<img src="` + up + `/a" longdesc="` + up + `/b">`, want: `<img src="` + pub + `/a" longdesc="` + pub + `/b">`},
	{name: "just the origin", in: `<a href="` + up + `">`, want: `<a href="` + pub + `">`},
	{name: "query and fragment after the origin", in: `<a href="` + up + `?a=1"><a href="` + up + `#top">`, want: `<a href="` + pub + `?a=1"><a href="` + pub + `#top">`},

	{name: "srcset", in: `<img srcset="` + up + `/a.jpg 1x, /b.jpg 2x,` + up + `/c.jpg 3x">`,
		want: `<img srcset="` + pub + `/a.jpg 1x, /b.jpg 2x,` + pub + `/c.jpg 3x">`},
	{name: "srcset widths and spacing", in: "<img srcset=\"\n  " + up + "/a.jpg 480w,\n  " + up + "/b.jpg   800w ,  " + up + "/c.jpg\">",
		want: "<img srcset=\"\n  " + pub + "/a.jpg 480w,\n  " + pub + "/b.jpg   800w ,  " + pub + "/c.jpg\">"},
	{name: "srcset trailing commas", in: `<img srcset="` + up + `/a.jpg,, ` + up + `/b.jpg">`, want: `<img srcset="` + pub + `/a.jpg,, ` + pub + `/b.jpg">`},
	{name: "srcset comma inside a URL", in: `<img srcset="` + up + `/a.jpg,` + up + `/b.jpg 2x">`, want: `<img srcset="` + pub + `/a.jpg,` + up + `/b.jpg 2x">`},
	{name: "srcset parenthesised descriptor", in: `<img srcset="/a.jpg (x, ` + up + `/y) 1x, ` + up + `/b.jpg">`, want: `<img srcset="/a.jpg (x, ` + up + `/y) 1x, ` + pub + `/b.jpg">`},
	{name: "srcset after a data URL", in: `<img srcset="data:image/png;base64,AAA= 1x, ` + up + `/b.png 2x">`, want: `<img srcset="data:image/png;base64,AAA= 1x, ` + pub + `/b.png 2x">`},
	{name: "link imagesrcset", in: `<link rel=preload as=image imagesrcset="` + up + `/a.jpg 1x, ` + up + `/b.jpg 2x">`, want: `<link rel=preload as=image imagesrcset="` + pub + `/a.jpg 1x, ` + pub + `/b.jpg 2x">`},
	{name: "source srcset", in: `<picture><source srcset='` + up + `/w.webp' type=image/webp>`, want: `<picture><source srcset='` + pub + `/w.webp' type=image/webp>`},

	{name: "meta refresh", in: `<meta http-equiv="refresh" content="5; url=` + up + `/next">`, want: `<meta http-equiv="refresh" content="5; url=` + pub + `/next">`},
	{name: "meta refresh quoted URL", in: `<META HTTP-EQUIV=Refresh CONTENT="0;URL='` + up + `/x'">`, want: `<META HTTP-EQUIV=Refresh CONTENT="0;URL='` + pub + `/x'">`},
	{name: "meta refresh without url=", in: `<meta content='3, ` + up + `/' http-equiv='REFRESH'>`, want: `<meta content='3, ` + pub + `/' http-equiv='REFRESH'>`},
	{name: "meta refresh spaces around =", in: `<meta http-equiv=refresh content="1.5 ; url = '` + up + `/'">`, want: `<meta http-equiv=refresh content="1.5 ; url = '` + pub + `/'">`},
	{name: "meta refresh with character references", in: `<meta http-equiv=refresh content="1; url=&quot;` + up + `/&quot;">`},
	{name: "meta refresh url without =", in: `<meta http-equiv=refresh content="1; url ` + up + `/">`},
	{name: "meta refresh double quotes inside single", in: `<meta http-equiv=refresh content='2;url="` + up + `/q"'>`, want: `<meta http-equiv=refresh content='2;url="` + pub + `/q"'>`},
	{name: "meta refresh without delay", in: `<meta http-equiv="refresh" content="url=` + up + `/">`},
	{name: "meta refresh delay only", in: `<meta http-equiv="refresh" content="5">`},
	{name: "meta content that is not a refresh", in: `<meta property="og:url" content="` + up + `/p"><meta http-equiv="content-type" content="0; url=` + up + `/">`},
	{name: "content elsewhere", in: `<div http-equiv=refresh content="0; url=` + up + `/">`},

	{name: "case of names and origin", in: `<A HREF="HTTPS://Backend.INTERNAL:8443/Path">`, want: `<A HREF="` + pub + `/Path">`},
	{name: "leading and trailing spaces", in: "<a href=\" \n\t" + up + "/x \">", want: "<a href=\" \n\t" + pub + "/x \">"},
	{name: "zero-padded port", in: `<a href="https://backend.internal:08443/">`, want: `<a href="` + pub + `/">`},
	{name: "backslashes and extra slashes", in: `<a href="https:\\backend.internal:8443\x"><a href="https:///backend.internal:8443/y">`,
		want: `<a href="` + pub + `\x"><a href="` + pub + `/y">`},
	{name: "default port written", from: "https://example.com", in: `<a href="https://example.com:443/a">`, want: `<a href="` + pub + `/a">`},
	{name: "default port in from", from: "https://Example.com:443", to: "https://proxy.test:8443", in: `<a href="https://EXAMPLE.com/a">`, want: `<a href="https://proxy.test:8443/a">`},
	{name: "to with default port", from: "http://example.com", to: "https://proxy.test:443", in: `<a href="http://example.com:80/a">`, want: `<a href="https://proxy.test/a">`},
	{name: "empty port", from: "http://example.com", in: `<a href="http://example.com:/a">`, want: `<a href="` + pub + `/a">`},
	{name: "IPv6", from: "http://[::1]:8080", in: `<a href="http://[::1]:8080/a"><a href="http://[::1]/b">`, want: `<a href="` + pub + `/a"><a href="http://[::1]/b">`},
	{name: "protocol-relative", in: `<script src="//backend.internal:8443/app.js"></script>`, want: `<script src="//shop.example.com/app.js"></script>`},
	{name: "protocol-relative with backslashes", in: `<img src="\\backend.internal:8443/i">`, want: `<img src="//shop.example.com/i">`},

	{name: "other port", in: `<a href="https://backend.internal/">`},
	{name: "other scheme", in: `<a href="http://backend.internal:8443/">`},
	{name: "longer host", in: `<a href="https://backend.internal.evil.test:8443/"><a href="https://evil.backend.internal:8443/">`},
	{name: "host with trailing dot", in: `<a href="https://backend.internal.:8443/">`},
	{name: "longer port", in: `<a href="https://backend.internal:84430/">`},
	{name: "long zero-padded port", in: `<a href="https://backend.internal:000000000008443/">`, want: `<a href="` + pub + `/">`},
	{name: "credentials", in: `<a href="https://user:pw@backend.internal:8443/"><a href=//@backend.internal:8443>`, want: `<a href="http://user:pw@shop.example.com/"><a href=//@shop.example.com>`},
	{name: "credentials naming the host", in: `<a href="https://backend.internal:8443@evil.test/"><a href="https://backend.internal:8443:x@evil.test/">`},
	{name: "protocol-relative with extra slashes", in: `<a href="\\/backend.internal:8443/">`, want: `<a href="//shop.example.com/">`},
	{name: "relative URLs", in: `<a href="/x"><a href="x/` + up + `"><a href="?u=` + up + `"><a href="#` + up + `">`},
	{name: "one slash", in: `<a href="https:/backend.internal:8443/">`},
	{name: "javascript", in: `<a href="javascript:location='` + up + `/'">`},
	{name: "character references", in: `<a href="https:&#x2F;&#x2F;backend.internal:8443/"><a href="` + up + `&#x2F;x">`},
	{name: "other attribute", in: `<a title="` + up + `/" data-href="` + up + `/">`},
	{name: "text", in: `<p>See ` + up + `/x and href="` + up + `/y"</p>`},
	{name: "end tag attributes", in: `</a href="` + up + `/"><br>`},

	{name: "unquoted value", in: `<a href=` + up + `/x>t</a>`, want: `<a href=` + pub + `/x>t</a>`},
	{name: "unquoted value before another attribute", in: `<a href=` + up + ` id=x>`, want: `<a href=` + pub + ` id=x>`},
	{name: "> in quoted values", in: `<a title="a>b" href='` + up + `/>'>`, want: `<a title="a>b" href='` + pub + `/>'>`},
	{name: "quote inside unquoted value", in: `<a title=a"b href="` + up + `/">`, want: `<a title=a"b href="` + pub + `/">`},
	{name: "self-closing", in: `<img src="` + up + `/a"/><img/src="` + up + `/b">`, want: `<img src="` + pub + `/a"/><img/src="` + pub + `/b">`},
	{name: "attribute after a quoted value without space", in: `<img alt="x"src="` + up + `/a">`, want: `<img alt="x"src="` + pub + `/a">`},
	{name: "attribute name starting with =", in: `<a =href="` + up + `/">`},
	{name: "attribute without value", in: `<a href id="` + up + `/">`},
	{name: "duplicate attribute", in: `<a href="/a" HREF="` + up + `/"><a href="` + up + `/" href="` + up + `/">`, want: `<a href="/a" HREF="` + up + `/"><a href="` + pub + `/" href="` + up + `/">`},
	{name: "duplicate http-equiv", in: `<meta http-equiv=x http-equiv=refresh content="0; url=` + up + `/">`},
	{name: "unterminated tag at the end", in: `<p>x</p><a href="` + up + `/"`},
	{name: "unterminated value at the end", in: `<a href="` + up + `/`},
	{name: "less-than not a tag", in: `a < b <1 <= <a href="` + up + `/">`, want: `a < b <1 <= <a href="` + pub + `/">`},

	{name: "comment", in: `<!-- <a href="` + up + `/"> --><a href="` + up + `/">`, want: `<!-- <a href="` + up + `/"> --><a href="` + pub + `/">`},
	{name: "comment with dashes", in: `<!-- -- - --!><a href="` + up + `/">`, want: `<!-- -- - --!><a href="` + pub + `/">`},
	{name: "comment ending with --->", in: `<!-- x ---><a href="` + up + `/">`, want: `<!-- x ---><a href="` + pub + `/">`},
	{name: "abrupt comments", in: `<!--><a href="` + up + `/a"><!---><a href="` + up + `/b">`, want: `<!--><a href="` + pub + `/a"><!---><a href="` + pub + `/b">`},
	{name: "unterminated comment", in: `<!-- <a href="` + up + `/">`},
	{name: "doctype and processing instruction", in: `<!DOCTYPE html><?xml href="` + up + `/"?><a href="` + up + `/">`, want: `<!DOCTYPE html><?xml href="` + up + `/"?><a href="` + pub + `/">`},
	{name: "bogus comment", in: `<! <a href="` + up + `/">`},
	{name: "CDATA is a bogus comment", in: `<![CDATA[<a href="` + up + `/">]]>`},
	{name: "bogus end tag", in: `</ <a href="` + up + `/"></><a href="` + up + `/">`, want: `</ <a href="` + up + `/"></><a href="` + pub + `/">`},

	{name: "script", in: `<script>var a = '<a href="` + up + `/">';</script><a href="` + up + `/">`,
		want: `<script>var a = '<a href="` + up + `/">';</script><a href="` + pub + `/">`},
	{name: "split end tag in a script", in: `<script>document.write("<a href='` + up + `/'></scr" + "ipt>")</script><a href="` + up + `/">`,
		want: `<script>document.write("<a href='` + up + `/'></scr" + "ipt>")</script><a href="` + pub + `/">`},
	{name: "end tag with space and case", in: `<script>x</SCRIPT ><a href="` + up + `/">`, want: `<script>x</SCRIPT ><a href="` + pub + `/">`},
	{name: "end tag with attributes", in: `<script>x</script title=">"><a href="` + up + `/">`, want: `<script>x</script title=">"><a href="` + pub + `/">`},
	{name: "not the end tag", in: `<script></scripts><a href="` + up + `/"></script>`},
	{name: "script escaped", in: `<script><!-- <a href="` + up + `/"> --></script><a href="` + up + `/">`,
		want: `<script><!-- <a href="` + up + `/"> --></script><a href="` + pub + `/">`},
	{name: "script double escaped", in: `<script><!--<script>document.write('</script><a href="` + up + `/">')--></script><img src="` + up + `/">`,
		want: `<script><!--<script>document.write('</script><a href="` + up + `/">')--></script><img src="` + pub + `/">`},
	{name: "script double escaped until -->", in: `<script><!--<script></script>--><a href="` + up + `/"></script>`},
	{name: "script escape ended by -->", in: `<script><!--x--></script><a href="` + up + `/">`, want: `<script><!--x--></script><a href="` + pub + `/">`},
	{name: "script src and raw text", in: `<script src="` + up + `/a.js">"` + up + `/"</script>`, want: `<script src="` + pub + `/a.js">"` + up + `/"</script>`},
	{name: "self-closing script is still raw", in: `<script/><a href="` + up + `/">`},
	{name: "unterminated script", in: `<script><a href="` + up + `/">`},
	{name: "style", in: `<style>a{background:url(` + up + `/a.png)}</style><style>"</style><a href="` + up + `/">`,
		want: `<style>a{background:url(` + up + `/a.png)}</style><style>"</style><a href="` + pub + `/">`},
	{name: "textarea", in: `<textarea><a href="` + up + `/"></TextArea><a href="` + up + `/">`, want: `<textarea><a href="` + up + `/"></TextArea><a href="` + pub + `/">`},
	{name: "title", in: `<title><a href="` + up + `/"></title/><a href="` + up + `/">`, want: `<title><a href="` + up + `/"></title/><a href="` + pub + `/">`},
	{name: "other raw text elements", in: `<xmp><a href="` + up + `/"></xmp><iframe><a href="` + up + `/"></iframe><noembed><a href="` + up + `/"></noembed><noframes><a href="` + up + `/"></noframes><noscript><a href="` + up + `/"></noscript>`},
	{name: "raw text end tag needs a delimiter", in: `<title></title</title><a href="` + up + `/">`, want: `<title></title</title><a href="` + pub + `/">`},
	{name: "plaintext", in: `<plaintext></plaintext><a href="` + up + `/">`},
	{name: "template content is markup", in: `<template><a href="` + up + `/"></template>`, want: `<template><a href="` + pub + `/"></template>`},

	{name: "empty", in: ``},
	{name: "text only", in: "hello, world\n"},
	{name: "non-UTF-8 bytes", in: "<p title=\"caf\xe9\">\x93\xfa</p><a href=\"" + up + "/\xe9\">", want: "<p title=\"caf\xe9\">\x93\xfa</p><a href=\"" + pub + "/\xe9\">"},
	{name: "CR", in: "<a\rhref=\r\"" + up + "/\"\r>", want: "<a\rhref=\r\"" + pub + "/\"\r>"},
}

type urlCase struct {
	name, in, want string
	from, to       string
}

// origins returns the origins of a urlCases entry.
func (tc *urlCase) origins() (from, to string) {
	from, to = tc.from, tc.to
	if from == "" {
		from = up
	}
	if to == "" {
		to = pub
	}
	return from, to
}

// urlResult is everything observable about one run of a URLRewriter.
type urlResult struct {
	out       string
	rewritten int64
	err       string
}

// testOrigin returns what ParseOrigin makes of s: the zero Origin if s is
// not an http or https origin.
func testOrigin(s string) Origin {
	o, _ := ParseOrigin(s)
	return o
}

func runURLs(t testing.TB, src io.Reader, from, to string, maxTag int) urlResult {
	t.Helper()
	u := newURLRewriter(src, testOrigin(from), testOrigin(to), maxTag)
	out, err := io.ReadAll(u)
	if err != nil {
		t.Fatalf("ReadAll: %v", err)
	}
	return urlResult{string(out), u.Rewritten(), fmt.Sprint(u.Err())}
}

func TestURLRewriter(t *testing.T) {
	for _, tc := range urlCases {
		t.Run(tc.name, func(t *testing.T) {
			from, to := tc.origins()
			want := tc.want
			if want == "" {
				want = tc.in
			}
			got := runURLs(t, strings.NewReader(tc.in), from, to, MaxTokenSize)
			if got.out != want {
				t.Errorf("got  %q\nwant %q", got.out, want)
			}
			if got.err != "<nil>" {
				t.Errorf("Err() = %s", got.err)
			}
			if n := checkSplice(t, []byte(tc.in), []byte(got.out), from, to); n >= 0 && int64(n) != got.rewritten {
				t.Errorf("Rewritten() = %d, but %d URLs differ", got.rewritten, n)
			}
		})
	}
}

// TestURLRewriterReaders checks that how the source splits its data, or
// returns its final data together with io.EOF, changes nothing.
func TestURLRewriterReaders(t *testing.T) {
	readers := map[string]func(io.Reader) io.Reader{
		"OneByteReader": iotest.OneByteReader,
		"HalfReader":    iotest.HalfReader,
		"DataErrReader": iotest.DataErrReader,
	}
	for _, tc := range urlCases {
		from, to := tc.origins()
		want := runURLs(t, strings.NewReader(tc.in), from, to, MaxTokenSize)
		for name, wrap := range readers {
			t.Run(tc.name+"/"+name, func(t *testing.T) {
				if got := runURLs(t, wrap(strings.NewReader(tc.in)), from, to, MaxTokenSize); got != want {
					t.Errorf("got %+v\nwant %+v", got, want)
				}
			})
		}
	}
}

// TestURLRewriterSourceError checks that a source error is passed on once,
// after exactly the bytes the source returned before it, and that nothing is
// lost or duplicated: iotest.TimeoutReader fails its second Read only.
func TestURLRewriterSourceError(t *testing.T) {
	for _, tc := range urlCases {
		t.Run(tc.name, func(t *testing.T) {
			from, to := tc.origins()
			want := runURLs(t, strings.NewReader(tc.in), from, to, MaxTokenSize)
			u := NewURLRewriter(iotest.TimeoutReader(strings.NewReader(tc.in)), testOrigin(from), testOrigin(to))
			var out bytes.Buffer
			timeouts := 0
			buf := make([]byte, 7)
			for {
				n, err := u.Read(buf)
				out.Write(buf[:n])
				if err == io.EOF {
					break
				}
				if err != nil {
					if !errors.Is(err, iotest.ErrTimeout) || n != 0 {
						t.Fatalf("Read = %d, %v", n, err)
					}
					// The first Read returned the whole input.
					if out.String() != want.out {
						t.Errorf("before the error: got %q, want %q", out.String(), want.out)
					}
					timeouts++
				}
			}
			if len(tc.in) > 0 && timeouts != 1 {
				t.Errorf("got %d timeouts, want 1", timeouts)
			}
			if out.String() != want.out {
				t.Errorf("got %q, want %q", out.String(), want.out)
			}
		})
	}
}

// chunks returns its chunks, one per Read, and after each the error at the
// same index, if any.
type chunks struct {
	data []string
	errs []error
}

func (c *chunks) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.data[0])
	if c.data[0] = c.data[0][n:]; c.data[0] != "" {
		return n, nil
	}
	c.data = c.data[1:]
	var err error
	if len(c.errs) > 0 {
		err, c.errs = c.errs[0], c.errs[1:]
	}
	return n, err
}

// TestURLRewriterErrorInsideATag checks that an error in the middle of a tag
// comes after the bytes before it: the tag is then passed through unchanged,
// and rewriting goes on after it.
func TestURLRewriterErrorInsideATag(t *testing.T) {
	errBroken := errors.New("broken")
	src := &chunks{
		data: []string{`<p>x<a href="` + up + `/a"><img src="` + up, `/b">` + `<a href="` + up + `/c">`},
		errs: []error{errBroken},
	}
	u := NewURLRewriter(src, testOrigin(up), testOrigin(pub))
	buf := make([]byte, 1024)
	var got []string
	for {
		n, err := u.Read(buf)
		if n > 0 {
			got = append(got, string(buf[:n]))
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			got = append(got, "error: "+err.Error())
		}
	}
	want := []string{`<p>x<a href="` + pub + `/a"><img src="` + up, "error: broken", `/b">` + `<a href="` + pub + `/c">`}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

// TestURLRewriterStreams checks that text and complete tags come out while
// the source blocks: only an incomplete start tag is held back.
func TestURLRewriterStreams(t *testing.T) {
	src := &blockingAfter{data: []byte(`<p>Slow <a href="` + up + `/a">page</a> text <img src="` + up), release: make(chan struct{})}
	defer close(src.release)
	u := NewURLRewriter(src, testOrigin(up), testOrigin(pub))
	want := `<p>Slow <a href="` + pub + `/a">page</a> text `
	if out := readWhileBlocked(t, u, len(want)); out != want {
		t.Fatalf("got %q, want %q", out, want)
	}
}

// readWhileBlocked reads r, whose source blocks after some data, until it
// has n bytes or an error, and returns them. It fails t if Read still
// waits after 10 s: a hang, not a timing measurement.
func readWhileBlocked(t *testing.T, r io.Reader, n int) string {
	t.Helper()
	got := make(chan string, 1) // the reader may finish after the test gave up on it
	go func() {
		var out []byte
		buf := make([]byte, 64)
		for len(out) < n {
			m, err := r.Read(buf)
			out = append(out, buf[:m]...)
			if err != nil {
				break
			}
		}
		got <- string(out)
	}()
	select {
	case out := <-got:
		return out
	case <-time.After(10 * time.Second):
		t.Errorf("Read waited for more input")
		return ""
	}
}

// pieces is a source that returns each of its pieces in one Read, the last
// one with io.EOF, as net/http returns the end of a body of known length.
type pieces []string

func (p *pieces) Read(b []byte) (int, error) {
	if len(*p) == 0 {
		return 0, io.EOF
	}
	n := copy(b, (*p)[0])
	if (*p)[0] = (*p)[0][n:]; len((*p)[0]) == 0 {
		*p = (*p)[1:]
	}
	if len(*p) == 0 {
		return n, io.EOF
	}
	return n, nil
}

// Once the source has returned the document's end with its last bytes, a
// rest with no occurrence of from's host is passed on without being lexed:
// a start tag there longer than maxTag, which the lexer reports, is not
// reported then. A rest with the host (in a tag held from before the last
// read too: it is rewritten), or still in the head (its <meta> policies) is
// lexed, up to the last occurrence of the host.
func TestURLRewriterPassesHostFreeEnd(t *testing.T) {
	const maxTag = 128
	long := `<img alt="` + strings.Repeat("x", maxTag) + `">`
	policy := `<meta http-equiv="Content-Security-Policy" content="connect-src 'self'">`
	tests := []struct {
		name    string
		pieces  []string
		want    string
		lexed   bool // the lexer looked at the last piece: it reports the long tag
		metaCSP bool
	}{
		{"no host in the end", []string{`<p>text`, `<p>more` + long + `<a href="/x">end`}, `<p>text<p>more` + long + `<a href="/x">end`, false, false},
		{"the host in the end", []string{`<p>text`, long + `<a href="` + up + `/x">end`}, `<p>text` + long + `<a href="` + pub + `/x">end`, true, false},
		{"the host in the tag held", []string{`<p>text<a href="` + up + `/x"`, ` title="t">end` + long}, `<p>text<a href="` + pub + `/x" title="t">end` + long, false, false},
		{"in the head", []string{`<!DOCTYPE html><html><head>`, policy + long + `</head>`}, "", true, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := pieces(slices.Clone(tc.pieces))
			var opts []RewriteOption
			if tc.metaCSP {
				opts = append(opts, WithMetaCSP(func(p string) (string, error) { return p + " ws://edited", nil }))
			}
			u := newURLRewriter(&src, testOrigin(up), testOrigin(pub), maxTag, opts...)
			out, err := io.ReadAll(u)
			if err != nil {
				t.Fatal(err)
			}
			if tc.want != "" && string(out) != tc.want {
				t.Errorf("got  %q\nwant %q", out, tc.want)
			}
			if tc.metaCSP && !strings.Contains(string(out), "ws://edited") {
				t.Errorf("the head's policy was not edited: %q", out)
			}
			if lexed := errors.Is(u.Err(), ErrTokenTooLarge); lexed != tc.lexed {
				t.Errorf("Err() = %v: the last piece lexed %t, want %t", u.Err(), lexed, tc.lexed)
			}
		})
	}
}

func TestURLRewriterHugeTag(t *testing.T) {
	huge := strings.Repeat("x", MaxTokenSize)
	after := `<a href="` + up + `/after">`
	afterWant := `<a href="` + pub + `/after">`
	tests := []struct {
		name, in, want string
		tooLarge       bool
	}{
		{"attribute value", `<img alt="` + huge + `" src="` + up + `/i">` + after, `<img alt="` + huge + `" src="` + up + `/i">` + afterWant, true},
		{"tag name", `<x` + huge + ` src="` + up + `/i">` + after, `<x` + huge + ` src="` + up + `/i">` + afterWant, true},
		{"unquoted value with >", `<img src="` + up + `/i" alt=` + huge + ` title=">">` + after, `<img src="` + up + `/i" alt=` + huge + ` title=">">` + afterWant, true},
		{"data URL srcset", `<img srcset="data:image/png;base64,` + huge + ` 1x, ` + up + `/i 2x">` + after, `<img srcset="data:image/png;base64,` + huge + ` 1x, ` + up + `/i 2x">` + afterWant, true},
		{"comment", `<!--` + huge + `-->` + after, `<!--` + huge + `-->` + afterWant, false},
		{"bogus comment", `<!` + huge + `>` + after, `<!` + huge + `>` + afterWant, false},
		{"end tag", `</a` + huge + `>` + after, `</a` + huge + `>` + afterWant, false},
		{"script", `<script>` + huge + `</script>` + after, `<script>` + huge + `</script>` + afterWant, false},
		{"text", huge + after, huge + afterWant, false},
		{"just under the bound", `<img alt="` + huge[:MaxTokenSize-len(`<img alt="" src="`+up+`/i">`)] + `" src="` + up + `/i">`,
			`<img alt="` + huge[:MaxTokenSize-len(`<img alt="" src="`+up+`/i">`)] + `" src="` + pub + `/i">`, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for name, wrap := range map[string]func(io.Reader) io.Reader{
				"whole": func(r io.Reader) io.Reader { return r },
				"half":  iotest.HalfReader,
			} {
				u := NewURLRewriter(wrap(strings.NewReader(tc.in)), testOrigin(up), testOrigin(pub))
				out, err := io.ReadAll(u)
				if err != nil {
					t.Fatal(err)
				}
				if string(out) != tc.want {
					t.Errorf("%s: output differs (len %d, want %d), tail %q", name, len(out), len(tc.want), out[max(0, len(out)-60):])
				}
				if errors.Is(u.Err(), ErrTokenTooLarge) != tc.tooLarge {
					t.Errorf("%s: Err() = %v, want ErrTokenTooLarge: %v", name, u.Err(), tc.tooLarge)
				}
			}
		})
	}
}

// TestURLRewriterBoundedMemory checks that an endless tag neither hangs the
// URLRewriter nor makes it buffer without limit.
func TestURLRewriterBoundedMemory(t *testing.T) {
	for _, prefix := range []string{`<img src="` + up + `/" alt="`, `<a href=`, "<!--", "<script>", "<p"} {
		src := &endless{prefix: prefix, fill: 'a'}
		u := NewURLRewriter(src, testOrigin(up), testOrigin(pub))
		total := readFar(t, u, prefix)
		if len(u.buf) > MaxTokenSize {
			t.Errorf("%s: buffer of %d bytes", prefix, len(u.buf))
		}
		if ahead := src.n - total; ahead > MaxTokenSize {
			t.Errorf("%s: read %d bytes more from src than returned", prefix, ahead)
		}
	}
}

// TestURLRewriterInvalidOrigins checks that what ParseOrigin refuses (the
// zero Origin) rewrites nothing.
func TestURLRewriterInvalidOrigins(t *testing.T) {
	in := `<a href="` + up + `/">`
	for _, o := range [][2]string{
		{"ftp://backend.internal", pub},
		{"https://backend.internal/path", pub},
		{"https://", pub},
		{"backend.internal:8443", pub},
		{"https://backend.internal:99999", pub},
		{"https://[::1", pub},
		{"https://[]", pub},
		{up, `http://shop.example.com"onclick="alert(1)`},
		{up, "http://shop.example.com'x"},
		{up, "http://user@shop.example.com"},
		{up, "http://[::1]x"},
		{up, "http://[zz]"},
	} {
		got := runURLs(t, strings.NewReader(in), o[0], o[1], MaxTokenSize)
		if got.out != in || !strings.Contains(got.err, ErrInvalidOrigin.Error()) {
			t.Errorf("from %q to %q: got %+v, want the input and ErrInvalidOrigin", o[0], o[1], got)
		}
	}
}

func TestURLRewriterSourceWithoutProgress(t *testing.T) {
	u := NewURLRewriter(emptyReader{}, testOrigin(up), testOrigin(pub))
	if n, err := u.Read(make([]byte, 16)); n != 0 || err != nil {
		t.Fatalf("Read = %d, %v; want 0, nil as the source", n, err)
	}
	if n, err := u.Read(nil); n != 0 || err != nil {
		t.Fatalf("Read(nil) = %d, %v", n, err)
	}
}

// checkSplice checks that out is in with some spans replaced, each a
// spelling of from's origin at the start of a URL, replaced by to's origin
// or, for a protocol-relative one, by "//" and to's authority, with the
// URL's userinfo (user:pw@) kept before the authority. It returns the number
// of spans, or -1 if in contains to's host (whose occurrences in out are then
// ambiguous). It reads the spans on its own, without the URLRewriter's code.
func checkSplice(t testing.TB, in, out []byte, from, to string) int {
	t.Helper()
	toScheme, toAuth, _ := strings.Cut(to, "://")
	toHost := strings.ToLower(strings.Split(strings.TrimPrefix(toAuth, "["), ":")[0])
	if bytes.Contains(bytes.ToLower(in), []byte(toHost)) {
		return -1
	}
	// to's authority as written: without a default port. Every occurrence
	// in out is a rewritten URL's, as in has none.
	marker := []byte(strings.ToLower(toAuth))
	marker = bytes.TrimSuffix(marker, []byte(":"+strconv.Itoa(testDefaultPort(toScheme))))
	spans, i, j := 0, 0, 0
	for {
		m := bytes.Index(out[i:], marker)
		if m < 0 {
			if !bytes.Equal(out[i:], in[j:]) {
				t.Fatalf("output differs from input after the last rewrite:\n in: %q\nout: %q", in[j:], out[i:])
			}
			return spans
		}
		m += i
		// The "//" written before the userinfo, which holds no slash.
		slashes := bytes.LastIndex(out[i:m], []byte("//")) + i
		userinfo := out[slashes+2 : m]
		if slashes < i || len(userinfo) > 0 && (userinfo[len(userinfo)-1] != '@' || bytes.ContainsAny(userinfo, `/\?#`)) {
			t.Fatalf("output at %d is not the input with an origin replaced:\n in: %q\nout: %q", m, in[j:], out[i:])
		}
		found := false
		for _, withScheme := range []bool{true, false} {
			r := slashes
			if withScheme {
				if r -= len(toScheme) + 1; r < i || string(out[r:slashes]) != toScheme+":" {
					continue
				}
			}
			if !bytes.HasPrefix(in[j:], out[i:r]) {
				continue
			}
			if end := spellsOrigin(in, j+r-i, withScheme, userinfo, from); end >= 0 {
				i, j, found = m+len(marker), end, true
				spans++
				break
			}
		}
		if !found {
			t.Fatalf("output at %d is not the input with an origin replaced:\n in: %q\nout: %q", m, in[j:], out[i:])
		}
	}
}

// spellsOrigin returns the end of the origin from written at in[i:], with
// its scheme or protocol-relative, and with userinfo before its host, or -1.
func spellsOrigin(in []byte, i int, withScheme bool, userinfo []byte, from string) int {
	scheme, auth, _ := strings.Cut(from, "://")
	if withScheme {
		if len(in)-i <= len(scheme) || !strings.EqualFold(string(in[i:i+len(scheme)]), scheme) || in[i+len(scheme)] != ':' {
			return -1
		}
		i += len(scheme) + 1
	}
	slashes := i
	for i < len(in) && (in[i] == '/' || in[i] == '\\') {
		i++
	}
	if i-slashes < 2 || !bytes.HasPrefix(in[i:], userinfo) {
		return -1
	}
	i += len(userinfo)
	start := i
	for i < len(in) && strings.IndexByte("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_:[]", in[i]) >= 0 {
		i++
	}
	return map[bool]int{true: i, false: -1}[sameHostPort(string(in[start:i]), auth, scheme)]
}

// sameHostPort reports whether the authorities a and b are the same for
// scheme.
func sameHostPort(a, b, scheme string) bool {
	split := func(s string) (string, int) {
		host, port := s, ""
		if i := strings.LastIndexByte(s, ':'); i >= 0 && !strings.Contains(s[i:], "]") {
			host, port = s[:i], s[i+1:]
		}
		if port == "" {
			return strings.ToLower(host), testDefaultPort(scheme)
		}
		if len(strings.TrimLeft(port, "0")) > 5 {
			return "", -1
		}
		n, err := strconv.Atoi(port)
		if err != nil || n > 65535 {
			return "", -1
		}
		return strings.ToLower(host), n
	}
	ha, pa := split(a)
	hb, pb := split(b)
	return ha != "" && ha == hb && pa == pb
}

func testDefaultPort(scheme string) int {
	return map[string]int{"http": 80, "https": 443}[strings.ToLower(scheme)]
}

// oracleCount counts the URLs that the URLRewriter should rewrite in a
// document, as golang.org/x/net/html's tokenizer sees its start tags. ok is
// false if a start tag holds a character reference, NUL or CR (which the
// tokenizer decodes while the URLRewriter reads raw bytes), if the document
// ends inside a tag, or if the tokenizer may have left a script too early
// (leavesEscapedScript).
func oracleCount(in []byte, from string) (n int, ok bool) {
	o, _ := ParseOrigin(from)
	z := html.NewTokenizer(bytes.NewReader(in))
	for {
		tt := z.Next()
		switch tt {
		case html.ErrorToken:
			return n, z.Err() == io.EOF && !bytes.HasPrefix(z.Raw(), []byte("<"))
		case html.StartTagToken, html.SelfClosingTagToken:
		case html.TextToken:
			if leavesEscapedScript(z.Raw()) {
				return n, false
			}
			continue
		default:
			continue
		}
		if bytes.ContainsAny(z.Raw(), "&\x00\r") {
			return n, false
		}
		name, more := z.TagName()
		tag, _ := classifyTag(name)
		type kv struct {
			kind attrKind
			val  []byte
		}
		var attrs []kv
		refresh, seen := false, map[string]bool{}
		for more {
			var k, v []byte
			k, v, more = z.TagAttr()
			_, kind := classifyAttr(tag, k)
			if seen[string(k)] {
				kind = attrOther
			}
			seen[string(k)] = true
			refresh = refresh || kind == attrHTTPEquiv && strings.EqualFold(string(v), "refresh")
			attrs = append(attrs, kv{kind, v})
		}
		for _, a := range attrs {
			var urls [][]byte
			switch a.kind {
			case attrURL:
				urls = append(urls, a.val)
			case attrSrcset:
				for i := 0; ; {
					s, e, next := srcsetURL(a.val, i)
					if s < 0 {
						break
					}
					urls, i = append(urls, a.val[s:e]), next
				}
			case attrContent:
				if s, e := RefreshURL(a.val); refresh && s >= 0 {
					urls = append(urls, a.val[s:e])
				}
			}
			for _, u := range urls {
				if _, ok := findOrigin(o, u); ok {
					n++
				}
			}
		}
	}
}

// leavesEscapedScript reports whether x/net/html's tokenizer may have ended
// the script whose text is raw where the HTML standard's tokenizer (and
// Chromium, and the URLRewriter) does not: after "<!--" the script data is
// escaped, and a '<' followed by anything but '/' or a letter is text that
// leaves it escaped, but x/net/html goes back to plain script data there, so
// that a "<script>" after it no longer makes "</script>" part of the text:
// in "<script><!--<<script </script><a href=...>" Chromium finds no <a>,
// and x/net/html does. Text elsewhere never holds "<!--" (it starts a
// comment), or holds it as raw text (<style>, <textarea>), which this
// passes over too: the oracle only gives up on a few more documents.
func leavesEscapedScript(raw []byte) bool {
	at := bytes.Index(raw, []byte("<!--"))
	if at < 0 {
		return false
	}
	for rest := raw[at+len("<!--"):]; ; {
		i := bytes.IndexByte(rest, '<')
		if i < 0 || i+1 == len(rest) {
			return false
		}
		if c := rest[i+1]; c != '/' && !isLetter(c) {
			return true
		}
		rest = rest[i+1:]
	}
}

// fuzzOrigins are the origins FuzzURLRewriter rewrites from and to.
var fuzzOrigins = []struct{ from, to, host string }{
	{up, "http://proxy.invalid", "backend.internal"},
	{"http://backend.internal", "https://proxy.invalid:8443", "backend.internal"},
	{"https://[::1]:8443", "http://proxy.invalid:80", "::1"},
}

// FuzzURLRewriter checks that a URLRewriter does not panic, gives the same
// result whatever the read sizes, changes nothing but spellings of from's
// origin at the start of URLs (so nothing at all in a document without from's
// host), counts what it rewrites, and rewrites the URLs that x/net/html's
// tokenizer finds in the attributes concerned.
func FuzzURLRewriter(f *testing.F) {
	for _, tc := range urlCases {
		f.Add([]byte(tc.in), uint8(0), uint16(0))
		f.Add([]byte(tc.in), uint8(0), uint16(16))
	}
	f.Fuzz(func(t *testing.T, input []byte, origins uint8, maxTag uint16) {
		o := fuzzOrigins[int(origins)%len(fuzzOrigins)]
		limit := int(maxTag) // 0 stands for the real limit
		if limit == 0 {
			limit = MaxTokenSize
		}
		got := runURLs(t, bytes.NewReader(input), o.from, o.to, limit)
		if one := runURLs(t, iotest.OneByteReader(bytes.NewReader(input)), o.from, o.to, limit); one != got {
			t.Fatalf("one byte at a time:\n got %+v\nwant %+v", one, got)
		}
		// With its end, the source returns its last bytes; a rest without
		// the host is then not lexed, and a long tag there not reported.
		withEnd := runURLs(t, iotest.DataErrReader(bytes.NewReader(input)), o.from, o.to, limit)
		if withEnd.err == "<nil>" {
			withEnd.err = got.err
		}
		if withEnd != got {
			t.Fatalf("the end with the last bytes:\n got %+v\nwant %+v", withEnd, got)
		}
		if got.err != "<nil>" && !strings.Contains(got.err, ErrTokenTooLarge.Error()) {
			t.Fatalf("Err() = %s", got.err)
		}
		if !bytes.Contains(bytes.ToLower(input), []byte(o.host)) && got.out != string(input) {
			t.Fatalf("no %s in the input, but the output differs:\n in: %q\nout: %q", o.host, input, got.out)
		}
		if n := checkSplice(t, input, []byte(got.out), o.from, o.to); n >= 0 && int64(n) != got.rewritten {
			t.Fatalf("Rewritten() = %d, but %d URLs differ", got.rewritten, n)
		}
		if want, ok := oracleCount(input, o.from); ok && got.err == "<nil>" && int64(want) != got.rewritten {
			t.Fatalf("rewrote %d URLs, x/net/html finds %d:\n in: %q\nout: %q", got.rewritten, want, input, got.out)
		}
	})
}

// urlPage returns productPage with absolute URLs on up in every card's link
// and a srcset.
func urlPage(size int) []byte {
	page := productPage(size)
	page = bytes.ReplaceAll(page, []byte(`<a href="/products/`), []byte(`<a href="`+up+`/products/`))
	return bytes.ReplaceAll(page, []byte(`loading="lazy"`), []byte(`srcset="`+up+`/img/2x.jpg 2x" loading="lazy"`))
}

// textPage returns an article of about size bytes: paragraphs of text with a
// few links and emphasis.
func textPage(size int) []byte {
	var b bytes.Buffer
	b.WriteString("<!DOCTYPE html>\n<html><head><title>Article</title></head><body><article>\n")
	for i := 0; b.Len() < size-100; i++ {
		fmt.Fprintf(&b, "<p>Paragraph %d. Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation ullamco laboris nisi ut aliquip ex ea commodo consequat. Duis aute irure dolor in reprehenderit in voluptate velit esse cillum dolore eu fugiat nulla pariatur, see <a href=\"%s/notes/%d\">note %d</a>. Excepteur sint occaecat cupidatat non proident, sunt in <em>culpa</em> qui officia deserunt mollit anim id est laborum.</p>\n", i, up, i, i)
	}
	b.WriteString("</article></body></html>\n")
	return b.Bytes()
}

// benchmarkPage copies page through wrap with a 32 KiB buffer, as
// ReverseProxy does, hiding io.ReaderFrom/WriterTo so every byte goes
// through Read.
func benchmarkPage(b *testing.B, page []byte, wrap func(io.Reader) io.Reader) {
	buf := make([]byte, 32<<10)
	b.SetBytes(int64(len(page)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := io.CopyBuffer(onlyWriter{io.Discard}, onlyReader{wrap(bytes.NewReader(page))}, buf); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkURLRewriter measures rewriting 100 KB pages, against copying them
// (copy): "product" and "text" link to from's origin all over, "foreign"
// is the product page without such links, as most pages are (its tags take
// the lexer's fast path).
func BenchmarkURLRewriter(b *testing.B) {
	for _, p := range []struct {
		name string
		page []byte
	}{{"product", urlPage(100 << 10)}, {"text", textPage(100 << 10)}, {"foreign", productPage(100 << 10)}} {
		b.Run(p.name, func(b *testing.B) {
			benchmarkPage(b, p.page, func(r io.Reader) io.Reader { return NewURLRewriter(r, testOrigin(up), testOrigin(pub)) })
		})
		b.Run(p.name+"-copy", func(b *testing.B) {
			benchmarkPage(b, p.page, func(r io.Reader) io.Reader { return r })
		})
	}
}

// TestClassifyTag checks classifyTag on every name it knows, in several
// cases, and on names it must not take for one of them: some pass its
// first-letter test (main, strong, table, option), some differ by a letter.
func TestClassifyTag(t *testing.T) {
	known := []struct {
		name    string
		class   tagClass
		rawName string
	}{
		{"meta", tagMeta, ""}, {"object", tagObject, ""}, {"script", tagScript, "script"},
		{"plaintext", tagPlaintext, ""}, {"style", tagRawText, "style"},
		{"textarea", tagRawText, "textarea"}, {"title", tagRawText, "title"},
		{"xmp", tagRawText, "xmp"}, {"iframe", tagRawText, "iframe"},
		{"noembed", tagRawText, "noembed"}, {"noframes", tagRawText, "noframes"},
		{"noscript", tagRawText, "noscript"},
	}
	if len(known) != len(classifiedTags) {
		t.Errorf("classifiedTags has %d names, this test %d: the list here is out of date", len(classifiedTags), len(known))
	}
	for _, want := range known {
		for _, written := range []string{want.name, strings.ToUpper(want.name), strings.ToUpper(want.name[:1]) + want.name[1:]} {
			if class, raw := classifyTag([]byte(written)); class != want.class || raw != want.rawName {
				t.Errorf("classifyTag(%q) = %v, %q; want %v, %q", written, class, raw, want.class, want.rawName)
			}
		}
	}
	for _, name := range []string{"", "a", "p", "li", "div", "img", "main", "strong", "STRONG", "table", "option",
		"scripts", "metaa", "mata", "noscripT1", "plaintexts", "x-script", "xmq", "\x00eta"} {
		if class, raw := classifyTag([]byte(name)); class != tagOther || raw != "" {
			t.Errorf("classifyTag(%q) = %v, %q; want tagOther", name, class, raw)
		}
	}
}
