package main

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
)

// naiveProxy serves a bare Go proxy that injects a tag: an
// httputil.ReverseProxy (pooled 256 KiB copy buffers, upstream keep-alive)
// that inserts the tag after the first "<head>" it finds within one read of
// an HTML body, as nginx's sub_filter_once does, and does nothing else. No
// charset or BOM handling, no CSP, nonce, cookie, URL or header rewriting,
// no decoding: set beside cobrowse and nginx, it shows what Go's net/http
// costs on its own, so that cobrowse's remaining gap can be told apart from
// the platform's. Not for real sites: a "<head>" split between two reads is
// missed (bench/proxy.sh checks that the tag went in).
func naiveProxy(args []string) error {
	fs := flag.NewFlagSet("naive-proxy", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:0", "`address` to listen on")
	addrFile := fs.String("addr-file", "", "write the address listened on to this `file`")
	upstream := fs.String("upstream", "", "the `URL` to forward to")
	tag := fs.String("tag", "", "the `HTML` to insert after <head>")
	if err := fs.Parse(args); err != nil {
		return err
	}
	target, err := url.Parse(*upstream)
	if err != nil || target.Host == "" {
		return errors.New("naive-proxy: -upstream must be an absolute URL such as http://127.0.0.1:8080")
	}
	if *tag == "" {
		return errors.New("naive-proxy: -tag is required")
	}
	headTag := []byte("<head>" + *tag)
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.Out.Host = r.In.Host
		},
		Transport: &http.Transport{
			MaxIdleConnsPerHost: 100,
			DisableCompression:  true, // pass bodies as the upstream sends them
		},
		BufferPool: &copyBuffers{},
		ModifyResponse: func(resp *http.Response) error {
			if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") || resp.Header.Get("Content-Encoding") != "" {
				return nil
			}
			resp.Body = &headInjector{ReadCloser: resp.Body, headTag: headTag}
			resp.ContentLength = -1
			resp.Header.Del("Content-Length")
			return nil
		},
	}
	return listenAndServe(*listen, *addrFile, rp, nil)
}

// headInjector replaces the first "<head>" found within one Read with
// headTag.
type headInjector struct {
	io.ReadCloser
	headTag []byte
	done    bool
}

func (h *headInjector) Read(p []byte) (int, error) {
	if h.done || len(p) < 2*len(h.headTag) {
		return h.ReadCloser.Read(p)
	}
	grow := len(h.headTag) - len("<head>")
	n, err := h.ReadCloser.Read(p[:len(p)-grow])
	if i := bytes.Index(p[:n], []byte("<head>")); i >= 0 {
		copy(p[i+len(h.headTag):], p[i+len("<head>"):n])
		copy(p[i:], h.headTag)
		n += grow
		h.done = true
	}
	return n, err
}

// copyBuffers pools ReverseProxy's copy buffers, as cobrowse does.
type copyBuffers struct{ pool sync.Pool }

func (b *copyBuffers) Get() []byte {
	if buf, ok := b.pool.Get().(*[]byte); ok {
		return *buf
	}
	return make([]byte, 256<<10)
}

func (b *copyBuffers) Put(buf []byte) { b.pool.Put(&buf) }
