package assets

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestCachePolicy(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name     string
		status   int
		header   http.Header
		personal bool
		want     scope
		ttl      time.Duration // for shared
	}{
		{"plain", 200, nil, false, shared, defaultSharedTTL},
		{"max-age", 200, http.Header{"Cache-Control": {"public, max-age=3600"}}, false, shared, time.Hour},
		{"s-maxage wins", 200, http.Header{"Cache-Control": {"max-age=3600, s-maxage=60"}}, false, shared, time.Minute},
		{"huge max-age capped", 200, http.Header{"Cache-Control": {"max-age=99999999"}}, false, shared, maxSharedTTL},
		{"duplicate max-age: smallest", 200, http.Header{"Cache-Control": {"max-age=600", "max-age=60"}}, false, shared, time.Minute},
		{"Expires", 200, http.Header{"Date": {now.Format(http.TimeFormat)}, "Expires": {now.Add(time.Hour).Format(http.TimeFormat)}}, false, shared, time.Hour},
		{"Vary on Origin", 200, http.Header{"Vary": {"Origin"}}, false, shared, defaultSharedTTL},
		{"Vary on Accept-Encoding", 200, http.Header{"Vary": {"accept-encoding"}}, false, shared, defaultSharedTTL},
		{"quoted comma", 200, http.Header{"Cache-Control": {`community="a, private", max-age=60`}}, false, shared, time.Minute},

		{"with cookie", 200, nil, true, private, 0},
		{"with cookie, public", 200, http.Header{"Cache-Control": {"public, max-age=3600"}}, true, private, 0},
		{"private", 200, http.Header{"Cache-Control": {"private, max-age=3600"}}, false, private, 0},
		{"PRIVATE=field", 200, http.Header{"Cache-Control": {`PRIVATE="Set-Cookie"`}}, false, private, 0},
		{"no-cache", 200, http.Header{"Cache-Control": {"no-cache"}}, false, private, 0},
		{"max-age=0", 200, http.Header{"Cache-Control": {"max-age=0"}}, false, private, 0},
		{"bad max-age", 200, http.Header{"Cache-Control": {"max-age=soon"}}, false, private, 0},
		{"expired", 200, http.Header{"Expires": {"Thu, 01 Jan 1970 00:00:00 GMT"}}, false, private, 0},
		{"bad Expires", 200, http.Header{"Expires": {"0"}}, false, private, 0},
		{"Vary on Accept-Language", 200, http.Header{"Vary": {"Accept-Encoding, Accept-Language"}}, false, private, 0},
		{"Vary on Cookie", 200, http.Header{"Vary": {"Cookie"}}, false, private, 0},

		{"no-store", 200, http.Header{"Cache-Control": {"max-age=60", "No-Store"}}, false, uncached, 0},
		{"no-store with cookie", 200, http.Header{"Cache-Control": {"no-store"}}, true, uncached, 0},
		{"Vary *", 200, http.Header{"Vary": {"*"}}, false, uncached, 0},
		{"404", 404, nil, false, uncached, 0},
		{"206", 206, nil, false, uncached, 0},
		{"500", 500, http.Header{"Cache-Control": {"max-age=60"}}, false, uncached, 0},
	}
	for _, tt := range tests {
		sc, exp := cachePolicy(tt.status, tt.header, tt.personal, now)
		if sc != tt.want || sc == shared && exp.Sub(now) != tt.ttl {
			t.Errorf("%s: cachePolicy = %v, %v; want %v, %v", tt.name, sc, exp.Sub(now), tt.want, tt.ttl)
		}
	}
}

func hashOf(body string) string {
	sum := sha256.Sum256([]byte(body))
	return hex.EncodeToString(sum[:])
}

// TestFetchCacheSharing runs the sharing rules end to end: which Fetches of
// which sessions reach the server.
func TestFetchCacheSharing(t *testing.T) {
	ext, extHits := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/public.css":
			w.Header().Set("Cache-Control", "max-age=60")
		case "/sets-cookie.css":
			w.Header().Set("Set-Cookie", "track=1")
		case "/private.css":
			w.Header().Set("Cache-Control", "private")
		case "/no-store.css":
			w.Header().Set("Cache-Control", "no-store")
		case "/lang.css":
			w.Header().Set("Vary", "Accept-Language")
		case "/missing.css":
			http.NotFound(w, r)
			return
		}
		fmt.Fprintf(w, "%s for %s", r.URL.Path, r.Header.Get("Accept-Language"))
	})
	var mu sync.Mutex
	var localSeen []recorded
	local := recordingHandler(&mu, &localSeen, func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "local %s as %s", r.URL.Path, r.Header.Get("Cookie"))
	})
	cache := NewCache(1 << 20)
	f := newFetcher(t, Config{
		Local: local, Origins: []string{"http://shop.test"},
		AllowPrivate: []string{ext.Listener.Addr().String()}, Cache: cache,
	})
	fetch := func(session, path, cookie string) string {
		t.Helper()
		u := ext.URL + path
		if strings.HasPrefix(path, "local:") {
			u = "http://shop.test/" + strings.TrimPrefix(path, "local:")
		}
		a, err := f.Fetch(context.Background(), Request{URL: u, SessionID: session, Cookie: cookie,
			Header: http.Header{"Accept-Language": {session}}})
		if err != nil {
			t.Fatal(err)
		}
		return string(a.Body)
	}
	localHits := func() int { mu.Lock(); defer mu.Unlock(); return len(localSeen) }

	tests := []struct {
		path     string
		cookieA  string // session a's cookie; b has none
		wantHits int64  // requests to ext (or Local) for a, a again, b
	}{
		{"/public.css", "", 1},      // shared
		{"/sets-cookie.css", "", 2}, // a's own; b asks again
		{"/private.css", "", 2},     // same
		{"/lang.css", "", 2},        // varies on a header that differs between sessions
		{"/no-store.css", "", 3},    // never kept
		{"/missing.css", "", 3},     // errors are not kept
		{"local:a.css", "sid=a", 2}, // with a's cookie: a's own
		{"local:anon.css", "", 1},   // Local without a cookie is shared like any public response
	}
	for _, tt := range tests {
		before := extHits.Load() + int64(localHits())
		first := fetch("a", tt.path, tt.cookieA)
		if again := fetch("a", tt.path, tt.cookieA); again != first {
			t.Errorf("%s: a's second fetch got %q, first %q", tt.path, again, first)
		}
		b := fetch("b", tt.path, "")
		if strings.Contains(b, "sid=a") || strings.Contains(tt.path, "lang") && !strings.HasSuffix(b, "for b") {
			t.Errorf("%s: session b got %q", tt.path, b)
		}
		if hits := extHits.Load() + int64(localHits()) - before; hits != tt.wantHits {
			t.Errorf("%s: %d requests reached the site, want %d", tt.path, hits, tt.wantHits)
		}
	}

	// A request that carries the visitor's cookie does not take the shared,
	// anonymous answer: session c logs in after anon.css was shared.
	if got := fetch("c", "local:anon.css", "sid=c"); got != "local /anon.css as sid=c" {
		t.Errorf("a logged-in session got %q from the shared index", got)
	}

	// ForgetSession drops a's index: a asks again for its private CSS, and
	// a's private body is gone from the cache.
	privHash := hashOf("local /a.css as sid=a")
	if _, ok := cache.Get(privHash); !ok {
		t.Fatal("a's private body is not in the cache")
	}
	cache.ForgetSession("a")
	if _, ok := cache.Get(privHash); ok {
		t.Error("a's private body outlived ForgetSession")
	}
	before := localHits()
	fetch("a", "local:a.css", "sid=a")
	if localHits() != before+1 {
		t.Error("after ForgetSession, a's private entry was still used")
	}
	if _, ok := cache.Get(hashOf("/public.css for a")); !ok {
		t.Error("ForgetSession dropped a shared body")
	}
}

func TestCacheSharedExpiry(t *testing.T) {
	c := NewCache(1 << 20)
	now := time.Now()
	a := &Asset{URL: "https://cdn.test/a.css", Status: 200, Header: http.Header{}, Body: []byte("a"), Hash: hashOf("a")}
	c.store("", a.URL, a, shared, now.Add(time.Minute))
	if _, ok := c.lookup("s", a.URL, true, now.Add(59*time.Second)); !ok {
		t.Fatal("fresh shared entry missed")
	}
	if _, ok := c.lookup("s", a.URL, false, now); ok {
		t.Fatal("a lookup without the shared index found a shared entry")
	}
	if _, ok := c.lookup("s", a.URL, true, now.Add(time.Minute)); ok {
		t.Fatal("expired shared entry hit")
	}
	if st := c.Stats(); st.URLs != 0 {
		t.Errorf("the expired entry is still indexed: %+v", st)
	}
	// A private entry needs a session.
	c.store("", "https://cdn.test/p", a, private, time.Time{})
	if st := c.Stats(); st.URLs != 0 {
		t.Errorf("a private response without a session was indexed: %+v", st)
	}
}

func TestCacheDedupAndLRU(t *testing.T) {
	body := func(c byte, n int) []byte { return []byte(strings.Repeat(string(c), n)) }
	asset := func(b []byte) *Asset {
		sum := sha256.Sum256(b)
		return &Asset{Status: 200, Header: http.Header{"Content-Type": {"image/png"}}, Body: b, Hash: hex.EncodeToString(sum[:])}
	}
	const unit = 10000
	c := NewCache(3*unit + 3*(entryOverhead+200)) // room for three bodies and their entries
	a, b, d, e := asset(body('a', unit)), asset(body('b', unit)), asset(body('d', unit)), asset(body('e', unit))

	// The same body under two URLs and two sessions is stored once.
	c.store("s1", "https://x.test/a1", a, private, time.Time{})
	c.store("s2", "https://x.test/a2", a, private, time.Time{})
	if st := c.Stats(); st.Entries != 1 || st.URLs != 2 || st.Bytes < unit || st.Bytes > unit+2*(entryOverhead+200) {
		t.Fatalf("after storing one body twice: %+v", st)
	}
	c.store("", "https://x.test/b", b, shared, time.Now().Add(time.Hour))
	c.store("", "https://x.test/d", d, shared, time.Now().Add(time.Hour))
	// Touch a: b is now the least recently used.
	if _, ok := c.Get(a.Hash); !ok {
		t.Fatal("a missing")
	}
	c.store("", "https://x.test/e", e, shared, time.Now().Add(time.Hour))
	st := c.Stats()
	if _, ok := c.Get(b.Hash); ok || st.Evictions != 1 || st.Entries != 3 {
		t.Errorf("after overflowing: b kept=%v, %+v", ok, st)
	}
	if _, ok := c.lookup("", "https://x.test/b", true, time.Now()); ok {
		t.Error("the evicted body's URL still resolves")
	}
	for _, x := range []*Asset{a, d, e} {
		if _, ok := c.Get(x.Hash); !ok {
			t.Errorf("%s… was evicted", x.Body[:1])
		}
	}
	if st.Bytes > 3*unit+3*(entryOverhead+200) {
		t.Errorf("Bytes %d over the cap", st.Bytes)
	}

	// A body larger than the cache is not kept (and evicts nothing).
	huge := asset(body('h', 4*unit))
	c.store("", "https://x.test/h", huge, shared, time.Now().Add(time.Hour))
	if _, ok := c.Get(huge.Hash); ok || c.Stats().Entries != 3 {
		t.Errorf("a body larger than the cache was kept: %+v", c.Stats())
	}
}

func TestFetchReturnsAssetLargerThanCache(t *testing.T) {
	srv, hits := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Write(make([]byte, 5000))
	})
	c := NewCache(1000)
	f := newFetcher(t, Config{AllowPrivate: []string{srv.Listener.Addr().String()}, Cache: c})
	for i := 0; i < 2; i++ {
		a, err := f.Fetch(context.Background(), Request{URL: srv.URL, SessionID: "s"})
		if err != nil || len(a.Body) != 5000 {
			t.Fatalf("Fetch: %v", err)
		}
	}
	if hits.Load() != 2 || c.Stats().Entries != 0 {
		t.Errorf("hits %d, stats %+v", hits.Load(), c.Stats())
	}
}

func TestCacheHandler(t *testing.T) {
	c := NewCache(1 << 20)
	css := &Asset{URL: "https://cdn.test/a.css", Status: 200, Header: http.Header{"Content-Type": {"text/css"}}, Body: []byte("body{color:red}"), Hash: hashOf("body{color:red}")}
	raw := &Asset{URL: "https://cdn.test/x", Status: 200, Header: http.Header{}, Body: []byte("<script>alert(1)</script>"), Hash: hashOf("<script>alert(1)</script>")}
	c.store("s", css.URL, css, private, time.Time{})
	c.store("s", raw.URL, raw, private, time.Time{})
	mux := http.NewServeMux()
	mux.Handle("/assets/", http.StripPrefix("/assets", c.Handler()))

	do := func(method, path string, h http.Header) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, path, nil)
		for k, v := range h {
			r.Header[k] = v
		}
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, r)
		return w
	}
	w := do("GET", "/assets/"+css.Hash, nil)
	want := map[string]string{
		"Content-Type":            "text/css",
		"X-Content-Type-Options":  "nosniff",
		"Cache-Control":           "private, max-age=31536000, immutable",
		"Content-Security-Policy": "sandbox",
		"Etag":                    `"` + css.Hash + `"`,
	}
	if w.Code != 200 || w.Body.String() != "body{color:red}" {
		t.Errorf("GET: %d %q", w.Code, w.Body)
	}
	for k, v := range want {
		if got := w.Header().Get(k); got != v {
			t.Errorf("GET: %s = %q, want %q", k, got, v)
		}
	}
	if w.Header().Get("Set-Cookie") != "" || w.Header().Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("GET: unexpected headers %v", w.Header())
	}
	if w := do("GET", "/assets/"+raw.Hash, nil); w.Header().Get("Content-Type") != "application/octet-stream" || w.Header().Get("Content-Security-Policy") != "sandbox" {
		t.Errorf("a body without a type: %v", w.Header())
	}
	if w := do("HEAD", "/assets/"+css.Hash, nil); w.Code != 200 || w.Body.Len() != 0 || w.Header().Get("Content-Length") != "15" {
		t.Errorf("HEAD: %d %q %v", w.Code, w.Body, w.Header())
	}
	if w := do("GET", "/assets/"+css.Hash, http.Header{"If-None-Match": {`"` + css.Hash + `"`}}); w.Code != http.StatusNotModified {
		t.Errorf("If-None-Match: %d", w.Code)
	}
	if w := do("GET", "/assets/"+css.Hash, http.Header{"Range": {"bytes=0-3"}}); w.Code != http.StatusPartialContent || w.Body.String() != "body" {
		t.Errorf("Range: %d %q", w.Code, w.Body)
	}
	for _, tt := range []struct {
		method, path string
		code         int
	}{
		{"GET", "/assets/" + hashOf("unknown"), 404},
		{"POST", "/assets/" + css.Hash, 405},
		{"DELETE", "/assets/" + css.Hash, 405},
		{"GET", "/assets/" + strings.ToUpper(css.Hash), 400},
		{"GET", "/assets/" + css.Hash[:63], 400},
		{"GET", "/assets/" + css.Hash + "/x", 400},
		{"GET", "/assets/", 400},
		{"GET", "/assets/" + strings.Repeat("g", 64), 400},
	} {
		if w := do(tt.method, tt.path, nil); w.Code != tt.code {
			t.Errorf("%s %s: %d, want %d", tt.method, tt.path, w.Code, tt.code)
		} else if tt.code == 405 && w.Header().Get("Allow") != "GET, HEAD" {
			t.Errorf("405 without Allow")
		}
	}
}

func TestCacheStatsCounters(t *testing.T) {
	c := NewCache(1 << 20)
	a := &Asset{URL: "u", Status: 200, Header: http.Header{}, Body: []byte("x"), Hash: hashOf("x")}
	c.store("s", "u", a, private, time.Time{})
	c.Get(a.Hash)
	c.Get(hashOf("nope"))
	c.lookup("s", "u", true, time.Now())
	c.lookup("t", "u", true, time.Now())
	st := c.Stats()
	if st.Hits != 2 || st.Misses != 2 || st.Entries != 1 || st.URLs != 1 || st.Bytes <= 1 {
		t.Errorf("%+v", st)
	}
}

// TestCacheConcurrent is for the race detector: stores, lookups, Gets and
// ForgetSession from many goroutines, with constant eviction, keep the
// accounting exact.
func TestCacheConcurrent(t *testing.T) {
	c := NewCache(20000)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 500; i++ {
				body := fmt.Sprintf("%d-%s", i%50, strings.Repeat("x", i%7*300))
				a := &Asset{URL: "u", Status: 200, Header: http.Header{"Content-Type": {"text/plain"}}, Body: []byte(body), Hash: hashOf(body)}
				session := fmt.Sprint("s", g, i%3)
				sc := private
				if i%4 == 0 {
					sc = shared
				}
				url := fmt.Sprint("https://x.test/", i%20)
				c.store(session, url, a, sc, time.Now().Add(time.Minute))
				c.lookup(session, url, true, time.Now())
				c.Get(a.Hash)
				if i%50 == 0 {
					c.ForgetSession(session)
				}
				c.Stats()
			}
		}()
	}
	wg.Wait()

	c.mu.Lock()
	defer c.mu.Unlock()
	var total int64
	for _, b := range c.blobs {
		cost := int64(len(b.asset.Body))
		for e := range b.refs {
			cost += e.cost
		}
		if cost != b.cost {
			t.Fatalf("blob %s… cost %d, its parts add up to %d", b.asset.Hash[:8], b.cost, cost)
		}
		total += cost
	}
	if total != c.bytes || c.bytes > c.maxBytes || c.lru.Len() != len(c.blobs) {
		t.Fatalf("bytes %d, sum %d, max %d, lru %d, blobs %d", c.bytes, total, c.maxBytes, c.lru.Len(), len(c.blobs))
	}
}
