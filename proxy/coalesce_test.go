package proxy

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"
)

// TestProxySendsHeadersOfAPageWhoseBodyIsLate checks that the headers of a
// rewritten page reach the client while the upstream has sent them but none
// of the body: the coalescing writer holds a headers-only flush for its
// window at most (coalesce.go), not until the first body bytes.
func TestProxySendsHeadersOfAPageWhoseBodyIsLate(t *testing.T) {
	release := make(chan struct{})
	proxyURL, _ := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusOK)
		http.NewResponseController(w).Flush()
		select {
		case <-release:
			io.WriteString(w, "<!DOCTYPE html><title>Late</title>")
		case <-r.Context().Done():
		}
	}), Config{})
	// The deadline only turns a proxy that holds the headers into a
	// failure instead of a hung test.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp := open(t, ctx, proxyURL, "")
	defer resp.Body.Close()
	close(release)
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if want := "<!DOCTYPE html>" + snippet + "<title>Late</title>"; string(body) != want {
		t.Errorf("body %q, want %q", body, want)
	}
}

// TestCoalescedCompressionIsBounded checks that a page compressed by the
// coalescingWriter streams in bounded memory, even when it does not
// compress: the pending output never outgrows its buffer, whose contents
// reach the client before the page ends. The output decodes to the page.
func TestCoalescedCompressionIsBounded(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	content := make([]byte, 1<<20)
	for i := range content {
		content[i] = byte(rng.Uint32())
	}
	c := newCodecs()
	for _, coding := range []string{"br", "zstd", "gzip"} {
		t.Run(coding, func(t *testing.T) {
			rec := httptest.NewRecorder()
			cw := newCoalescingWriter(rec)
			cw.enable(c.compress(coding, cw))
			for piece := range slices.Chunk(content, 32<<10) {
				if _, err := cw.Write(piece); err != nil {
					t.Fatal(err)
				}
				if cap(cw.buf) != coalesceBufferSize {
					t.Fatalf("holds %d bytes of output, more than its %d-byte buffer", cap(cw.buf), coalesceBufferSize)
				}
			}
			if rec.Body.Len() == 0 {
				t.Fatal("nothing reached the client before the page ended")
			}
			cw.stop(true)
			got, err := io.ReadAll(decodeAs(t, coding, rec.Body))
			if err != nil || !bytes.Equal(got, content) {
				t.Fatalf("decoded %d bytes, %v; want the %d bytes written", len(got), err, len(content))
			}
		})
	}
}

// TestCoalescedCompressionFlushes checks that a flush of the
// coalescingWriter sends everything written so far in a form the client
// can decode, and that the compressed stream is ended when the response
// completes but left unterminated when it is aborted: a client must not
// mistake a truncated page for a complete one.
func TestCoalescedCompressionFlushes(t *testing.T) {
	const one, two = "<p>one</p>", "<p>two</p>"
	c := newCodecs()
	for _, coding := range []string{"br", "zstd", "gzip"} {
		for _, complete := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s complete=%v", coding, complete), func(t *testing.T) {
				rec := httptest.NewRecorder()
				cw := newCoalescingWriter(rec)
				cw.enable(c.compress(coding, cw))
				io.WriteString(cw, one)
				// The first flush after a pause is at once.
				if err := cw.FlushError(); err != nil || !rec.Flushed {
					t.Fatalf("flushed %v, %v; want a flush", rec.Flushed, err)
				}
				// A decoder would see the end of rec.Body as that of the
				// stream: decode a copy of what was sent so far.
				got := make([]byte, len(one))
				_, err := io.ReadFull(decodeAs(t, coding, bytes.NewReader(rec.Body.Bytes())), got)
				if err != nil || string(got) != one {
					t.Fatalf("flushed %q, %v; want %q", got, err, one)
				}
				io.WriteString(cw, two)
				cw.stop(complete)
				all, err := io.ReadAll(decodeAs(t, coding, rec.Body))
				if string(all) != one+two {
					t.Errorf("sent %q, want %q", all, one+two)
				}
				if complete && err != nil {
					t.Errorf("complete page: %v, want a clean end", err)
				}
				if !complete && err == nil {
					t.Error("aborted page: a clean end, want an error")
				}
			})
		}
	}
}

// A bounded write to the client goes in pieces whose size follows the
// client's pace (writeClient): a client that takes each piece at once gets
// them doubled up to a copy buffer (256 KiB), even from a longer write; one that takes more than a quarter of
// the send timeout for one gets them halved down to minPieceSize; each
// piece has its own deadline.
func TestWriteClientPiecesFollowTheClient(t *testing.T) {
	for _, tc := range []struct {
		name        string
		sendTimeout time.Duration
		perWrite    time.Duration // how long the client takes for a piece
		writes      []int         // KiB written to the coalescingWriter
		want        []int         // KiB per write to the client
	}{
		// Far from both bounds on a loaded machine: under 1.25 s, over 2.5 s.
		{"fast", 10 * time.Second, 0, []int{1024, 1024}, []int{64, 128, 256, 256, 256, 64, 256, 256, 256, 256}},
		// Over a quarter of the timeout however the machine runs.
		{"slow", 100 * time.Millisecond, 30 * time.Millisecond, []int{256, 256}, append([]int{64}, slices.Repeat([]int{32}, 14)...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client := &pacedWriter{ResponseWriter: httptest.NewRecorder(), perWrite: tc.perWrite}
			cw := newCoalescingWriter(client)
			cw.boundWrites(tc.sendTimeout, boundEachSend)
			for _, kib := range tc.writes {
				if n, err := cw.Write(make([]byte, kib<<10)); n != kib<<10 || err != nil {
					t.Fatalf("wrote %d, %v", n, err)
				}
			}
			if !slices.Equal(client.writes, tc.want) || client.deadlines != len(tc.want) {
				t.Errorf("%d writes of %v KiB, %d deadlines; want %v KiB", len(client.writes), client.writes, client.deadlines, tc.want)
			}
		})
	}
}

// pacedWriter is a client connection that takes perWrite for each write,
// and records the writes' sizes (in KiB) and how many deadlines were set;
// the bytes themselves go nowhere.
type pacedWriter struct {
	http.ResponseWriter
	perWrite  time.Duration
	writes    []int
	deadlines int
}

func (w *pacedWriter) Write(p []byte) (int, error) {
	time.Sleep(w.perWrite)
	w.writes = append(w.writes, len(p)>>10)
	return len(p), nil
}

func (w *pacedWriter) SetWriteDeadline(time.Time) error {
	w.deadlines++
	return nil
}
