package session

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"hash"
	"strings"
	"sync"
)

// Identity signs and verifies the visitor's session id, which travels in an
// HttpOnly cookie: a visitor can only write to the session whose id it holds
// a valid signature for, and cannot forge one.
type Identity struct {
	key []byte
	// macs holds HMAC-SHA256 hashes keyed with key, for reuse: every
	// proxied request checks or mints a cookie, and keying a new one cost
	// twice the time and 3.6 times the allocation of a reset.
	macs sync.Pool
}

// MinKeyBytes is the shortest signing key NewIdentity accepts.
const MinKeyBytes = 32

// NewIdentity returns an Identity signing with key. Every node that serves
// the same visitors must use the same key; a new key invalidates every
// visitor cookie (visitors then start new sessions).
func NewIdentity(key []byte) (*Identity, error) {
	if len(key) < MinKeyBytes {
		return nil, fmt.Errorf("session signing key is %d bytes; use at least %d random bytes", len(key), MinKeyBytes)
	}
	return &Identity{key: append([]byte(nil), key...)}, nil
}

// Sign returns the cookie value for a session id: "<id>.<mac>".
func (i *Identity) Sign(id string) string {
	return id + "." + i.mac(id)
}

// Verify returns the session id of a cookie value made by Sign with the same
// key, and false for anything else.
func (i *Identity) Verify(value string) (string, bool) {
	id, mac, ok := strings.Cut(value, ".")
	if !ok || !validID(id) {
		return "", false
	}
	if !hmac.Equal([]byte(mac), []byte(i.mac(id))) {
		return "", false
	}
	return id, true
}

func (i *Identity) mac(id string) string {
	m, ok := i.macs.Get().(hash.Hash)
	if ok {
		m.Reset()
	} else {
		m = hmac.New(sha256.New, i.key)
	}
	defer i.macs.Put(m)
	m.Write([]byte("cobrowse visitor session\x00"))
	m.Write([]byte(id))
	var sum [sha256.Size]byte
	return base64.RawURLEncoding.EncodeToString(m.Sum(sum[:0]))
}

// NewID returns a random, URL-safe identifier (128 bits).
func NewID() string {
	b := make([]byte, 16)
	rand.Read(b) // never returns an error (crypto/rand documents this)
	return base64.RawURLEncoding.EncodeToString(b)
}

// validID reports whether s looks like an id a client may choose: 8 to 64
// characters of the URL-safe base64 alphabet.
func validID(s string) bool {
	if len(s) < 8 || len(s) > 64 {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
