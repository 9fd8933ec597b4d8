package proxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func named(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, name) })
}

func TestRouterSendsEachHostToItsSite(t *testing.T) {
	routes := map[string]http.Handler{"shop.example.com": named("shop"), "Docs.Example.com": named("docs")}
	tests := []struct {
		name     string
		fallback http.Handler
		host     string
		status   int
		body     string
	}{
		{"exact host", nil, "shop.example.com", 200, "shop"},
		{"host with port", nil, "shop.example.com:8443", 200, "shop"},
		{"case and trailing dot", nil, "SHOP.example.com.", 200, "shop"},
		{"route configured in upper case", nil, "docs.example.com", 200, "docs"},
		{"unknown host, no fallback", nil, "evil.example", http.StatusMisdirectedRequest, "No site is configured for evil.example"},
		{"unknown host is escaped", nil, "<b>x", http.StatusMisdirectedRequest, "&lt;b&gt;x"},
		{"unknown host, fallback", named("default"), "other.example", 200, "default"},
		{"IPv6 literal", named("default"), "[::1]:8080", 200, "default"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rt, err := NewRouter(routes, tc.fallback)
			if err != nil {
				t.Fatal(err)
			}
			req := httptest.NewRequest("GET", "/", nil)
			req.Host = tc.host
			rec := httptest.NewRecorder()
			rt.ServeHTTP(rec, req)
			if rec.Code != tc.status || !strings.Contains(rec.Body.String(), tc.body) {
				t.Fatalf("got %d %q, want %d containing %q", rec.Code, rec.Body.String(), tc.status, tc.body)
			}
		})
	}
}

func TestNewRouterRejectsBadRoutes(t *testing.T) {
	tests := []struct {
		name   string
		routes map[string]http.Handler
		want   string
	}{
		{"with scheme", map[string]http.Handler{"https://shop.example.com": named("x")}, "without scheme or port"},
		{"with port", map[string]http.Handler{"shop.example.com:443": named("x")}, "without scheme or port"},
		{"empty", map[string]http.Handler{"": named("x")}, "give a host name"},
		{"twice", map[string]http.Handler{"shop.example.com": named("x"), "SHOP.example.com": named("y")}, "configured twice"},
		{"nothing", nil, "nothing to front"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := NewRouter(tc.routes, nil); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}
