package assets

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
)

func TestRefusal(t *testing.T) {
	tests := []struct {
		ip   string
		want string // a substring of the reason; "" for a public address
	}{
		// Public unicast.
		{"8.8.8.8", ""},
		{"1.1.1.1", ""},
		{"93.184.216.34", ""},
		{"11.0.0.1", ""},
		{"172.32.0.1", ""},      // just past 172.16/12
		{"100.128.0.1", ""},     // just past 100.64/10
		{"169.255.0.1", ""},     // just past 169.254/16
		{"192.169.0.1", ""},     // just past 192.168/16
		{"223.255.255.255", ""}, // just before multicast
		{"2606:4700:4700::1111", ""},
		{"2001:4860:4860::8888", ""},
		{"64:ff9b::808:808", ""}, // NAT64 of 8.8.8.8
		{"2002:808:808::1", ""},  // 6to4 of 8.8.8.8
		{"::ffff:8.8.8.8", ""},   // IPv4-mapped public
		{"2a00:1450:4001::200e", ""},

		// Loopback.
		{"127.0.0.1", "a loopback address"},
		{"127.1.2.3", "a loopback address"},
		{"::1", "a loopback address"},
		{"::ffff:127.0.0.1", "a loopback address"},
		// Private.
		{"10.0.0.1", "a private address"},
		{"10.255.255.255", "a private address"},
		{"172.16.0.1", "a private address"},
		{"172.31.255.255", "a private address"},
		{"192.168.1.1", "a private address"},
		{"::ffff:10.1.2.3", "a private address"},
		{"::ffff:192.168.0.1", "a private address"},
		{"fc00::1", "unique local"},
		{"fd12:3456::1", "unique local"},
		// Link-local.
		{"169.254.1.1", "a link-local address"},
		{"fe80::1", "a link-local address"},
		{"fe80::1%eth0", "a link-local address"},
		{"::ffff:169.254.1.1", "a link-local address"},
		// Carrier-grade NAT.
		{"100.64.0.1", "carrier-grade NAT"},
		{"100.127.255.254", "carrier-grade NAT"},
		// Unspecified, multicast, broadcast, reserved.
		{"0.0.0.0", "unspecified"},
		{"0.1.2.3", "unspecified"},
		{"::", "an unspecified address"},
		{"::ffff:0.0.0.0", "unspecified"},
		{"224.0.0.1", "multicast"},
		{"239.255.255.250", "multicast"},
		{"ff02::1", "multicast"},
		{"255.255.255.255", "broadcast"},
		{"240.0.0.1", "reserved"},
		{"192.0.2.1", "documentation"},
		{"2001:db8::1", "documentation"},
		{"198.18.0.1", "benchmarking"},
		{"2001::1", "IETF special-purpose"}, // Teredo
		{"fec0::1", "site-local"},
		{"100::1", "discard-only"},
		// IPv6 forms that carry an IPv4 address.
		{"::127.0.0.1", "IPv4-compatible"},
		{"::ffff:0:127.0.0.1", "IPv4-translated"},
		{"64:ff9b::7f00:1", "reaches 127.0.0.1, a loopback address"},
		{"64:ff9b::a00:1", "reaches 10.0.0.1, a private address"},
		{"64:ff9b:1::1", "local-use NAT64"},
		{"2002:7f00:1::1", "reaches 127.0.0.1, a loopback address"},
		{"2002:c0a8:101::1", "reaches 192.168.1.1, a private address"},
		// Cloud metadata, in every spelling.
		{"169.254.169.254", "cloud metadata"},
		{"169.254.170.2", "cloud metadata"},
		{"fd00:ec2::254", "cloud metadata"},
		{"100.100.100.200", "cloud metadata"},
		{"::ffff:169.254.169.254", "cloud metadata"},
		{"::ffff:100.100.100.200", "cloud metadata"},
		{"64:ff9b::a9fe:a9fe", "cloud metadata"},
		{"2002:a9fe:a9fe::1", "cloud metadata"},
	}
	for _, tt := range tests {
		ip := netip.MustParseAddr(tt.ip)
		got, _ := refusal(ip)
		if tt.want == "" && got != "" || tt.want != "" && !strings.Contains(got, tt.want) {
			t.Errorf("refusal(%s) = %q, want %q", tt.ip, got, tt.want)
		}
	}
	if reason, metadata := refusal(netip.Addr{}); reason == "" || !metadata {
		t.Error("the zero Addr is not refused")
	}
}

func TestParseAllowPrivate(t *testing.T) {
	good := map[string]string{
		"127.0.0.1:9000":         "127.0.0.1:9000",
		"[::1]:8080":             "[::1]:8080",
		"[::ffff:10.0.0.5]:80":   "10.0.0.5:80",
		"CDN.Intranet.:443":      "cdn.intranet:443",
		"localhost:1":            "localhost:1",
		"10.0.0.5:65535":         "10.0.0.5:65535",
		"[fd12:3456::1]:443":     "[fd12:3456::1]:443",
		"internal_host.lan:8443": "internal_host.lan:8443",
	}
	for entry, want := range good {
		m, err := parseAllowPrivate([]string{entry})
		if err != nil || !m[want] {
			t.Errorf("parseAllowPrivate(%q) = %v, %v; want key %q", entry, m, err, want)
		}
	}
	bad := map[string]string{
		"127.0.0.1":                   "host:port",
		"10.0.0.5:0":                  "port",
		"10.0.0.5:http":               "port",
		"10.0.0.5:70000":              "port",
		"169.254.169.254:80":          "cloud metadata",
		"[fd00:ec2::254]:80":          "cloud metadata",
		"100.100.100.200:80":          "cloud metadata",
		"[::ffff:169.254.169.254]:80": "cloud metadata",
		"http://10.0.0.5:80":          "host:port",
		"bad host:80":                 "character",
	}
	for entry, want := range bad {
		_, err := New(Config{AllowPrivate: []string{entry}})
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "AllowPrivate") {
			t.Errorf("New with AllowPrivate %q: err = %v, want one mentioning %q", entry, err, want)
		}
	}
}

func TestGuardCheck(t *testing.T) {
	g := guard{allowPrivate: map[string]bool{"127.0.0.1:9000": true, "cdn.intranet:443": true, "metadata.test:80": true}}
	tests := []struct {
		network, requested, dialled string
		want                        string // "" if allowed, else a substring of the refusal
	}{
		{"tcp4", "8.8.8.8:443", "8.8.8.8:443", ""},
		{"tcp4", "example.com:443", "93.184.216.34:443", ""},
		{"tcp4", "127.0.0.1:9000", "127.0.0.1:9000", ""},     // listed by IP
		{"tcp4", "whatever.test:9000", "127.0.0.1:9000", ""}, // the listed address, by another name
		{"tcp4", "cdn.intranet:443", "10.1.2.3:443", ""},     // listed by name
		{"tcp4", "127.0.0.1:9001", "127.0.0.1:9001", "127.0.0.1:9001 is a loopback address"},
		{"tcp4", "cdn.intranet:80", "10.1.2.3:80", "cdn.intranet:80 resolves to 10.1.2.3, a private address"},
		{"tcp4", "rebind.test:80", "192.168.0.7:80", "rebind.test:80 resolves to 192.168.0.7, a private address"},
		{"tcp6", "[::1]:9000", "[::1]:9000", "[::1]:9000 is a loopback address"},
		{"tcp6", "v6.test:80", "[fe80::1%eth0]:80", "a link-local address"},
		{"tcp6", "mapped.test:9000", "[::ffff:127.0.0.1]:9000", ""}, // the listed IPv4 address, mapped
		// Metadata: refused even though metadata.test:80 is listed.
		{"tcp4", "metadata.test:80", "169.254.169.254:80", "cloud metadata"},
		{"tcp6", "metadata.test:80", "[fd00:ec2::254]:80", "cloud metadata"},
		{"udp", "8.8.8.8:53", "8.8.8.8:53", "not a TCP connection"},
		{"tcp4", "x.test:80", "garbage", "cannot tell"},
	}
	for _, tt := range tests {
		err := g.check(tt.network, tt.requested, tt.dialled)
		var refused *refusedError
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("check(%s, %s, %s) = %v, want allowed", tt.network, tt.requested, tt.dialled, err)
		case tt.want != "" && (!errors.As(err, &refused) || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("check(%s, %s, %s) = %v, want a refusal with %q", tt.network, tt.requested, tt.dialled, err, tt.want)
		}
	}
}

// countingServer is an httptest server on 127.0.0.1 that counts its requests.
func countingServer(t *testing.T, h http.HandlerFunc) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		h(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func newFetcher(t *testing.T, cfg Config) *Fetcher {
	t.Helper()
	f, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.transport.CloseIdleConnections)
	return f
}

func hello(w http.ResponseWriter, r *http.Request) { w.Write([]byte("hello")) }

func TestFetchLoopbackRefusedUnlessAllowed(t *testing.T) {
	srv, hits := countingServer(t, hello)
	addr := srv.Listener.Addr().String()

	f := newFetcher(t, Config{})
	_, err := f.Fetch(context.Background(), Request{URL: srv.URL + "/a.css"})
	if !errors.Is(err, ErrNotAllowed) || !strings.Contains(err.Error(), addr+" is a loopback address") {
		t.Fatalf("Fetch from a loopback server: err = %v, want ErrNotAllowed saying %s is a loopback address", err, addr)
	}
	if hits.Load() != 0 {
		t.Fatalf("the refused server got %d requests", hits.Load())
	}

	// A name that resolves to loopback is refused the same way: the check
	// is on the address dialled.
	_, port, _ := strings.Cut(addr, ":")
	_, err = f.Fetch(context.Background(), Request{URL: "http://localhost:" + port + "/a.css"})
	if !errors.Is(err, ErrNotAllowed) || !strings.Contains(err.Error(), "localhost:"+port+" resolves to") || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("Fetch from localhost: err = %v, want ErrNotAllowed saying localhost resolves to a loopback address", err)
	}

	f = newFetcher(t, Config{AllowPrivate: []string{addr}})
	a, err := f.Fetch(context.Background(), Request{URL: srv.URL + "/a.css"})
	if err != nil || string(a.Body) != "hello" {
		t.Fatalf("Fetch with AllowPrivate %s: %v, %v", addr, a, err)
	}

	f = newFetcher(t, Config{AllowPrivate: []string{"localhost:" + port}})
	a, err = f.Fetch(context.Background(), Request{URL: "http://localhost:" + port + "/a.css"})
	if err != nil || string(a.Body) != "hello" {
		t.Fatalf("Fetch from localhost with AllowPrivate localhost:%s: %v, %v", port, a, err)
	}
}

func TestFetchMetadataRefusedBeforeDialling(t *testing.T) {
	// The check runs in the dialer's Control hook, before connect(2): no
	// packet leaves, so the test needs no metadata service.
	f := newFetcher(t, Config{AllowPrivate: []string{"metadata.google.internal:80"}})
	for _, u := range []string{
		"http://169.254.169.254/latest/meta-data/iam/security-credentials/",
		"http://[fd00:ec2::254]/latest/meta-data/",
		"http://100.100.100.200/latest/meta-data/",
		"http://[::ffff:169.254.169.254]/",
	} {
		_, err := f.Fetch(context.Background(), Request{URL: u})
		if !errors.Is(err, ErrNotAllowed) || !strings.Contains(err.Error(), "cloud metadata") {
			t.Errorf("Fetch(%s): err = %v, want ErrNotAllowed for a cloud metadata address", u, err)
		}
	}
}

func TestFetchSchemes(t *testing.T) {
	f := newFetcher(t, Config{})
	for _, u := range []string{
		"ftp://example.com/a", "file:///etc/passwd", "data:text/plain,hi", "javascript:alert(1)",
		"gopher://127.0.0.1:25/", "ws://example.com/", "/relative.css", "http:opaque", "http://",
		"http://user:pass@example.com/", "http://[fe80::1%25eth0]/", "http://exa mple.com/",
		"http://example.com:0/", "http://example.com:99999/", "http://example.com:25/",
		"http://" + strings.Repeat("a", maxURLLength) + ".com/",
	} {
		_, err := f.Fetch(context.Background(), Request{URL: u})
		if !errors.Is(err, ErrNotAllowed) {
			t.Errorf("Fetch(%.60q): err = %v, want ErrNotAllowed", u, err)
		}
	}
}
