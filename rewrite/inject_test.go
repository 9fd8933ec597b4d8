package rewrite

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"testing/iotest"

	"golang.org/x/net/html"
)

const testSnippet = `<script src="/__cobrowse/visitor.js" defer></script>`

// mark stands for the snippet in the documents of injectCases: the input is
// the document without it, the expected output has the snippet in its place.
const mark = "{S}"

// injectCases are documents with mark where the snippet belongs, or without
// mark if it must not be injected. They also seed FuzzInjector.
var injectCases = []struct {
	name, doc string
}{
	{"with head", "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">{S}<title>Shop</title></head><body><p>hi</p></body></html>"},
	{"head with attributes", `<html><head profile="http://x" data-a='>'>{S}<title>t</title>`},
	{"uppercase tags", "<!DOCTYPE HTML><HTML><HEAD>{S}<TITLE>t</TITLE></HEAD>"},
	{"mixed case head", "<Html><hEaD><meta charset=utf-8>{S}"},
	{"self-closing head", "<html><head/>{S}<title>t</title>"},
	{"head not header", "<html>{S}<header>x</header>"},
	{"without head", "<!doctype html><html>{S}<body><p>hi</p></body></html>"},
	{"without head and body", "<!doctype html>\n{S}<title>t</title><p>hi"},
	{"meta first", "<html>\n  <meta charset=utf-8>{S}<title>t</title>"},
	// The charset declaration stays first: after a run of <meta> tags,
	// whitespace and comments, right behind the one that declares it.
	{"charset after other metas", "<head>\n<meta name=viewport content=x>\n<!-- c --><META CHARSET=\"windows-1252\">{S}<meta name=a>"},
	{"http-equiv content-type", "<head><meta http-equiv=\"Content-Type\" content=\"text/html; charset=Shift_JIS\">{S}<title>t</title>"},
	{"http-equiv without charset", "<head>{S}<meta http-equiv=\"content-type\" content=\"text/html\"><title>t</title>"},
	{"metas without charset", "<head>{S}<meta name=a><meta name=b><title>t</title>"},
	{"charset after title stays put", "<head>{S}<title>t</title><meta charset=utf-8>"},
	{"charset meta past the prescan window", "<head>{S}" + strings.Repeat("<!-- padding padding padding -->", 40) + "<meta charset=utf-8>"},
	{"metas until the end", "<head>{S}<meta name=a>"},
	// Bytes that are not UTF-8 pass through as bytes: windows-1252 and
	// Shift_JIS text around the injection point.
	{"windows-1252", "<head><meta charset=windows-1252>{S}<title>Caf\xe9 \x80</title>"},
	{"Shift_JIS", "<head><meta charset=Shift_JIS>{S}<title>\x93\xfa\x96\x7b</title>"},
	{"GB18030 two- and four-byte sequences", "<head><meta charset=gb18030>{S}<title>\xc4\xe3\xba\xc3\x81\x30\x81\x30</title>"},
	{"ISO-8859-5", "<head><meta http-equiv=Content-Type content=\"text/html; charset=ISO-8859-5\">{S}<title>\xbf\xe0\xd8\xd2\xd5\xe2</title>"},
	{"non-UTF-8 bytes before the head", "<!-- \xe9\x80\xff --><html lang=\"\xe9\"><head>{S}<title>t</title>"},

	{"body before head", "<html>{S}<body><head></head>"},
	{"end tag first", "<html>{S}</html>"},
	{"only text", "{S}hello world"},
	{"whitespace then text", "\n\n  {S}hello"},
	{"whitespace then a '<' that is text", "<html> \n{S}< 3"},
	{"empty input", ""},
	{"whitespace only", " \t\r\n\f{S}"},
	{"doctype only", "<!DOCTYPE html>{S}"},
	{"html only", "<!DOCTYPE html>\n<html>\n{S}"},
	{"unterminated tag at end", "<html>{S}<hea"},
	{"BOM", "\xef\xbb\xbf<!DOCTYPE html><html><head>{S}<title>t</title>"},
	{"BOM then text", "\xef\xbb\xbf{S}hello"},
	{"BOM only", "\xef\xbb\xbf{S}"},
	{"processing instruction", "<?xml version=\"1.0\"?>\n<?php echo 1; ?><html xmlns=\"http://www.w3.org/1999/xhtml\"><head>{S}<title>t</title>"},
	// In HTML (outside SVG and MathML) "<![CDATA[" opens a comment that the
	// first ">" closes, so "]]>" is text, which starts the body.
	{"CDATA is a comment", "<![CDATA[<head>{S}]]><html><head>"},
	{"comment containing head", "<!-- <head> --><html><!-- </head><head> --><head>{S}<title>t</title>"},
	{"attributes containing head", `<html data-x="<head>" data-y='</head>'><head data-z="</head>">{S}<title>t</title>`},
	{"script containing </head> before head", `<html>{S}<script>var s = "</head><head>";</script><head><title>t</title></head>`},
	{"script before html", `{S}<script>document.write("<head></head>")</script><html><head>`},
	{"bogus end tag", "</><html><head>{S}"},
}

// split returns the input and the expected output of an injectCases document,
// and where the snippet is expected (-1 for nowhere).
func split(doc string) (in, want string, at int64) {
	at = int64(strings.Index(doc, mark))
	return strings.Replace(doc, mark, "", 1), strings.Replace(doc, mark, testSnippet, 1), at
}

// result is everything observable about one run of an Injector.
type result struct {
	out      string
	injected bool
	offset   int64
	err      error
}

// same reports whether r and o are the same outcome; errors are compared by
// message, since each run wraps its own.
func (r result) same(o result) bool {
	return r.out == o.out && r.injected == o.injected && r.offset == o.offset &&
		fmt.Sprint(r.err) == fmt.Sprint(o.err)
}

func run(t testing.TB, src io.Reader, maxToken int) result {
	t.Helper()
	inj := newInjector(src, []byte(testSnippet), maxToken)
	out, err := io.ReadAll(inj)
	if err != nil {
		t.Fatalf("ReadAll: %v", err)
	}
	return result{string(out), inj.Injected(), inj.Offset(), inj.Err()}
}

// checkInvariant fails unless r.out is input with the snippet at r.offset, or
// input itself when nothing was injected.
func checkInvariant(t testing.TB, input string, r result) {
	t.Helper()
	if !r.injected {
		if r.offset != -1 {
			t.Errorf("Offset() = %d without injection, want -1", r.offset)
		}
		if r.out != input {
			t.Fatalf("not injected but output differs from input:\n in: %q\nout: %q", input, r.out)
		}
		return
	}
	if r.err != nil {
		t.Errorf("injected but Err() = %v", r.err)
	}
	end := r.offset + int64(len(testSnippet))
	if r.offset < 0 || end > int64(len(r.out)) || r.out[r.offset:end] != testSnippet {
		t.Fatalf("snippet not found at offset %d of %q", r.offset, r.out)
	}
	if rest := r.out[:r.offset] + r.out[end:]; rest != input {
		t.Fatalf("output minus snippet differs from input:\n in: %q\nout: %q", input, rest)
	}
}

func TestInjector(t *testing.T) {
	for _, tc := range injectCases {
		t.Run(tc.name, func(t *testing.T) {
			input, want, at := split(tc.doc)
			got := run(t, strings.NewReader(input), MaxTokenSize)
			checkInvariant(t, input, got)
			if got.out != want {
				t.Errorf("output\n got: %q\nwant: %q", got.out, want)
			}
			if got.injected != (at >= 0) || got.offset != at {
				t.Errorf("Injected() = %v, Offset() = %d; want %v, %d", got.injected, got.offset, at >= 0, at)
			}
			if got.err != nil {
				t.Errorf("Err() = %v, want nil", got.err)
			}
		})
	}
}

// TestInjectorReaders checks that how the source splits its data, or returns
// its final data together with io.EOF, changes nothing.
func TestInjectorReaders(t *testing.T) {
	readers := map[string]func(io.Reader) io.Reader{
		"OneByteReader": iotest.OneByteReader,
		"HalfReader":    iotest.HalfReader,
		"DataErrReader": iotest.DataErrReader,
	}
	for _, tc := range injectCases {
		input, _, _ := split(tc.doc)
		want := run(t, strings.NewReader(input), MaxTokenSize)
		for name, wrap := range readers {
			t.Run(tc.name+"/"+name, func(t *testing.T) {
				if got := run(t, wrap(strings.NewReader(input)), MaxTokenSize); !got.same(want) {
					t.Errorf("got %+v\nwant %+v", got, want)
				}
			})
		}
	}
}

// padTo returns head, text padding and tail, so long that tail ends at byte
// end of the document (marks not counted).
func padTo(head, tail string, end int) string {
	return head + strings.Repeat("x", end-len(strings.ReplaceAll(head+tail, mark, ""))) + tail
}

// windowCases are documents whose charset declaration comes after the
// default injection point and ends near the end of the prescan window, so
// that the snippet there would push it out; like injectCases, with mark
// where the snippet belongs when the Injector reads the whole document at
// once.
var windowCases = []struct {
	name, doc string
}{
	{"after the title", padTo("<head><title>", "</title><meta charset=utf-8>{S}", 1000) + "<body>"},
	{"ending at byte 1024", padTo("<head><title>", "</title><meta charset=utf-8>{S}", prescanWindow) + "<body>"},
	{"http-equiv", padTo("<head><link rel=icon href=x>", "<meta http-equiv=Content-Type content=\"text/html; charset=windows-1252\">{S}", 1020)},
	{"after the last of two", padTo("<head><title>", "</title><meta charset=utf-8><meta charset=\"utf-8\">{S}", 1010)},
	{"in the body", padTo("<html><body><p>", "</p><meta charset=utf-8>{S}", 1000) + "<p>more"},
	{"self-closing", padTo("<head><title>", "</title><meta charset=utf-8/>{S}", 1000)},
	// The declaration is not pushed out, or not there.
	{"far enough from the end", padTo("<head>{S}<title>", "</title><meta charset=utf-8>", prescanWindow-len(testSnippet))},
	{"past the window", padTo("<head>{S}<title>", "</title><meta charset=utf-8>", prescanWindow+1)},
	{"in the title's text", padTo("<head>{S}<title>", "<meta charset=utf-8></title>", 1000)},
	{"in a script", padTo("<head>{S}<script>", "'<meta charset=utf-8>'</script>", 1000)},
	{"a meta without charset", padTo("<head>{S}<title>", "</title><meta name=charset content=x>", 1000)},
	// The snippet must not go where it would not run.
	{"in a template", padTo("<head>{S}<template>", "<meta charset=utf-8></template>", 1000)},
	{"after an svg", padTo("<html>{S}<body><svg>", "</svg><meta charset=utf-8>", 1000)},
	{"after math", padTo("<html>{S}<body><math>", "</math><meta charset=utf-8>", 1000)},
	{"after a frameset", padTo("<html>{S}<frameset>", "</frameset><meta charset=utf-8>", 1000)},
}

// TestInjectorKeepsCharsetInWindow checks where the snippet goes when a
// charset declaration after the default injection point ends near the end
// of the prescan window, and that a declaration the source has not yet
// delivered when the Injector decides does not hold the page back, nor one
// that a charset in the Content-Type header overrides.
func TestInjectorKeepsCharsetInWindow(t *testing.T) {
	for _, tc := range windowCases {
		t.Run(tc.name, func(t *testing.T) {
			input, want, at := split(tc.doc)
			got := run(t, strings.NewReader(input), MaxTokenSize)
			checkInvariant(t, input, got)
			if got.out != want || got.offset != at {
				t.Errorf("snippet at %d, want %d; output\n got: %q\nwant: %q", got.offset, at, got.out, want)
			}
			// The first read ends inside the padding: the Injector decides
			// on it, at the default point.
			split := strings.Index(input, "xxx") + 1
			late := run(t, io.MultiReader(strings.NewReader(input[:split]), strings.NewReader(input[split:])), MaxTokenSize)
			checkInvariant(t, input, late)
			byDefault := referenceOffset([]byte(input), false)
			if late.offset != byDefault {
				t.Errorf("declaration read after the decision: snippet at %d, want the default point %d", late.offset, byDefault)
			}
			// Browsers use the header's charset whatever the page says.
			inj := NewInjector(strings.NewReader(input), []byte(testSnippet))
			inj.CharsetFromHeader()
			if _, err := io.ReadAll(inj); err != nil || inj.Offset() != byDefault {
				t.Errorf("charset from the header: snippet at %d (%v), want the default point %d", inj.Offset(), err, byDefault)
			}
		})
	}
}

// TestInjectorSourceError checks that a source error is passed on once, at the
// position where the source returned it, and that nothing is lost or
// duplicated: iotest.TimeoutReader fails its second Read only.
func TestInjectorSourceError(t *testing.T) {
	for _, tc := range injectCases {
		t.Run(tc.name, func(t *testing.T) {
			input, want, _ := split(tc.doc)
			inj := NewInjector(iotest.TimeoutReader(strings.NewReader(input)), []byte(testSnippet))
			var out bytes.Buffer
			timeouts := 0
			buf := make([]byte, 7)
			for {
				n, err := inj.Read(buf)
				out.Write(buf[:n])
				if err == io.EOF {
					break
				}
				if err != nil {
					if !errors.Is(err, iotest.ErrTimeout) {
						t.Fatalf("Read: %v", err)
					}
					timeouts++
				}
			}
			if len(input) > 0 && timeouts != 1 {
				t.Errorf("got %d timeouts, want 1", timeouts)
			}
			got := result{out.String(), inj.Injected(), inj.Offset(), inj.Err()}
			if got.err != nil {
				// The error came before the injection point: the
				// document passes through unchanged.
				if !errors.Is(got.err, iotest.ErrTimeout) {
					t.Errorf("Err() = %v, want it to wrap %v", got.err, iotest.ErrTimeout)
				}
				checkInvariant(t, input, got)
				return
			}
			if got.out != want {
				t.Errorf("output\n got: %q\nwant: %q", got.out, want)
			}
		})
	}
}

func TestInjectorHugeToken(t *testing.T) {
	huge := strings.Repeat("x", MaxTokenSize)
	tests := []struct {
		name, doc string
		tooLarge  bool
	}{
		{"comment", "<!--" + huge + "--><html><head><title>t</title>", true},
		{"doctype", "<!DOCTYPE " + huge + "><html><head>", true},
		{"html attribute", `<html data-x="` + huge + `"><head>`, true},
		{"whitespace", strings.Repeat(" \n", MaxTokenSize) + "<head>", true},
		{"text", "{S}" + huge + "<head>", false},
		{"after the head", "<html><head>{S}<script>" + huge + "</script>", false},
		{"head tag itself", `<html><head data-x="` + huge + `">`, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			input, want, _ := split(tc.doc)
			got := run(t, strings.NewReader(input), MaxTokenSize)
			checkInvariant(t, input, got)
			if tc.tooLarge {
				if !errors.Is(got.err, ErrTokenTooLarge) {
					t.Errorf("Err() = %v, want ErrTokenTooLarge", got.err)
				}
				return
			}
			if got.out != want {
				t.Errorf("snippet at %d, want at %d", got.offset, strings.Index(tc.doc, mark))
			}
		})
	}
}

// endless yields a prefix and then the same byte forever, counting what it
// has handed out, but fails once it has handed out more than 16 times
// MaxTokenSize: a reader that reads without limit then fails a test rather
// than hanging it.
type endless struct {
	prefix string
	fill   byte
	n      int64
}

var errReadTooFar = errors.New("read past 16 × MaxTokenSize")

func (e *endless) Read(p []byte) (int, error) {
	if e.n > 16*MaxTokenSize {
		return 0, errReadTooFar
	}
	n := copy(p, e.prefix)
	e.prefix = e.prefix[n:]
	for i := n; i < len(p); i++ {
		p[i] = e.fill
	}
	e.n += int64(len(p))
	return len(p), nil
}

// readFar reads 8 × MaxTokenSize bytes from r, which reads from an
// endless source whose prefix is named, and returns how many it read.
func readFar(t *testing.T, r io.Reader, prefix string) int64 {
	t.Helper()
	buf := make([]byte, 32<<10)
	var total int64
	for total < 8*MaxTokenSize {
		n, err := r.Read(buf)
		if err != nil {
			t.Fatalf("%q: Read: %v", prefix, err)
		}
		total += int64(n)
	}
	return total
}

// TestInjectorBoundedMemory checks that an endless token before the head
// neither hangs the Injector nor makes it read without limit: it gives up
// and streams.
func TestInjectorBoundedMemory(t *testing.T) {
	for _, prefix := range []string{
		"<!DOCTYPE html><!--", // a comment
		"<!DOCTYPE ",          // a doctype
		"<?xml ",              // a bogus comment
		"</ ",                 // another
		"<html data-x=\"",     // a tag
		"\n",                  // whitespace
	} {
		fill := byte('a')
		if prefix == "\n" {
			fill = ' '
		}
		src := &endless{prefix: prefix, fill: fill}
		inj := NewInjector(src, []byte(testSnippet))
		total := readFar(t, inj, prefix)
		if !errors.Is(inj.Err(), ErrTokenTooLarge) {
			t.Errorf("%q: Err() = %v, want ErrTokenTooLarge", prefix, inj.Err())
		}
		// Once passing through, the Injector reads from src only what it
		// returns, plus what it had read ahead.
		if ahead := src.n - total; ahead > 4*MaxTokenSize {
			t.Errorf("%q: read %d bytes more from src than returned", prefix, ahead)
		}
	}
}

// utf16Docs start with a UTF-16 byte order mark: they pass through unchanged.
var utf16Docs = []string{
	"\xff\xfe<\x00h\x00t\x00m\x00l\x00>\x00<\x00h\x00e\x00a\x00d\x00>\x00",
	"\xfe\xff\x00<\x00h\x00e\x00a\x00d\x00>",
	"\xff\xfe", // the mark alone
}

func TestInjectorPassesUTF16Through(t *testing.T) {
	for _, doc := range utf16Docs {
		for name, src := range map[string]io.Reader{
			"whole":      strings.NewReader(doc),
			"one by one": iotest.OneByteReader(strings.NewReader(doc)),
		} {
			got := run(t, src, MaxTokenSize)
			if got.out != doc || got.injected || !errors.Is(got.err, ErrUTF16) {
				t.Errorf("%s %q: got %+v, want the document unchanged and ErrUTF16", name, doc, got)
			}
		}
	}
}

func FuzzInjector(f *testing.F) {
	for _, tc := range injectCases {
		input, _, _ := split(tc.doc)
		f.Add([]byte(input), uint16(0))
		f.Add([]byte(input), uint16(8))
	}
	for _, tc := range windowCases {
		input, _, _ := split(tc.doc)
		f.Add([]byte(input), uint16(0))
	}
	for _, doc := range utf16Docs {
		f.Add([]byte(doc), uint16(0))
	}
	f.Fuzz(func(t *testing.T, input []byte, maxToken uint16) {
		// 0 stands for the real limit; small limits reach the give-up path.
		limit := int(maxToken)
		if limit == 0 {
			limit = MaxTokenSize
		}
		got := run(t, bytes.NewReader(input), limit)
		checkInvariant(t, string(input), got)
		if len(input) > 0 && !got.injected && got.err == nil {
			t.Fatalf("non-empty document %q neither injected nor given up", input)
		}
		if got.err != nil && !errors.Is(got.err, ErrTokenTooLarge) && !errors.Is(got.err, ErrUTF16) {
			t.Fatalf("unexpected Err() = %v", got.err)
		}
		// Read one byte at a time, the Injector has nothing after the
		// default point in hand when it decides, and so no charset
		// declaration to keep in the prescan window.
		byDefault, kept := referenceOffset(input, false), referenceOffset(input, true)
		one := run(t, iotest.OneByteReader(bytes.NewReader(input)), limit)
		if !one.same(got) && byDefault == kept {
			t.Fatalf("one byte at a time:\n got %+v\nwant %+v", one, got)
		}
		if len(input) < MaxTokenSize {
			full, oneFull := got, one
			if limit != MaxTokenSize {
				full = run(t, bytes.NewReader(input), MaxTokenSize)
				oneFull = run(t, iotest.OneByteReader(bytes.NewReader(input)), MaxTokenSize)
			}
			if full.offset != kept {
				t.Fatalf("snippet at %d in %q; html.Tokenizer's tokens put it at %d", full.offset, input, kept)
			}
			if oneFull.offset != byDefault {
				t.Fatalf("one byte at a time, snippet at %d in %q; html.Tokenizer's tokens put it at %d", oneFull.offset, input, byDefault)
			}
		}
	})
}

// referenceOffset is where the Injector's rules put the snippet in input, as
// decided on the tokens of golang.org/x/net/html's Tokenizer, or -1 for
// nowhere. With keepWindow, the Injector is taken to have the whole prescan
// window in hand when it decides (see keptInWindow); without, nothing after
// the default injection point.
func referenceOffset(input []byte, keepWindow bool) int64 {
	at := defaultOffset(input)
	if !keepWindow || at < 0 {
		return at
	}
	return keptInWindow(input, at)
}

// keptInWindow is where the snippet goes instead of input[at], the default
// injection point, read on the tokens of the whole document: after the last
// <meta> that declares the charset and ends within the prescan window, if
// the snippet at would push it past the window's end, and unless a
// <template>, <svg>, <math> or <frameset> starts on the way.
func keptInWindow(input []byte, at int64) int64 {
	window := int64(min(len(input), prescanWindow))
	z := html.NewTokenizer(bytes.NewReader(input))
	after := at
	for end := int64(0); ; {
		tt := z.Next()
		raw := z.Raw()
		start := end
		end += int64(len(raw))
		if tt == html.ErrorToken || end > window {
			break
		}
		if start < at || tt != html.StartTagToken && tt != html.SelfClosingTagToken {
			continue
		}
		name, _ := z.TagName()
		switch string(name) {
		case "meta":
			if declaresCharsetByTokenizer(raw) {
				after = end
			}
		case "template", "svg", "math", "frameset":
			return at
		}
	}
	if after+int64(len(testSnippet)) > prescanWindow {
		return after
	}
	return at
}

// defaultOffset is where the Injector's rules put the snippet in input
// before it looks for a charset declaration to keep in the prescan window,
// as decided on the tokens of golang.org/x/net/html's Tokenizer (as the
// Injector did before it had its own lexer), or -1 for nowhere. The
// Injector takes the whitespace that starts a text token for a token of its
// own. The tokenizer reports a comment, doctype or bogus comment that the
// document ends inside as a token; the snippet then goes before it, as it
// goes before an unterminated tag.
func defaultOffset(input []byte) int64 {
	if len(input) >= 2 && (input[0] == 0xfe && input[1] == 0xff || input[0] == 0xff && input[1] == 0xfe) {
		return -1 // UTF-16
	}
	z := html.NewTokenizer(bytes.NewReader(input))
	pos, heldAt := 0, -1
	// decide takes the next token and reports whether it decides the
	// injection point, at.
	decide := func(tt html.TokenType, raw []byte) (at int, decided bool) {
		isMeta := (tt == html.StartTagToken || tt == html.SelfClosingTagToken) && equalFoldASCII(tagName(raw), "meta")
		space := tt == html.TextToken && len(bytes.Trim(raw, " \t\n\f\r")) == 0
		if isMeta && heldAt < 0 {
			heldAt = pos // the default point, before the <meta> run
		}
		if heldAt >= 0 {
			switch {
			case pos >= prescanWindow || !isMeta && !space && tt != html.CommentToken:
				return heldAt, true
			case isMeta && declaresCharset(raw):
				return pos + len(raw), true
			}
			pos += len(raw)
			return 0, false
		}
		switch {
		case tt == html.DoctypeToken, tt == html.CommentToken, space:
		case tt == html.StartTagToken || tt == html.SelfClosingTagToken:
			switch name := tagName(raw); {
			case equalFoldASCII(name, "html"):
			case equalFoldASCII(name, "head"):
				heldAt = pos + len(raw)
			default:
				return pos, true
			}
		default:
			return pos, true
		}
		pos += len(raw)
		return 0, false
	}
	for {
		tt := z.Next()
		raw := z.Raw()
		unterminated := tt == html.ErrorToken ||
			(tt == html.CommentToken || tt == html.DoctypeToken) && !terminated(raw)
		if unterminated {
			switch {
			case heldAt >= 0:
				return int64(heldAt)
			case pos+len(raw) > 0:
				return int64(pos)
			}
			return -1
		}
		if tt == html.TextToken && pos == 0 && bytes.HasPrefix(raw, []byte(utf8BOM)) {
			pos, raw = len(utf8BOM), raw[len(utf8BOM):]
		}
		pieces := [][]byte{raw}
		if tt == html.TextToken {
			text := bytes.TrimLeft(raw, " \t\n\f\r")
			pieces = [][]byte{raw[:len(raw)-len(text)], text}
		}
		for _, piece := range pieces {
			if len(piece) == 0 && tt == html.TextToken {
				continue
			}
			if at, ok := decide(tt, piece); ok {
				return int64(at)
			}
		}
	}
}

// terminated reports whether the raw bytes of a comment, doctype or bogus
// comment token include its end.
func terminated(raw []byte) bool {
	if !bytes.HasPrefix(raw, []byte("<!--")) {
		return bytes.HasSuffix(raw, []byte(">"))
	}
	// The dashes of the end must not be those of the start: "<!-->" and
	// "<!--->" are whole, "<!---!>" is not.
	r := string(raw)
	return r == "<!-->" || r == "<!--->" ||
		len(r) >= len("<!---->") && strings.HasSuffix(r, "-->") ||
		len(r) >= len("<!----!>") && strings.HasSuffix(r, "--!>")
}

// FuzzTagAttrs checks tagAttrs and declaresCharset against html.Tokenizer,
// on the first token of the input when it is a start tag: the same
// attributes, read as TagAttr reads them, and the same charset decision as
// reading them with a tokenizer.
func FuzzTagAttrs(f *testing.F) {
	for _, tag := range []string{
		`<meta charset="utf-8">`,
		`<META HTTP-EQUIV=Content-Type CONTENT="text/html; charset=x">`,
		`<meta content="&#99;harset=x" http-equiv=content&#45;type>`,
		`<meta http-equiv=" content&#45;TYPE&#x0a;" content="text/html;&#32;CHARSET=x">`,
		`<meta http-equiv="content-type" http-equiv=x content='charset=y'>`,
		`<meta content=x content="charset=y" http-equiv=content-type>`,
		`<meta/charset=x>`, `<meta =x charset>`, `<meta a="1"b='2' c=3 d= e>`,
		"<meta\rcharset\f=\tx/>", `<meta k=>`, `<meta k=v/>`, `<meta / / charset>`,
		`<meta content="&ampcharset=x" http-equiv="content-type">`,
	} {
		f.Add(tag)
	}
	f.Fuzz(func(t *testing.T, input string) {
		z := html.NewTokenizer(strings.NewReader(input))
		if tt := z.Next(); tt != html.StartTagToken && tt != html.SelfClosingTagToken {
			return
		}
		raw := bytes.Clone(z.Raw())
		want := tokenizerAttrs(z)
		var got []string
		seen := map[string]bool{}
		for key, val := range tagAttrs(raw) {
			// As TagAttr: NULs replaced, ASCII lower-cased, other bytes left alone.
			k := string(asciiLower(bytes.ReplaceAll(key, []byte("\x00"), []byte("\ufffd"))))
			if !seen[k] {
				seen[k] = true
				got = append(got, k+"="+unescapeAsTokenizer(string(val)))
			}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("tagAttrs(%q):\n got %q\nwant %q (html.Tokenizer)", raw, got, want)
		}
		if got, want := declaresCharset(raw), declaresCharsetByTokenizer(raw); got != want {
			t.Fatalf("declaresCharset(%q) = %v, reading it with a tokenizer says %v", raw, got, want)
		}
	})
}

// asciiLower returns a copy of b in ASCII lower case.
func asciiLower(b []byte) []byte {
	l := make([]byte, len(b))
	for i, c := range b {
		l[i] = lower(c)
	}
	return l
}

// tokenizerAttrs returns the current tag's attributes as z.TagAttr gives
// them, as "key=value".
func tokenizerAttrs(z *html.Tokenizer) []string {
	var attrs []string
	for more := true; more; {
		var key, val []byte
		key, val, more = z.TagAttr()
		if len(key) == 0 {
			break
		}
		attrs = append(attrs, string(key)+"="+string(val))
	}
	return attrs
}

// unescapeAsTokenizer decodes an attribute value as html.Tokenizer does
// (character references by the rules for attributes, newlines normalized),
// by having one read it.
func unescapeAsTokenizer(val string) string {
	tag := `<x a="` + val + `">`
	if strings.Contains(val, `"`) {
		tag = `<x a='` + val + `'>`
		if strings.Contains(val, "'") { // only an unquoted value holds both
			tag = `<x a=` + val + `>`
		}
	}
	z := html.NewTokenizer(strings.NewReader(tag))
	z.Next()
	_, v, _ := z.TagAttr()
	return string(v)
}

// declaresCharsetByTokenizer is declaresCharset as it was written with an
// html.Tokenizer, the reference for FuzzTagAttrs.
func declaresCharsetByTokenizer(raw []byte) bool {
	if !containsFoldASCII(raw, "charset") {
		return false
	}
	z := html.NewTokenizer(bytes.NewReader(bytes.Clone(raw)))
	z.Next()
	var httpEquiv, content bool
	for more := true; more; {
		var key, val []byte
		key, val, more = z.TagAttr()
		switch string(key) {
		case "charset":
			return true
		case "http-equiv":
			httpEquiv = bytes.EqualFold(bytes.TrimSpace(val), []byte("content-type"))
		case "content":
			content = bytes.Contains(bytes.ToLower(val), []byte("charset="))
		}
	}
	return httpEquiv && content
}

// productPage returns a realistic shop page of about size bytes: a head with
// metas, links, inline styles and scripts, then a body of product cards.
func productPage(size int) []byte {
	var b bytes.Buffer
	b.WriteString("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n")
	b.WriteString("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n")
	for i := range 8 {
		fmt.Fprintf(&b, "<meta property=\"og:tag%d\" content=\"Some descriptive open graph value %d\">\n", i, i)
		fmt.Fprintf(&b, "<link rel=\"preload\" href=\"/static/font-%d.woff2\" as=\"font\" crossorigin>\n", i)
	}
	b.WriteString("<link rel=\"stylesheet\" href=\"/static/app.3f9a1c.css\">\n<style>\n")
	for i := range 40 {
		fmt.Fprintf(&b, ".card-%d{display:flex;padding:%dpx;border:1px solid #ddd;border-radius:8px}\n", i, i%16)
	}
	b.WriteString("</style>\n<script>window.__STATE__ = {\"user\": null, \"cart\": []};</script>\n")
	b.WriteString("<title>Products – Example Shop</title>\n</head>\n<body class=\"catalog\">\n<main>\n")
	for i := 0; b.Len() < size-100; i++ {
		fmt.Fprintf(&b, `<article class="card card-%d" data-id="%d">
  <a href="/products/%d"><img src="/img/p%d.jpg" alt="Product %d" loading="lazy" width="320" height="240"></a>
  <h2 class="title">Product number %d</h2>
  <p class="price">&euro;%d.99 <del>&euro;%d.99</del></p>
  <button type="button" class="add" onclick="addToCart(%d)">Add to cart</button>
</article>
`, i%40, i, i, i, i, i, 10+i%90, 20+i%90, i)
	}
	b.WriteString("</main>\n</body>\n</html>\n")
	return b.Bytes()
}

// onlyReader and onlyWriter hide io.WriterTo and io.ReaderFrom so that the
// benchmarks copy through a 32 KiB buffer with Read, as
// httputil.ReverseProxy does with a response body.
type onlyReader struct{ io.Reader }
type onlyWriter struct{ io.Writer }

// benchmarkCopy measures wrap over a 100 KB product page (see benchmarkPage).
func benchmarkCopy(b *testing.B, wrap func(io.Reader) io.Reader) {
	benchmarkPage(b, productPage(100<<10), wrap)
}

// BenchmarkInjector measures injecting into a 100 KB page; compare with
// BenchmarkCopyBaseline.
func BenchmarkInjector(b *testing.B) {
	snippet := []byte(testSnippet)
	inject := func(r io.Reader) io.Reader { return NewInjector(r, snippet) }
	b.Run("charset first", func(b *testing.B) { benchmarkCopy(b, inject) })
	// The look-ahead's worst case: a "charset" after the default injection
	// point, here an attribute of a script, makes it tokenize the rest of
	// the prescan window.
	page := bytes.Replace(productPage(100<<10), []byte("<head>\n<meta charset=\"utf-8\">\n"),
		[]byte("<head>\n<title>Shop</title><script src=\"/a.js\" charset=\"utf-8\"></script>\n"), 1)
	b.Run("charset attribute after the title", func(b *testing.B) { benchmarkPage(b, page, inject) })
}

// BenchmarkCopyBaseline copies the same page without an Injector.
func BenchmarkCopyBaseline(b *testing.B) {
	benchmarkCopy(b, func(r io.Reader) io.Reader { return r })
}

// TestInjectorDecidesWithoutWaiting checks that the snippet goes out as
// soon as the source has sent the token that decides where it goes, even
// when that token is not complete yet: the first bytes of a slow page are
// not held back.
func TestInjectorDecidesWithoutWaiting(t *testing.T) {
	for _, sent := range []string{
		"<!DOCTYPE html><html><head>{S}<title>",
		"<html>{S}<div class=",
		"<html>\n  {S}hel",
		"<html>{S}</he",
		"<head>{S}<meta name=a><link",
		"<head>{S}<meta name=a>" + strings.Repeat(" ", prescanWindow) + "<!-- not over yet",
	} {
		input, want, _ := split(sent)
		src := &blockingAfter{data: []byte(input), release: make(chan struct{})}
		inj := NewInjector(src, []byte(testSnippet))
		if out := readWhileBlocked(t, inj, len(want)); out != want {
			t.Errorf("after %q: got %q, want %q", input, out, want)
		}
		close(src.release)
	}
}

// emptyReader returns no bytes and no error, forever.
type emptyReader struct{}

func (emptyReader) Read([]byte) (int, error) { return 0, nil }

func TestInjectorSourceWithoutProgress(t *testing.T) {
	inj := NewInjector(emptyReader{}, []byte(testSnippet))
	if _, err := inj.Read(make([]byte, 16)); !errors.Is(err, io.ErrNoProgress) {
		t.Fatalf("Read = %v, want io.ErrNoProgress", err)
	}
}

// blockingAfter returns data, then blocks until released: a slow upstream.
type blockingAfter struct {
	data    []byte
	release chan struct{}
}

func (b *blockingAfter) Read(p []byte) (int, error) {
	if len(b.data) > 0 {
		n := copy(p, b.data)
		b.data = b.data[n:]
		return n, nil
	}
	<-b.release
	return 0, io.EOF
}
