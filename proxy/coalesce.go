package proxy

import (
	"fmt"
	"net/http"
	"sync"
	"time"
)

// A rewritten page has no Content-Length, so httputil.ReverseProxy flushes
// after every write, and net/http turns each flush into a chunk of its own,
// written with about three write(2) calls. The rewriters hand on what they
// have as soon as they have it, often a few hundred bytes (a <head> token, a
// tag that was rewritten), so a 100 KB page became ~30 writes to the socket:
// half the proxy's CPU under load (docs/benchmarks.md).
//
// coalescingWriter keeps the stream prompt and the writes few. Once enabled
// (for a rewritten body), it collects writes in a buffer of
// coalesceBufferSize bytes and treats a flush as a request: the first flush
// of body bytes after a pause longer than coalesceWindow happens at once (the
// first bytes of a page, and those after a slow upstream's pause, reach the
// visitor without delay), and further flushes within the window are merged
// into one, at the end of the window. Bytes written are thus never held for
// more than coalesceWindow; a full buffer is written out (without a flush)
// at once. The response headers, which ReverseProxy flushes before the body,
// go out with the first body bytes, or alone at the end of the window if the
// upstream sends none by then.
//
// A page sent compressed is compressed here too, as it is written: the
// encoder writes into the buffer, and is flushed only when the buffer is
// sent with a flush, at most once per window. Each flush of an encoder ends
// a block, with its own header and code tables: when the encoder was
// flushed after every read of the page, a page that came in 512-byte reads
// cost 2 to 3 times the CPU to compress and compressed to 2 to 4 times the
// size (BenchmarkProxyPage). The compressed stream is ended when the
// response completes, and only flushed when it is aborted, so that the
// client can tell an aborted page from a complete one.
const (
	coalesceWindow     = 2 * time.Millisecond
	coalesceBufferSize = 64 << 10
)

// coalesceBuffers holds the buffers of coalescingWriters between responses.
var coalesceBuffers = sync.Pool{New: func() any { return new([coalesceBufferSize]byte) }}

// coalescingWriter is the http.ResponseWriter that the ReverseProxy writes
// to. Until enable is called it passes everything through as it comes.
// Hijack and the other optional interfaces are reached through Unwrap.
type coalescingWriter struct {
	http.ResponseWriter
	flush func() error // the underlying writer's flush

	mu      sync.Mutex // guards everything below, and writes to the ResponseWriter once enabled
	enabled bool
	z       *compressor // the page's encoder, writing to buf; nil to send it as written
	buf     []byte      // pending bytes, in a buffer from coalesceBuffers
	last    time.Time   // of the last flush
	timer   *time.Timer
	armed   bool  // the timer will flush
	pending bool  // bytes were written since the last flush (to z, if any)
	done    bool  // the handler has returned: nothing may be written
	err     error // the first error writing to the client, or compressing

	// With boundWrites, every write and flush to the ResponseWriter fails
	// once it has taken sendTimeout (lazily: at least half of it; see
	// sendBound). sendBy is the deadline last set.
	setWriteDeadline func(time.Time) error
	sendTimeout      time.Duration
	bound            sendBound
	sendBy           time.Time
	pieceSize        int // of the next write (see writeClient); 0 before the first
}

func newCoalescingWriter(w http.ResponseWriter) *coalescingWriter {
	return &coalescingWriter{ResponseWriter: w, flush: http.NewResponseController(w).Flush}
}

// sendBound is how the writes and flushes of a response to the client are
// bounded (boundWrites).
type sendBound int

const (
	// boundEachSend, over HTTP/1.x: the connection's deadline is set
	// before each write and flush (a timer of the connection, 155 ns). It
	// does not matter while the response waits, only to the next write,
	// which sets its own. The last one also bounds net/http's own last
	// flush of the response, after which net/http clears it: the next
	// request on the connection, which another handler may serve, does
	// not inherit it.
	boundEachSend sendBound = iota
	// Over HTTP/2 the deadline is the stream's, and when it passes the
	// stream is reset even if no write waits. Setting it is a message to
	// the connection's goroutine.
	//
	// boundLazily, for a response that does not wait between writes (a
	// page, a body of known length: flowsWithoutPauses): the deadline is
	// moved only when less than half of it is left.
	boundLazily
	// boundWhileSending, for one that may wait (an event stream): the
	// deadline is set before each write and flush and cleared after it,
	// so that the waits between events do not count. Two messages per
	// write, on responses whose writes are few or large.
	boundWhileSending
)

// boundWrites bounds each write and flush to the client by sendTimeout
// (Config.SendTimeout), as bound says.
func (c *coalescingWriter) boundWrites(sendTimeout time.Duration, bound sendBound) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.setWriteDeadline = writeDeadlineSetter(c.ResponseWriter)
	c.sendTimeout, c.bound = sendTimeout, bound
}

// writeDeadlineSetter returns the SetWriteDeadline of w, or of the writer w
// wraps (Unwrap, as http.ResponseController looks for it), or nil if none
// has one (a writer with no connection). It is looked up once per response:
// the ResponseController's lookup on every write also allocated an error on
// writers without one.
func writeDeadlineSetter(w http.ResponseWriter) func(time.Time) error {
	for {
		switch t := w.(type) {
		case interface{ SetWriteDeadline(time.Time) error }:
			return t.SetWriteDeadline
		case interface{ Unwrap() http.ResponseWriter }:
			w = t.Unwrap()
		default:
			return nil
		}
	}
}

// beforeSend sets the write deadline, if writes are bounded, before a
// write or flush to the client, and returns the time it was called then.
// c.mu is held.
func (c *coalescingWriter) beforeSend() time.Time {
	if c.setWriteDeadline == nil {
		return time.Time{}
	}
	now := time.Now()
	if c.bound == boundLazily && c.sendBy.Sub(now) >= c.sendTimeout/2 {
		return now
	}
	c.sendBy = now.Add(c.sendTimeout)
	c.setWriteDeadline(c.sendBy)
	return now
}

// afterSend clears the deadline after a write or flush to the client if the
// response may wait between them (boundWhileSending). c.mu is held.
func (c *coalescingWriter) afterSend() {
	if c.bound == boundWhileSending && c.setWriteDeadline != nil {
		c.setWriteDeadline(time.Time{})
	}
}

// A bounded write to the client is cut into pieces, each with its own
// deadline, so that the send timeout measures the client's progress, as
// nginx's send_timeout does between two writes, rather than how long a
// whole copy buffer (256 KiB) takes: a visitor on a slow link that keeps
// reading is not cut off. Every piece is a write(2) of its own over
// HTTP/1.x, though, and 32 KiB pieces cost about 10 % of the throughput on
// a 1 MiB image (docs/benchmarks.md). So the pieces start at
// firstPieceSize and adapt, as TCP's congestion window does: a piece the
// client took in less than an eighth of the timeout doubles the next one,
// up to the copy buffer; one that took more than a quarter halves it, down
// to minPieceSize. A client that keeps up takes a response in few writes; a
// visitor is cut off only when it takes less than minPieceSize in the
// timeout (about 500 bytes a second at the default), or slows down eightfold
// at once.
const (
	firstPieceSize = 64 << 10
	minPieceSize   = 32 << 10
)

// writeClient writes p to the client, in pieces if writes are bounded.
// c.mu is held.
func (c *coalescingWriter) writeClient(p []byte) (n int, err error) {
	if c.setWriteDeadline == nil {
		return c.ResponseWriter.Write(p)
	}
	if c.pieceSize == 0 {
		c.pieceSize = firstPieceSize
	}
	for {
		piece := p[:min(len(p), c.pieceSize)]
		start := c.beforeSend()
		m, err := c.ResponseWriter.Write(piece)
		c.afterSend()
		n += m
		if err != nil || len(piece) == len(p) {
			return n, err
		}
		p = p[len(piece):]
		switch took := time.Since(start); {
		case took < c.sendTimeout/8 && c.pieceSize < copyBufferSize:
			c.pieceSize *= 2
		case took > c.sendTimeout/4 && c.pieceSize > minPieceSize:
			c.pieceSize /= 2
		}
	}
}

// flushClient flushes to the client. c.mu is held.
func (c *coalescingWriter) flushClient() error {
	c.beforeSend()
	defer c.afterSend()
	return c.flush()
}

// Unwrap returns the underlying ResponseWriter, for http.ResponseController.
func (c *coalescingWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }

// enable starts coalescing writes and flushes, compressing what is written
// with z (from codecs.compress for c) unless z is nil; the response's headers
// must not have been written yet. c releases z when it stops.
func (c *coalescingWriter) enable(z *compressor) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.enabled = true
	c.z = z
	c.buf = coalesceBuffers.Get().(*[coalesceBufferSize]byte)[:0]
}

func (c *coalescingWriter) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.enabled {
		return c.writeClient(p)
	}
	if c.err != nil {
		return 0, c.err
	}
	c.pending = true
	if c.z != nil {
		_, err := c.z.enc.Write(p)
		c.encoded(err)
	} else {
		c.buffer(p)
	}
	if c.err != nil {
		return 0, c.err
	}
	return len(p), nil
}

// buffer adds p to the pending bytes, writing them out first if p does not
// fit, and writes p out at once if it fills the buffer by itself. It
// returns c.err if that is set. c.mu is held.
func (c *coalescingWriter) buffer(p []byte) (int, error) {
	if len(c.buf)+len(p) > cap(c.buf) {
		c.writeOut()
	}
	if len(p) >= cap(c.buf) && c.err == nil {
		_, c.err = c.writeClient(p)
	} else {
		c.buf = append(c.buf, p...)
	}
	if c.err != nil {
		return 0, c.err
	}
	return len(p), nil
}

// endEncoding has the page's encoder, if any, put what it holds into the
// pending bytes: ended (the page is complete) or flushed. c.mu is held.
func (c *coalescingWriter) endEncoding(ended bool) {
	if c.z == nil || c.err != nil {
		return
	}
	if ended {
		c.encoded(c.z.enc.Close())
	} else {
		c.encoded(c.z.enc.Flush())
	}
}

// encoded records err, returned by the page's encoder, unless it is the
// error writing to the client that c.err already holds. c.mu is held.
func (c *coalescingWriter) encoded(err error) {
	if err != nil && c.err == nil {
		c.err = fmt.Errorf("proxy: compressing the page: %w", err)
	}
}

// FlushError implements the flush of http.ResponseController; see
// coalescingWriter for when it flushes.
func (c *coalescingWriter) FlushError() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case !c.enabled:
		return c.flushClient()
	case c.err != nil:
		return c.err
	}
	now := time.Now()
	wait := c.last.Add(coalesceWindow).Sub(now)
	switch {
	case c.pending && wait <= 0:
		c.flushNow(now) // the first bytes after a pause: at once
		return c.err
	case c.armed:
		return nil
	case !c.pending:
		// Only the headers, which ReverseProxy flushes before it copies
		// the body: they go with the first body bytes if those come
		// within the window, and alone at its end otherwise.
		wait = coalesceWindow
	}
	c.armed = true
	if c.timer == nil {
		c.timer = time.AfterFunc(wait, c.delayedFlush)
	} else {
		c.timer.Reset(wait)
	}
	return nil
}

// delayedFlush is the timer's flush at the end of a window.
func (c *coalescingWriter) delayedFlush() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.armed || c.done {
		return
	}
	c.armed = false
	c.flushNow(time.Now())
}

// flushNow writes out the pending bytes, with those the encoder holds, and
// flushes. c.mu is held.
func (c *coalescingWriter) flushNow(now time.Time) {
	if c.pending {
		c.endEncoding(false)
	}
	c.writeOut()
	if c.err == nil {
		c.err = c.flushClient()
	}
	c.last, c.pending = now, false
	if c.armed {
		c.timer.Stop()
		c.armed = false
	}
}

// writeOut writes the pending bytes to the client. c.mu is held.
func (c *coalescingWriter) writeOut() {
	if len(c.buf) > 0 && c.err == nil {
		_, c.err = c.writeClient(c.buf)
	}
	c.buf = c.buf[:0]
}

// stop ends the writer when the handler returns, however it returns: no
// timer may touch the ResponseWriter after that. If the response is complete,
// the compressed stream is ended and the pending bytes are written out for
// net/http to end the response with; if the handler is aborting it (a
// panic, after an upstream or decoding error), the stream is flushed but not
// ended, and the pending bytes written and flushed, so that the client gets
// everything that came before the error, as without coalescing, and no
// complete-looking stream.
func (c *coalescingWriter) stop(complete bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.enabled {
		if complete {
			c.endEncoding(true)
			c.writeOut()
		} else if c.pending {
			c.flushNow(time.Now())
		}
		if c.z != nil {
			c.z.release()
			c.z = nil
		}
		coalesceBuffers.Put((*[coalesceBufferSize]byte)(c.buf[:coalesceBufferSize]))
		c.buf = nil
		c.enabled = false
	}
	c.done = true
	if c.timer != nil {
		c.timer.Stop()
	}
}
