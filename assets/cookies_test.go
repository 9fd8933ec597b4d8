package assets

import (
	"fmt"
	"strings"
	"sync"
	"testing"
)

func TestCookies(t *testing.T) {
	c := NewCookies(2)
	c.Remember("s1", "Shop.Example.com:8443", "sid=1")
	c.Remember("s1", "[::1]:8080", "v6=1")
	tests := []struct{ session, host, want string }{
		{"s1", "shop.example.com", "sid=1"}, // cookies are not scoped to ports
		{"s1", "shop.example.com:443", "sid=1"},
		{"s1", "SHOP.EXAMPLE.COM.", "sid=1"},
		{"s1", "::1", "v6=1"},
		{"s1", "[::1]", "v6=1"},
		{"s1", "other.example.com", ""},
		{"s2", "shop.example.com", ""},
	}
	for _, tt := range tests {
		if got := c.Lookup(tt.session, tt.host); got != tt.want {
			t.Errorf("Lookup(%s, %s) = %q, want %q", tt.session, tt.host, got, tt.want)
		}
	}

	c.Remember("s1", "shop.example.com", "sid=2")
	if got := c.Lookup("s1", "shop.example.com"); got != "sid=2" {
		t.Errorf("after a new header: %q", got)
	}
	c.Remember("s1", "shop.example.com", "") // the browser sends no cookie now
	if got := c.Lookup("s1", "shop.example.com"); got != "" {
		t.Errorf("after an empty header: %q", got)
	}
	c.Remember("s1", "shop.example.com", "sid=3")
	c.Remember("s1", "shop.example.com", strings.Repeat("x", maxCookieHeader+1))
	if got := c.Lookup("s1", "shop.example.com"); got != "" {
		t.Errorf("after an oversized header, the old one is still there: %q", got)
	}

	c.Forget("s1")
	if got := c.Lookup("s1", "::1"); got != "" {
		t.Errorf("after Forget: %q", got)
	}
}

func TestCookiesEviction(t *testing.T) {
	c := NewCookies(2)
	c.Remember("a", "h", "1")
	c.Remember("b", "h", "2")
	c.Remember("a", "h", "1b") // a is now the most recently remembered
	c.Remember("c", "h", "3")  // b goes
	if c.Lookup("b", "h") != "" || c.Lookup("a", "h") != "1b" || c.Lookup("c", "h") != "3" {
		t.Errorf("after eviction: a=%q b=%q c=%q", c.Lookup("a", "h"), c.Lookup("b", "h"), c.Lookup("c", "h"))
	}
	if c.lru.Len() != 2 || len(c.bySession) != 2 {
		t.Errorf("%d sessions held", len(c.bySession))
	}
	// Lookup does not count as remembering.
	c.Lookup("a", "h")
	c.Remember("d", "h", "4") // a is the oldest remembered now
	if c.Lookup("a", "h") != "" {
		t.Error("Lookup kept a session alive")
	}

	// A session remembers at most maxCookieHosts hosts.
	for i := 0; i <= maxCookieHosts; i++ {
		c.Remember("d", fmt.Sprint("h", i), "v")
	}
	if c.Lookup("d", "h0") != "" || c.Lookup("d", fmt.Sprint("h", maxCookieHosts)) != "v" {
		t.Error("hosts past the cap")
	}
	if n := len(c.bySession["d"].Value.(*cookieJar).hosts); n != maxCookieHosts {
		t.Errorf("%d hosts held", n)
	}

	// The default bound.
	if NewCookies(0).maxSessions != DefaultCookieSessions {
		t.Error("NewCookies(0) is not bounded by the default")
	}
}

func TestCookiesConcurrent(t *testing.T) {
	c := NewCookies(10)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 1000; i++ {
				s := fmt.Sprint("s", i%17)
				c.Remember(s, fmt.Sprint("h", i%5), "v")
				c.Lookup(s, "h1")
				if i%13 == 0 {
					c.Forget(s)
				}
			}
		}()
	}
	wg.Wait()
	if c.lru.Len() > 10 || c.lru.Len() != len(c.bySession) {
		t.Errorf("%d sessions in the list, %d in the map", c.lru.Len(), len(c.bySession))
	}
}
