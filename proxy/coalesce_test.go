package proxy

import (
	"context"
	"io"
	"net/http"
	"testing"
	"time"
)

// TestProxySendsHeadersOfAPageWhoseBodyIsLate checks that the headers of a
// rewritten page reach the client while the upstream has sent them but none
// of the body: the coalescing writer holds a headers-only flush for its
// window at most (coalesce.go), not until the first body bytes.
func TestProxySendsHeadersOfAPageWhoseBodyIsLate(t *testing.T) {
	release := make(chan struct{})
	proxyURL, _ := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusOK)
		http.NewResponseController(w).Flush()
		select {
		case <-release:
			io.WriteString(w, "<!DOCTYPE html><title>Late</title>")
		case <-r.Context().Done():
		}
	}), Config{})
	// The deadline only turns a proxy that holds the headers into a
	// failure instead of a hung test.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp := open(t, ctx, proxyURL, "")
	defer resp.Body.Close()
	close(release)
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if want := "<!DOCTYPE html>" + snippet + "<title>Late</title>"; string(body) != want {
		t.Errorf("body %q, want %q", body, want)
	}
}
