package proxy

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/flate"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zlib"
	"github.com/klauspost/compress/zstd"
)

// Settings of the encoders and decoders. The levels were chosen by
// compressing two real HTML pages of 78 and 98 KB in 32 KB flushed chunks
// (the proxy flushes an encoder only when it sends, see coalesce.go),
// compared with gzip at its default level (5 here: 0.3 to 0.5 ms per page on
// the machine measured):
//
//	                      size     CPU time
//	brotli 2              +3/+4%   1.7-1.8×
//	brotli 3              -2/+2%   2-2.2×
//	brotli 4 (chosen)     -2/-6%   3-3.2×
//	zstd fastest          +8/+9%   0.4×
//	zstd default (chosen) +2/+3%   0.5-0.8×
//	gzip 1                +14/+16% 0.4-0.6×
//
// BenchmarkProxyHTML shows the cost per coding through the whole proxy.
const (
	// brotliQuality is the level of brotli-encoded pages: the lowest that
	// compresses HTML better than gzip does at its default level, which is
	// the point of sending brotli.
	brotliQuality = 4
	// brotliWindowBits sets a 256 KB brotli window: an encoder then takes
	// 1.7 MB rather than the 9.5 MB of the default 4 MB window, and pages
	// compress the same.
	brotliWindowBits = 18
	// zstdWindow is the window of zstd-encoded pages; with the encoder's
	// low-memory option it holds 384 KB of history.
	zstdWindow = 256 << 10
	// zstdMaxWindow is the largest window a zstd body may need to be
	// decoded: 8 MB, the limit RFC 9659 sets for the zstd content coding,
	// and the one browsers enforce. It bounds a decoder's memory.
	zstdMaxWindow = 8 << 20
)

// decodable reports whether the proxy can decode a body in coding, as
// returned by contentCoding. These are the codings it may ask the upstream
// for; rewriteRequest lists them in the order it prefers among equals.
func decodable(coding string) bool {
	switch coding {
	case "br", "zstd", "gzip", "deflate":
		return true
	}
	return false
}

// codecs holds the encoders and decoders that a Proxy reuses from one
// response to the next: making one allocates 300 KB to 2 MB.
type codecs struct {
	brWriters, zstdWriters, gzipWriters sync.Pool // of *compressor
	brReaders, zstdReaders              sync.Pool // of *brotli.Reader, *zstd.Decoder
}

func newCodecs() *codecs {
	c := new(codecs)
	c.brWriters.New = func() any {
		return &compressor{enc: brotli.NewWriterOptions(nil, brotli.WriterOptions{Quality: brotliQuality, LGWin: brotliWindowBits})}
	}
	c.zstdWriters.New = func() any {
		enc, err := zstd.NewWriter(nil,
			zstd.WithEncoderLevel(zstd.SpeedDefault),
			zstd.WithEncoderConcurrency(1), // no goroutines: encode in Write
			zstd.WithWindowSize(zstdWindow),
			zstd.WithLowerEncoderMem(true))
		if err != nil {
			panic("proxy: bad zstd encoder options: " + err.Error()) // they are constants
		}
		return &compressor{enc: enc}
	}
	c.gzipWriters.New = func() any {
		return &compressor{enc: gzip.NewWriter(nil)} // default level
	}
	c.brReaders.New = func() any { return brotli.NewReader(nil) }
	c.zstdReaders.New = func() any {
		dec, err := zstd.NewReader(nil,
			zstd.WithDecoderConcurrency(1), // no goroutines, no read-ahead
			zstd.WithDecoderMaxWindow(zstdMaxWindow))
		if err != nil {
			panic("proxy: bad zstd decoder options: " + err.Error()) // they are constants
		}
		return dec
	}
	return c
}

// decode replaces the body of resp, which is encoded in coding (one that
// decodable accepts), with its decoded content. The headers are left to the
// caller.
//
// decode waits for the first bytes of the body, so that an empty body stays
// empty and one that does not start as its coding's format requires (gzip
// and zlib headers, zstd's magic number) is a decodeError: a 502 rather than
// a page cut off after its headers. Later errors, reading the upstream or
// decoding, are returned by Read wrapped with the coding and the path;
// ReverseProxy logs them and aborts the response. A deflate body may be
// zlib-wrapped, as RFC 9110 requires, or raw deflate, as some servers send
// it; browsers accept both.
//
// Decoders stream: they hold a window of the content (32 KB for gzip and
// deflate, up to 16 MB for brotli and zstdMaxWindow for zstd), never the
// whole of it.
func (c *codecs) decode(resp *http.Response, coding string) error {
	in := bufio.NewReader(resp.Body)
	head, err := in.Peek(4)
	var r io.Reader = in // at its end if the body is empty
	var release func()
	switch {
	case len(head) == 0 && err != io.EOF:
		return &decodeError{fmt.Errorf("proxy: reading the upstream's %s response body: %w", coding, err)}
	case len(head) > 0:
		if r, release, err = c.decoder(coding, in, head); err != nil {
			return &decodeError{err}
		}
	}
	resp.Body = &decodedBody{r: r, release: release, body: resp.Body, coding: coding, path: resp.Request.URL.Path}
	return nil
}

// decoder returns a reader of the content of in, encoded in coding, which
// starts with head, and a function that returns the reader for reuse once
// it is no longer used (nil if it is not reused).
func (c *codecs) decoder(coding string, in *bufio.Reader, head []byte) (io.Reader, func(), error) {
	switch coding {
	case "gzip":
		zr, err := gzip.NewReader(in)
		if err != nil {
			return nil, nil, fmt.Errorf("proxy: the upstream labelled its response body gzip, but it is not: %w", err)
		}
		return zr, nil, nil
	case "deflate":
		if !isZlib(head) {
			return flate.NewReader(in), nil, nil
		}
		zr, err := zlib.NewReader(in)
		if err != nil {
			return nil, nil, fmt.Errorf("proxy: the upstream's deflate response body has a zlib header it cannot be decoded with: %w", err)
		}
		return zr, nil, nil
	case "br":
		br := c.brReaders.Get().(*brotli.Reader)
		br.Reset(in)
		return br, func() {
			br.Reset(nil) // forget the upstream's body
			c.brReaders.Put(br)
		}, nil
	case "zstd":
		if !isZstd(head) {
			return nil, nil, fmt.Errorf("proxy: the upstream labelled its response body zstd, but it does not start with a zstd frame (% x)", head)
		}
		zr := c.zstdReaders.Get().(*zstd.Decoder)
		if err := zr.Reset(in); err != nil {
			return nil, nil, fmt.Errorf("proxy: starting a zstd decoder: %w", err)
		}
		return zr, func() {
			zr.Reset(nil) // forget the upstream's body
			c.zstdReaders.Put(zr)
		}, nil
	}
	panic("proxy: decode called with coding " + coding + ", which decodable refuses")
}

// isZlib reports whether head starts with a zlib header (RFC 1950): the
// deflate method, a window of at most 32 KB, and a check value.
func isZlib(head []byte) bool {
	return len(head) >= 2 && head[0]&0x0f == 8 && head[0]>>4 <= 7 && binary.BigEndian.Uint16(head)%31 == 0
}

// isZstd reports whether head starts with the magic number of a zstd frame
// or of a skippable frame (RFC 8878, section 3.1).
func isZstd(head []byte) bool {
	if len(head) < 4 {
		return false
	}
	magic := binary.LittleEndian.Uint32(head)
	return magic == 0xFD2FB528 || magic&0xFFFFFFF0 == 0x184D2A50
}

// decodedBody is the decoded content of an upstream response body.
type decodedBody struct {
	r       io.Reader
	release func() // returns r for reuse; nil if it is not reused
	body    io.Closer
	coding  string
	path    string
}

// Read reads the decoded content. Its errors other than io.EOF say what was
// being decoded, so that ReverseProxy's log of them tells the operator
// which page of the upstream is at fault; a cancellation, which
// ReverseProxy does not log, is returned as it is.
func (b *decodedBody) Read(p []byte) (int, error) {
	if b.r == nil {
		return 0, http.ErrBodyReadAfterClose
	}
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF && !errors.Is(err, context.Canceled) {
		err = fmt.Errorf("proxy: decoding the upstream's %s response body for %s: %w", b.coding, b.path, err)
	}
	return n, err
}

// Close closes the upstream's body and returns the decoder for reuse.
func (b *decodedBody) Close() error {
	if b.release != nil {
		b.release()
		b.release = nil
	}
	b.r = nil
	return b.body.Close()
}

// encoder is a streaming compressor, such as a brotli.Writer, a
// zstd.Encoder or a gzip.Writer.
type encoder interface {
	io.Writer
	// Flush writes out the compressed form of everything written so far,
	// such that a decoder can produce all of it before the stream ends.
	Flush() error
	// Close ends the stream.
	Close() error
	// Reset starts a new stream to w.
	Reset(w io.Writer)
}

// compressor is an encoder and the coalescingWriter of the page it
// compresses, reused together. The encoder writes to the compressor, which
// adds what it gets to the coalescingWriter's pending bytes; a compressor
// back in its pool refers to no response. Every use of the encoder is made
// with that coalescingWriter's mu held (coalesce.go).
type compressor struct {
	enc  encoder
	to   *coalescingWriter // nil while in the pool
	pool *sync.Pool        // where it goes back
}

// compress returns a compressor in coding, "br", "zstd" or "gzip", that
// starts a stream into the pending bytes of cw.
func (c *codecs) compress(coding string, cw *coalescingWriter) *compressor {
	var pool *sync.Pool
	switch coding {
	case "br":
		pool = &c.brWriters
	case "zstd":
		pool = &c.zstdWriters
	case "gzip":
		pool = &c.gzipWriters
	default:
		panic("proxy: no encoder for coding " + coding)
	}
	z := pool.Get().(*compressor)
	z.to, z.pool = cw, pool
	z.enc.Reset(z)
	return z
}

// Write is where the encoder puts its output.
func (z *compressor) Write(p []byte) (int, error) { return z.to.buffer(p) }

// release returns z for reuse; it must not be used after.
func (z *compressor) release() {
	z.to = nil
	z.pool.Put(z)
}
