package rewrite

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"sync"
)

// ErrInvalidOrigin is reported by URLRewriter.Err when the origin to rewrite
// from or to is the zero Origin (as ParseOrigin returns for anything but an
// http or https origin). The document is then passed through unchanged.
var ErrInvalidOrigin = errors.New("rewrite: invalid origin")

// urlBufSize is the size of a URLRewriter's buffer, and so of its reads from
// the source, until a start tag does not fit in it. Each Read returns at most
// what one read of the source brought, and a proxy writes (and flushes) each
// Read to its client: large reads make a page a few writes, not dozens. And
// a page whose rest comes in one read with its end, and holds no occurrence
// of from's host, is passed on without being lexed (see lex): 128 KiB holds
// most pages whole. A buffer is taken from urlBufs only while a page is read.
const urlBufSize = 128 << 10

// urlBufs holds the buffers of URLRewriters that reached the end of their
// source, for the next one: a page's worth of buffer per page is otherwise
// most of what a proxy allocates.
var urlBufs = sync.Pool{New: func() any { return new([urlBufSize]byte) }}

// A URLRewriter is an io.Reader over an HTML document that rewrites the URL
// attribute values that point at one origin (from) so that they point at
// another (to), and copies every other byte verbatim. cobrowse uses it to keep
// the visitor on the proxy when a page links to the upstream's own origin.
//
// Which values: in start tags only, the values of the attributes href, src,
// action, formaction, poster, cite, background, longdesc and xlink:href (on
// any element), data (on <object>), each URL of a srcset or imagesrcset
// (split into candidates as browsers split it, descriptors kept), and the URL
// of the content of a <meta http-equiv=refresh> ("5; url=...", found as
// browsers find it). Attribute and element names are matched in any ASCII
// case; of attributes with the same name, only the first counts, as for
// browsers.
//
// Which URLs: after leading and trailing C0 controls and spaces, an absolute
// URL whose scheme is from's (any case), followed by two or more slashes or
// backslashes, or a protocol-relative one (two or more slashes or
// backslashes, which take the page's scheme, from's), and then an authority
// whose host equals from's in ASCII case and whose port equals from's, the
// scheme's default port written or not; userinfo (user:password@) may come
// before the host. Only that prefix is replaced, by to's origin, or by "//"
// and to's authority for a protocol-relative URL, with the userinfo kept
// before the authority; the path, query and fragment stay byte for byte.
// Anything else (relative URLs, other origins, javascript: and data: URLs)
// is left alone. RebaseURL does the same to one URL. If from equals to, no
// URL is rewritten: each already points where it should.
//
// With WithMetaCSP, it also edits the Content-Security-Policy that <meta>
// tags in the document's head declare. Once the head is over, it only
// rewrites URLs, and if from equals to it passes the rest of the document
// through without looking at it.
//
// How the document is read: a small lexer that follows the HTML standard's
// tokenizer states for tags, attributes, comments, bogus comments (<!...>,
// <?...>), end tags, and the raw text of script (with its escape states),
// style, textarea, title, xmp, iframe, noembed, noframes, noscript and
// plaintext, so that markup-like text inside comments, scripts or attribute
// values is never taken for a tag. It does not build a tree: foreign content
// (SVG, MathML) is lexed like HTML, so in a CDATA section there its text may
// be taken for markup, and an SVG <style> or <title> is taken for raw text
// (whose URLs are then left alone).
//
// Limits: values are compared on their raw bytes, so a URL whose scheme or
// authority is written with character references (&#x2F;&#x2F;host),
// percent-encoding, or tabs or newlines (which browsers remove from URLs) is
// left as it is; IPv6 hosts match only as written the same way as from's. A
// start tag longer than the maxTag bound (MaxTokenSize) is passed through
// unchanged, and rewriting goes on after it (Err reports it); so is a tag that
// the source's data ends inside, or that a source error interrupts.
//
// Once the source has returned the document's end (io.EOF) with its last
// bytes, as net/http's body of known length does, and the head is over, the
// rest of the document is passed through without being lexed if it holds no
// occurrence of from's host, which every URL to rewrite holds: it cannot
// need rewriting (nor is a long start tag in it reported by Err).
//
// Memory is bounded: text, comments and raw text stream through, and only a
// start tag is held until it is complete, up to the bound. Read returns bytes
// as soon as they are known to need no change. It returns the source's errors
// at the same position in the byte stream as the source did: an error other
// than io.EOF is returned once, and a later Read goes back to the source. A
// URLRewriter starts no goroutine and is not safe for concurrent use.
type URLRewriter struct {
	src    io.Reader
	srcErr error // the error of the source's last Read, until returned

	from, to Origin

	buf    []byte
	w      int // buf[:w] holds data from the source
	pos    int // the next byte the lexer looks at
	e      int // buf[:e] has been queued for output
	hold   int // start of the start tag being held, or -1
	maxTag int

	// hostScan and hostAt remember the last search for from's host in
	// buf[:w] (see hostIn): it started at hostScan (noSearch: no valid
	// search) and found the host at hostAt (noHost: nowhere after hostScan).
	// A URLRewriter that rewrites no URL keeps them at 0 and noHost: no
	// tag needs rewriting, so none is searched.
	hostScan, hostAt int

	// out is returned first, then next; they alias buf and scratch, so buf
	// is not compacted and scratch not rebuilt until both are drained.
	out, next []byte
	scratch   []byte // a rewritten start tag

	state   lexState
	isStart bool     // the tag being lexed is a start tag
	tag     tagClass // the class of the start tag being lexed
	rawName string   // the end tag name that ends raw text
	k       int      // letters matched in an end tag or "script"
	miss    bool     // the letters matched so far are not "script"
	name    nameBuf  // the tag name, then the attribute name being lexed
	attr    attrKind // the kind of the attribute being lexed
	seen    uint16   // the attributes seen in the tag being lexed, by classifyAttr's index
	valAt   int      // where its value starts, from hold
	attrs   []attrSpan

	// rewritesURLs is false when from equals to (or either is invalid).
	rewritesURLs bool

	// With WithMetaCSP, inHead is set until the lexer is past the
	// document's head (see headTag and headText); templates counts the
	// <template> elements open in it.
	editMetaCSP func(string) (string, error)
	metaCSPErr  error
	inHead      bool
	templates   int

	rewritten int64
	err       error
}

// A RewriteOption changes what a URLRewriter does besides rewriting URLs.
type RewriteOption func(*URLRewriter)

// WithMetaCSP makes the URLRewriter edit every Content-Security-Policy that
// the document's head declares in a <meta http-equiv> tag, with edit (which
// receives and returns the policy with its character references decoded;
// for cobrowse, AllowVisitorMeta). Such a policy governs what the page does
// after the tag, the visitor script's WebSocket included.
//
// The head is where browsers put a <meta>: from the start of the document
// until text that is not whitespace (a byte order mark counts as
// whitespace), a start tag other than html, head and the elements a head
// may hold (base, basefont, bgsound, link, meta, noframes, noscript,
// script, style, template, title), or the end tag </body>, </html> or
// </br>, outside <template> elements. A <meta> after </head> but before any
// of these still goes into the head, as browsers move it there. The edited
// value is written in double quotes, with & and " escaped; every other byte
// of the tag stays. A <meta> inside a <template> in the head is edited too,
// though browsers ignore it. If edit fails, the tag is passed on unchanged
// and MetaCSPErr reports the first failure.
func WithMetaCSP(edit func(policy string) (string, error)) RewriteOption {
	return func(u *URLRewriter) { u.editMetaCSP = edit }
}

// MetaCSPErr reports the first error of the WithMetaCSP edit function, if
// any: that <meta> policy was passed through unedited.
func (u *URLRewriter) MetaCSPErr() error { return u.metaCSPErr }

// NewURLRewriter returns a URLRewriter that reads the HTML document in src
// and rewrites its URLs on the origin from to the origin to. If either is the
// zero Origin, nothing is rewritten or edited and Err reports
// ErrInvalidOrigin.
func NewURLRewriter(src io.Reader, from, to Origin, opts ...RewriteOption) *URLRewriter {
	return newURLRewriter(src, from, to, MaxTokenSize, opts...)
}

// newURLRewriter is NewURLRewriter with a configurable bound on start tags,
// so that tests reach it with small inputs.
func newURLRewriter(src io.Reader, from, to Origin, maxTag int, opts ...RewriteOption) *URLRewriter {
	u := &URLRewriter{src: src, hold: -1, maxTag: maxTag, hostScan: noSearch}
	if from.IsZero() || to.IsZero() {
		u.err = fmt.Errorf("%w: rewriting from %q to %q; passing the document through", ErrInvalidOrigin, from, to)
		u.passOn()
		return u
	}
	for _, o := range opts {
		o(u)
	}
	u.from, u.to = from, to
	u.rewritesURLs = from != to
	if !u.rewritesURLs {
		// hostIn answers "no host" without searching (see fill): skipTag
		// then passes every tag that is not held for another reason.
		u.hostScan, u.hostAt = 0, noHost
	}
	u.inHead = u.editMetaCSP != nil
	if !u.rewritesURLs && !u.inHead {
		u.passOn()
	}
	return u
}

// passOn makes the URLRewriter pass the rest of the document through: what
// has been lexed so far goes out as it is (a start tag being held too), and
// the rest is not looked at. The lexer never leaves sPlaintext (which a
// <plaintext> start tag also leads to): there, once the buffer is drained,
// Read reads straight from the source.
func (u *URLRewriter) passOn() {
	u.state, u.hold = sPlaintext, -1
}

// Err reports why a URL that this URLRewriter should have rewritten, or a
// <meta> policy it should have edited, may have been left as it is: an
// error wrapping ErrInvalidOrigin (nothing was rewritten) or
// ErrTokenTooLarge (a start tag was passed through unchanged), the first
// that occurred; nil otherwise. MetaCSPErr reports failed edits.
func (u *URLRewriter) Err() error { return u.err }

// Rewritten returns the number of URLs rewritten so far.
func (u *URLRewriter) Rewritten() int64 { return u.rewritten }

// Read implements io.Reader.
func (u *URLRewriter) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		switch {
		case len(u.out) > 0:
			c := copy(p[n:], u.out)
			u.out = u.out[c:]
			n += c
		case len(u.next) > 0:
			u.out, u.next = u.next, nil
		case u.advance():
		case n > 0:
			return n, nil
		case u.srcErr != nil:
			err := u.srcErr
			if err != io.EOF {
				u.srcErr = nil // returned once, as the source did
			} else {
				u.releaseBuf()
			}
			return 0, err
		case u.state == sPlaintext: // nothing left to look at (see passOn)
			u.releaseBuf()
			return u.src.Read(p)
		case !u.fill():
			return 0, nil // the source returned nothing, and no error
		}
	}
	return n, nil
}

// fill reads from the source into the buffer, after moving out what has been
// queued (and so returned). It reports whether the source returned data or an
// error.
func (u *URLRewriter) fill() bool {
	if u.buf == nil {
		u.buf = urlBufs.Get().(*[urlBufSize]byte)[:]
	}
	if u.e > 0 {
		copy(u.buf, u.buf[u.e:u.w])
		u.w -= u.e
		u.pos -= u.e
		if u.hold >= 0 {
			u.hold -= u.e
		}
		u.e = 0
	}
	if u.w == len(u.buf) {
		// A held start tag fills the buffer; advance gives up on it before
		// it reaches maxTag bytes, so this grows the buffer.
		bigger := make([]byte, min(2*len(u.buf), u.maxTag))
		copy(bigger, u.buf)
		u.buf = bigger
	}
	m, err := u.src.Read(u.buf[u.w:])
	u.w += m
	u.srcErr = err
	if u.rewritesURLs {
		u.hostScan = noSearch // buf[:w] changed
	}
	return m > 0 || err != nil
}

// releaseBuf returns the buffer to urlBufs at the end of the source, when
// everything in it has been returned (nothing aliases it any longer). A
// buffer grown for a long start tag is left to the garbage collector.
func (u *URLRewriter) releaseBuf() {
	if cap(u.buf) == urlBufSize {
		urlBufs.Put((*[urlBufSize]byte)(u.buf[:urlBufSize]))
	}
	u.buf, u.w, u.pos, u.e = nil, 0, 0, 0
}

// advance lexes the buffered data and queues output: the bytes before a
// rewritten start tag and the rewritten tag, or every byte lexed but a start
// tag still held. It reports whether it queued anything.
func (u *URLRewriter) advance() bool {
	if u.lex() {
		return true
	}
	end := u.pos
	if u.hold >= 0 {
		switch {
		case u.pos-u.hold >= u.maxTag && u.state != sTagOpen:
			// (After a lone '<', whether a tag starts is not known yet.)
			u.tooLarge()
		case u.srcErr != nil:
			u.hold = -1 // the end of the data, or an error: pass the tag on
		default:
			end = u.hold
		}
	}
	if end == u.e {
		return false
	}
	u.out = u.buf[u.e:end]
	u.e = end
	return true
}

// tooLarge stops holding the start tag being lexed, which is longer than
// maxTag: it is passed through unchanged.
func (u *URLRewriter) tooLarge() {
	u.hold = -1
	if u.err == nil {
		u.err = fmt.Errorf("%w: a start tag of more than %d bytes was passed through unchanged, without looking for URLs or a <meta> policy in it", ErrTokenTooLarge, u.maxTag)
	}
}

// lexState is a state of the lexer, named after the HTML tokenizer's.
type lexState uint8

const (
	sData lexState = iota
	sTagOpen
	sEndTagOpen
	sMarkupDecl     // after "<!"
	sMarkupDeclDash // after "<!-"
	sBogusComment
	sCommentStart
	sCommentStartDash
	sComment
	sCommentEndDash
	sCommentEnd
	sCommentEndBang
	sTagName
	sBeforeAttrName
	sAttrName
	sAfterAttrName
	sBeforeAttrValue
	sAttrValueDouble
	sAttrValueSingle
	sAttrValueUnquoted
	sAfterAttrValueQuoted
	sSelfClosingStartTag
	sRawText // RCDATA and RAWTEXT
	sRawTextLT
	sRawTextEndTag
	sScriptData
	sScriptLT
	sScriptEndTag
	sScriptEscapeStart
	sScriptEscapeStartDash
	sScriptEscaped
	sScriptEscapedDash
	sScriptEscapedDashDash
	sScriptEscapedLT
	sScriptEscapedEndTag
	sScriptDoubleEscapeStart
	sScriptDoubleEscaped
	sScriptDoubleEscapedDash
	sScriptDoubleEscapedDashDash
	sScriptDoubleEscapedLT
	sScriptDoubleEscapeEnd
	sPlaintext
)

// tagClass is what a start tag's name means to the lexer.
type tagClass uint8

const (
	tagOther tagClass = iota
	tagMeta
	tagObject
	tagRawText // its content ends at the end tag rawName
	tagScript
	tagPlaintext // its content is the rest of the document
)

// attrKind is what an attribute means to the rewriter.
type attrKind uint8

const (
	attrOther     attrKind = iota
	attrURL                // its value is a URL
	attrSrcset             // its value is a list of image candidates
	attrHTTPEquiv          // on <meta>
	attrContent            // on <meta>
)

// attrSpan is the value of an attribute that may need rewriting, by offsets
// from the start of its tag.
type attrSpan struct {
	kind       attrKind
	start, end int
}

// nameBuf collects a tag or attribute name in ASCII lower case, as far as
// names that matter to the lexer go; n counts all its bytes.
type nameBuf struct {
	b [len("imagesrcset")]byte // the longest name that matters
	n int
}

func (nb *nameBuf) add(c byte) {
	if nb.n < len(nb.b) {
		nb.b[nb.n] = lower(c)
	}
	nb.n++
}

// bytes returns the name, or nil if it is longer than any name that
// matters.
func (nb *nameBuf) bytes() []byte {
	if nb.n > len(nb.b) {
		return nil
	}
	return nb.b[:nb.n]
}

// lex runs the lexer over the buffered data. It returns true when it stops
// right after a start tag that it rewrote, with the output queued, and false
// when it has looked at every byte.
func (u *URLRewriter) lex() bool {
	if u.srcErr == io.EOF && !u.inHead && u.state != sPlaintext && !u.hostIn(u.unfinished(), u.w) {
		// The rest of the document is in the buffer and holds no
		// occurrence of from's host: nothing in it can need rewriting.
		// (Checked again after each rewritten tag: the rest after the
		// last URL to rewrite is not lexed either.)
		u.passOn()
	}
	buf := u.buf[:u.w]
	for u.pos < len(buf) {
		c := buf[u.pos]
		switch u.state {
		case sData:
			if u.inHead {
				u.headData(buf)
			} else {
				u.data(buf)
			}

		case sTagOpen:
			switch {
			case isLetter(c):
				u.tagOpen(buf, true)
				continue
			case c == '!':
				u.pos++
				u.state = sMarkupDecl
			case c == '/':
				u.pos++
				u.state = sEndTagOpen
			case c == '?':
				u.state = sBogusComment
			default:
				u.state = sData // the '<' is text
				if u.inHead {
					u.headText(buf[u.pos-1 : u.pos])
				}
			}
			u.hold = -1
		case sEndTagOpen:
			switch {
			case isLetter(c):
				u.tagOpen(buf, false)
			case c == '>':
				u.pos++ // "</>" is ignored
				u.state = sData
			default:
				u.state = sBogusComment
			}
		case sMarkupDecl, sMarkupDeclDash:
			if c != '-' {
				u.state = sBogusComment
			} else if u.pos++; u.state == sMarkupDecl {
				u.state = sMarkupDeclDash
			} else {
				u.state = sCommentStart
			}
		case sBogusComment:
			i := bytes.IndexByte(buf[u.pos:], '>')
			if i < 0 {
				u.pos = len(buf)
				break
			}
			u.pos += i + 1
			u.state = sData

		case sCommentStart, sCommentStartDash:
			switch c {
			case '-':
				u.pos++
				if u.state == sCommentStart {
					u.state = sCommentStartDash
				} else {
					u.state = sCommentEnd
				}
			case '>':
				u.pos++ // "<!-->" and "<!--->" are comments
				u.state = sData
			default:
				u.state = sComment
			}
		case sComment:
			i := bytes.IndexByte(buf[u.pos:], '-')
			if i < 0 {
				u.pos = len(buf)
				break
			}
			u.pos += i + 1
			u.state = sCommentEndDash
		case sCommentEndDash:
			if c == '-' {
				u.pos++
				u.state = sCommentEnd
			} else {
				u.state = sComment
			}
		case sCommentEnd, sCommentEndBang:
			switch {
			case c == '>':
				u.pos++
				u.state = sData
			case c == '-' && u.state == sCommentEnd:
				u.pos++
			case c == '-':
				u.pos++
				u.state = sCommentEndDash
			case c == '!' && u.state == sCommentEnd:
				u.pos++
				u.state = sCommentEndBang
			default:
				u.state = sComment
			}

		case sTagName:
			for u.pos < len(buf) && u.state == sTagName {
				c = buf[u.pos]
				if byteClass[c]&endsTagName == 0 {
					u.name.add(c)
					u.pos++
					continue
				}
				if u.isStart {
					u.tag, u.rawName = classifyTag(u.name.bytes())
				}
				rewrote := u.afterName(c, sBeforeAttrName)
				if u.inHead {
					u.headTag(u.name.bytes(), u.isStart)
				}
				if rewrote {
					return true
				}
			}
		case sBeforeAttrName, sAfterAttrName:
			switch {
			case isWhite(c):
				u.pos++
			case c == '/':
				u.pos++
				u.state = sSelfClosingStartTag
			case c == '>':
				u.pos++
				if u.endOfTag() {
					return true
				}
			case c == '=' && u.state == sAfterAttrName:
				u.pos++
				u.state = sBeforeAttrValue
			default:
				u.name.n = 0
				if c == '=' { // a name may start with '='
					u.name.add(c)
					u.pos++
				}
				u.state = sAttrName
			}
		case sAttrName:
			for u.pos < len(buf) && u.state == sAttrName {
				c = buf[u.pos]
				if byteClass[c]&endsAttrName == 0 {
					u.name.add(c)
					u.pos++
					continue
				}
				u.attr = u.classifyAttr()
				if c == '=' {
					u.pos++
					u.state = sBeforeAttrValue
				} else if u.afterName(c, sAfterAttrName) {
					return true
				}
			}
		case sBeforeAttrValue:
			switch c {
			case ' ', '\t', '\n', '\f', '\r':
				u.pos++
			case '"':
				u.pos++
				u.state = sAttrValueDouble
			case '\'':
				u.pos++
				u.state = sAttrValueSingle
			case '>':
				u.pos++
				if u.endOfTag() {
					return true
				}
				continue
			default:
				u.state = sAttrValueUnquoted
			}
			u.valAt = u.pos - u.hold
		case sAttrValueDouble, sAttrValueSingle:
			quote := byte('"')
			if u.state == sAttrValueSingle {
				quote = '\''
			}
			i := bytes.IndexByte(buf[u.pos:], quote)
			if i < 0 {
				u.pos = len(buf)
				break
			}
			u.pos += i
			u.endOfValue()
			u.pos++
			u.state = sAfterAttrValueQuoted
		case sAttrValueUnquoted:
			for u.pos < len(buf) && byteClass[buf[u.pos]]&endsUnquoted == 0 {
				u.pos++
			}
			if u.pos < len(buf) {
				u.endOfValue()
				u.state = sBeforeAttrName
			}
		case sAfterAttrValueQuoted, sSelfClosingStartTag:
			switch {
			case c == '>':
				u.pos++
				if u.endOfTag() {
					return true
				}
			case u.state == sAfterAttrValueQuoted && c == '/':
				u.pos++
				u.state = sSelfClosingStartTag
			default:
				u.state = sBeforeAttrName // whitespace is consumed there
			}

		case sRawText, sScriptData:
			i := bytes.IndexByte(buf[u.pos:], '<')
			if i < 0 {
				u.pos = len(buf)
				break
			}
			u.pos += i + 1
			if u.state == sRawText {
				u.state = sRawTextLT
			} else {
				u.state = sScriptLT
			}
		case sRawTextLT:
			if c == '/' {
				u.pos++
				u.k = 0
				u.state = sRawTextEndTag
			} else {
				u.state = sRawText
			}
		case sRawTextEndTag:
			u.endTagName(c, sRawText)
		case sScriptLT:
			switch c {
			case '/':
				u.pos++
				u.k = 0
				u.state = sScriptEndTag
			case '!':
				u.pos++
				u.state = sScriptEscapeStart
			default:
				u.state = sScriptData
			}
		case sScriptEndTag:
			u.endTagName(c, sScriptData)
		case sScriptEscapeStart, sScriptEscapeStartDash:
			if c != '-' {
				u.state = sScriptData
			} else if u.pos++; u.state == sScriptEscapeStart {
				u.state = sScriptEscapeStartDash
			} else {
				u.state = sScriptEscapedDashDash
			}
		case sScriptEscaped, sScriptEscapedDash, sScriptEscapedDashDash,
			sScriptDoubleEscaped, sScriptDoubleEscapedDash, sScriptDoubleEscapedDashDash:
			u.escaped(buf)
		case sScriptEscapedLT:
			switch {
			case c == '/':
				u.pos++
				u.k = 0
				u.state = sScriptEscapedEndTag
			case isLetter(c):
				u.k, u.miss = 0, false
				u.state = sScriptDoubleEscapeStart
			default:
				u.state = sScriptEscaped
			}
		case sScriptEscapedEndTag:
			u.endTagName(c, sScriptEscaped)
		case sScriptDoubleEscapedLT:
			if c == '/' {
				u.pos++
				u.k, u.miss = 0, false
				u.state = sScriptDoubleEscapeEnd
			} else {
				u.state = sScriptDoubleEscaped
			}
		case sScriptDoubleEscapeStart, sScriptDoubleEscapeEnd:
			// The same steps, with the outcomes swapped.
			in, out := sScriptDoubleEscaped, sScriptEscaped
			if u.state == sScriptDoubleEscapeEnd {
				in, out = out, in
			}
			switch {
			case byteClass[c]&endsTagName != 0:
				u.pos++
				if u.k == len("script") && !u.miss {
					u.state = in
				} else {
					u.state = out
				}
			case isLetter(c):
				u.pos++
				if u.k >= len("script") || lower(c) != "script"[u.k] {
					u.miss = true
				}
				u.k++
			default:
				u.state = out
			}

		case sPlaintext:
			u.pos = len(buf)
		}
	}
	return false
}

// unfinished returns where the part of the buffer that the lexer has not
// done with starts: the start tag held, or pos.
func (u *URLRewriter) unfinished() int {
	if u.hold >= 0 {
		return min(u.hold, u.pos)
	}
	return u.pos
}

// data runs the data state from pos, and the tag states for the tags that
// skipTag passes, until the end of buf or another state: most of a page is
// lexed in this loop.
func (u *URLRewriter) data(buf []byte) {
	for u.state == sData {
		i := bytes.IndexByte(buf[u.pos:], '<')
		if i < 0 {
			u.pos = len(buf)
			return
		}
		u.pos += i + 1
		u.hold = u.pos - 1
		u.state = sTagOpen
		if u.pos+1 >= len(buf) {
			return // the tag open state looks at what follows the '<'
		}
		switch c := buf[u.pos]; {
		case isLetter(c):
			u.openTag(buf, true)
		case c == '/' && isLetter(buf[u.pos+1]):
			u.hold = -1 // as the tag open state does for an end tag
			u.pos++
			u.openTag(buf, false)
		default:
			return
		}
	}
}

// headData runs the data state in the head (not data, which never looks at
// it): it looks at the text up to the next '<' (headText), and leaves the
// tag after it to the tag states.
func (u *URLRewriter) headData(buf []byte) {
	i := bytes.IndexByte(buf[u.pos:], '<')
	end := len(buf)
	if i >= 0 {
		end = u.pos + i
	}
	if u.headText(buf[u.pos:end]); i < 0 || u.state == sPlaintext {
		u.pos = end
		return
	}
	u.pos, u.hold, u.state = end+1, end, sTagOpen
}

// openTag starts a start tag (start) or an end tag whose name starts at
// pos: skipTag passes it, or the tag states lex it from its name on.
func (u *URLRewriter) openTag(buf []byte, start bool) {
	if !u.skipTag(buf, start) {
		u.lexTag(start)
	}
}

// tagOpen is openTag for the tag states, which also run in the head. There
// a <meta> start tag, whose policy may need editing, goes through the tag
// states, which hold it until it is complete; skipTag may pass the other
// tags, and headTag then follows the head across them.
func (u *URLRewriter) tagOpen(buf []byte, start bool) {
	if !u.inHead {
		u.openTag(buf, start)
		return
	}
	name := nameAt(buf, u.pos)
	if start && equalFoldASCII(name, "meta") || !u.skipTag(buf, start) {
		u.lexTag(start)
		return
	}
	u.headTag(name, start)
}

// nameAt returns the tag name that starts at buf[i], as far as buf holds
// it.
func nameAt(buf []byte, i int) []byte {
	end := i
	for end < len(buf) && byteClass[buf[end]]&endsTagName == 0 {
		end++
	}
	return buf[i:end]
}

// lexTag makes the tag states lex a start tag (start) or an end tag from
// its name, at pos, on.
func (u *URLRewriter) lexTag(start bool) {
	u.isStart, u.name.n = start, 0
	if start {
		u.tag = tagOther
		u.attrs, u.seen = u.attrs[:0], 0
	}
	u.state = sTagName
}

// afterName handles c, the byte that ends a tag or attribute name: whitespace
// (then the state is next), '/' or '>'. It reports whether it queued a
// rewritten tag.
func (u *URLRewriter) afterName(c byte, next lexState) bool {
	u.pos++
	switch c {
	case '/':
		u.state = sSelfClosingStartTag
	case '>':
		return u.endOfTag()
	default:
		u.state = next
	}
	return false
}

// endTagName matches c against the name of the end tag that ends raw text
// (after "</"); if it cannot be that end tag, the lexer goes back to the
// state text, where c is looked at again.
func (u *URLRewriter) endTagName(c byte, text lexState) {
	switch {
	case u.k < len(u.rawName) && lower(c) == u.rawName[u.k]:
		u.pos++
		u.k++
	case u.k == len(u.rawName) && byteClass[c]&endsTagName != 0:
		// The end tag's name is complete. It is not collected: the end tag
		// of raw text does not end a head.
		u.isStart, u.name.n = false, 0
		u.state = sTagName
	default:
		u.state = text
	}
}

// escaped runs the script data escaped and double escaped states, whose
// transitions only differ in the state they go to after '<'.
func (u *URLRewriter) escaped(buf []byte) {
	base, lt := sScriptEscaped, sScriptEscapedLT
	if u.state >= sScriptDoubleEscaped {
		base, lt = sScriptDoubleEscaped, sScriptDoubleEscapedLT
	}
	for ; u.pos < len(buf); u.pos++ {
		switch c := buf[u.pos]; {
		case c == '-':
			if u.state < base+2 { // base, base+1 = Dash, base+2 = DashDash
				u.state++
			}
		case c == '<':
			u.pos++
			u.state = lt
			return
		case c == '>' && u.state == base+2:
			u.pos++
			u.state = sScriptData
			return
		default:
			u.state = base
		}
	}
}

// endOfValue records the value of the attribute being lexed, which ends at
// pos, if it may need rewriting.
func (u *URLRewriter) endOfValue() {
	if u.hold >= 0 && u.attr != attrOther {
		u.attrs = append(u.attrs, attrSpan{u.attr, u.valAt, u.pos - u.hold})
	}
}

// endOfTag is called after the '>' that ends a tag. It moves to the state
// after the tag and, for a held start tag with URLs to rewrite, queues the
// output up to the tag and the rewritten tag and reports true.
func (u *URLRewriter) endOfTag() bool {
	u.state = sData
	if u.isStart {
		u.state = u.tag.content()
	}
	start := u.hold
	if start < 0 {
		return false
	}
	u.hold = -1
	if u.pos-start > u.maxTag {
		u.tooLarge()
		return false
	}
	if len(u.attrs) == 0 || !u.rewriteTag(u.buf[start:u.pos]) {
		return false
	}
	u.out, u.next = u.buf[u.e:start], u.scratch
	u.e = u.pos
	return true
}

// content returns the lexer's state after a start tag of class t.
func (t tagClass) content() lexState {
	switch t {
	case tagRawText:
		return sRawText
	case tagScript:
		return sScriptData
	case tagPlaintext:
		return sPlaintext
	}
	return sData
}

// skipTag is the lexer's fast path over a tag that needs no rewriting and
// that buf holds whole: an end tag, or a start tag with no occurrence of
// from's host in it (every URL to rewrite holds one) and within maxTag. It
// looks at the tag from pos, the first letter of its name; if it is such a
// tag, skipTag moves pos after it, the lexer to the state after it, and
// reports true. Otherwise it changes nothing, and the tag states lex the
// tag, holding and rewriting a start tag as they do. Most tags of a page
// take this path: it finds the tag's end and name without collecting and
// classifying attributes. In the head, tagOpen keeps <meta> start tags
// from it.
func (u *URLRewriter) skipTag(buf []byte, start bool) bool {
	nameEnd, end := tagEnd(buf, u.pos)
	if end < 0 || start && (end-u.hold > u.maxTag || u.hostIn(u.hold, end)) {
		return false
	}
	u.isStart, u.state = start, sData
	if start {
		u.tag, u.rawName = classifyTag(buf[u.pos:nameEnd])
		u.state, u.hold = u.tag.content(), -1
	}
	u.pos = end
	return true
}

// tagEnd finds the end of the tag whose name starts at buf[i] (after "<" or
// "</") as the tag states of lex find it, without collecting anything: it
// returns the end of the name and the offset after the tag's '>', or end -1
// if buf ends before the tag does.
func tagEnd(buf []byte, i int) (nameEnd, end int) {
	for i < len(buf) && byteClass[buf[i]]&endsTagName == 0 { // nameAt, which compiles slower here
		i++
	}
	nameEnd = i
	if i == len(buf) {
		return nameEnd, -1
	}
	st := sBeforeAttrName
	switch buf[i] {
	case '>':
		return nameEnd, i + 1
	case '/':
		st = sSelfClosingStartTag
	}
	for i++; i < len(buf); {
		c := buf[i]
		switch st {
		case sBeforeAttrName, sAfterAttrName:
			switch {
			case isWhite(c):
				i++
			case c == '/':
				i++
				st = sSelfClosingStartTag
			case c == '>':
				return nameEnd, i + 1
			case c == '=' && st == sAfterAttrName:
				i++
				st = sBeforeAttrValue
			default: // an attribute name, which may start with '='
				for i++; i < len(buf) && byteClass[buf[i]]&endsAttrName == 0; i++ {
				}
				st = sAfterAttrName // the byte after the name is looked at there
				if i < len(buf) && buf[i] == '=' {
					i++
					st = sBeforeAttrValue
				}
			}
		case sBeforeAttrValue:
			switch {
			case isWhite(c):
				i++
			case c == '"' || c == '\'':
				q := bytes.IndexByte(buf[i+1:], c)
				if q < 0 {
					return nameEnd, -1
				}
				i += q + 2
				st = sAfterAttrValueQuoted
			case c == '>':
				return nameEnd, i + 1
			default: // unquoted, up to whitespace or '>', looked at again
				for i < len(buf) && byteClass[buf[i]]&endsUnquoted == 0 {
					i++
				}
				st = sBeforeAttrName
			}
		case sAfterAttrValueQuoted, sSelfClosingStartTag:
			switch {
			case c == '>':
				return nameEnd, i + 1
			case c == '/' && st == sAfterAttrValueQuoted:
				i++
				st = sSelfClosingStartTag
			default:
				st = sBeforeAttrName
			}
		}
	}
	return nameEnd, -1
}

// hostIn reports whether buf[s:e] holds from's host in any ASCII case. It
// searches the data in buf from s to its end once (searchHost), and answers
// from that search for the tags up to the host it found. Most calls only
// compare, and it is small enough to be inlined in skipTag.
func (u *URLRewriter) hostIn(s, e int) bool {
	if s < u.hostScan || u.hostAt < s {
		u.searchHost(s)
	}
	return u.hostAt <= e-len(u.from.host)
}

// The values of hostScan and hostAt that mean no search and no host found:
// greater than any offset, so that hostIn's comparisons need no other test.
const noSearch, noHost = math.MaxInt, math.MaxInt

// searchHost searches buf[s:w] for from's host, for hostIn.
func (u *URLRewriter) searchHost(s int) {
	u.hostScan, u.hostAt = s, noHost
	if at := indexFoldASCII(u.buf[s:u.w], u.from.host); at >= 0 {
		u.hostAt = s + at
	}
}

// indexFoldASCII returns the index of the first occurrence in b of the
// lower-case ASCII string s, ignoring ASCII case, or -1. A string without
// letters (an IP address) is looked for with bytes.Index; otherwise
// candidates are found with bytes.IndexByte on the first byte of s that is
// not a letter (the first byte, in both cases, if all are).
func indexFoldASCII(b []byte, s string) int {
	k := 0
	for k < len(s) && !isLetter(s[k]) {
		k++
	}
	if k == len(s) {
		return bytes.Index(b, []byte(s))
	}
	for k = 0; k < len(s) && isLetter(s[k]); k++ {
	}
	if k == len(s) {
		k = 0
	}
	for i := k; i < len(b); i++ { // i-k, where s would start, is never negative
		j := indexByteFoldASCII(b[i:], s[k])
		if j < 0 {
			return -1
		}
		i += j
		if at := i - k; at+len(s) <= len(b) && equalFoldASCII(b[at:at+len(s)], s) {
			return at
		}
	}
	return -1
}

// indexByteFoldASCII returns the index of the first c in b, in either case
// if c is a lower-case letter, or -1.
func indexByteFoldASCII(b []byte, c byte) int {
	i := bytes.IndexByte(b, c)
	if 'a' <= c && c <= 'z' {
		upper := b
		if i >= 0 {
			upper = b[:i]
		}
		if j := bytes.IndexByte(upper, c-'a'+'A'); j >= 0 {
			return j
		}
	}
	return i
}

// classifiedTags are the start tags whose class is not tagOther. The content
// of a tagRawText or tagScript element ends at the end tag of its own name.
var classifiedTags = []struct {
	name  string
	class tagClass
}{
	{"meta", tagMeta},
	{"object", tagObject},
	{"script", tagScript},
	{"plaintext", tagPlaintext},
	{"style", tagRawText},
	{"textarea", tagRawText},
	{"title", tagRawText},
	{"xmp", tagRawText},
	{"iframe", tagRawText},
	{"noembed", tagRawText},
	{"noframes", tagRawText},
	{"noscript", tagRawText},
}

// classifiedInitials has, for each name length, a bit for the first letter
// of each classified tag of that length (bit c&31 for the letter c, in either
// case): the test that lets classifyTag turn most names down at once. Its
// length is one more than the longest name's (a longer name added to
// classifiedTags makes this package's initialisation panic).
var classifiedInitials = func() (initials [len("plaintext") + 1]uint32) {
	for _, t := range classifiedTags {
		initials[len(t.name)] |= 1 << (t.name[0] & 31)
	}
	return initials
}()

// classifyTag returns the class of a start tag by its name, in any ASCII
// case, and for raw text and script the name of the end tag that ends it.
func classifyTag(name []byte) (tagClass, string) {
	if len(name) == 0 || len(name) >= len(classifiedInitials) || classifiedInitials[len(name)]&(1<<(name[0]&31)) == 0 {
		return tagOther, ""
	}
	for _, t := range classifiedTags {
		if equalFoldASCII(name, t.name) {
			if t.class == tagRawText || t.class == tagScript {
				return t.class, t.name
			}
			return t.class, ""
		}
	}
	return tagOther, ""
}

// classifyAttr returns the kind of the attribute whose name has been lexed.
// As browsers keep only the first of attributes with the same name, a
// duplicate is attrOther.
func (u *URLRewriter) classifyAttr() attrKind {
	i, kind := classifyAttr(u.tag, u.name.bytes())
	if kind == attrOther || u.seen&(1<<i) != 0 {
		return attrOther
	}
	u.seen |= 1 << i
	return kind
}

// classifyAttr returns the index in urlAttrNames of an attribute by its
// lower-case name, and its kind on a tag of the class tag.
func classifyAttr(tag tagClass, name []byte) (int, attrKind) {
	switch string(name) {
	case "href":
		return 0, attrURL
	case "src":
		return 1, attrURL
	case "action":
		return 2, attrURL
	case "formaction":
		return 3, attrURL
	case "poster":
		return 4, attrURL
	case "cite":
		return 5, attrURL
	case "background":
		return 6, attrURL
	case "longdesc":
		return 7, attrURL
	case "xlink:href":
		return 8, attrURL
	case "srcset":
		return 9, attrSrcset
	case "imagesrcset":
		return 13, attrSrcset
	case "data":
		if tag == tagObject {
			return 10, attrURL
		}
	case "http-equiv":
		if tag == tagMeta {
			return 11, attrHTTPEquiv
		}
	case "content":
		if tag == tagMeta {
			return 12, attrContent
		}
	}
	return -1, attrOther
}

// rewriteTag writes the start tag t into scratch with its URLs rewritten
// and, on a <meta> policy in the head, its policy edited (per the recorded
// attrs), and reports whether it changed anything.
func (u *URLRewriter) rewriteTag(t []byte) bool {
	refresh, policy := false, false
	for _, a := range u.attrs {
		if a.kind == attrHTTPEquiv {
			v := t[a.start:a.end]
			refresh = equalFoldASCII(v, "refresh")
			policy = u.inHead && isPolicyPragma(v)
		}
	}
	if u.scratch == nil {
		u.scratch = make([]byte, 0, 512)
	}
	u.scratch = u.scratch[:0]
	done := 0 // t[:done] is in scratch
	for _, a := range u.attrs {
		v := t[a.start:a.end]
		if a.kind == attrContent && policy {
			done = u.editPolicy(t, done, a)
			continue
		}
		if !u.rewritesURLs {
			continue
		}
		switch a.kind {
		case attrURL:
			done = u.rewriteURL(t, done, a.start, v)
		case attrSrcset:
			for i := 0; ; {
				s, e, next := srcsetURL(v, i)
				if s < 0 {
					break
				}
				done = u.rewriteURL(t, done, a.start+s, v[s:e])
				i = next
			}
		case attrContent:
			if !refresh {
				break
			}
			if s, e := RefreshURL(v); s >= 0 {
				done = u.rewriteURL(t, done, a.start+s, v[s:e])
			}
		}
	}
	if done == 0 {
		return false
	}
	u.scratch = append(u.scratch, t[done:]...)
	return true
}

// editPolicy edits the policy in the value a of the tag t with editMetaCSP:
// it appends t[done:] up to the value (and its opening quote, if any) and
// the edited policy in double quotes to scratch, and returns the offset in t
// after the value (and its closing quote). If the edit fails, it records
// the error and returns done.
func (u *URLRewriter) editPolicy(t []byte, done int, a attrSpan) int {
	edited, err := u.editMetaCSP(string(unescapeAttr(t[a.start:a.end])))
	if err != nil {
		if u.metaCSPErr == nil {
			u.metaCSPErr = err
		}
		return done
	}
	start, end := a.start, a.end
	if q := t[start-1]; q == '"' || q == '\'' { // an unquoted value follows '=' or whitespace
		start, end = start-1, end+1
	}
	u.scratch = append(u.scratch, t[done:start]...)
	u.scratch = append(u.scratch, '"')
	for i := 0; i < len(edited); i++ {
		switch c := edited[i]; c {
		case '&':
			u.scratch = append(u.scratch, "&amp;"...)
		case '"':
			u.scratch = append(u.scratch, "&quot;"...)
		default:
			u.scratch = append(u.scratch, c)
		}
	}
	u.scratch = append(u.scratch, '"')
	return end
}

// isPolicyPragma reports whether v, the raw value of a <meta>'s http-equiv,
// names Content-Security-Policy once its character references are decoded,
// in any ASCII case and between any HTML whitespace.
func isPolicyPragma(v []byte) bool {
	return equalFoldASCII(bytes.Trim(unescapeAttr(v), " \t\n\f\r"), "content-security-policy")
}

// leaveHead records that the lexer is past the document's head: no more
// <meta> policies to edit, and if no URL needs rewriting, nothing more to
// look at.
func (u *URLRewriter) leaveHead() {
	u.inHead = false
	if !u.rewritesURLs {
		u.passOn()
	}
}

// headTag follows the head across a start tag (start) or an end tag of this
// name, in any case: it counts <template> elements, and outside them leaves
// the head if the tag ends it (leavesHead).
func (u *URLRewriter) headTag(name []byte, start bool) {
	switch {
	case equalFoldASCII(name, "template"):
		if start {
			u.templates++
		} else if u.templates > 0 {
			u.templates--
		}
	case u.templates == 0 && leavesHead(name, start):
		u.leaveHead()
	}
}

// headText follows the head across text in the data state: outside
// <template> elements, text that is not whitespace ends it (isHeadText).
func (u *URLRewriter) headText(text []byte) {
	if u.templates == 0 && !isHeadText(text) {
		u.leaveHead()
	}
}

// leavesHead reports whether a start tag (start) or an end tag of this name
// (in any case) ends the head, where browsers stop putting <meta> tags in
// it: any start tag but html, head and those of the elements a head holds
// (browsers put them into it even after </head>, and ignore a second <html>
// or <head>); only the end tags body, html and br (browsers ignore other end
// tags there, </head> included for this purpose: a <meta> after it still
// goes into the head).
func leavesHead(name []byte, start bool) bool {
	var lowered [len("basefont")]byte // as long as the longest name below
	if len(name) > len(lowered) {
		return start
	}
	for i, c := range name {
		lowered[i] = lower(c)
	}
	if !start {
		switch string(lowered[:len(name)]) {
		case "body", "html", "br":
			return true
		}
		return false
	}
	switch string(lowered[:len(name)]) {
	case "base", "basefont", "bgsound", "head", "html", "link", "meta", "noframes", "noscript", "script", "style", "template", "title":
		return false
	}
	return true
}

// isHeadText reports whether text leaves the lexer in the head: it holds
// only HTML whitespace and the bytes of a byte order mark (browsers drop a
// leading one; one elsewhere is text that ends the head, but telling them
// apart byte by byte, whatever the read sizes, is not worth it: editing a
// policy that browsers then ignore does no harm).
func isHeadText(text []byte) bool {
	for _, c := range text {
		if !isWhite(c) && c != 0xef && c != 0xbb && c != 0xbf {
			return false
		}
	}
	return true
}

// rewriteURL rewrites ref, the URL at offset at of the tag t, if it is on
// from's origin: it appends t[done:] up to the origin and to's origin to
// scratch, and returns the offset in t after from's origin. Otherwise it
// returns done.
func (u *URLRewriter) rewriteURL(t []byte, done, at int, ref []byte) int {
	span, ok := findOrigin(u.from, ref)
	if !ok {
		return done
	}
	u.scratch = append(u.scratch, t[done:at+span.start]...)
	u.scratch = appendRebased(u.scratch, ref, span, u.to)
	u.rewritten++
	return at + span.end
}

// srcsetURL returns the bounds of the URL of the next image candidate in the
// srcset value v from offset i, as browsers parse it, and the offset of the
// candidate after it; s is -1 if there is none.
func srcsetURL(v []byte, i int) (s, e, next int) {
	for i < len(v) && (isWhite(v[i]) || v[i] == ',') {
		i++
	}
	if i == len(v) {
		return -1, -1, i
	}
	s = i
	for i < len(v) && !isWhite(v[i]) {
		i++
	}
	e = i
	if v[e-1] == ',' {
		for v[e-1] == ',' { // no descriptors; s < e as v[s] is not ','
			e--
		}
		return s, e, i
	}
	// Skip the descriptors, up to a ',' outside parentheses.
	for paren := false; i < len(v); i++ {
		switch c := v[i]; {
		case paren:
			paren = c != ')'
		case c == '(':
			paren = true
		case c == ',':
			return s, e, i + 1
		}
	}
	return s, e, i
}

// RefreshURL returns the bounds of the URL in v, the content of a <meta
// http-equiv=refresh> or a Refresh header, found as the HTML standard's
// shared declarative refresh steps find it: a delay, then optionally ';' or
// ',', then the URL, optionally after "url=" (any case, spaces around '=')
// and in quotes; s is -1 if there is no URL.
func RefreshURL(v []byte) (s, e int) {
	i := skipWhite(v, 0)
	digits := i
	for i < len(v) && '0' <= v[i] && v[i] <= '9' {
		i++
	}
	if i == digits && (i == len(v) || v[i] != '.') {
		return -1, -1 // no delay: browsers ignore the tag
	}
	for i < len(v) && ('0' <= v[i] && v[i] <= '9' || v[i] == '.') {
		i++
	}
	if i == len(v) || v[i] != ';' && v[i] != ',' && !isWhite(v[i]) {
		return -1, -1
	}
	i = skipWhite(v, i)
	if i < len(v) && (v[i] == ';' || v[i] == ',') {
		i++
	}
	if i = skipWhite(v, i); i == len(v) {
		return -1, -1
	}
	// A URL starting with "url" is the rest of v unless "url" is followed
	// by '='; only then, or without "url", may it be quoted.
	s, quoted := i, true
	if lower(v[i]) == 'u' {
		quoted = false
		if len(v)-i >= 3 && equalFoldASCII(v[i:i+3], "url") {
			if j := skipWhite(v, i+3); j < len(v) && v[j] == '=' {
				i = skipWhite(v, j+1)
				s, quoted = i, true
			}
		}
	}
	e = len(v)
	if quoted && i < len(v) && (v[i] == '\'' || v[i] == '"') {
		s = i + 1
		if q := bytes.IndexByte(v[s:], v[i]); q >= 0 {
			e = s + q
		}
	}
	return s, e
}

// Byte classes, in byteClass.
const (
	white        = 1 << iota // HTML whitespace, with '\r' (which the tokenizer sees as '\n')
	endsTagName              // whitespace, '/' and '>'
	endsAttrName             // whitespace, '/', '>' and '='
	endsUnquoted             // whitespace and '>'
)

var byteClass = [256]uint8{
	' ': white | endsTagName | endsAttrName | endsUnquoted, '\t': white | endsTagName | endsAttrName | endsUnquoted,
	'\n': white | endsTagName | endsAttrName | endsUnquoted, '\f': white | endsTagName | endsAttrName | endsUnquoted,
	'\r': white | endsTagName | endsAttrName | endsUnquoted,
	'/':  endsTagName | endsAttrName, '>': endsTagName | endsAttrName | endsUnquoted, '=': endsAttrName,
}

// isWhite reports whether c is HTML whitespace.
func isWhite(c byte) bool { return byteClass[c]&white != 0 }

// skipWhite returns the index of the first byte of v at or after i that is
// not HTML whitespace.
func skipWhite(v []byte, i int) int {
	for i < len(v) && isWhite(v[i]) {
		i++
	}
	return i
}

func isLetter(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }

// lower returns c in ASCII lower case.
func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}
