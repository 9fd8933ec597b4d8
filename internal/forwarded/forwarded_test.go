package forwarded

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestParseProxies(t *testing.T) {
	tests := []struct {
		list    string
		want    string // String() of the result, or the value named by the error
		wantErr bool
	}{
		{"10.0.0.0/8", "10.0.0.0/8", false},
		{"10.0.0.0/8,127.0.0.1", "10.0.0.0/8,127.0.0.1/32", false},
		{" 172.16.0.0/12 , ::1 ", "172.16.0.0/12,::1/128", false},
		{"10.1.2.3/8", "10.0.0.0/8", false},          // masked, as it matches
		{"::ffff:10.0.0.1", "10.0.0.1/32", false},    // as peers are compared
		{"::ffff:10.0.0.0/104", "10.0.0.0/8", false}, // the same, as a network
		{"fd00::/8,2001:db8::1", "fd00::/8,2001:db8::1/128", false},
		{"10.0.0.0/33", `"10.0.0.0/33"`, true},
		{"10.0.0.0/8,caddy", `"caddy"`, true},
		{"127.0.0.1:8080", `"127.0.0.1:8080"`, true},
		{"10.0.0.0/8,", `""`, true},
		{"", `""`, true},
		{"fe80::1%eth0", `"fe80::1%eth0"`, true},
		{"::ffff:10.0.0.0/64", `"::ffff:10.0.0.0/64"`, true},
	}
	for _, tt := range tests {
		p, err := ParseProxies(tt.list)
		switch {
		case tt.wantErr && err == nil:
			t.Errorf("ParseProxies(%q) = %v, want an error naming %s", tt.list, p.String(), tt.want)
		case tt.wantErr && !strings.Contains(err.Error(), tt.want):
			t.Errorf("ParseProxies(%q): error %q does not name %s", tt.list, err, tt.want)
		case !tt.wantErr && err != nil:
			t.Errorf("ParseProxies(%q): %v", tt.list, err)
		case !tt.wantErr && p.String() != tt.want:
			t.Errorf("ParseProxies(%q) = %s, want %s", tt.list, p.String(), tt.want)
		}
	}

	// Set adds, and a list with a bad item adds nothing.
	var p Proxies
	if err := p.Set("10.0.0.0/8"); err != nil {
		t.Fatal(err)
	}
	if err := p.Set("192.168.0.0/16,nope"); err == nil {
		t.Fatal("Set with a bad item succeeded")
	}
	if err := p.Set("::1"); err != nil {
		t.Fatal(err)
	}
	if got, want := p.String(), "10.0.0.0/8,::1/128"; got != want {
		t.Errorf("after three Sets: %s, want %s", got, want)
	}
}

// request returns a request from remoteAddr with the X-Forwarded-Proto and
// X-Forwarded-For values given (none if nil), over TLS or not.
func request(remoteAddr string, proto, xff []string, overTLS bool) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.RemoteAddr = remoteAddr
	r.TLS = nil
	if overTLS {
		r.TLS = &tls.ConnectionState{}
	}
	if proto != nil {
		r.Header["X-Forwarded-Proto"] = proto
	}
	if xff != nil {
		r.Header["X-Forwarded-For"] = xff
	}
	return r
}

func TestProxiesTrusts(t *testing.T) {
	p, err := ParseProxies("10.0.0.0/8,127.0.0.1,fd00::/8")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		remoteAddr string
		want       bool
	}{
		{"10.1.2.3:1234", true},
		{"127.0.0.1:80", true},
		{"[::ffff:10.1.2.3]:1234", true}, // a dual-stack listener's IPv4 peer
		{"[fd12::1]:443", true},
		{"[fd12::1%eth0]:443", true},
		{"127.0.0.2:80", false},
		{"11.0.0.1:1234", false},
		{"[::1]:80", false},
		{"[2001:db8::1]:80", false},
		{"10.1.2.3", false}, // no port: not what net/http sets
		{"", false},
		{"pipe", false},
	}
	for _, tt := range tests {
		if got := p.Trusts(request(tt.remoteAddr, nil, nil, false)); got != tt.want {
			t.Errorf("Trusts(RemoteAddr %q) = %v, want %v", tt.remoteAddr, got, tt.want)
		}
	}
	if (Proxies{}).Trusts(request("10.1.2.3:1234", nil, nil, false)) {
		t.Error("the zero Proxies trusts a peer")
	}
}

func TestProxiesSchemeAndFor(t *testing.T) {
	p, err := ParseProxies("192.0.2.0/24")
	if err != nil {
		t.Fatal(err)
	}
	const trusted, untrusted = "192.0.2.1:1234", "198.51.100.1:1234"
	tests := []struct {
		name       string
		remoteAddr string
		proto, xff []string
		overTLS    bool
		wantScheme string
		wantFor    []string
	}{
		{"trusted https", trusted, []string{"https"}, []string{"203.0.113.7"}, false, "https", []string{"203.0.113.7"}},
		{"trusted HTTPS", trusted, []string{" HTTPS "}, nil, false, "https", nil},
		{"trusted http over TLS", trusted, []string{"http"}, nil, true, "http", nil},
		{"trusted, no proto", trusted, nil, []string{"203.0.113.7, 198.51.100.9", "192.0.2.9"}, false, "http", []string{"203.0.113.7, 198.51.100.9", "192.0.2.9"}},
		{"trusted, no proto, TLS", trusted, nil, nil, true, "https", nil},
		{"trusted, bad proto", trusted, []string{"ftp"}, nil, false, "http", nil},
		{"trusted, bad proto, TLS", trusted, []string{"wss"}, nil, true, "https", nil},
		{"trusted, a list", trusted, []string{"https, http"}, nil, false, "http", nil},
		{"trusted, two values", trusted, []string{"https", "https"}, nil, false, "http", nil},
		{"trusted, empty", trusted, []string{""}, nil, false, "http", nil},
		{"untrusted https", untrusted, []string{"https"}, []string{"203.0.113.7"}, false, "http", nil},
		{"untrusted http over TLS", untrusted, []string{"http"}, nil, true, "https", nil},
	}
	for _, tt := range tests {
		r := request(tt.remoteAddr, tt.proto, tt.xff, tt.overTLS)
		if got := p.Scheme(r); got != tt.wantScheme {
			t.Errorf("%s: Scheme = %q, want %q", tt.name, got, tt.wantScheme)
		}
		if got := p.For(r); !slices.Equal(got, tt.wantFor) {
			t.Errorf("%s: For = %q, want %q", tt.name, got, tt.wantFor)
		}
	}
}

func TestProxiesClient(t *testing.T) {
	p, err := ParseProxies("192.0.2.0/24,2001:db8::/32")
	if err != nil {
		t.Fatal(err)
	}
	const trusted, untrusted = "192.0.2.1:1234", "198.51.100.1:1234"
	tests := []struct {
		name       string
		remoteAddr string
		xff        []string
		want       string
	}{
		{"untrusted peer", untrusted, []string{"203.0.113.7"}, untrusted},
		{"trusted, no chain", trusted, nil, trusted},
		{"trusted, one client", trusted, []string{"203.0.113.7"}, "203.0.113.7"},
		{"the client's own entries are skipped", trusted, []string{"10.9.9.9, 203.0.113.7"}, "203.0.113.7"},
		{"trusted proxies in the chain", trusted, []string{"10.9.9.9, 203.0.113.7, 192.0.2.5", "2001:db8::1"}, "203.0.113.7"},
		{"all trusted", trusted, []string{"192.0.2.7, 192.0.2.8"}, "192.0.2.7"},
		{"IPv4-mapped trusted proxy", trusted, []string{"203.0.113.7, ::ffff:192.0.2.5"}, "203.0.113.7"},
		{"not an address", trusted, []string{"203.0.113.7, unknown"}, "unknown"},
		{"empty entries", trusted, []string{" , 203.0.113.7 ,"}, "203.0.113.7"},
	}
	for _, tt := range tests {
		if got := p.Client(request(tt.remoteAddr, nil, tt.xff, false)); got != tt.want {
			t.Errorf("%s: Client = %q, want %q", tt.name, got, tt.want)
		}
	}
}

// FuzzProxiesClient reads X-Forwarded-For chains, which clients write the
// left part of: Client returns the peer's address or an entry of the chain,
// never one left of the rightmost entry that is not a trusted proxy.
func FuzzProxiesClient(f *testing.F) {
	f.Add("203.0.113.7", "")
	f.Add("10.9.9.9, 203.0.113.7, 192.0.2.5", "2001:db8::1")
	f.Add(" , unknown ,192.0.2.7", "::ffff:192.0.2.5,")
	p, err := ParseProxies("192.0.2.0/24,2001:db8::/32")
	if err != nil {
		f.Fatal(err)
	}
	const peer = "192.0.2.1:1234"
	f.Fuzz(func(t *testing.T, first, second string) {
		got := p.Client(request(peer, nil, []string{first, second}, false))
		var entries []string
		for _, e := range strings.Split(first+","+second, ",") {
			if e = strings.TrimSpace(e); e != "" {
				entries = append(entries, e)
			}
		}
		if len(entries) == 0 {
			if got != peer {
				t.Fatalf("Client = %q for an empty chain, want the peer %q", got, peer)
			}
			return
		}
		// The rightmost entry that is not a trusted proxy, or the leftmost.
		want := entries[0]
		for i := len(entries) - 1; i >= 0; i-- {
			if a, err := netip.ParseAddr(entries[i]); err != nil || !p.contains(a) {
				want = entries[i]
				break
			}
		}
		if got != want {
			t.Fatalf("Client(%q, %q) = %q, want %q", first, second, got, want)
		}
	})
}
