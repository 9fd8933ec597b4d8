package session

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"
	"sync"
	"testing"
)

// TestIdentitySignsWithHMACSHA256 pins the cookie format that every node
// sharing a key must produce alike, "<id>.<base64url(HMAC-SHA256(key,
// "cobrowse visitor session\x00" + id))>", also when Sign reuses its hashes
// from many goroutines at once.
func TestIdentitySignsWithHMACSHA256(t *testing.T) {
	key := []byte(strings.Repeat("k", MinKeyBytes))
	identity, err := NewIdentity(key)
	if err != nil {
		t.Fatal(err)
	}
	want := func(id string) string {
		m := hmac.New(sha256.New, key)
		m.Write([]byte("cobrowse visitor session\x00" + id))
		return id + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for n := range 200 {
				id := fmt.Sprintf("visitor-%d-%d", g, n)
				if got := identity.Sign(id); got != want(id) {
					t.Errorf("Sign(%q) = %q, want %q", id, got, want(id))
					return
				}
				if got, ok := identity.Verify(want(id)); !ok || got != id {
					t.Errorf("Verify(%q) = %q, %v; want %q, true", want(id), got, ok, id)
					return
				}
			}
		})
	}
	wg.Wait()
}
