// Package proxy provides the http.Handler that fronts the upstream site: it
// forwards every request to the upstream and streams the response back,
// inserting the cobrowse snippet into HTML pages on the way (see package
// rewrite).
//
// The proxy asks the upstream for gzip or unencoded bodies only, so that it can
// always decode the HTML it must rewrite. Everything that is not HTML (images,
// scripts, styles, JSON, downloads, event streams) passes through untouched
// and unbuffered, decoded only for a client that does not accept gzip.
//
// The package knows nothing about sessions or agents. It does not reserve any
// path either: a caller that serves its own handlers (such as /__cobrowse/)
// next to the proxied site routes them before the Proxy.
package proxy

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"time"

	"github.com/cobrowse/cobrowse/internal/contentcoding"
	"github.com/cobrowse/cobrowse/rewrite"
)

// Config configures a Proxy. The zero value of every field but Snippet is a
// sensible default.
type Config struct {
	// Snippet is inserted once into every HTML page, at the start of its
	// head (see rewrite.Injector), typically
	// `<script src="/__cobrowse/visitor.js" defer></script>`. Required.
	Snippet []byte

	// Logger receives upstream errors and warnings about pages served
	// without the snippet. Nil means slog.Default().
	Logger *slog.Logger

	// Transport performs the upstream requests. Nil means a transport like
	// http.DefaultTransport (proxy from the environment, HTTP/2,
	// keep-alive) with a 10 s dial timeout, a 30 s limit on waiting for the
	// upstream's response headers, so that a dead upstream produces a 502
	// rather than a hang, and up to 100 idle connections to the upstream. A custom Transport must
	// not decode response bodies itself: the proxy sets Accept-Encoding and
	// decodes gzip where needed.
	Transport http.RoundTripper

	// FlushInterval is how often a response of known length is flushed to
	// the client while it is copied (httputil.ReverseProxy.FlushInterval):
	// 0 buffers as net/http does, a negative value flushes after every
	// write. Rewritten HTML, event streams and responses without a
	// Content-Length are always flushed immediately, so that the first bytes
	// of a slow page reach the browser before the upstream has finished.
	FlushInterval time.Duration
}

// Proxy is the http.Handler that fronts the upstream site. Create it with New;
// it is safe for concurrent use.
type Proxy struct {
	upstream *url.URL
	snippet  []byte
	log      *slog.Logger
	rp       *httputil.ReverseProxy
}

// New returns a Proxy that forwards requests to upstream, an absolute http or
// https URL such as http://127.0.0.1:3000 (a path in it prefixes the request
// paths).
func New(upstream *url.URL, cfg Config) (*Proxy, error) {
	if err := checkUpstream(upstream); err != nil {
		return nil, err
	}
	if len(cfg.Snippet) == 0 {
		return nil, errors.New("proxy: Config.Snippet is empty; set it to the <script> tag to insert into HTML pages")
	}
	p := &Proxy{
		upstream: new(url.URL),
		snippet:  append([]byte(nil), cfg.Snippet...),
		log:      cfg.Logger,
	}
	*p.upstream = *upstream
	if p.log == nil {
		p.log = slog.Default()
	}
	transport := cfg.Transport
	if transport == nil {
		transport = defaultTransport()
	}
	p.rp = &httputil.ReverseProxy{
		Rewrite:        p.rewriteRequest,
		Transport:      transport,
		FlushInterval:  cfg.FlushInterval,
		ErrorLog:       slog.NewLogLogger(p.log.Handler(), slog.LevelWarn),
		ModifyResponse: p.modifyResponse,
		ErrorHandler:   p.handleError,
	}
	return p, nil
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
	}
	return nil
}

// defaultTransport returns the Transport used when Config.Transport is nil.
func defaultTransport() *http.Transport {
	return &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   10 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   100, // every request goes to the one upstream
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		ExpectContinueTimeout: 1 * time.Second,
	}
}

// ServeHTTP forwards r to the upstream and writes its response to w.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.rp.ServeHTTP(w, r)
}

// clientGzipKey is the context key under which rewriteRequest records, for
// modifyResponse, whether the client accepts gzip.
type clientGzipKey struct{}

// rewriteRequest is the ReverseProxy's Rewrite hook. ReverseProxy has already
// removed hop-by-hop headers and any Forwarded and X-Forwarded-* headers sent
// by the client, which cannot be trusted.
func (p *Proxy) rewriteRequest(pr *httputil.ProxyRequest) {
	pr.SetURL(p.upstream) // also sends the upstream's host as Host
	pr.SetXForwarded()
	gz := contentcoding.Accepts(pr.In.Header, "gzip")
	if gz || (pr.In.Method != http.MethodHead && pr.In.Header.Get("Range") == "") {
		// Ask for gzip only, whatever the client accepts: it is the one
		// coding this proxy decodes, to rewrite HTML and for clients that
		// do not accept it.
		pr.Out.Header.Set("Accept-Encoding", "gzip")
	} else {
		// The answer to a HEAD or a byte range is passed on as it is
		// (a partial gzip stream cannot be decoded): ask only for what
		// this client can read.
		pr.Out.Header.Set("Accept-Encoding", "identity")
	}
	pr.Out = pr.Out.WithContext(context.WithValue(pr.Out.Context(), clientGzipKey{}, gz))
}

// modifyResponse is the ReverseProxy's ModifyResponse hook. It decodes and
// rewrites HTML, and decodes gzip for clients that do not accept it. An error
// it returns goes to handleError.
func (p *Proxy) modifyResponse(resp *http.Response) error {
	if !hasBody(resp) {
		return nil
	}
	isHTML := hasHTML(resp.Header)
	switch coding := contentCoding(resp.Header); {
	case coding == "gzip":
		clientGzip, _ := resp.Request.Context().Value(clientGzipKey{}).(bool)
		if !isHTML && clientGzip {
			return nil // passed through compressed, as the upstream sent it
		}
		if err := gunzip(resp); err != nil {
			return err
		}
	case coding != "":
		if isHTML {
			p.log.Warn("proxy: serving an HTML page without the cobrowse snippet: its Content-Encoding cannot be decoded (the upstream was asked for gzip only)",
				"upstream", p.upstream.Host, "path", resp.Request.URL.Path, "content_encoding", coding)
		}
		return nil
	}
	if isHTML {
		resp.Body = &htmlBody{
			Injector: rewrite.NewInjector(resp.Body, p.snippet),
			body:     resp.Body,
			log:      p.log,
			path:     resp.Request.URL.Path,
		}
		bodyChanged(resp)
	}
	return nil
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

// hasHTML reports whether h declares an HTML or XHTML body.
func hasHTML(h http.Header) bool {
	mediaType, _, _ := strings.Cut(h.Get("Content-Type"), ";")
	mediaType = strings.TrimSpace(mediaType)
	return strings.EqualFold(mediaType, "text/html") || strings.EqualFold(mediaType, "application/xhtml+xml")
}

// contentCoding returns the content codings h declares, lower case and comma
// separated: "" for none (or only "identity"), "gzip" for gzip alone.
func contentCoding(h http.Header) string {
	var codings []string
	for _, v := range h.Values("Content-Encoding") {
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

// gunzip replaces the gzip body of resp with its decoded bytes. It reads the
// gzip header right away, so that an upstream that sends something else gets
// a 502 rather than a broken page.
func gunzip(resp *http.Response) error {
	zr, err := gzip.NewReader(resp.Body)
	if err != nil {
		return &decodeError{fmt.Errorf("proxy: the upstream labelled its response body gzip, but it is not: %w", err)}
	}
	resp.Body = gzipBody{zr, resp.Body}
	resp.Header.Del("Content-Encoding")
	addVary(resp.Header, "Accept-Encoding")
	bodyChanged(resp)
	return nil
}

// bodyChanged adjusts the headers of resp whose body no longer has the
// upstream's bytes: its length is unknown (net/http chunks it, and
// ReverseProxy then flushes every write) and a strong ETag, which promises
// those exact bytes, becomes weak.
func bodyChanged(resp *http.Response) {
	resp.Header.Del("Content-Length")
	resp.ContentLength = -1
	if etag := resp.Header.Get("Etag"); etag != "" && !strings.HasPrefix(etag, "W/") {
		resp.Header.Set("Etag", "W/"+etag)
	}
}

// addVary adds field to the Vary header of h unless it is already covered.
func addVary(h http.Header, field string) {
	for _, v := range h.Values("Vary") {
		for f := range strings.SplitSeq(v, ",") {
			if f = strings.TrimSpace(f); f == "*" || strings.EqualFold(f, field) {
				return
			}
		}
	}
	h.Add("Vary", field)
}

// gzipBody is a decoded gzip response body; Close closes the upstream body.
type gzipBody struct {
	*gzip.Reader
	body io.Closer
}

func (b gzipBody) Close() error { return b.body.Close() }

// htmlBody is an HTML response body with the snippet injected. Close logs if
// the Injector gave up on a page too large to parse, so that the operator
// learns which pages are served without the snippet. (It also gives up when
// reading the upstream fails; ReverseProxy logs those errors as it copies,
// except the cancellations of clients that went away.)
type htmlBody struct {
	*rewrite.Injector
	body io.Closer
	log  *slog.Logger
	path string
}

func (b *htmlBody) Close() error {
	if err := b.Err(); errors.Is(err, rewrite.ErrTokenTooLarge) {
		b.log.Warn("proxy: served an HTML page without the cobrowse snippet", "path", b.path, "err", err)
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
// 502 with a short page; the cause itself is not shown to the visitor.
func (p *Proxy) handleError(w http.ResponseWriter, r *http.Request, err error) {
	var de *decodeError
	problem := "could not be reached"
	advice := "check that it is running and that cobrowse's <code>--upstream</code> points at it"
	switch {
	case r.Context().Err() != nil:
		// The client went away; nobody will read the page.
		p.log.Debug("proxy: client gone before the upstream answered", "upstream", p.upstream.Host, "method", r.Method, "path", r.URL.Path, "err", err)
	case errors.As(err, &de):
		problem = "sent a response that could not be decoded"
		advice = "check the upstream site's logs"
		p.log.Error("proxy: bad response from the upstream site", "upstream", p.upstream.Host, "method", r.Method, "path", r.URL.Path, "err", err)
	default:
		p.log.Error("proxy: upstream site unreachable; check --upstream and that the site is running", "upstream", p.upstream.Host, "method", r.Method, "path", r.URL.Path, "err", err)
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusBadGateway)
	fmt.Fprintf(w, badGatewayPage, html.EscapeString(p.upstream.Host), problem, advice)
}

// badGatewayPage is the body of a 502: upstream host, problem, advice.
const badGatewayPage = `<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>502 Bad Gateway</title></head>
<body>
<h1>502 Bad Gateway</h1>
<p>The upstream site at <code>%s</code> %s.</p>
<p>If you operate this site, %s.</p>
</body>
</html>
`
