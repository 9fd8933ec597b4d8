package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cobrowse/cobrowse/demo"
	"github.com/cobrowse/cobrowse/session"
)

// writeTestCertificate writes a self-signed certificate for localhost and
// 127.0.0.1 and its key, and returns their paths.
func writeTestCertificate(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "cobrowse e2e"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// Two sites fronted at once over TLS: the shop for the host name localhost
// (a --route), a docs page for every other host (--upstream). Pages come over
// HTTP/2, the visitor socket still connects (WebSocket over HTTP/1.1 on the
// same listener), each site's visitor gets its own session, and the metrics
// count each site's pages apart.
func TestTLSAndHostRoutesFrontSeveralSites(t *testing.T) {
	shop := httptest.NewServer(demo.New())
	t.Cleanup(shop.Close)
	docs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, "<!doctype html><html><head><title>Docs</title></head><body><h1>Documentation</h1></body></html>")
	}))
	t.Cleanup(docs.Close)
	certFile, keyFile := writeTestCertificate(t)
	c := startCobrowse(t, "serve", "--upstream", docs.URL, "--route", "localhost="+shop.URL,
		"--tls-cert", certFile, "--tls-key", keyFile)
	if !strings.HasPrefix(c.visitorURL, "https://127.0.0.1:") {
		t.Fatalf("visitor URL %q, want https on 127.0.0.1", c.visitorURL)
	}
	u, _ := url.Parse(c.visitorURL)
	shopURL := "https://localhost:" + u.Port() + "/"
	docsURL := c.visitorURL

	visitor := visitorBrowser(t, "ignore-certificate-errors").WithPanic(func(v any) { t.Helper(); t.Fatalf("visitor browser: %v", v) })
	shopPage := visitor.MustPage("").Timeout(60 * time.Second)
	shopPage.MustNavigate(shopURL).MustWaitLoad()
	shopPage.MustElement("#products")
	if proto := shopPage.MustEval(`() => performance.getEntriesByType('navigation')[0].nextHopProtocol`).String(); proto != "h2" {
		t.Errorf("the shop page came over %q, want h2", proto)
	}
	docsPage := visitor.MustPage("").Timeout(60 * time.Second)
	docsPage.MustNavigate(docsURL).MustWaitLoad()
	docsPage.MustElementR("h1", "Documentation")

	eventually(t, 10*time.Second, "both sites' visitors have sessions", func() string {
		var sessions []session.Info
		c.api(t, "/api/sessions", &sessions)
		titles := map[string]string{}
		for _, s := range sessions {
			if s.Connected {
				titles[s.URL] = s.Title
			}
		}
		if len(sessions) != 2 || titles[shopURL] != "Cobrowse Demo Shop" || titles[docsURL] != "Docs" {
			return fmt.Sprintf("sessions %+v", sessions)
		}
		return ""
	})

	// Each site's pages are counted under its own label.
	scrape := string(c.rawGET(t, "/metrics"))
	for _, site := range []string{"localhost", "*"} {
		if v := metricValue(t, scrape, `cobrowse_proxy_pages_total{site="`+site+`"}`); v < 1 {
			t.Errorf("site %s: %v pages, want at least 1", site, v)
		}
	}
}
