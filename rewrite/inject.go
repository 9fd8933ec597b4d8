// Package rewrite holds the pure, streaming transforms that cobrowse applies to
// the bytes of documents it fronts, starting with the insertion of the visitor
// script into HTML pages.
//
// The HTML transforms are io.Readers over another io.Reader: each reads only as
// much of its source as it needs to make its next decision, holds a bounded
// amount of memory whatever the input, copies untouched bytes verbatim (it never
// re-serialises what it parsed) and starts no goroutines. AppendCSSURLs works
// on a whole style sheet held in memory (the asset fetcher has it already) and
// copies untouched bytes verbatim too. The package does no
// network I/O and no logging; it reports what it did through accessors so that
// the caller can log and measure.
package rewrite

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"iter"
	"sync"

	"golang.org/x/net/html"
)

// MaxTokenSize bounds the size of an HTML token (tag, comment, doctype or run
// of text) that an Injector buffers while it looks for the injection point,
// and so the memory it holds on hostile input: a token of this size or more
// before the injection point makes the Injector give up injecting (see
// ErrTokenTooLarge).
const MaxTokenSize = 256 << 10

// ErrTokenTooLarge is reported by Injector.Err when a single token before the
// injection point reaches MaxTokenSize bytes. The document is then passed
// through unchanged, without the snippet.
var ErrTokenTooLarge = errors.New("rewrite: HTML token too large")

// ErrUTF16 is reported by Injector.Err for a document that starts with a
// UTF-16 byte order mark: the snippet is UTF-8, so such a document is passed
// through unchanged.
var ErrUTF16 = errors.New("rewrite: UTF-16 document")

// utf8BOM is the byte order mark some documents start with. It must stay the
// first bytes of the output: browsers only honour it there.
const utf8BOM = "\xef\xbb\xbf"

// prescanWindow is how far browsers look for a <meta> charset declaration
// before parsing (the HTML standard's encoding prescan reads 1024 bytes).
const prescanWindow = 1024

// An Injector is an io.Reader that yields the bytes of an HTML document
// unchanged, except that a snippet is inserted exactly once, at the start of
// the document's head:
//
//   - a leading byte order mark, doctype, comments, processing instructions,
//     whitespace and the <html> start tag are copied through first;
//   - if the next token is a <head> start tag (in any case, with any
//     attributes), the snippet goes right after it;
//   - otherwise the snippet goes right before that token (another start tag,
//     an end tag, or text after any leading whitespace), where a browser
//     would open the implied head;
//   - but if <meta> tags (with only whitespace and comments between them)
//     follow that point within the first 1024 bytes, and one of them declares
//     the character encoding (charset, or http-equiv="Content-Type" with a
//     charset), the snippet goes right after that one: the declaration stays
//     first and within the window browsers prescan for it. The look-ahead
//     stops at the first other element, so output never waits on more than
//     the <meta> run;
//   - and if a declaration comes later (after a <title>, say), ending so
//     close to byte 1024 that the snippet would push it past, the snippet
//     goes right after it, provided the Injector has already read it when it
//     decides (see injectByDefault);
//   - if the document ends first, the snippet goes at its end, but before a
//     tag, comment or doctype left unterminated there (browsers drop such a
//     tag, and would read the snippet as part of such a comment). An empty
//     document stays empty.
//
// The tokens are read by a small lexer that follows the HTML standard's
// tokenizer for what can come before a head (text, comments, bogus comments
// such as "<?xml ...?>" and "<![CDATA[...]]>", doctypes, start and end tags
// with their attributes), so text inside comments or attribute values (such
// as a "<head>" in a comment) is never mistaken for markup. It decides at the
// first token that is neither skipped nor a <meta> in the look-ahead, without
// reading that token to its end; from there it copies the rest of the source
// straight through.
//
// The output is always the input with the snippet inserted at Offset, or the
// input itself when Injected reports false; no byte is lost, duplicated or
// altered. An Injector gives up injecting, and passes everything through, if a
// token before the injection point reaches MaxTokenSize bytes, if reading the
// source fails before the injection point, or if the document starts with a
// UTF-16 byte order mark; Err then says why. Insertion happens only between
// tokens, so a multi-byte character (in UTF-8 or in any ASCII-compatible
// encoding such as windows-1252, ISO-8859-x, Shift_JIS or GB18030) is never
// split.
//
// Read returns the source's errors at the same position in the byte stream
// as the source did: an error other than io.EOF is returned once, and a later
// Read goes back to the source. An Injector is not safe for concurrent use,
// and the snippet must not be modified while it is in use.
type Injector struct {
	src     io.Reader
	snippet []byte

	// Until the injection point is decided, the source is read into buf
	// (from firstReads, or grown for a long token) and lexed there.
	buf    []byte
	w      int   // buf[:w] holds data from the source
	pos    int   // the start of the token to lex next
	e      int   // buf[:e] has been returned
	base   int64 // the source position of buf[0]
	heldAt int   // while looking ahead across <meta> tags, the default injection point; -1 otherwise
	srcErr error // the error of the source's last read
	began  bool  // the byte order marks at the start have been looked at

	// pending is what Read returns before anything else: the undecided
	// bytes that had to make room in buf, or, once decided, the rest of buf
	// with the snippet in it. It aliases buf and the snippet; segs is its
	// backing array, so queueing never allocates.
	pending [][]byte
	segs    [3][]byte
	decided bool

	// tail is what Read does once pending is drained after the decision: nil
	// reads on from src, io.EOF ends the stream, any other error is returned
	// once and then reset to nil.
	tail error

	maxToken          int
	charsetFromHeader bool  // see CharsetFromHeader
	offset            int64 // where the snippet starts in the output, if injected
	injected          bool
	err               error // why injection was abandoned; nil otherwise
}

// NewInjector returns an Injector that reads the HTML document in src and
// inserts snippet once, at the start of its head. See Injector for the rules.
func NewInjector(src io.Reader, snippet []byte) *Injector {
	return newInjector(src, snippet, MaxTokenSize)
}

// newInjector is NewInjector with a configurable token size limit, so that
// tests can reach the give-up path with small inputs.
func newInjector(src io.Reader, snippet []byte, maxToken int) *Injector {
	return &Injector{src: src, snippet: snippet, maxToken: maxToken, heldAt: -1}
}

// CharsetFromHeader tells the Injector, before its first Read, that the
// document's Content-Type header names its character encoding, which
// browsers then use whatever a <meta> says: the Injector no longer looks
// ahead for a charset declaration to keep in the prescan window (see
// injectByDefault), which saves it a few microseconds on some pages.
func (in *Injector) CharsetFromHeader() { in.charsetFromHeader = true }

// Injected reports whether the snippet has been placed in the output. It is
// final once it is true, or once Read has returned io.EOF.
func (in *Injector) Injected() bool { return in.injected }

// Offset returns the position of the snippet's first byte in the output,
// which is also the number of source bytes before it; -1 if the snippet has
// not been injected.
func (in *Injector) Offset() int64 {
	if !in.injected {
		return -1
	}
	return in.offset
}

// Err reports why the Injector gave up injecting: an error wrapping
// ErrTokenTooLarge or ErrUTF16, or one wrapping the source's read error if
// that came before the injection point. It is nil if the snippet was
// injected, if the document was empty, or while the decision is still
// pending.
func (in *Injector) Err() error { return in.err }

// Read implements io.Reader. Until the injection point is decided, Read
// waits for the source: the doctype and <html> tag are of no use to a
// browser on their own, and one write of them with the head is cheaper than
// one per read. (If the tokens before the injection point fill the buffer,
// they go out to make room.) From the decision on, it returns what it has as
// soon as it has it: the rest of what it read, then what the source returns.
func (in *Injector) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for !in.decided && len(in.pending) == 0 {
		in.advance()
	}
	n := 0
	for n < len(p) && len(in.pending) > 0 {
		c := copy(p[n:], in.pending[0])
		n += c
		if c < len(in.pending[0]) {
			in.pending[0] = in.pending[0][c:]
		} else {
			in.pending = in.pending[1:]
		}
	}
	if n > 0 {
		return n, nil
	}
	in.releaseBuf() // decided, and nothing aliases buf any longer
	switch in.tail {
	case nil:
		return in.src.Read(p)
	case io.EOF:
		return 0, io.EOF
	default:
		err := in.tail
		in.tail = nil
		return 0, err
	}
}

// advance lexes what buf holds and decides the injection point if it can;
// otherwise it makes room in buf (queueing lexed bytes), or reads more.
func (in *Injector) advance() {
	if in.lex() {
		return
	}
	keep := in.pos // the bytes from here on are still needed
	if in.heldAt >= 0 {
		keep = in.heldAt
	}
	switch {
	case in.srcErr != nil: // an error; lex has handled io.EOF
		if in.heldAt >= 0 {
			in.inject(in.heldAt)
			return
		}
		in.giveUp(fmt.Errorf("rewrite: reading the document before the injection point: %w", in.srcErr))
	case in.w == len(in.buf) && keep > in.e:
		in.queue(in.buf[in.e:keep])
		in.e = keep
	default:
		in.fill()
	}
}

// fill reads from the source after the data in buf, first making room: it
// drops what has been returned, or grows a buf full of bytes still needed.
// It records the source's error, or io.ErrNoProgress (as io.Reader users
// do) if the source returns nothing 100 times in a row.
func (in *Injector) fill() {
	switch {
	case in.buf == nil:
		in.buf = firstReads.Get().(*[firstReadSize]byte)[:]
	case in.w < len(in.buf):
	case in.e > 0:
		copy(in.buf, in.buf[in.e:in.w])
		in.w -= in.e
		in.pos -= in.e
		if in.heldAt >= 0 {
			in.heldAt -= in.e
		}
		in.base += int64(in.e)
		in.e = 0
	default:
		bigger := make([]byte, 2*len(in.buf))
		copy(bigger, in.buf)
		in.releaseBuf()
		in.buf = bigger
	}
	for empty := 0; ; {
		m, err := in.src.Read(in.buf[in.w:])
		in.w += m
		if err != nil {
			in.srcErr = err
			return
		}
		if m > 0 {
			return
		}
		if empty++; empty == 100 {
			in.srcErr = io.ErrNoProgress
			return
		}
	}
}

// releaseBuf returns buf to firstReads if it came from there.
func (in *Injector) releaseBuf() {
	if cap(in.buf) == firstReadSize {
		firstReads.Put((*[firstReadSize]byte)(in.buf[:firstReadSize]))
	}
	in.buf = nil
}

// lex reads the tokens from pos and reports whether it decided the
// injection point (or to give up). It returns false when buf ends inside a
// token that the decision depends on and more of the source may come.
func (in *Injector) lex() bool {
	buf := in.buf[:in.w]
	atEOF := in.srcErr == io.EOF
	if !in.began {
		if len(buf) < 2 && !atEOF || len(buf) < len(utf8BOM) && !atEOF && bytes.HasPrefix([]byte(utf8BOM), buf) {
			return false
		}
		in.began = true
		if len(buf) >= 2 && (buf[0] == 0xfe && buf[1] == 0xff || buf[0] == 0xff && buf[1] == 0xfe) {
			in.giveUp(fmt.Errorf("%w: serving it without the snippet", ErrUTF16))
			return true
		}
		if bytes.HasPrefix(buf, []byte(utf8BOM)) {
			in.pos = len(utf8BOM) // it stays first: browsers only honour it there
		}
	}
	for {
		if in.pos == len(buf) {
			if !atEOF {
				return false
			}
			switch {
			case in.heldAt >= 0:
				in.inject(in.heldAt)
			case in.base+int64(in.pos) > 0:
				in.inject(in.pos)
			default:
				in.decide() // an empty document stays empty
			}
			return true
		}
		kind, end := nextToken(buf, in.pos, atEOF)
		lookingAhead := in.heldAt >= 0 // across a run of <meta> tags, whitespace and comments within the prescan window
		if lookingAhead && (in.base+int64(in.pos) >= prescanWindow || kind != tokMore && kind != tokMeta && kind != tokComment && kind != tokSpace) {
			in.injectByDefault(in.heldAt) // the run is over
			return true
		}
		if kind != tokOther {
			// The decision waits for the token's end, and so for no
			// more than maxToken bytes of it. (A tokMore is at most a
			// few bytes.)
			seen := end // the bytes of it in buf
			if end < 0 {
				seen = len(buf)
			}
			if kind != tokMore && seen-in.pos >= in.maxToken {
				in.tooLarge()
				return true
			}
			if end < 0 {
				if !atEOF {
					return false
				}
				kind = tokOther // unterminated at the end: the snippet goes before it
			}
		}
		switch {
		case lookingAhead && kind == tokMeta && declaresCharset(buf[in.pos:end]):
			in.inject(end)
			return true
		case lookingAhead && kind == tokOther:
			in.injectByDefault(in.heldAt)
			return true
		case lookingAhead, kind == tokSpace, kind == tokComment, kind == tokDoctype, kind == tokHTML:
			in.pos = end
		case kind == tokHead:
			in.pos, in.heldAt = end, end
		case kind == tokMeta:
			in.heldAt = in.pos // and look at it again, looking ahead
		default:
			in.injectByDefault(in.pos)
			return true
		}
	}
}

// injectByDefault injects at buf[at], the default injection point, unless
// that would push a charset declaration out of the prescan window: the
// snippet then goes right after the last <meta> that declares the encoding
// and ends within the window, in the bytes buf holds (those that came with
// the reads until the decision: waiting for the rest of the window would
// hold back the start of pages the upstream streams). It does not move the
// snippet into a <template>, <svg> or <math> (where it would not run as a
// script) or after a <frameset> (where a script is ignored); the
// declaration is then left to be pushed.
func (in *Injector) injectByDefault(at int) {
	windowEnd := prescanWindow - in.base // where the window ends, as an index of buf
	seen := min(int64(in.w), windowEnd)
	if in.charsetFromHeader || int64(at) >= seen || seen+int64(len(in.snippet)) <= windowEnd || !containsFoldASCII(in.buf[at:seen], "charset") {
		in.inject(at) // nothing the snippet could push out (the common case)
		return
	}
	// A Tokenizer, which lexes the raw text of <title> and <script> as the
	// Injector's lexer does not, over the rest of the window: about 8 µs
	// and 90 allocations (BenchmarkInjector), on the rare pages that get
	// here and whose header names no UTF-8 (see CharsetFromHeader).
	z := html.NewTokenizer(bytes.NewReader(in.buf[at:seen]))
	after, end := at, at
	for tt := z.Next(); tt != html.ErrorToken; tt = z.Next() {
		raw := z.Raw()
		end += len(raw)
		if tt != html.StartTagToken && tt != html.SelfClosingTagToken {
			continue
		}
		switch name := tagName(raw); {
		case equalFoldASCII(name, "meta") && declaresCharset(raw):
			after = end
		case equalFoldASCII(name, "template"), equalFoldASCII(name, "svg"), equalFoldASCII(name, "math"), equalFoldASCII(name, "frameset"):
			in.inject(at)
			return
		}
	}
	if int64(after+len(in.snippet)) > windowEnd {
		at = after
	}
	in.inject(at)
}

// tooLarge handles a token of maxToken bytes or more at pos: the snippet
// goes to the default injection point if the look-ahead has one, and
// otherwise the Injector gives up.
func (in *Injector) tooLarge() {
	if in.heldAt >= 0 {
		in.inject(in.heldAt)
		return
	}
	in.giveUp(fmt.Errorf("%w: a token before the head is %d bytes or more; serving the document without the snippet", ErrTokenTooLarge, in.maxToken))
}

// inject decides that the snippet goes at buf[at], and queues the rest of
// buf around it.
func (in *Injector) inject(at int) {
	in.injected, in.offset = true, in.base+int64(at)
	in.queue(in.buf[in.e:at], in.snippet, in.buf[at:in.w])
	in.decide()
}

// giveUp decides to pass the document through without the snippet, for the
// reason err.
func (in *Injector) giveUp(err error) {
	in.err = err
	in.queue(in.buf[in.e:in.w])
	in.decide()
}

// decide switches to passing the rest of the source through, after what is
// queued. The source may already have reported io.EOF or an error, together
// with or after the bytes in buf: it is handed on after them.
func (in *Injector) decide() {
	in.decided, in.heldAt, in.tail = true, -1, in.srcErr
}

// queue replaces the drained pending list with segs; empty ones are dropped.
func (in *Injector) queue(segs ...[]byte) {
	in.pending = in.segs[:0]
	for _, s := range segs {
		if len(s) > 0 {
			in.pending = append(in.pending, s)
		}
	}
}

// firstReadSize is the size of an Injector's buffer, and so of its first
// read, unless a token before the injection point needs more.
const firstReadSize = 4096

// firstReads holds Injectors' buffers between documents: a fresh one per
// page was a sixth of the bytes the proxy allocated per page
// (docs/benchmarks.md).
var firstReads = sync.Pool{New: func() any { return new([firstReadSize]byte) }}

// tokenKind is what a token before the injection point is, to an Injector.
type tokenKind uint8

const (
	tokOther   tokenKind = iota // any other token: the default injection point is before it
	tokMore                     // buf ends before the kind is known, within a few bytes of the token's start
	tokSpace                    // text of whitespace only
	tokComment                  // a comment, bogus comment or "</>"
	tokDoctype
	tokHTML // an <html> start tag
	tokHead // a <head> start tag
	tokMeta // a <meta> start tag
)

// nextToken lexes the token that starts at buf[i], as the HTML standard's
// tokenizer does in its data state. It returns its kind and the offset
// after it, or end -1 if buf ends before the token does, and for tokOther,
// whose end is of no interest. A token of another kind than tokMore that
// buf ends inside runs to the end of buf. atEOF says that no data follows
// buf, so that whitespace at its end is a whole token.
func nextToken(buf []byte, i int, atEOF bool) (kind tokenKind, end int) {
	if buf[i] != '<' {
		return textToken(buf, i, atEOF)
	}
	if i+1 == len(buf) {
		return tokMore, -1
	}
	switch c := buf[i+1]; {
	case isLetter(c):
		nameEnd, end := tagEnd(buf, i+1)
		name := buf[i+1 : nameEnd]
		if nameEnd == len(buf) {
			// The name may go on: wait only if it may be one that matters.
			if isPrefixFoldASCII(name, "html") || isPrefixFoldASCII(name, "head") || isPrefixFoldASCII(name, "meta") {
				return tokMore, -1
			}
			return tokOther, -1
		}
		switch {
		case equalFoldASCII(name, "html"):
			return tokHTML, end
		case equalFoldASCII(name, "head"):
			return tokHead, end
		case equalFoldASCII(name, "meta"):
			return tokMeta, end
		}
		return tokOther, -1
	case c == '/':
		switch {
		case i+2 == len(buf):
			return tokMore, -1
		case isLetter(buf[i+2]):
			return tokOther, -1 // an end tag
		case buf[i+2] == '>':
			return tokComment, i + 3 // "</>" is ignored
		}
		return tokComment, closeAngle(buf, i+2) // a bogus comment
	case c == '?':
		return tokComment, closeAngle(buf, i+2)
	case c == '!':
		if open := buf[i+2 : min(i+4, len(buf))]; bytes.HasPrefix([]byte("--"), open) {
			if len(open) < 2 {
				return tokMore, -1 // "<!" or "<!-" so far
			}
			return tokComment, htmlCommentEnd(buf, i+4)
		}
		end := closeAngle(buf, i+2)
		if end < 0 {
			// A doctype or a bogus comment, which end alike: which one
			// it is only matters once it is complete.
			return tokComment, -1
		}
		if decl := buf[i+2 : end]; len(decl) >= len("doctype") && equalFoldASCII(decl[:len("doctype")], "doctype") {
			return tokDoctype, end
		}
		return tokComment, end
	}
	return tokOther, -1 // a '<' that is text
}

// textToken lexes the text that starts at buf[i], which is not '<': a
// run of whitespace is a token of its own, ending at the first byte that is
// not whitespace; text that is not whitespace is tokOther.
func textToken(buf []byte, i int, atEOF bool) (tokenKind, int) {
	if !isWhite(buf[i]) {
		return tokOther, -1
	}
	if end := skipWhite(buf, i); end < len(buf) || atEOF {
		return tokSpace, end
	}
	return tokSpace, -1
}

// closeAngle returns the offset after the first '>' in buf from i, which
// ends a doctype or a bogus comment, or -1 if there is none.
func closeAngle(buf []byte, i int) int {
	if j := bytes.IndexByte(buf[i:], '>'); j >= 0 {
		return i + j + 1
	}
	return -1
}

// htmlCommentEnd returns the offset after the comment whose text starts at
// buf[i] (after "<!--"), or -1 if buf ends first. As the standard's comment
// states do, it ends the comment at "-->" (or more dashes), at "--!>", and
// at once at ">" or "->".
func htmlCommentEnd(buf []byte, i int) int {
	switch {
	case i < len(buf) && buf[i] == '>':
		return i + 1
	case i+1 < len(buf) && buf[i] == '-' && buf[i+1] == '>':
		return i + 2
	}
	for {
		j := bytes.Index(buf[i:], []byte("--"))
		if j < 0 {
			return -1
		}
		for i += j + 2; i < len(buf) && buf[i] == '-'; i++ {
		}
		switch {
		case i == len(buf) || buf[i] == '!' && i+1 == len(buf):
			return -1
		case buf[i] == '>':
			return i + 1
		case buf[i] == '!' && buf[i+1] == '>':
			return i + 2
		}
	}
}

// declaresCharset reports whether the raw bytes of a <meta> tag declare the
// document's character encoding, as the encoding prescan reads them: a
// charset attribute, or http-equiv="Content-Type" with a content that
// contains "charset=". Attributes are read as html.Tokenizer reads them (the
// first of two with the same name counts), without its allocations: a
// tokenizer for this was a sixth of the bytes the proxy allocated per page.
func declaresCharset(raw []byte) bool {
	if !containsFoldASCII(raw, "charset") {
		return false // the common case
	}
	var httpEquiv, content, seenHTTPEquiv, seenContent bool
	for key, val := range tagAttrs(raw) {
		switch {
		case equalFoldASCII(key, "charset"):
			return true
		case equalFoldASCII(key, "http-equiv") && !seenHTTPEquiv:
			seenHTTPEquiv = true
			httpEquiv = bytes.EqualFold(bytes.TrimSpace(unescapeAttr(val)), []byte("content-type"))
		case equalFoldASCII(key, "content") && !seenContent:
			seenContent = true
			content = containsFoldASCII(unescapeAttr(val), "charset=")
		}
	}
	return httpEquiv && content
}

// unescapeAttr returns an attribute value with its character references
// decoded; it allocates only if there is one.
func unescapeAttr(val []byte) []byte {
	if bytes.IndexByte(val, '&') < 0 {
		return val
	}
	return []byte(html.UnescapeString(string(val)))
}

// tagAttrs yields the attributes of a start tag, given as the complete raw
// bytes html.Tokenizer returns for it ("<name ...>"), split where the
// tokenizer splits them: each key as written (its case unchanged) and its
// value, unquoted but with its character references still in it (nil if it
// has none). Unlike the tokenizer, it yields every attribute, later ones of
// the same name included.
func tagAttrs(raw []byte) iter.Seq2[[]byte, []byte] {
	return func(yield func(key, val []byte) bool) {
		i := 1 + len(tagName(raw)) // after "<name"
		for {
			i = skipWhite(raw, i)
			if i >= len(raw) || raw[i] == '>' {
				return
			}
			// The key runs to whitespace, '/', '>' or '=', except that an
			// '=' it starts with is part of it.
			keyStart := i
			for i < len(raw) && (byteClass[raw[i]]&endsAttrName == 0 || raw[i] == '=' && i == keyStart) {
				i++
			}
			key := raw[keyStart:i]
			var val []byte
			i = skipWhite(raw, i)
			switch {
			case i >= len(raw):
			case raw[i] == '/':
				i++ // a self-closing slash (or a stray one): no value
			case raw[i] == '=':
				i = skipWhite(raw, i+1)
				val, i = attrValue(raw, i)
			}
			if len(key) > 0 && !yield(key, val) {
				return
			}
		}
	}
}

// attrValue returns the attribute value that starts at raw[i] (after "=" and
// whitespace), quoted or not, and the offset after it.
func attrValue(raw []byte, i int) (val []byte, next int) {
	if i >= len(raw) {
		return nil, i
	}
	switch q := raw[i]; q {
	case '>':
		return nil, i // "k=>": an empty value; '>' ends the tag
	case '"', '\'':
		end := bytes.IndexByte(raw[i+1:], q)
		if end < 0 {
			return raw[i+1:], len(raw)
		}
		return raw[i+1 : i+1+end], i + 2 + end
	}
	start := i
	for i < len(raw) && byteClass[raw[i]]&endsUnquoted == 0 {
		i++
	}
	return raw[start:i], i
}

// containsFoldASCII reports whether b contains the lower-case ASCII string s,
// ignoring ASCII case.
func containsFoldASCII(b []byte, s string) bool {
	for i := 0; i+len(s) <= len(b); i++ {
		if equalFoldASCII(b[i:i+len(s)], s) {
			return true
		}
	}
	return false
}

// tagName returns the name in the raw bytes of a start tag ("<name ...>"),
// delimited as the tokenizer delimits it.
func tagName(raw []byte) []byte {
	name := raw[1:] // skip '<'
	if i := bytes.IndexAny(name, " \t\n\f\r/>"); i >= 0 {
		name = name[:i]
	}
	return name
}

// isPrefixFoldASCII reports whether b is a prefix of the lower-case ASCII
// string s, ignoring ASCII case.
func isPrefixFoldASCII(b []byte, s string) bool {
	return len(b) <= len(s) && equalFoldASCII(b, s[:len(b)])
}

// equalFoldASCII reports whether b equals the lower-case ASCII string s,
// ignoring ASCII case only, as HTML tag names do.
func equalFoldASCII[T string | []byte](b T, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}
