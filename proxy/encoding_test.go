package proxy

import (
	"bytes"
	"cmp"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"context"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/zstd"

	"github.com/cobrowse/cobrowse/internal/contentcoding"
)

// upstreamCoding is a way an upstream may encode a body. The upstream side
// uses the standard library where it can, so that the proxy's decoders are
// checked against other encoders than its own.
type upstreamCoding struct {
	name   string // for test names
	header string // Content-Encoding
	// newWriter returns a compressor writing to w; nil for identity.
	newWriter func(t testing.TB, w io.Writer) encoder
}

// upstreamCodings returns every coding an upstream may send that the proxy
// decodes, identity first and gzip second.
func upstreamCodings() []upstreamCoding {
	return []upstreamCoding{
		{"identity", "", nil},
		{"gzip", "gzip", func(t testing.TB, w io.Writer) encoder { return stdWriter{gzip.NewWriter(w)} }},
		{"x-gzip", "x-gzip", func(t testing.TB, w io.Writer) encoder { return stdWriter{gzip.NewWriter(w)} }},
		{"deflate", "deflate", func(t testing.TB, w io.Writer) encoder { return stdWriter{zlib.NewWriter(w)} }},
		{"raw-deflate", "deflate", func(t testing.TB, w io.Writer) encoder {
			fw, err := flate.NewWriter(w, flate.DefaultCompression)
			if err != nil {
				t.Fatal(err)
			}
			return stdWriter{fw}
		}},
		{"br", "br", func(t testing.TB, w io.Writer) encoder { return brotli.NewWriterLevel(w, 5) }},
		{"zstd", "zstd", func(t testing.TB, w io.Writer) encoder {
			zw, err := zstd.NewWriter(w, zstd.WithEncoderConcurrency(1))
			if err != nil {
				t.Fatal(err)
			}
			return zw
		}},
	}
}

// stdWriter adapts the standard library's compressors, whose Reset methods
// differ, to encoder; tests never call Reset.
type stdWriter struct{ flushCloser }

type flushCloser interface {
	io.Writer
	Flush() error
	Close() error
}

func (stdWriter) Reset(io.Writer) { panic("not used") }

// encodeParts returns parts encoded in c as one stream, cut where each part
// ends: the encoder is flushed after each, so that a decoder can produce a
// part from the bytes up to its end.
func encodeParts(t testing.TB, c upstreamCoding, parts ...string) [][]byte {
	t.Helper()
	var out [][]byte
	if c.newWriter == nil {
		for _, p := range parts {
			out = append(out, []byte(p))
		}
		return out
	}
	var buf bytes.Buffer
	w := c.newWriter(t, &buf)
	for i, p := range parts {
		if _, err := io.WriteString(w, p); err != nil {
			t.Fatal(err)
		}
		var err error
		if i == len(parts)-1 {
			err = w.Close()
		} else {
			err = w.Flush()
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, bytes.Clone(buf.Bytes()))
		buf.Reset()
	}
	return out
}

// encoded returns b encoded in c.
func encoded(t testing.TB, c upstreamCoding, b []byte) []byte {
	t.Helper()
	return encodeParts(t, c, string(b))[0]
}

// decodeAs returns a reader of the content of r, which is encoded in coding
// ("" for identity), decoding as it goes.
func decodeAs(t testing.TB, coding string, r io.Reader) io.Reader {
	t.Helper()
	switch coding {
	case "":
		return r
	case "gzip":
		zr, err := gzip.NewReader(r)
		if err != nil {
			t.Fatalf("reading a gzip header: %v", err)
		}
		return zr
	case "br":
		return brotli.NewReader(r)
	case "zstd":
		zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(zr.Close)
		return zr
	}
	t.Fatalf("no decoder for %q", coding)
	return nil
}

// zstdBigWindow returns b as a zstd frame that declares a 16 MB window.
func zstdBigWindow(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, err := zstd.NewWriter(&buf, zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(16<<20))
	if err != nil {
		t.Fatal(err)
	}
	zw.Write(b)
	zw.Flush() // a streamed frame: its header has a window descriptor
	zw.Close()
	return buf.Bytes()
}

// emptyChunked returns an upstream handler that answers 200 with headers
// (pairs of name and value) and an empty body without Content-Length.
func emptyChunked(headers ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i < len(headers); i += 2 {
			w.Header().Set(headers[i], headers[i+1])
		}
		http.NewResponseController(w).Flush() // headers out: no Content-Length
	}
}

// clientEncodings are the Accept-Encoding headers the coding tests send.
var clientEncodings = []string{
	"",
	"identity",
	"gzip",
	"x-gzip",
	"deflate",
	"br",
	"zstd",
	"gzip, deflate, br, zstd", // Chrome
	"gzip, deflate, br",       // Safari
	"br;q=0.5, gzip",
	"identity;q=1, *;q=0",
	"*",
}

// codingServer serves body encoded in the coding named by the query
// parameter "coding" (an upstreamCoding's name), with headers (pairs of
// name and value) and Content-Length, whatever the request accepts.
func codingServer(t testing.TB, body []byte, headers ...string) http.Handler {
	bodies := map[string][]byte{}
	codings := map[string]string{}
	for _, c := range upstreamCodings() {
		bodies[c.name] = encoded(t, c, body)
		codings[c.name] = c.header
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := r.URL.Query().Get("coding")
		b, ok := bodies[name]
		if !ok {
			http.Error(w, "unknown coding", http.StatusBadRequest)
			return
		}
		for i := 0; i < len(headers); i += 2 {
			w.Header().Set(headers[i], headers[i+1])
		}
		if c := codings[name]; c != "" {
			w.Header().Set("Content-Encoding", c)
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(b)))
		w.Write(b)
	})
}

// open GETs url with Accept-Encoding acceptEncoding ("" for none) and
// returns the response with its body unread, as sent; the caller closes it.
// ctx bounds the whole exchange, body included.
func open(t *testing.T, ctx context.Context, url, acceptEncoding string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if acceptEncoding != "" {
		req.Header.Set("Accept-Encoding", acceptEncoding)
	}
	resp, err := client(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// get fetches proxyURL+path with Accept-Encoding acceptEncoding ("" for
// none) and returns the response with its body read, as sent.
func get(t *testing.T, proxyURL, path, acceptEncoding string) (*http.Response, []byte) {
	t.Helper()
	resp := open(t, context.Background(), proxyURL+path, acceptEncoding)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the body: %v", err)
	}
	return resp, body
}

// TestProxyHTMLCodings checks that a page in any coding the upstream may use
// reaches any client with the snippet, in the client's best coding among
// zstd, br and gzip, with headers to match. The requests run in parallel
// through one Proxy, so that its encoders and decoders are reused.
func TestProxyHTMLCodings(t *testing.T) {
	up := codingServer(t, []byte(page), "Content-Type", "text/html; charset=utf-8",
		"ETag", `"v1"`, "Vary", "accept-encoding", "Accept-Ranges", "bytes")
	proxyURL, _ := start(t, up, Config{})
	for _, uc := range upstreamCodings() {
		for _, ae := range clientEncodings {
			t.Run(uc.name+" to "+strconv.Quote(ae), func(t *testing.T) {
				t.Parallel()
				h := http.Header{}
				if ae != "" {
					h.Set("Accept-Encoding", ae)
				}
				want := contentcoding.Choose(h, "zstd", "br", "gzip")
				resp, body := get(t, proxyURL, "/?coding="+uc.name, ae)
				if resp.StatusCode != 200 {
					t.Fatalf("status %d", resp.StatusCode)
				}
				if got := resp.Header.Get("Content-Encoding"); got != want {
					t.Fatalf("Content-Encoding %q, want %q", got, want)
				}
				content, err := io.ReadAll(decodeAs(t, want, bytes.NewReader(body)))
				if err != nil {
					t.Fatalf("decoding %s: %v", want, err)
				}
				if string(content) != injected {
					t.Errorf("page\n got: %q\nwant: %q", content, injected)
				}
				for name, want := range map[string]string{
					"Vary":           "accept-encoding, Sec-Fetch-Dest", // merged: the upstream's
					"Etag":           `W/"v1"`,
					"Content-Length": "",
					"Accept-Ranges":  "",
				} {
					if got := strings.Join(resp.Header.Values(name), ", "); got != want {
						t.Errorf("header %s = %q, want %q", name, got, want)
					}
				}
			})
		}
	}
}

// TestProxyBinaryCodings checks that a body that is not HTML passes through
// byte for byte, headers included, when the client accepts the upstream's
// coding, and is decoded otherwise.
func TestProxyBinaryCodings(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	content := make([]byte, 16<<10)
	for i := range content {
		content[i] = byte(rng.IntN(16)) // compressible, but not much
	}
	up := codingServer(t, content, "Content-Type", "application/octet-stream", "ETag", `"bin"`, "Accept-Ranges", "bytes")
	proxyURL, _ := start(t, up, Config{})
	for _, uc := range upstreamCodings() {
		sent := encoded(t, uc, content)
		for _, ae := range clientEncodings {
			t.Run(uc.name+" to "+strconv.Quote(ae), func(t *testing.T) {
				t.Parallel()
				h := http.Header{}
				if ae != "" {
					h.Set("Accept-Encoding", ae)
				}
				resp, body := get(t, proxyURL, "/?coding="+uc.name, ae)
				wantBody, wantHeader := sent, map[string]string{
					"Content-Encoding": uc.header,
					"Content-Length":   strconv.Itoa(len(sent)),
					"Etag":             `"bin"`,
					"Vary":             "",
					"Accept-Ranges":    "bytes",
				}
				if uc.header != "" && !contentcoding.Accepts(h, uc.header) {
					wantBody, wantHeader = content, map[string]string{
						"Content-Encoding": "",
						"Content-Length":   "",
						"Etag":             `W/"bin"`,
						"Vary":             "Accept-Encoding",
						"Accept-Ranges":    "",
					}
				}
				if !bytes.Equal(body, wantBody) {
					t.Errorf("body of %d bytes differs from the %d bytes expected", len(body), len(wantBody))
				}
				for name, want := range wantHeader {
					if got := strings.Join(resp.Header.Values(name), ", "); got != want {
						t.Errorf("header %s = %q, want %q", name, got, want)
					}
				}
			})
		}
	}
}

// TestProxyCorruptMidStream checks that a page whose encoding breaks after
// the headers are sent reaches the client as an aborted response, never as
// a complete-looking truncated one, and that the log says why.
func TestProxyCorruptMidStream(t *testing.T) {
	const first = "<!DOCTYPE html><html><head><title>Broken"
	gz := upstreamCodings()[1]
	good := encodeParts(t, gz, first, "</title></head></html>")[0]
	proxyURL, logs := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.Header().Set("Content-Encoding", "gzip")
		w.Write(good)
		w.Write([]byte("\xff\xff\xff\xff garbage after a good start"))
	}), Config{})
	for _, out := range []string{"", "gzip", "br", "zstd"} {
		t.Run(cmp.Or(out, "identity"), func(t *testing.T) {
			resp := open(t, context.Background(), proxyURL+"/broken", out)
			defer resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("status %d, want 200: the corruption comes after the first bytes", resp.StatusCode)
			}
			content, err := io.ReadAll(decodeAs(t, out, resp.Body))
			if err == nil {
				t.Fatalf("read %q and a clean end; want an aborted response", content)
			}
			if want := strings.Replace(first, "<head>", "<head>"+snippet, 1); !strings.HasPrefix(want, string(content)) {
				t.Errorf("got %q before the error, want a prefix of %q", content, want)
			}
		})
	}
	if want := "decoding the upstream's gzip response body for /broken: flate: corrupt input"; !strings.Contains(logs.String(), want) {
		t.Errorf("log does not say %q:\n%s", want, logs)
	}
}

// TestProxyEventStream checks that server-sent events flow through at once,
// passed through or decoded.
func TestProxyEventStream(t *testing.T) {
	const one, two = "data: one\n\n", "data: two\n\n"
	gz := upstreamCodings()[1]
	tests := []struct {
		name           string
		coding         upstreamCoding
		acceptEncoding string
		wantCoding     string
	}{
		{"identity", upstreamCodings()[0], "gzip", ""},
		{"gzip passed through", gz, "gzip", "gzip"},
		{"gzip decoded", gz, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			parts := encodeParts(t, tc.coding, one, two)
			release := make(chan struct{})
			proxyURL, _ := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/event-stream")
				if tc.coding.header != "" {
					w.Header().Set("Content-Encoding", tc.coding.header)
				}
				w.Write(parts[0])
				http.NewResponseController(w).Flush()
				select {
				case <-release:
					w.Write(parts[1])
				case <-r.Context().Done():
				}
			}), Config{})
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			resp := open(t, ctx, proxyURL, tc.acceptEncoding)
			defer resp.Body.Close()
			if got := resp.Header.Get("Content-Encoding"); got != tc.wantCoding {
				t.Fatalf("Content-Encoding %q, want %q", got, tc.wantCoding)
			}
			events := decodeAs(t, tc.wantCoding, resp.Body)
			got := make([]byte, len(one))
			if _, err := io.ReadFull(events, got); err != nil || string(got) != one {
				t.Fatalf("first event %q, %v; want %q", got, err, one)
			}
			close(release)
			rest, err := io.ReadAll(events)
			if err != nil || string(rest) != two {
				t.Errorf("second event %q, %v; want %q", rest, err, two)
			}
		})
	}
}

// TestDecodeMemoryIsBounded decodes a 16 MB body of zeros, a decompression
// bomb, in each coding and checks that decoding streams it: the memory
// allocated meanwhile is about that of the decoder's window (1 MB here for
// brotli and zstd, whose windows can be larger), a fraction of the body's
// size.
func TestDecodeMemoryIsBounded(t *testing.T) {
	const size = 16 << 20
	fast := func(w io.WriteCloser, err error) io.WriteCloser {
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	tests := []struct {
		coding    string
		newWriter func(io.Writer) io.WriteCloser
	}{
		{"gzip", func(w io.Writer) io.WriteCloser { return fast(gzip.NewWriterLevel(w, gzip.BestSpeed)) }},
		// Raw: the zlib wrapper adds a checksum to the same decoder.
		{"deflate", func(w io.Writer) io.WriteCloser { return fast(flate.NewWriter(w, flate.BestSpeed)) }},
		{"br", func(w io.Writer) io.WriteCloser {
			return brotli.NewWriterOptions(w, brotli.WriterOptions{Quality: 0, LGWin: 20})
		}},
		{"zstd", func(w io.Writer) io.WriteCloser {
			return fast(zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithWindowSize(1<<20)))
		}},
	}
	zeros := make([]byte, 1<<20)
	c := newCodecs()
	for _, tc := range tests {
		t.Run(tc.coding, func(t *testing.T) {
			var bomb bytes.Buffer
			w := tc.newWriter(&bomb)
			for range size / len(zeros) {
				w.Write(zeros)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			resp := &http.Response{
				Body:    io.NopCloser(bytes.NewReader(bomb.Bytes())),
				Request: httptest.NewRequest(http.MethodGet, "/bomb", nil),
			}
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			if err := c.decode(resp, tc.coding); err != nil {
				t.Fatal(err)
			}
			n, err := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			runtime.ReadMemStats(&after)
			if err != nil || n != size {
				t.Fatalf("decoded %d bytes, %v; want %d", n, err, size)
			}
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > size/2 {
				t.Errorf("decoding %d bytes from %d allocated %d bytes", size, bomb.Len(), alloc)
			}
		})
	}
}
