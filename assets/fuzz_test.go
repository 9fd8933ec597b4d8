package assets

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

// FuzzParseTarget checks that an accepted URL is normalised for good: http
// or https, a host that is an IP or an ASCII name in lower case, no
// credentials or fragment, and parsing it again changes nothing.
func FuzzParseTarget(f *testing.F) {
	for _, s := range []string{
		"https://shop.example.com/a.css?v=1#x", "HTTP://EXAMPLE.COM.:80", "http://[::1]:8080/", "http://[fe80::1%25eth0]/",
		"http://127.0.0.1:9000/x", "http://2130706433/", "http://0x7f.1/", "https://user@host/", "http://a%2eb/",
		"http://xn--nxasmq6b.com/", "http://h:0/", "//host/x", "http://host/%zz", "http:///x", "http://[::ffff:127.0.0.1]/",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		tg, err := parseTarget(raw)
		if err != nil {
			return
		}
		u := tg.url
		if u.Scheme != "http" && u.Scheme != "https" || u.User != nil || u.Fragment != "" || u.Opaque != "" {
			t.Fatalf("parseTarget(%q) accepted %q", raw, u)
		}
		if tg.host == "" || tg.host != strings.ToLower(tg.host) || strings.HasSuffix(tg.host, ".") {
			t.Fatalf("parseTarget(%q): host %q", raw, tg.host)
		}
		if ip, err := netip.ParseAddr(tg.host); err == nil {
			if ip.Zone() != "" {
				t.Fatalf("parseTarget(%q): zoned host %q", raw, tg.host)
			}
		} else if _, err := normalizeHostname(tg.host); err != nil || strings.Contains(tg.host, ":") {
			t.Fatalf("parseTarget(%q): host %q is neither an IP nor a name", raw, tg.host)
		}
		if tg.port == 0 || !strings.HasPrefix(tg.String(), tg.origin) {
			t.Fatalf("parseTarget(%q): port %d, origin %q, URL %q", raw, tg.port, tg.origin, tg.String())
		}
		again, err := parseTarget(tg.String())
		if err != nil || again.String() != tg.String() || again.origin != tg.origin || again.host != tg.host || again.port != tg.port {
			t.Fatalf("parseTarget(%q) = %q, which parses again as %q, %v", raw, tg.String(), again.String(), err)
		}
	})
}

// FuzzRefusal checks the address classification on every IPv4 and IPv6
// address: an IPv4-mapped address is judged like the IPv4 address, metadata
// is always refused, and nothing in a refused range is called public.
func FuzzRefusal(f *testing.F) {
	for _, s := range []string{"127.0.0.1", "169.254.169.254", "::ffff:10.0.0.1", "64:ff9b::7f00:1", "2002:a9fe:a9fe::", "8.8.8.8", "fd00:ec2::254"} {
		f.Add(netip.MustParseAddr(s).AsSlice())
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ip, ok := netip.AddrFromSlice(b)
		if !ok {
			return
		}
		reason, metadata := refusal(ip)
		if metadata && reason == "" {
			t.Fatalf("%s: metadata without a reason", ip)
		}
		if ip.Is4() {
			mapped := netip.AddrFrom16(ip.As16())
			if r, m := refusal(mapped); r != reason || m != metadata {
				t.Fatalf("%s is %q but %s is %q", ip, reason, mapped, r)
			}
		}
		un := ip.Unmap()
		if reason == "" && (un.IsLoopback() || un.IsPrivate() || un.IsLinkLocalUnicast() || un.IsMulticast() || un.IsUnspecified() || !un.IsGlobalUnicast()) {
			t.Fatalf("%s called public", ip)
		}
	})
}

// FuzzCacheControl checks that no Cache-Control value makes the policy
// panic or promise more freshness than the cap, and that no-store always
// wins.
func FuzzCacheControl(f *testing.F) {
	for _, s := range []string{"max-age=60", `private="a,b", max-age=1`, `x="\"", no-store`, "s-maxage=99999999999", `"`, "no-store,"} {
		f.Add(s, false)
	}
	now := time.Now()
	f.Fuzz(func(t *testing.T, value string, personal bool) {
		h := http.Header{"Cache-Control": {value}}
		sc, exp := cachePolicy(200, h, personal, now)
		if sc == shared && (exp.Sub(now) <= 0 || exp.Sub(now) > maxSharedTTL) {
			t.Fatalf("%q: shared for %v", value, exp.Sub(now))
		}
		if sc == shared && personal {
			t.Fatalf("%q: a personal response shared", value)
		}
		if strings.EqualFold(strings.TrimSpace(value), "no-store") && sc != uncached {
			t.Fatalf("%q kept", value)
		}
	})
}

// FuzzFetchURL runs Fetch on arbitrary URLs, and redirects to arbitrary
// Locations, with the network replaced by a stub that refuses what the guard
// refuses and fails everything else (no packet leaves, no name is resolved),
// and checks the rules: nothing denied or at a bad port is dialled, a URL
// at a non-public IP is ErrNotAllowed, and the visitor's cookie reaches Local
// only for a request on the visitor's own origin.
func FuzzFetchURL(f *testing.F) {
	for _, s := range []string{
		"http://shop.test/a.css", "http://shop.test/redir", "http://127.0.0.1:9000/", "http://denied.test/",
		"http://x.denied.test/", "http://8.8.8.8/", "https://SHOP.test./redir", "http://shop.test:80/x#y",
		"http://[::ffff:169.254.169.254]/", "ftp://shop.test/",
	} {
		f.Add(s, "http://shop.test/next")
		f.Add(s, "http://10.0.0.1/")
		f.Add(s, "//denied.test/x")
	}
	var (
		mu        sync.Mutex
		gotCookie bool  // in this iteration
		dialErr   error // a dial the rules should have prevented
	)
	local := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Cookie") != "" {
			mu.Lock()
			gotCookie = true
			mu.Unlock()
		}
		if r.URL.Path == "/redir" {
			w.Header().Set("Location", r.URL.Query().Get("to"))
			w.WriteHeader(http.StatusFound)
			return
		}
		w.Write([]byte(r.URL.Path))
	})
	fe, err := New(Config{
		Local: local, Origins: []string{"http://shop.test"},
		Deny: []string{"denied.test", "*.denied.test"}, Timeout: time.Second, Cache: NewCache(1 << 20),
	})
	if err != nil {
		f.Fatal(err)
	}
	g := guard{}
	fe.transport.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, port, _ := net.SplitHostPort(addr)
		if matchGlob(fe.deny, host) != "" || port == "22" || port == "25" {
			mu.Lock()
			dialErr = errors.New("dialled " + addr)
			mu.Unlock()
		}
		if ip, err := netip.ParseAddr(host); err == nil {
			if err := g.check("tcp6", addr, netip.AddrPortFrom(ip, 80).String()); err != nil {
				return nil, err
			}
		}
		return nil, errors.New("stub: no network in this test")
	}
	f.Fuzz(func(t *testing.T, raw, location string) {
		tg, perr := parseTarget(raw)
		if perr == nil && tg.url.Path == "/redir" {
			q := tg.url.Query()
			q.Set("to", location)
			tg.url.RawQuery = q.Encode()
			raw = tg.String()
		}
		mu.Lock()
		gotCookie = false
		mu.Unlock()
		a, err := fe.Fetch(context.Background(), Request{URL: raw, SessionID: "s", Cookie: "sid=v"})
		if err == nil && a.Header.Get("Set-Cookie") != "" {
			t.Fatal("an asset with Set-Cookie")
		}
		if perr == nil && tg.origin != "http://shop.test" {
			if ip, err2 := netip.ParseAddr(tg.host); err2 == nil && !publicAddr(ip) && !errors.Is(err, ErrNotAllowed) {
				t.Fatalf("%q at a non-public address: err = %v", raw, err)
			}
		}
		mu.Lock()
		defer mu.Unlock()
		if gotCookie && (perr != nil || tg.origin != "http://shop.test") {
			t.Fatalf("%q → %q: Local got the visitor's cookie", raw, location)
		}
		if dialErr != nil {
			t.Fatalf("%q → %q: %v", raw, location, dialErr)
		}
	})
}

func publicAddr(ip netip.Addr) bool { reason, _ := refusal(ip); return reason == "" }
