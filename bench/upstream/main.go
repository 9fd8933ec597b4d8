// Command upstream is the origin site and the small measuring tools that
// bench/proxy.sh needs. It is not part of cobrowse.
//
//	upstream serve [-listen 127.0.0.1:0] [-addr-file F] [-slow 200ms] [-tls-cert-file F]
//	upstream freeport
//	upstream probe [-n 20] URL
//	upstream naive-proxy -upstream URL -tag HTML [-listen 127.0.0.1:0] [-addr-file F]
//
// serve answers:
//
//	/page.html  a 100 KiB HTML page (gzip-encoded, from memory, when the
//	            request accepts gzip; identity otherwise)
//	/page.bin   the same bytes as application/octet-stream, which no proxy
//	            rewrites: what proxying alone costs on 100 KiB
//	/image.jpg  1 MiB of incompressible bytes as image/jpeg
//	/slow.html  a page whose head (about 2 KB, up to the start of the body)
//	            is written and flushed at once, then -slow later the rest:
//	            the pattern of a site that flushes its head early
//	/self.html  a small page linking to its own origin (http://HOST/… or
//	            https://HOST/…, HOST from the request): checks that a proxy
//	            rewrites such URLs
//	/healthz    "ok"
//
// Every body is built once at start, so the upstream costs as little CPU as
// possible and measurements show the proxies, not the origin. It writes its
// address to -addr-file once it listens, and stops on SIGINT or SIGTERM.
// With -tls-cert-file it serves https instead (HTTP/2 and HTTP/1.1, as most
// production sites do), with a self-signed certificate for 127.0.0.1 and
// localhost made at start, whose PEM it writes to that file for the proxies
// to trust (before the address file).
//
// freeport prints a TCP port on 127.0.0.1 that was free a moment ago (for
// nginx, which cannot listen on port 0 and report it).
//
// naive-proxy is a bare Go proxy that injects a tag and does nothing else,
// the reference for what net/http costs: see naiveproxy.go.
//
// probe fetches URL n times, each on a new connection without
// Accept-Encoding (like curl), and prints the medians, in milliseconds, of
// the time to the response headers, to the first body byte, and to the end
// of the body, on one line: "headers_ms=… body_ms=… total_ms=…".
package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	crand "crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"
)

const (
	pageSize  = 100 << 10
	imageSize = 1 << 20
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: upstream serve|freeport|probe|naive-proxy [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(os.Args[2:])
	case "freeport":
		err = freeport()
	case "probe":
		err = probe(os.Args[2:])
	case "naive-proxy":
		err = naiveProxy(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q (want serve, freeport, probe or naive-proxy)", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "upstream:", err)
		os.Exit(1)
	}
}

// page returns a deterministic HTML page of exactly size bytes, shaped like
// an article page: a head with the usual tags, then many sections of text
// and links.
func page(size int) []byte {
	var b bytes.Buffer
	b.WriteString(head("Benchmark page"))
	b.WriteString("<body>\n<header><nav><a href=\"/\">Home</a> <a href=\"/products\">Products</a> <a href=\"/about\">About</a></nav></header>\n<main>\n")
	const tail = "</main>\n<footer><p>&copy; Example Ltd</p></footer>\n</body>\n</html>\n"
	for i := 0; ; i++ {
		s := section(i)
		if b.Len()+len(s)+len(tail)+len("<!--  -->\n") > size {
			break
		}
		b.WriteString(s)
	}
	// Pad to the exact size with a comment.
	pad := size - b.Len() - len(tail) - len("<!--  -->\n")
	b.WriteString("<!-- " + strings.Repeat("x", pad) + " -->\n")
	b.WriteString(tail)
	if b.Len() != size {
		panic(fmt.Sprintf("page is %d bytes, want %d", b.Len(), size))
	}
	return b.Bytes()
}

func head(title string) string {
	return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>` + title + `</title>
<meta name="description" content="A page served by bench/upstream for bench/proxy.sh.">
<link rel="stylesheet" href="/static/site.css">
<link rel="icon" href="/favicon.ico">
<script src="/static/app.js" defer></script>
</head>
`
}

func section(i int) string {
	return fmt.Sprintf(`<section id="s%d" class="card">
<h2>Section %d</h2>
<p>Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation ullamco laboris nisi ut aliquip ex ea commodo consequat.</p>
<p>See <a href="/items/%d">item %d</a> and <a href="https://example.com/ref/%d">reference %d</a>. <img src="/img/%d.png" alt="figure %d" width="320" height="200"></p>
</section>
`, i, i, i, i, i, i, i, i)
}

// slowHead is what /slow.html writes before it sleeps: the whole head and
// the start of the body, about 2 KB.
func slowHead() []byte {
	var b bytes.Buffer
	b.WriteString(head("Slow page"))
	b.WriteString("<body>\n<header><nav><a href=\"/\">Home</a> <a href=\"/products\">Products</a> <a href=\"/about\">About</a></nav></header>\n<main>\n")
	for i := 0; b.Len() < 2000; i++ {
		b.WriteString(section(i))
	}
	return b.Bytes()
}

func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:0", "`address` to listen on")
	addrFile := fs.String("addr-file", "", "write the address listened on to this `file`")
	slow := fs.Duration("slow", 200*time.Millisecond, "how long /slow.html sleeps after its head")
	certFile := fs.String("tls-cert-file", "", "serve https with a new self-signed certificate, written to this `file`")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var tlsConfig *tls.Config
	if *certFile != "" {
		var err error
		if tlsConfig, err = selfSignedTLS(*certFile); err != nil {
			return err
		}
	}

	html := page(pageSize)
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	zw.Write(html)
	zw.Close()
	image := make([]byte, imageSize)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range image {
		image[i] = byte(r.Uint32())
	}
	copy(image, "\xff\xd8\xff\xe0") // a JPEG's first bytes, for the look of it
	slowFirst := slowHead()
	slowRest := []byte("<p>The rest of the slow page, written after the upstream's pause.</p>\n</main>\n</body>\n</html>\n")

	mux := http.NewServeMux()
	mux.HandleFunc("GET /page.html", func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Vary", "Accept-Encoding")
		body := html
		if acceptsGzip(r.Header) {
			h.Set("Content-Encoding", "gzip")
			body = gz.Bytes()
		}
		h.Set("Content-Length", fmt.Sprint(len(body)))
		w.Write(body)
	})
	// /page.bin: the same bytes as /page.html, as application/octet-stream:
	// what a proxy costs on 100 KiB when it does not rewrite (diagnostics).
	mux.HandleFunc("GET /page.bin", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", fmt.Sprint(len(html)))
		w.Write(html)
	})
	mux.HandleFunc("GET /image.jpg", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "image/jpeg")
		w.Header().Set("Content-Length", fmt.Sprint(len(image)))
		w.Write(image)
	})
	mux.HandleFunc("GET /slow.html", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(slowFirst)
		http.NewResponseController(w).Flush()
		select {
		case <-time.After(*slow):
		case <-r.Context().Done():
			return
		}
		w.Write(slowRest)
	})
	// /self.html: a page holding an absolute URL on the upstream's own
	// origin, which a proxy must move to its public origin (checks only).
	mux.HandleFunc("GET /self.html", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		fmt.Fprintf(w, "<!doctype html>\n<html><head><title>self</title></head>\n<body><a href=\"%s://%s/page.html\">self</a></body></html>\n", scheme, r.Host)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok\n")
	})

	return listenAndServe(*listen, *addrFile, mux, tlsConfig)
}

// selfSignedTLS returns a server configuration with a new self-signed
// certificate for 127.0.0.1 and localhost, valid for a day, and writes the
// certificate as PEM to certFile.
func selfSignedTLS(certFile string) (*tls.Config, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), crand.Reader)
	if err != nil {
		return nil, err
	}
	template := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "bench upstream"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true, // so that it can be its own trust anchor
	}
	der, err := x509.CreateCertificate(crand.Reader, template, template, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return nil, err
	}
	return &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}},
		NextProtos:   []string{"h2", "http/1.1"},
	}, nil
}

// listenAndServe serves h on address listen (over TLS with tlsConfig unless
// it is nil), writes the address it got to addrFile (unless empty) and stops
// on SIGINT or SIGTERM.
func listenAndServe(listen, addrFile string, h http.Handler, tlsConfig *tls.Config) error {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	if tlsConfig != nil {
		ln = tls.NewListener(ln, tlsConfig)
	}
	if addrFile != "" {
		// Write then rename, so that a reader never sees half an address.
		tmp := addrFile + ".tmp"
		if err := os.WriteFile(tmp, []byte(ln.Addr().String()+"\n"), 0o644); err != nil {
			return err
		}
		if err := os.Rename(tmp, addrFile); err != nil {
			return err
		}
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(shutdown)
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// acceptsGzip is a plain reading of Accept-Encoding, enough for the
// benchmark's clients (which send "gzip" or nothing) and for the proxies.
func acceptsGzip(h http.Header) bool {
	for _, v := range h.Values("Accept-Encoding") {
		for _, part := range strings.Split(v, ",") {
			coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
			if strings.EqualFold(strings.TrimSpace(coding), "gzip") && !strings.Contains(strings.ReplaceAll(params, " ", ""), "q=0") {
				return true
			}
		}
	}
	return false
}

func freeport() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer ln.Close()
	fmt.Println(ln.Addr().(*net.TCPAddr).Port)
	return nil
}

func probe(args []string) error {
	fs := flag.NewFlagSet("probe", flag.ContinueOnError)
	n := fs.Int("n", 20, "number of requests")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("probe wants one URL")
	}
	url := fs.Arg(0)
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true, DisableCompression: true}}
	var headers, first, total []time.Duration
	for range *n {
		var gotHeaders time.Time
		trace := &httptrace.ClientTrace{GotFirstResponseByte: func() { gotHeaders = time.Now() }}
		req, err := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", url, nil)
		if err != nil {
			return err
		}
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			return fmt.Errorf("%s: %s", url, resp.Status)
		}
		var one [1]byte
		if _, err := io.ReadFull(resp.Body, one[:]); err != nil {
			resp.Body.Close()
			return fmt.Errorf("%s: reading the first body byte: %w", url, err)
		}
		gotFirst := time.Now()
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil {
			return fmt.Errorf("%s: reading the body: %w", url, err)
		}
		end := time.Now()
		headers = append(headers, gotHeaders.Sub(start))
		first = append(first, gotFirst.Sub(start))
		total = append(total, end.Sub(start))
	}
	fmt.Printf("headers_ms=%.3f body_ms=%.3f total_ms=%.3f\n", ms(median(headers)), ms(median(first)), ms(median(total)))
	return nil
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
