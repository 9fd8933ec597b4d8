// Package proxy provides the http.Handler that fronts the upstream site: it
// forwards every request to the upstream and streams the response back,
// inserting the cobrowse snippet into HTML pages on the way (see package
// rewrite).
//
// The proxy asks the upstream only for content codings that both it and the
// client can read: those among br, zstd, gzip and deflate that the client
// accepts, or identity. HTML is decoded, the snippet inserted, and encoded
// again in the client's best of br, zstd and gzip (or not at all), as a
// stream: what the upstream has sent reaches the client without waiting for
// the rest. Everything that is not HTML (images, scripts, styles, JSON,
// downloads, event streams) passes through untouched and unbuffered, decoded
// only if the upstream used a coding the client does not accept. Answers to
// HEAD, 204, 304 and 206 are never changed.
//
// Every HTML page also gets its Content-Security-Policy (headers and <meta>
// tags) edited so that the visitor script, which carries a fresh nonce, and
// its WebSocket to the proxy's origin are allowed and nothing else changes
// (rewrite.AllowVisitor). Response headers that point at the upstream's
// origin (Location, Refresh, Link, ...) or scope cookies to its host are
// rewritten to the public origin the visitor used, as are absolute URLs to
// the upstream in the page's attributes (href, src, srcset, action, ...;
// rewrite.URLRewriter), and request headers that
// name the public origin (Origin, Referer) to the upstream's, so that the
// upstream's redirects, cookies and CSRF checks keep working. The public
// origin is the request's Host with https if the request came over TLS, or
// with the scheme a trusted proxy in front names in X-Forwarded-Proto
// (Config.TrustedProxies; nobody's X-Forwarded-* headers are believed
// otherwise). Service worker
// scripts are replaced by one that removes itself (see serviceworker.go).
// UTF-16 pages pass through without the snippet.
//
// The package knows nothing about sessions or agents. It does not reserve any
// path either: a caller that serves its own handlers (such as /__cobrowse/)
// next to the proxied site routes them before the Proxy, and passes the
// Proxy the other requests with their paths as received (not through an
// http.ServeMux, which cleans and redirects them): the Proxy forwards the
// path verbatim.
package proxy

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"html"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/http/httptrace"
	"net/http/httputil"
	"net/textproto"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cobrowse/cobrowse/internal/contentcoding"
	"github.com/cobrowse/cobrowse/internal/forwarded"
	"github.com/cobrowse/cobrowse/rewrite"
)

// Config configures a Proxy. The zero value of every field but ScriptPath is
// a sensible default.
type Config struct {
	// ScriptPath is the path of the visitor script on the proxy's own
	// origin, e.g. /__cobrowse/visitor.js. Every HTML page gets
	// <script src="ScriptPath" nonce="…" defer=""></script> at the start of
	// its head (see rewrite.Injector), and its CSP is edited to allow that
	// script and WebSockets to the proxy's origin. Required.
	ScriptPath string

	// Logger receives upstream errors and warnings about pages served
	// without the snippet. Nil means slog.Default().
	Logger *slog.Logger

	// Transport performs the upstream requests. Nil means the proxy's own
	// (upstream.go): GET and HEAD without a body are sent on the visitor's
	// goroutine over kept-alive HTTP/1.1 connections (with TLS for an https
	// upstream), everything else by an http.Transport like
	// http.DefaultTransport (proxy from the environment, HTTP/2). Both give
	// up after 10 s of dialling, 10 s of TLS handshake and 30 s of waiting
	// for the upstream's response headers, so that a dead upstream
	// produces a 504 rather than a hang, and keep up to 100 idle
	// connections to the upstream. A custom Transport must not decode
	// response bodies itself: the proxy sets Accept-Encoding and decodes
	// where needed.
	Transport http.RoundTripper

	// FlushInterval is how often a response of known length is flushed to
	// the client while it is copied (httputil.ReverseProxy.FlushInterval):
	// 0 buffers as net/http does, a negative value flushes after every
	// write. Rewritten HTML (compressed or not), decoded bodies, event
	// streams and responses without a Content-Length are always flushed
	// immediately, so that the first bytes of a slow page reach the browser
	// before the upstream has finished.
	FlushInterval time.Duration

	// TrustedProxies are the reverse proxies and load balancers in front
	// of the Proxy whose X-Forwarded-Proto and X-Forwarded-For it believes
	// (see package forwarded). For a request from one of them, the public
	// origin's scheme is the one its X-Forwarded-Proto names, and the
	// upstream gets its X-Forwarded-For chain with the proxy's address
	// appended. Every other client's X-Forwarded-* headers are ignored.
	// The zero value trusts no one: the scheme is https only for requests
	// that came over TLS to the Proxy's own server.
	TrustedProxies forwarded.Proxies

	// SendTimeout bounds each write to a visitor over HTTP/1.x: a response
	// whose bytes the visitor's connection does not take for this long is
	// ended, which frees its connection to the upstream and its buffers
	// (nginx's send_timeout; a visitor that stops reading would otherwise
	// hold them for good). A long download or event stream is not bounded
	// as a whole, only each piece of a write, of 32 KiB to 256 KiB as the
	// visitor's pace allows (see writeClient): a visitor on a slow link is
	// cut off only when it takes less than 32 KiB in that time. 0 means
	// DefaultSendTimeout. Over HTTP/2 it bounds the stream's writes, which
	// a client can starve of flow-control window while its connection
	// stays busy: an HTML page's or a body of known length's each get at
	// least half of it; an event stream's (a body that may wait) get all
	// of it, and the deadline is cleared while it waits, since a stream is
	// reset when its deadline passes even then (see sendBound).
	SendTimeout time.Duration

	// OwnCookies names the cookies of whatever serves on the proxy's
	// origin besides the upstream (cobrowse's visitor cookie, its
	// credential for the visitor's session): they are removed from the
	// Cookie header of every request to the upstream, which has no use
	// for them and must not learn them (its logs, and whatever it passes
	// cookies on to, would hold them).
	OwnCookies []string
}

// DefaultSendTimeout is Config.SendTimeout's default, nginx's send_timeout.
const DefaultSendTimeout = 60 * time.Second

// Proxy is the http.Handler that fronts the upstream site. Create it with New;
// it is safe for concurrent use.
type Proxy struct {
	upstream    *url.URL
	scriptPath  string
	log         *slog.Logger
	codecs      *codecs
	rp          *httputil.ReverseProxy
	trusted     forwarded.Proxies
	sendTimeout time.Duration
	ownCookies  []string
	// newNonce returns the nonce of one page's visitor script; tests
	// replace it to get predictable pages.
	newNonce func() string
	// warned holds the messages logged once per Proxy (refused cookies).
	warned sync.Map
	// loopID is the pseudonym the Proxy adds to the CDN-Loop header of the
	// requests it forwards (RFC 8586): a request that already carries it
	// has come back through the upstream, which must then be this proxy
	// (see ServeHTTP). It is random, so that a chain of different proxies
	// is not taken for a loop.
	loopID string
	// loopHeader is the CDN-Loop value of a request that had none: shared
	// by every request, which is safe as nothing writes into a header's
	// slice in place, and its len == cap makes an append copy it.
	loopHeader []string
	counts     counts
}

// Stats counts what a Proxy has done since it was created (Proxy.Stats),
// for the operator's metrics.
type Stats struct {
	// Requests is how many requests it has handled.
	Requests uint64
	// UpstreamErrors is how many it answered with its own 502, 504 or 508
	// page: the upstream could not be reached, did not answer in time,
	// sent a response that could not be decoded, or was this proxy itself.
	// Requests whose visitor had gone by then are not counted.
	UpstreamErrors uint64
	// Pages is how many HTML documents it served with the visitor script.
	// PagesWithoutSnippet is how many HTML responses it served without,
	// for want of a way to put it in (a content coding it cannot decode,
	// UTF-16, a token before the head too large to look past; each is
	// logged): visits that agents cannot see.
	Pages, PagesWithoutSnippet uint64
	// ResponsesCut is how many responses ended incomplete after their
	// headers went out: the visitor went away or took nothing for the send
	// timeout, or the upstream failed or stalled in the middle of the body.
	ResponsesCut uint64
}

// counts are a Proxy's Stats as it counts them.
type counts struct {
	requests, upstreamErrors, pages, pagesWithoutSnippet, responsesCut atomic.Uint64
}

// Stats returns what p has counted so far.
func (p *Proxy) Stats() Stats {
	return Stats{
		Requests:            p.counts.requests.Load(),
		UpstreamErrors:      p.counts.upstreamErrors.Load(),
		Pages:               p.counts.pages.Load(),
		PagesWithoutSnippet: p.counts.pagesWithoutSnippet.Load(),
		ResponsesCut:        p.counts.responsesCut.Load(),
	}
}

// New returns a Proxy that forwards requests to upstream, an http or https
// origin such as http://127.0.0.1:3000 (without a path).
func New(upstream *url.URL, cfg Config) (*Proxy, error) {
	if err := checkUpstream(upstream); err != nil {
		return nil, err
	}
	if !strings.HasPrefix(cfg.ScriptPath, "/") || strings.ContainsAny(cfg.ScriptPath, "\"'<> ?#") {
		return nil, fmt.Errorf("proxy: Config.ScriptPath %q must be an absolute path such as /__cobrowse/visitor.js", cfg.ScriptPath)
	}
	p := &Proxy{
		upstream:    new(url.URL),
		scriptPath:  cfg.ScriptPath,
		log:         cfg.Logger,
		codecs:      newCodecs(),
		newNonce:    randomNonce,
		loopID:      "cobrowse-" + rand.Text()[:10],
		trusted:     cfg.TrustedProxies,
		sendTimeout: cfg.SendTimeout,
		ownCookies:  slices.Clone(cfg.OwnCookies),
	}
	p.loopHeader = []string{p.loopID}
	if p.sendTimeout <= 0 {
		p.sendTimeout = DefaultSendTimeout
	}
	*p.upstream = *upstream
	if p.log == nil {
		p.log = slog.Default()
	}
	transport := cfg.Transport
	if transport == nil {
		transport = newUpstreamTransport(upstream, defaultUpstreamTimeouts)
	}
	p.rp = &httputil.ReverseProxy{
		Rewrite:        p.rewriteRequest,
		Transport:      hintsTransport{transport},
		FlushInterval:  cfg.FlushInterval,
		ErrorLog:       slog.NewLogLogger(p.log.Handler(), slog.LevelWarn),
		ModifyResponse: p.modifyResponse,
		ErrorHandler:   p.handleError,
		BufferPool:     &copyBuffers,
	}
	return p, nil
}

// hintsTransport rewrites the headers of 1xx answers (103 Early Hints, whose
// Link headers name what to preload) as modifyResponse rewrites the final
// answer's: ReverseProxy sends them on to the visitor as they come, from the
// httptrace.ClientTrace that it puts in the outbound request, before
// ModifyResponse sees any header. A trace added after it, here, runs first.
type hintsTransport struct{ next http.RoundTripper }

func (t hintsTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	forward := httptrace.ContextClientTrace(req.Context())
	if forward == nil || forward.Got1xxResponse == nil {
		return t.next.RoundTrip(req)
	}
	o := roundTripOf(req).exchange.origins
	rewrite := &httptrace.ClientTrace{Got1xxResponse: func(_ int, h textproto.MIMEHeader) error {
		o.rewriteResponseHeaders(http.Header(h))
		return nil
	}}
	return t.next.RoundTrip(req.WithContext(httptrace.WithClientTrace(req.Context(), rewrite)))
}

// copyBufferSize is the size of the buffers that bodies are copied through
// to the client. ReverseProxy's default, 32 KB, costs a read and a write
// (and for a rewritten page, a flush: three writes) per 32 KB; on loopback a
// 1 MB image went from ~1,650 to ~2,600 responses/s with 256 KB buffers
// (see docs/benchmarks.md). A buffer is held for as long as one response is
// copied, so a slow client downloading a big file holds one; they come from
// a pool, not from a fresh allocation per response.
const copyBufferSize = 256 << 10

// copyBuffers is the pool of ReverseProxy's copy buffers, shared by every
// Proxy.
var copyBuffers bufferPool

// bufferPool is an httputil.BufferPool of copyBufferSize buffers.
type bufferPool struct{ pool sync.Pool }

func (bp *bufferPool) Get() []byte {
	if b, ok := bp.pool.Get().(*[]byte); ok {
		return *b
	}
	return make([]byte, copyBufferSize)
}

func (bp *bufferPool) Put(b []byte) {
	if cap(b) == copyBufferSize {
		b = b[:copyBufferSize]
		bp.pool.Put(&b)
	}
}

// checkUpstream returns an error telling the operator what to pass unless u
// is an absolute http or https URL with a host.
func checkUpstream(u *url.URL) error {
	const want = "pass the address of the site to front as an absolute URL, such as http://127.0.0.1:3000"
	switch {
	case u == nil:
		return errors.New("proxy: no upstream URL; " + want)
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("proxy: upstream %q is not an http:// or https:// URL; %s", u.String(), want)
	case u.Host == "":
		return fmt.Errorf("proxy: upstream %q has no host; %s", u.String(), want)
	case u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		// Fronting a site under a path prefix would take mapping the prefix
		// out of its redirects, cookie paths and links: not done.
		return fmt.Errorf("proxy: upstream %q has a path, query or fragment; cobrowse fronts a whole origin: %s", u.String(), want)
	}
	if _, ok := rewrite.NewOrigin(u.Scheme, u.Host); !ok {
		return fmt.Errorf("proxy: upstream %q: %q is not a host name, IPv4 address or [IPv6 address] with an optional port up to 65535; %s", u.String(), u.Host, want)
	}
	return nil
}

// ServeHTTP forwards r to the upstream and writes its response to w. It
// answers itself a CONNECT (501) and a request that has been through p
// before (508, see cameBack).
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.counts.requests.Add(1)
	if r.Method == http.MethodConnect {
		// A tunnel to wherever the client names is a forward proxy's
		// service: forwarded, CONNECT would reach the upstream as a request
		// it was never meant to get. 501 rather than 405, which would have
		// to list the methods the upstream allows.
		http.Error(w, "501 Not Implemented: this server fronts a web site; it is not a forward proxy, so it opens no tunnels (CONNECT)", http.StatusNotImplemented)
		return
	}
	if p.cameBack(r) {
		p.counts.upstreamErrors.Add(1)
		p.log.Error("proxy: a request came back to this proxy: the upstream is cobrowse itself; point --upstream (or the --route) at the site",
			"upstream", p.upstream.Host, "method", r.Method, "path", r.URL.Path)
		writeGatewayError(w, http.StatusLoopDetected, p.upstream.Host, "is this cobrowse server itself: the request came back to it",
			"point cobrowse's <code>--upstream</code> (or the <code>--route</code> for this host) at the site, not at cobrowse")
		return
	}
	if serveSelfRemovingWorker(w, r) {
		return
	}
	rt := &roundTrip{cw: newCoalescingWriter(w), http2: r.ProtoMajor == 2}
	if !rt.http2 {
		rt.cw.boundWrites(p.sendTimeout, boundEachSend)
	}
	complete := false // ReverseProxy panics to abort a response
	defer func() {
		rt.cw.stop(complete)
		if !complete {
			p.counts.responsesCut.Add(1)
		}
	}()
	p.rp.ServeHTTP(rt.cw, r.WithContext(context.WithValue(r.Context(), roundTripKey{}, rt)))
	complete = true
}

// cameBack reports whether r carries p's own pseudonym in CDN-Loop: p
// forwarded it before, and the upstream sent it back. Without this check
// an --upstream that points at cobrowse itself forwards each request to
// itself until the process runs out of file descriptors.
func (p *Proxy) cameBack(r *http.Request) bool {
	for _, v := range r.Header["Cdn-Loop"] {
		// The pseudonym is random and long enough that it appears in
		// the header only if p put it there: no need to parse the list.
		if strings.Contains(v, p.loopID) {
			return true
		}
	}
	return false
}

// roundTrip is what the stages of one proxied request share. ServeHTTP puts
// it in the request's context, which the outbound request inherits;
// rewriteRequest fills in the exchange, and modifyResponse reads both.
type roundTrip struct {
	cw       *coalescingWriter // the ResponseWriter that ReverseProxy writes to
	http2    bool              // the visitor's request came over HTTP/2
	exchange exchange
}

// roundTripKey is the request context key of the roundTrip.
type roundTripKey struct{}

// roundTripOf returns the roundTrip that ServeHTTP put in r's context.
func roundTripOf(r *http.Request) *roundTrip {
	return r.Context().Value(roundTripKey{}).(*roundTrip)
}

// randomNonce returns 128 random bits in base64, for a script nonce.
func randomNonce() string {
	b := make([]byte, 16)
	rand.Read(b) // never fails (crypto/rand)
	return base64.StdEncoding.EncodeToString(b)
}

// exchange is what rewriteRequest learnt from the visitor's request, for
// modifyResponse (see roundTrip).
type exchange struct {
	// accepted lists the codings the client accepts among those the
	// proxy decodes, best first: what the upstream was asked for.
	accepted []string
	// html is the coding of rewritten pages, "" for identity.
	html string
	// origins maps the upstream's origin onto the one the visitor used.
	origins origins
	// document is true if the visitor's request may load a document into
	// a browsing context (loadsDocument): an HTML answer gets the snippet.
	document bool
}

// rewriteRequest is the ReverseProxy's Rewrite hook. ReverseProxy has already
// removed hop-by-hop headers and any Forwarded and X-Forwarded-* headers
// from the outbound request (pr.Out); pr.In still has them. The upstream
// gets X-Forwarded-For with its TCP peer's address (after the chain a trusted
// proxy sent, if any), X-Forwarded-Host with the Host the visitor asked for,
// X-Forwarded-Proto with the public scheme, and p's pseudonym in CDN-Loop.
func (p *Proxy) rewriteRequest(pr *httputil.ProxyRequest) {
	pr.SetURL(p.upstream) // also sends the upstream's host as Host
	scheme := p.trusted.Scheme(pr.In)
	if chain := p.trusted.For(pr.In); chain != nil {
		pr.Out.Header["X-Forwarded-For"] = chain // SetXForwarded appends the peer
	}
	pr.SetXForwarded()
	if headerValue(pr.Out.Header, "X-Forwarded-Proto") != scheme { // SetXForwarded read pr.In.TLS
		pr.Out.Header["X-Forwarded-Proto"] = []string{scheme}
	}
	setClientAddress(pr.Out.Header, p.trusted, pr.In)
	// Appended to what a CDN in front put there, as RFC 8586 asks.
	if cdns := pr.Out.Header["Cdn-Loop"]; len(cdns) > 0 {
		pr.Out.Header["Cdn-Loop"] = append(cdns, p.loopID)
	} else {
		pr.Out.Header["Cdn-Loop"] = p.loopHeader
	}
	// On equal preference zstd before br: about as small, and a third of
	// br's CPU at the levels used (see encoding.go).
	neg := exchange{
		accepted: contentcoding.Preferred(pr.In.Header, "zstd", "br", "gzip", "deflate"),
		html:     contentcoding.Choose(pr.In.Header, "zstd", "br", "gzip"),
		origins:  newOrigins(p.upstream, scheme, pr.In.Host),
		document: loadsDocument(pr.In.Header),
	}
	neg.origins.rewriteRequestHeaders(pr.Out.Header)
	dropCookies(pr.Out.Header, p.ownCookies)
	// Ask only for codings the client reads too, so that a body the proxy
	// does not rewrite passes through as it comes, and the answer to a HEAD
	// or a byte range, never decoded (a partial stream cannot be), is one
	// the client can use.
	if len(neg.accepted) == 0 {
		pr.Out.Header["Accept-Encoding"] = []string{"identity"}
	} else {
		pr.Out.Header["Accept-Encoding"] = []string{strings.Join(neg.accepted, ", ")}
	}
	roundTripOf(pr.In).exchange = neg
}

// modifyResponse is the ReverseProxy's ModifyResponse hook. It decodes,
// rewrites and encodes again HTML, and decodes other bodies in a coding the
// client does not accept. An error it returns goes to handleError.
func (p *Proxy) modifyResponse(resp *http.Response) error {
	rt := roundTripOf(resp.Request)
	neg := rt.exchange
	// Redirects, HEAD and 304 answers carry Location and Set-Cookie too.
	for _, name := range neg.origins.rewriteResponseHeaders(resp.Header) {
		p.warnOnce("cookie "+name, "proxy: the upstream sets a __Secure-/__Host- cookie that browsers refuse over plain http; serve cobrowse over https (--tls-cert), or behind a TLS-terminating proxy named in --trusted-proxy", "cookie", name)
	}
	// The upstream's alternative services (HTTP/3 on its own hosts) are
	// not the proxy's: a browser could take the origin's requests there,
	// past the proxy.
	delete(resp.Header, "Alt-Svc")
	if resp.StatusCode == http.StatusNotModified {
		// The browser updates the page it cached with the headers of a 304,
		// and that page carries the nonce of the policy the proxy edited
		// then: the upstream's unedited policy would now block its visitor
		// script. Without a policy in the 304 the cached, edited one stays.
		delete(resp.Header, "Content-Security-Policy")
		delete(resp.Header, "Content-Security-Policy-Report-Only")
	}
	if !hasBody(resp) {
		return nil
	}
	coding := contentCoding(resp.Header)
	html := hasHTML(resp.Header)
	if rt.http2 {
		bound := boundWhileSending
		if flowsWithoutPauses(resp) {
			bound = boundLazily
		}
		rt.cw.boundWrites(p.sendTimeout, bound)
	}
	if html {
		// The same URL may be a page to a navigation and a fragment to a
		// fetch (which gets no snippet): a cache must tell them apart.
		addVary(resp.Header, "Sec-Fetch-Dest")
	}
	if !html || isAttachment(resp.Header) || p.isUTF16(resp) || !neg.document && !neg.origins.rewritesURLs() {
		return p.passOn(resp, coding, neg.accepted)
	}

	var src io.Reader = resp.Body
	if coding != "" {
		if !decodable(coding) {
			p.counts.pagesWithoutSnippet.Add(1)
			p.log.Warn("proxy: serving an HTML page without the cobrowse snippet: the proxy cannot decode its Content-Encoding (it decodes one of br, zstd, gzip or deflate)",
				"upstream", p.upstream.Host, "path", resp.Request.URL.Path, "content_encoding", coding)
			return nil
		}
		if err := p.codecs.decode(resp, coding); err != nil {
			return err
		}
		// Decode the first bytes before the headers go out, so that a body
		// that is not in the coding it is labelled with gets a 502 rather
		// than a page cut off after its headers.
		first := bufio.NewReader(resp.Body)
		if _, err := first.Peek(1); err != nil && err != io.EOF {
			return &decodeError{err}
		}
		src = first
	}
	page := &htmlBody{Reader: src, body: resp.Body, log: p.log, counts: &p.counts, path: resp.Request.URL.Path}
	if !neg.document {
		// A fragment for a script (htmx, Turbo, jQuery's load): no snippet,
		// which would end up inside another page or break a parser, but its
		// URLs must point at the proxy as the page's do.
		page.rewriter = rewrite.NewURLRewriter(src, neg.origins.upstream, neg.origins.public)
		page.Reader = page.rewriter
	} else {
		p.injectInto(resp, page, neg.origins)
	}
	resp.Body = page
	// The coalescing writer also compresses the page (coalesce.go).
	var z *compressor
	if neg.html == "" {
		delete(resp.Header, "Content-Encoding")
	} else {
		z = p.codecs.compress(neg.html, rt.cw)
		resp.Header["Content-Encoding"] = []string{neg.html}
	}
	rt.cw.enable(z)
	encodingChanged(resp)
	return nil
}

// injectInto sets up page, the body of resp, to get the snippet, with the
// policies of resp allowing it.
func (p *Proxy) injectInto(resp *http.Response, page *htmlBody, o origins) {
	nonce := p.newNonce()
	// The Injector reads the upstream's bytes, not the URLRewriter's: it
	// counts the charset prescan window without what rewritten URLs and
	// <meta> policies before a declaration add or take away (a few bytes,
	// on rare pages): the other order cost 2–3 µs more per page in
	// BenchmarkProxyPage's tag-only case (the URLRewriter's first, 64 KB
	// read is then copied out again rather than passed on).
	page.injector = rewrite.NewInjector(page.Reader, p.snippet(nonce))
	if namesUTF8(headerValue(resp.Header, "Content-Type")) {
		page.injector.CharsetFromHeader()
	}
	page.Reader = page.injector
	// A shared cache would give every visitor the same nonce, which then
	// lets anyone's injected markup run (see keepPrivate).
	keepPrivate(resp.Header)
	// With the public origin known, the page's policies must allow the
	// visitor script and its socket there, and its URLs to the upstream
	// (if that is another origin) must point there. The URLRewriter lexes
	// the page once for both: it edits the head's <meta> policies and then,
	// with no URL to rewrite, passes the rest through.
	allowance, ok := o.visitorAllowance(p.scriptPath, nonce)
	if !ok {
		return
	}
	p.allowVisitorInCSP(resp, allowance)
	editMeta := rewrite.WithMetaCSP(func(policy string) (string, error) {
		return rewrite.AllowVisitorMeta(policy, allowance)
	})
	page.rewriter = rewrite.NewURLRewriter(page.injector, o.upstream, o.public, editMeta)
	page.Reader = page.rewriter
}

// passOn lets the body of resp, in coding, through as the upstream sent it,
// decoded if the client does not accept that coding and the proxy can.
func (p *Proxy) passOn(resp *http.Response, coding string, accepted []string) error {
	if coding == "" || slices.Contains(accepted, coding) || !decodable(coding) {
		return nil
	}
	if err := p.codecs.decode(resp, coding); err != nil {
		return err
	}
	delete(resp.Header, "Content-Encoding")
	encodingChanged(resp)
	return nil
}

// loadsDocument reports whether a request with header h may load a
// document into a browsing context (a window, frame or embedded object),
// where the snippet belongs. Browsers say what a request is for in
// Sec-Fetch-Dest; a request without it (an older browser, curl) is taken
// for a navigation, as the proxy cannot tell.
func loadsDocument(h http.Header) bool {
	switch headerValue(h, "Sec-Fetch-Dest") {
	case "", "document", "iframe", "frame", "fencedframe", "embed", "object":
		return true
	}
	return false
}

// isAttachment reports whether h asks for the body to be saved rather than
// shown (Content-Disposition: attachment): a download keeps its bytes.
func isAttachment(h http.Header) bool {
	disposition, _, _ := strings.Cut(headerValue(h, "Content-Disposition"), ";")
	return strings.EqualFold(strings.TrimSpace(disposition), "attachment")
}

// keepPrivate makes a response with a per-visitor nonce private to the
// visitor's browser: shared caches must not store it (public and s-maxage
// are dropped, private added). A response that no cache may store
// (no-store) is left as it is.
func keepPrivate(h http.Header) {
	var directives []string
	for _, v := range h["Cache-Control"] {
		for d := range strings.SplitSeq(v, ",") {
			d = strings.TrimSpace(d)
			name, _, _ := strings.Cut(d, "=")
			switch strings.ToLower(strings.TrimSpace(name)) {
			case "no-store", "private":
				return
			case "public", "s-maxage", "":
				continue
			}
			directives = append(directives, d)
		}
	}
	h["Cache-Control"] = []string{strings.Join(append(directives, "private"), ", ")}
}

// snippet returns the tag that loads the visitor script, with nonce.
func (p *Proxy) snippet(nonce string) []byte {
	// defer="" rather than a bare defer: an XHTML page is parsed as XML,
	// where every attribute needs a value.
	const before, between, after = `<script src="`, `" nonce="`, `" defer=""></script>`
	tag := make([]byte, 0, len(before)+len(p.scriptPath)+len(between)+len(nonce)+len(after))
	tag = append(tag, before...)
	tag = append(tag, p.scriptPath...)
	tag = append(tag, between...)
	tag = append(tag, nonce...)
	return append(tag, after...)
}

// allowVisitorInCSP edits the page's policy headers so that they allow the
// visitor script and its socket. A policy it cannot edit safely stays as it
// is, and the page may then block the script: that is logged.
func (p *Proxy) allowVisitorInCSP(resp *http.Response, a rewrite.VisitorAllowance) {
	for _, name := range []string{"Content-Security-Policy", "Content-Security-Policy-Report-Only"} {
		values := resp.Header[name] // name is canonical: Values would canonicalise it again, per page
		for i, v := range values {
			edited, err := rewrite.AllowVisitor(v, a)
			if err != nil {
				p.log.Warn("proxy: left a page's CSP unedited; it may block the visitor script", "path", resp.Request.URL.Path, "header", name, "err", err)
				continue
			}
			values[i] = edited
		}
	}
}

// visitorAllowance describes what the visitor script needs from a page's CSP
// on the public origin: the script at scriptPath with nonce, and WebSockets
// (and fetches) to the public origin. ok is false when the visitor's request
// named no usable host, so there is no origin to allow.
func (o origins) visitorAllowance(scriptPath, nonce string) (a rewrite.VisitorAllowance, ok bool) {
	if o.public.IsZero() {
		return a, false
	}
	ws := "ws://"
	if o.public.Scheme() == "https" {
		ws = "wss://"
	}
	return rewrite.VisitorAllowance{
		Nonce:   nonce,
		Script:  o.public.String() + scriptPath,
		Connect: []string{ws + o.public.Host(), o.public.String()},
	}, true
}

// warnOnce logs msg with args the first time key is seen by this Proxy; at
// most 100 keys are remembered, so that a hostile upstream cannot grow it.
func (p *Proxy) warnOnce(key, msg string, args ...any) {
	if _, seen := p.warned.LoadOrStore(key, true); seen {
		return
	}
	n := 0
	p.warned.Range(func(any, any) bool { n++; return n <= 100 })
	if n > 100 {
		p.warned.Delete(key)
	}
	p.log.Warn(msg, args...)
}

// isUTF16 reports whether resp declares a UTF-16 charset: the snippet is
// UTF-8, so such a page is passed through without it (and logged).
func (p *Proxy) isUTF16(resp *http.Response) bool {
	contentType := headerValue(resp.Header, "Content-Type")
	// Parsing costs a map and several strings per page. A charset that
	// ParseMediaType reads as utf-16… has "16" in the header, unless RFC
	// 2231 percent-encoding (%31%36) splits it (its quoted-pairs only
	// escape separators, not digits).
	if !strings.Contains(contentType, "16") && !strings.Contains(contentType, "%") {
		return false
	}
	_, params, err := mime.ParseMediaType(contentType)
	if err != nil || !strings.HasPrefix(strings.ToLower(params["charset"]), "utf-16") {
		return false
	}
	p.counts.pagesWithoutSnippet.Add(1)
	p.log.Warn("proxy: served a UTF-16 page without the cobrowse snippet (the snippet is UTF-8)", "path", resp.Request.URL.Path)
	return true
}

// namesUTF8 reports whether a Content-Type value names UTF-8 as its charset
// (as almost every page's does), which browsers then use whatever the page's
// <meta> says. Any other charset, or none, reports false, which costs the
// Injector no more than a look-ahead of a few microseconds on some pages.
func namesUTF8(contentType string) bool {
	if strings.ContainsAny(contentType, `"\`) {
		// A quoted string may hold a ';' or "charset=": leave it to the
		// full parser, and its map, rather than misread it.
		_, params, err := mime.ParseMediaType(contentType)
		return err == nil && isUTF8Label(params["charset"])
	}
	_, params, _ := strings.Cut(contentType, ";")
	for param := range strings.SplitSeq(params, ";") {
		if name, value, _ := strings.Cut(param, "="); strings.EqualFold(strings.TrimSpace(name), "charset") {
			return isUTF8Label(strings.TrimSpace(value))
		}
	}
	return false
}

// isUTF8Label reports whether label is one of the two common labels of
// UTF-8 (the Encoding Standard knows four rarer ones too).
func isUTF8Label(label string) bool {
	return strings.EqualFold(label, "utf-8") || strings.EqualFold(label, "utf8")
}

// hasBody reports whether resp has a body the proxy may rewrite or decode:
// not the answer to HEAD, not a status without content, not a 206 (its byte
// ranges refer to the upstream's representation) and not known to be empty.
func hasBody(resp *http.Response) bool {
	switch {
	case resp.Request.Method == http.MethodHead,
		resp.StatusCode < 200,
		resp.StatusCode == http.StatusNoContent,
		resp.StatusCode == http.StatusNotModified,
		resp.StatusCode == http.StatusPartialContent,
		resp.ContentLength == 0:
		return false
	}
	return true
}

// flowsWithoutPauses reports whether resp's body should come without
// pauses: a page, or a body of known length. A pause in the middle of one
// means a side is stuck (the upstream's bodyStall, the visitor's send
// timeout over HTTP/2); an event stream, or another body of unknown length,
// may wait for its next bytes as long as it likes.
func flowsWithoutPauses(resp *http.Response) bool {
	return hasHTML(resp.Header) || resp.ContentLength > 0
}

// hasHTML reports whether h declares an HTML or XHTML body.
func hasHTML(h http.Header) bool {
	mediaType, _, _ := strings.Cut(headerValue(h, "Content-Type"), ";")
	mediaType = strings.TrimSpace(mediaType)
	return strings.EqualFold(mediaType, "text/html") || strings.EqualFold(mediaType, "application/xhtml+xml")
}

// contentCoding returns the content codings h declares, lower case and comma
// separated: "" for none (or only "identity"), "gzip" for gzip alone.
func contentCoding(h http.Header) string {
	var codings []string
	for _, v := range h["Content-Encoding"] {
		for c := range strings.SplitSeq(v, ",") {
			switch c = strings.ToLower(strings.TrimSpace(c)); c {
			case "", "identity":
			case "x-gzip":
				codings = append(codings, "gzip")
			default:
				codings = append(codings, c)
			}
		}
	}
	return strings.Join(codings, ", ")
}

// encodingChanged adjusts the headers of resp, whose body the proxy decoded
// or encoded (and perhaps rewrote) for this client: another client may get
// another coding, and the body is no longer the upstream's.
func encodingChanged(resp *http.Response) {
	addVary(resp.Header, "Accept-Encoding")
	bodyChanged(resp)
}

// bodyChanged adjusts the headers of resp whose body no longer has the
// upstream's bytes: its length is unknown (net/http chunks it, and
// ReverseProxy then flushes every write), byte ranges of the upstream's
// bytes do not apply to it, digests of them are dropped, and a strong ETag,
// which promises those exact bytes, becomes weak.
func bodyChanged(resp *http.Response) {
	resp.ContentLength = -1
	// One pass over the header instead of a Del per name: the names are
	// canonical, as Del would make them, and so are the keys the Transport
	// stores.
	for name := range resp.Header {
		switch name {
		case "Content-Length", "Accept-Ranges",
			"Content-Digest", "Repr-Digest", "Digest", "Content-Md5": // they vouch for the upstream's bytes
			delete(resp.Header, name)
		}
	}
	if etag := headerValue(resp.Header, "Etag"); etag != "" && !strings.HasPrefix(etag, "W/") {
		resp.Header["Etag"] = []string{"W/" + etag}
	}
}

// addVary adds field to the Vary header of h unless it is already covered.
func addVary(h http.Header, field string) {
	for _, v := range h["Vary"] {
		for f := range strings.SplitSeq(v, ",") {
			if f = strings.TrimSpace(f); f == "*" || strings.EqualFold(f, field) {
				return
			}
		}
	}
	h["Vary"] = append(h["Vary"], field)
}

// htmlBody is an HTML response body: a page with the snippet injected and,
// when the public origin is known, the head's <meta> policies edited to
// allow the visitor script; and, page or fragment, if the visitor reached
// the proxy on another origin than the upstream's, the upstream's absolute
// URLs in attributes rewritten to it. Close logs what the operator should
// know: pages served without the snippet, <meta> policies left unedited,
// URLs left unrewritten. (Reading or decoding errors are logged by
// ReverseProxy as it copies, except the cancellations of clients that went
// away.)
type htmlBody struct {
	io.Reader                      // the decoded body, injector or rewriter, the last set of them
	injector  *rewrite.Injector    // nil for a fragment
	rewriter  *rewrite.URLRewriter // nil if no URL is to be rewritten and no policy edited
	body      io.Closer
	log       *slog.Logger
	counts    *counts
	path      string
}

func (b *htmlBody) Close() error {
	if b.injector != nil {
		err := b.injector.Err()
		switch {
		case b.injector.Injected():
			b.counts.pages.Add(1)
		case errors.Is(err, rewrite.ErrTokenTooLarge) || errors.Is(err, rewrite.ErrUTF16):
			b.counts.pagesWithoutSnippet.Add(1)
			b.log.Warn("proxy: served an HTML page without the cobrowse snippet", "path", b.path, "err", err)
		}
	}
	if b.rewriter != nil {
		if err := b.rewriter.MetaCSPErr(); err != nil {
			b.log.Warn("proxy: left a page's <meta> CSP unedited; it may block the visitor script", "path", b.path, "err", err)
		}
		if err := b.rewriter.Err(); err != nil {
			b.log.Warn("proxy: left a page partly unrewritten: some URLs to the upstream, or a <meta> policy", "path", b.path, "err", err)
		}
	}
	return b.body.Close()
}

// decodeError marks an upstream response that the proxy could not decode, to
// tell it apart from an upstream that could not be reached.
type decodeError struct{ err error }

func (e *decodeError) Error() string { return e.err.Error() }
func (e *decodeError) Unwrap() error { return e.err }

// handleError is the ReverseProxy's ErrorHandler: the upstream could not be
// reached, did not answer in time, or sent a response that modifyResponse
// could not decode. r is the outbound request. It logs the cause and answers
// with a short page, 504 Gateway Timeout if the upstream took longer than a
// timeout (to connect, for a TLS handshake, for its response headers), as
// nginx does, and 502 Bad Gateway otherwise; the cause itself is not shown
// to the visitor.
func (p *Proxy) handleError(w http.ResponseWriter, r *http.Request, err error) {
	var de *decodeError
	status := http.StatusBadGateway
	problem := "could not be reached"
	advice := "check that it is running and that cobrowse's <code>--upstream</code> points at it"
	switch {
	case r.Context().Err() != nil:
		// The client went away; nobody will read the page.
		p.log.Debug("proxy: client gone before the upstream answered", "upstream", p.upstream.Host, "method", r.Method, "path", r.URL.Path, "err", err)
	case errors.As(err, &de):
		p.counts.upstreamErrors.Add(1)
		problem = "sent a response that could not be decoded"
		advice = "check the upstream site's logs"
		p.log.Error("proxy: bad response from the upstream site", "upstream", p.upstream.Host, "method", r.Method, "path", r.URL.Path, "err", err)
	case isTimeout(err):
		p.counts.upstreamErrors.Add(1)
		status = http.StatusGatewayTimeout
		problem = "did not answer in time"
		advice = "check that it is running, not overloaded, and reachable from cobrowse"
		p.log.Error("proxy: upstream site did not answer in time", "upstream", p.upstream.Host, "method", r.Method, "path", r.URL.Path, "err", err)
	default:
		p.counts.upstreamErrors.Add(1)
		p.log.Error("proxy: upstream site unreachable; check --upstream and that the site is running", "upstream", p.upstream.Host, "method", r.Method, "path", r.URL.Path, "err", err)
	}
	writeGatewayError(w, status, p.upstream.Host, problem, advice)
}

// writeGatewayError answers with cobrowse's own page for status, saying what
// the problem is with the upstream at host (HTML, as is advice).
func writeGatewayError(w http.ResponseWriter, status int, host, problem, advice string) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	fmt.Fprintf(w, gatewayErrorPage, status, http.StatusText(status), html.EscapeString(host), problem, advice)
}

// gatewayErrorPage is the body of a 502, 504 or 508: status code and text,
// upstream host, problem, advice.
const gatewayErrorPage = `<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>%[1]d %[2]s</title></head>
<body>
<h1>%[1]d %[2]s</h1>
<p>The upstream site at <code>%[3]s</code> %[4]s.</p>
<p>If you operate this site, %[5]s.</p>
</body>
</html>
`
