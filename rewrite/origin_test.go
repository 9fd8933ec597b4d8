package rewrite

import (
	"strings"
	"testing"
)

func TestNewOrigin(t *testing.T) {
	tests := []struct {
		scheme, authority string
		want              string // String(), or "" if NewOrigin refuses
		host, hostname    string
	}{
		{"https", "Shop.Example.COM", "https://shop.example.com", "shop.example.com", "shop.example.com"},
		{"HTTPS", "shop.example.com:443", "https://shop.example.com", "shop.example.com", "shop.example.com"},
		{"https", "shop.example.com:0443", "https://shop.example.com", "shop.example.com", "shop.example.com"},
		{"https", "shop.example.com:", "https://shop.example.com", "shop.example.com", "shop.example.com"},
		{"http", "localhost:8080", "http://localhost:8080", "localhost:8080", "localhost"},
		{"http", "10.0.0.1:80", "http://10.0.0.1", "10.0.0.1", "10.0.0.1"},
		{"http", "[::1]:8080", "http://[::1]:8080", "[::1]:8080", "::1"},
		{"https", "[FE80::1]", "https://[fe80::1]", "[fe80::1]", "fe80::1"},
		{"http", "backend_1:3000", "http://backend_1:3000", "backend_1:3000", "backend_1"},

		{"ftp", "shop.example.com", "", "", ""},
		{"http", "", "", "", ""},
		{"http", ":8080", "", "", ""},
		{"http", "host:port", "", "", ""},
		{"http", "host:70000", "", "", ""},
		{"http", "user@host", "", "", ""},
		{"http", "a;script-src", "", "", ""},
		{"http", "a b", "", "", ""},
		{"http", "[::1", "", "", ""},
		{"http", "[::1]x", "", "", ""},
		{"http", "[]", "", "", ""},
		{"http", "[g::1]", "", "", ""},
	}
	for _, tt := range tests {
		o, ok := NewOrigin(tt.scheme, tt.authority)
		if got := o.String(); ok != (tt.want != "") || got != tt.want {
			t.Errorf("NewOrigin(%q, %q) = %q, %v; want %q", tt.scheme, tt.authority, got, ok, tt.want)
			continue
		}
		if o.Host() != tt.host || o.Hostname() != tt.hostname || o.IsZero() == ok {
			t.Errorf("NewOrigin(%q, %q): Host %q, Hostname %q, IsZero %v; want %q, %q, %v",
				tt.scheme, tt.authority, o.Host(), o.Hostname(), o.IsZero(), tt.host, tt.hostname, !ok)
		}
		if p, pok := ParseOrigin(tt.scheme + "://" + tt.authority); p != o || pok != ok {
			t.Errorf("ParseOrigin(%q) = %q, %v; want what NewOrigin returns", tt.scheme+"://"+tt.authority, p, pok)
		}
	}
	if a, _ := ParseOrigin("https://A.example:443"); a != mustOrigin(t, "https://a.example") {
		t.Errorf("two spellings of one origin compare unequal")
	}
}

func mustOrigin(t *testing.T, s string) Origin {
	t.Helper()
	o, ok := ParseOrigin(s)
	if !ok {
		t.Fatalf("ParseOrigin(%q) failed", s)
	}
	return o
}

// TestRebaseURL checks what RebaseURL adds to URLRewriter's cases (urlCases,
// which go through the same code): the zero origins, and the bytes around
// the URL.
func TestRebaseURL(t *testing.T) {
	from, to := mustOrigin(t, up), mustOrigin(t, pub)
	tests := []struct {
		ref      string
		from, to Origin
		want     string
	}{
		{" https://backend.internal:8443/x?y#z\t", from, to, " http://shop.example.com/x?y#z\t"},
		{`\\u@backend.internal:8443`, from, to, "//u@shop.example.com"},
		{"https://backend.internal:8443/x", Origin{}, to, "https://backend.internal:8443/x"},
		{"https://backend.internal:8443/x", from, Origin{}, "https://backend.internal:8443/x"},
		{"//", from, to, "//"},
		{"", from, to, ""},
	}
	for _, tt := range tests {
		if got := RebaseURL(tt.ref, tt.from, tt.to); got != tt.want {
			t.Errorf("RebaseURL(%q, %q, %q) = %q, want %q", tt.ref, tt.from, tt.to, got, tt.want)
		}
	}
}

// FuzzNewOrigin checks that an Origin made from any scheme and authority (a
// Host header, an upstream's URL) reads back the same from its String, and
// holds only bytes that URLs, headers and CSP sources take as they are.
func FuzzNewOrigin(f *testing.F) {
	f.Add("https", "Shop.Example.COM:0443")
	f.Add("http", "[::1]:8080")
	f.Add("HTTP", "a;b:80")
	f.Fuzz(func(t *testing.T, scheme, authority string) {
		o, ok := NewOrigin(scheme, authority)
		if !ok {
			if !o.IsZero() {
				t.Fatalf("NewOrigin(%q, %q) refused, but returned %q", scheme, authority, o)
			}
			return
		}
		if back, ok := ParseOrigin(o.String()); !ok || back != o {
			t.Fatalf("NewOrigin(%q, %q) = %q, which reads back as %q, %v", scheme, authority, o, back, ok)
		}
		for i := range len(o.String()) {
			if c := o.String()[i]; !(isLetter(c) || '0' <= c && c <= '9' || strings.IndexByte(".-_:/[]", c) >= 0) || 'A' <= c && c <= 'Z' {
				t.Fatalf("NewOrigin(%q, %q) = %q, with byte %q", scheme, authority, o, c)
			}
		}
	})
}
