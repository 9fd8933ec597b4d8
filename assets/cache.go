package assets

import (
	"bytes"
	"container/list"
	"net/http"
	"sync"
	"time"
)

// Cache keeps fetched assets in memory, shared by every session and by the
// agent listener.
//
// Bodies are content-addressed: a body is stored once, under the sha256 of
// its bytes, however many URLs and sessions it was fetched for. Each body
// keeps the Asset (URL, status, headers) it was first stored with, which is
// what Get and Handler serve.
//
// URLs lead to bodies through two indexes: one per session, which only that
// session's Fetches read, and a shared one, which every Fetch sent without the
// visitor's cookie reads. What goes where is decided by Fetch (see
// cachePolicy): a response fetched with the visitor's cookies is only ever in
// its session's index. Shared entries expire; a session's entries last until
// ForgetSession or eviction.
//
// The cache is bounded by maxBytes: the bodies plus a charge per index entry
// for its URL and headers. Past it, the least recently used bodies are
// dropped with every index entry that leads to them. A body larger than the
// whole cache is not kept. A Cache is safe for concurrent use.
//
// A body handed out by Get or Fetch is shared with the cache and with other
// callers: it must not be modified.
type Cache struct {
	maxBytes int64

	mu       sync.Mutex
	bytes    int64
	lru      list.List        // of *blob, most recently used at the front
	blobs    map[string]*blob // by hash
	shared   map[string]*entry
	sessions map[string]map[string]*entry // session ID → URL → entry
	stats    CacheStats
}

// CacheStats are the cache's counters and gauges.
type CacheStats struct {
	Hits      uint64 // Get and Fetch calls answered from the cache
	Misses    uint64 // Get and Fetch calls that were not
	Bytes     int64  // bodies plus the index charge, at most the cache's maxBytes
	Entries   int    // bodies held
	URLs      int    // index entries, shared and per session
	Evictions uint64 // bodies dropped to make room
}

// blob is one stored body.
type blob struct {
	asset Asset // as first stored; Header is never modified
	refs  map[*entry]struct{}
	elem  *list.Element
	cost  int64 // len(body) plus the cost of each entry in refs
}

// entry is one URL of one index.
type entry struct {
	session string // "" in the shared index
	url     string // the URL asked for (the key)
	final   string // the URL after redirects
	header  http.Header
	expires time.Time // zero for session entries, which do not expire
	blob    *blob
	cost    int64
}

// entryOverhead is what an index entry costs besides its strings: maps,
// pointers, the header map's structure.
const entryOverhead = 256

// NewCache returns a Cache that holds at most maxBytes (values below 1 are
// taken as 1: a cache that keeps nothing).
func NewCache(maxBytes int64) *Cache {
	return &Cache{
		maxBytes: max(maxBytes, 1),
		blobs:    make(map[string]*blob),
		shared:   make(map[string]*entry),
		sessions: make(map[string]map[string]*entry),
	}
}

// Get returns the asset stored under hash (lower-case hex sha256 of the
// body), with the URL, status and headers it was first stored with.
func (c *Cache) Get(hash string) (*Asset, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b, ok := c.blobs[hash]
	if !ok {
		c.stats.Misses++
		return nil, false
	}
	c.stats.Hits++
	c.lru.MoveToFront(b.elem)
	a := b.asset
	a.Header = a.Header.Clone()
	return &a, true
}

// lookup returns the asset indexed under url for the session, looking in
// the shared index too if withShared.
func (c *Cache) lookup(session, url string, withShared bool, now time.Time) (*Asset, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.sessions[session][url]
	if e == nil && withShared {
		if e = c.shared[url]; e != nil && !now.Before(e.expires) {
			c.dropEntry(e)
			e = nil
		}
	}
	if e == nil {
		c.stats.Misses++
		return nil, false
	}
	c.stats.Hits++
	c.lru.MoveToFront(e.blob.elem)
	return &Asset{URL: e.final, Status: http.StatusOK, Header: e.header.Clone(), Body: e.blob.asset.Body, Hash: e.blob.asset.Hash}, true
}

// store indexes a (a 200 response to a request for url) in the shared index
// until expires, or in the session's index, as sc says.
func (c *Cache) store(session, url string, a *Asset, sc scope, expires time.Time) {
	if sc == uncached || sc == private && session == "" || int64(len(a.Body)) > c.maxBytes {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	b := c.blobs[a.Hash]
	if b == nil {
		b = &blob{asset: *a, refs: make(map[*entry]struct{}), cost: int64(len(a.Body))}
		b.asset.Header = a.Header.Clone()
		b.elem = c.lru.PushFront(b)
		c.blobs[a.Hash] = b
		c.bytes += b.cost
	} else {
		c.lru.MoveToFront(b.elem)
	}

	e := &entry{url: url, final: a.URL, header: a.Header.Clone(), blob: b}
	index := c.shared
	if sc == shared {
		e.expires = expires
	} else {
		e.session = session
		if index = c.sessions[session]; index == nil {
			index = make(map[string]*entry)
			c.sessions[session] = index
		}
	}
	if old := index[url]; old != nil {
		c.dropEntry(old)
	}
	e.cost = entryOverhead + int64(len(e.session)+len(e.url)+len(e.final)) + headerSize(e.header)
	index[url] = e
	b.refs[e] = struct{}{}
	b.cost += e.cost
	c.bytes += e.cost

	for c.bytes > c.maxBytes {
		c.dropBlob(c.lru.Back().Value.(*blob))
		c.stats.Evictions++
	}
}

// ForgetSession drops the session's index, and the bodies that no other
// index entry leads to: a session's private bodies leave with it.
func (c *Cache) ForgetSession(sessionID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.sessions[sessionID] {
		c.dropEntry(e)
		if len(e.blob.refs) == 0 {
			c.dropBlob(e.blob)
		}
	}
}

// Stats returns the cache's counters.
func (c *Cache) Stats() CacheStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stats
	s.Bytes = c.bytes
	s.Entries = len(c.blobs)
	s.URLs = len(c.shared)
	for _, index := range c.sessions {
		s.URLs += len(index)
	}
	return s
}

// dropEntry removes e from its index and from its blob. The blob stays: an
// agent's page may still name it by hash. c.mu is held.
func (c *Cache) dropEntry(e *entry) {
	index := c.shared
	if e.session != "" {
		index = c.sessions[e.session]
	}
	if index[e.url] == e {
		delete(index, e.url)
		if len(index) == 0 && e.session != "" {
			delete(c.sessions, e.session)
		}
	}
	delete(e.blob.refs, e)
	e.blob.cost -= e.cost
	c.bytes -= e.cost
}

// dropBlob removes b and every index entry that leads to it. c.mu is held.
func (c *Cache) dropBlob(b *blob) {
	for e := range b.refs {
		c.dropEntry(e)
	}
	c.lru.Remove(b.elem)
	delete(c.blobs, b.asset.Hash)
	c.bytes -= b.cost
}

// headerSize approximates the memory of h's names and values.
func headerSize(h http.Header) int64 {
	var n int
	for k, vs := range h {
		n += len(k)
		for _, v := range vs {
			n += len(v)
		}
	}
	return int64(n)
}

// Handler returns the handler that serves stored bodies by hash to agents'
// browsers: GET or HEAD /{hash}, mounted with
// http.StripPrefix("/assets", c.Handler()) on the agent listener, behind
// agent authentication. A hash is a capability: it is only known to those
// who saw the body (or can compute it because they already have the bytes).
//
// A body is served with its Content-Type (application/octet-stream if it had
// none), X-Content-Type-Options: nosniff, Content-Security-Policy: sandbox
// (an HTML or SVG body opened directly runs no script and gets an opaque
// origin), Cache-Control: private, max-age=31536000, immutable (the bytes
// under a hash never change) and an ETag; Range and If-None-Match work. An
// unknown hash is 404, a path that is not / and 64 lower-case hex digits is
// 400, a method other than GET and HEAD is 405.
func (c *Cache) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "only GET and HEAD", http.StatusMethodNotAllowed)
			return
		}
		hash, ok := cutHash(r.URL.Path)
		if !ok {
			http.Error(w, "want /{sha256 in lower-case hex}", http.StatusBadRequest)
			return
		}
		a, ok := c.Get(hash)
		if !ok {
			http.Error(w, "no such asset (the session may have ended)", http.StatusNotFound)
			return
		}
		h := w.Header()
		ct := a.Header.Get("Content-Type")
		if ct == "" {
			ct = "application/octet-stream"
		}
		h.Set("Content-Type", ct)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Content-Security-Policy", "sandbox")
		h.Set("Cache-Control", "private, max-age=31536000, immutable")
		h.Set("ETag", `"`+hash+`"`)
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.Body))
	})
}

// cutHash returns the hash in a path "/{hash}", if it is one.
func cutHash(p string) (string, bool) {
	if len(p) != 1+64 || p[0] != '/' {
		return "", false
	}
	for i := 1; i < len(p); i++ {
		if c := p[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return "", false
		}
	}
	return p[1:], true
}
