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
//     an end tag or text that is not whitespace), where a browser would open
//     the implied head;
//   - but if <meta> tags (with only whitespace and comments between them)
//     follow that point within the first 1024 bytes, and one of them declares
//     the character encoding (charset, or http-equiv="Content-Type" with a
//     charset), the snippet goes right after that one: the declaration stays
//     first and within the window browsers prescan for it. The look-ahead
//     stops at the first other element, so output never waits on more than
//     the <meta> run; a declaration that comes after other head elements and
//     ends within len(snippet) bytes of byte 1024 can therefore be pushed
//     past the window (browsers then use the HTTP charset, or sniff);
//   - if the document ends first, the snippet goes at its end (before an
//     unterminated tag there, which browsers discard). An empty document stays
//     empty.
//
// The decision is made on tokens of golang.org/x/net/html's Tokenizer, so text
// inside comments, attribute values or scripts (such as a "</head>" in a
// string) is never mistaken for markup. Once the snippet is placed, the
// Injector stops tokenizing and copies the rest of the source straight
// through.
//
// The output is always the input with the snippet inserted at Offset, or the
// input itself when Injected reports false; no byte is lost, duplicated or
// altered. An Injector gives up injecting, and passes everything through, if a
// token before the injection point exceeds MaxTokenSize, if reading the source
// fails before the injection point, or if the document starts with a UTF-16
// byte order mark; Err then says why. Insertion happens only between tokens,
// so a multi-byte character (in UTF-8 or in any ASCII-compatible encoding such
// as windows-1252, ISO-8859-x, Shift_JIS or GB18030) is never split.
//
// Read returns the source's errors at the same position in the byte stream
// as the source did: an error other than io.EOF is returned once, and a later
// Read goes back to the source. An Injector is not safe for concurrent use,
// and the snippet must not be modified while it is in use.
type Injector struct {
	src     errRecorder // what the tokenizer reads from; src.r afterwards
	snippet []byte
	started bool            // the first bytes have been read (see start)
	z       *html.Tokenizer // nil before start and once the injection point is decided

	// pending holds bytes to return before anything else; they alias z's
	// buffer and the snippet, so z must not advance until they are copied
	// out.
	pending [][]byte
	segs    [5][]byte // backing array for pending, so queueing never allocates

	// While looking ahead across <meta> tags for a charset declaration,
	// held is a copy of the tokens seen since the default injection point,
	// which is at source position heldAt.
	lookingAhead bool
	held         []byte
	heldAt       int64

	// tail is what Read does once pending is drained after the decision: nil
	// reads on from src, io.EOF ends the stream, any other error is returned
	// once and then reset to nil.
	tail error

	maxToken int   // the tokenizer's buffer limit, for Err's message
	pos      int64 // bytes of src queued for output while tokenizing
	offset   int64 // where the snippet starts in the output, if injected
	injected bool
	err      error // why injection was abandoned; nil otherwise
}

// NewInjector returns an Injector that reads the HTML document in src and
// inserts snippet once, at the start of its head. See Injector for the rules.
func NewInjector(src io.Reader, snippet []byte) *Injector {
	return newInjector(src, snippet, MaxTokenSize)
}

// newInjector is NewInjector with a configurable token size limit, so that
// tests can reach the give-up path with small inputs.
func newInjector(src io.Reader, snippet []byte, maxToken int) *Injector {
	return &Injector{src: errRecorder{r: src}, snippet: snippet, maxToken: maxToken}
}

// start reads the document's first bytes (at least two, unless it is
// shorter) before anything is tokenized: a UTF-16 byte order mark there means
// the document passes through unchanged. Otherwise the tokenizer starts on
// those bytes and the rest. It reads as the tokenizer would, one ordinary
// read and more only while fewer than two bytes came, and keeps an error
// where the source returned it.
func (in *Injector) start() {
	in.started = true
	buf := firstReads.Get().(*[firstReadSize]byte)
	first := buf[:]
	n := 0
	var err error
	for empty := 0; n < 2 && err == nil; {
		var m int
		m, err = in.src.r.Read(first[n:])
		n += m
		if m > 0 {
			empty = 0
		} else if empty++; empty == 100 {
			err = io.ErrNoProgress // as the tokenizer reports such a source
		}
	}
	first = first[:n]
	if n >= 2 && (first[0] == 0xfe && first[1] == 0xff || first[0] == 0xff && first[1] == 0xfe) {
		in.err = fmt.Errorf("%w: serving it without the snippet", ErrUTF16)
		in.queue(first) // buf now belongs to the output: it is not reused
		in.tail = err
		return
	}
	in.src.r = &prefixReader{prefix: first, buf: buf, err: err, r: in.src.r}
	in.z = html.NewTokenizer(&in.src)
	in.z.SetMaxBuf(in.maxToken)
}

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
// ErrTokenTooLarge, or one wrapping the source's read error if that came
// before the injection point. It is nil if the snippet was injected, if the
// document was empty, or while the decision is still pending.
func (in *Injector) Err() error { return in.err }

// Read implements io.Reader. Until the injection point is found, Read
// fills p with the tokens before it, waiting for the source if need be: the
// doctype and <html> tag are of no use to a browser on their own, and one
// write of them is cheaper than one per token. From the injection point on, it
// returns what it has as soon as it has it: what the tokenizer read ahead,
// then what the source returns.
func (in *Injector) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if len(in.pending) == 0 {
			switch {
			case !in.started:
				in.start()
			case in.z != nil:
				in.step()
			default:
				goto drained
			}
			continue
		}
		c := copy(p[n:], in.pending[0])
		n += c
		if c < len(in.pending[0]) {
			in.pending[0] = in.pending[0][c:]
		} else {
			in.pending = in.pending[1:]
		}
	}
drained:
	if n > 0 || len(p) == 0 {
		return n, nil
	}
	switch in.tail {
	case nil:
		return in.src.r.Read(p)
	case io.EOF:
		return 0, io.EOF
	default:
		err := in.tail
		in.tail = nil
		return 0, err
	}
}

// step reads the next token and queues its bytes, with the snippet before or
// after them if the token decides the injection point.
func (in *Injector) step() {
	tt := in.z.Next()
	raw := in.z.Raw()
	if tt == html.ErrorToken {
		in.stop(raw, in.z.Err())
		return
	}
	if in.lookingAhead {
		in.lookAhead(tt, raw)
		return
	}
	var bom []byte
	if tt == html.TextToken && in.pos == 0 && bytes.HasPrefix(raw, []byte(utf8BOM)) {
		bom, raw = raw[:len(utf8BOM)], raw[len(utf8BOM):]
	}
	switch classify(tt, raw) {
	case skip:
		in.queue(bom, raw)
		in.pos += int64(len(bom) + len(raw))
	case before:
		if isMeta(tt, raw) {
			in.queue(bom)
			in.pos += int64(len(bom))
			in.lookingAhead, in.heldAt = true, in.pos
			in.lookAhead(tt, raw)
			return
		}
		in.offset = in.pos + int64(len(bom))
		in.queue(bom, in.snippet, raw)
		in.decide()
	case after:
		in.queue(raw)
		in.pos += int64(len(raw))
		in.lookingAhead, in.heldAt = true, in.pos
	}
}

// lookAhead handles a token after the default injection point (heldAt): a
// run of <meta> tags, whitespace and comments within the prescan window is
// held back until it either declares the charset (the snippet goes after
// that tag) or ends (the snippet goes at heldAt).
func (in *Injector) lookAhead(tt html.TokenType, raw []byte) {
	inWindow := in.pos < prescanWindow
	switch {
	case inWindow && isMeta(tt, raw) && declaresCharset(raw):
		in.offset = in.pos + int64(len(raw))
		in.queue(in.held, raw, in.snippet)
		in.decide()
	case inWindow && (isMeta(tt, raw) || tt == html.CommentToken || tt == html.TextToken && isSpace(raw)):
		in.pos += int64(len(raw))
		in.held = append(in.held, raw...)
	default:
		in.offset = in.heldAt
		in.queue(in.snippet, in.held, raw)
		in.decide()
	}
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

// decide records that the snippet is queued and switches to passing the rest
// of the source through: first what the tokenizer read ahead, then src.
func (in *Injector) decide() {
	in.injected, in.lookingAhead = true, false
	in.pending = append(in.pending, in.z.Buffered())
	// The source may already have reported io.EOF or an error, together
	// with or after the bytes now queued; hand it on after them.
	in.tail = in.src.err
	in.z = nil
}

// stop handles the tokenizer stopping before the injection point was found.
// raw holds the bytes of an unfinished token, if any.
func (in *Injector) stop(raw []byte, err error) {
	if in.lookingAhead {
		// The default injection point is known: use it, and pass on what
		// the tokenizer read and the error after it.
		in.offset = in.heldAt
		in.queue(in.snippet, in.held, raw)
		in.decide()
		if err != io.EOF && !errors.Is(err, html.ErrBufferExceeded) {
			in.tail = err
		}
		return
	}
	switch {
	case err == io.EOF:
		if in.pos+int64(len(raw)) > 0 {
			in.injected, in.offset = true, in.pos
			in.queue(in.snippet, raw)
		} else {
			in.queue()
		}
	case errors.Is(err, html.ErrBufferExceeded):
		in.err = fmt.Errorf("%w: a token before the head is %d bytes or more; serving the document without the snippet", ErrTokenTooLarge, in.maxToken)
		in.queue(raw, in.z.Buffered())
		err = in.src.err // nil, or met while reading ahead: after Buffered
	default:
		// A read error, or io.ErrNoProgress from the tokenizer if the
		// source keeps returning nothing.
		in.err = fmt.Errorf("rewrite: reading the document before the injection point: %w", err)
		in.queue(raw, in.z.Buffered())
	}
	in.tail = err
	in.z = nil
}

// errRecorder passes reads through and remembers the last error, which the
// html.Tokenizer only reveals with an ErrorToken; it is needed to hand on an
// error the tokenizer met while reading the token that decides the injection
// point.
type errRecorder struct {
	r   io.Reader
	err error
}

func (e *errRecorder) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil {
		e.err = err
	}
	return n, err
}

// firstReadSize is the size of the Injector's first read (see start).
const firstReadSize = 4096

// firstReads holds the buffers of Injectors' first reads between documents:
// a fresh one per page was a sixth of the bytes the proxy allocated per page
// (docs/benchmarks.md).
var firstReads = sync.Pool{New: func() any { return new([firstReadSize]byte) }}

// prefixReader returns prefix, then err if it is not nil (the error that
// ended reading the prefix), then what r returns. prefix is in buf, a
// buffer from firstReads that goes back to the pool once prefix has been
// read: nothing else refers to it.
type prefixReader struct {
	prefix []byte
	buf    *[firstReadSize]byte
	err    error
	r      io.Reader
}

func (p *prefixReader) Read(b []byte) (int, error) {
	if len(p.prefix) > 0 {
		n := copy(b, p.prefix)
		p.prefix = p.prefix[n:]
		if len(p.prefix) == 0 {
			p.release()
		}
		return n, nil
	}
	p.release() // an empty prefix
	if p.err != nil {
		err := p.err
		if err != io.EOF {
			p.err = nil // returned once, as the source did
		}
		return 0, err
	}
	return p.r.Read(b)
}

// release returns the prefix's buffer to firstReads, once.
func (p *prefixReader) release() {
	if p.buf != nil {
		firstReads.Put(p.buf)
		p.buf, p.prefix = nil, nil
	}
}

// action is what a token before the injection point means for the snippet.
type action int

const (
	skip   action = iota // copy the token through and keep looking
	before               // insert the snippet before the token
	after                // insert the snippet after the token
)

// classify decides what a token met before the injection point means. raw is
// the token's bytes without a leading byte order mark. It reads raw rather
// than calling the tokenizer's TagName or Text, which rewrite the buffer in
// place (lower-casing, unescaping) and so would alter the bytes passed on.
func classify(tt html.TokenType, raw []byte) action {
	switch tt {
	case html.DoctypeToken, html.CommentToken:
		// The tokenizer reports processing instructions ("<?xml ...?>"),
		// CDATA sections and other "<!...>" junk as comments too.
		return skip
	case html.TextToken:
		if isSpace(raw) {
			return skip
		}
	case html.StartTagToken, html.SelfClosingTagToken:
		switch name := tagName(raw); {
		case equalFoldASCII(name, "html"):
			return skip
		case equalFoldASCII(name, "head"):
			return after
		}
	}
	return before
}

// isMeta reports whether a token is a <meta> start tag.
func isMeta(tt html.TokenType, raw []byte) bool {
	return (tt == html.StartTagToken || tt == html.SelfClosingTagToken) && equalFoldASCII(tagName(raw), "meta")
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

// isSpace reports whether b is empty or only HTML whitespace.
func isSpace(b []byte) bool {
	for _, c := range b {
		switch c {
		case ' ', '\t', '\n', '\f', '\r':
		default:
			return false
		}
	}
	return true
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
