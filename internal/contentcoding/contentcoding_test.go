package contentcoding

import (
	"net/http"
	"testing"
)

func TestAcceptsGzip(t *testing.T) {
	tests := []struct {
		header string
		want   bool
	}{
		{"", false},
		{"gzip", true},
		{"GZIP", true},
		{" gzip ", true},
		{"x-gzip", true},
		{"deflate, br", false},
		{"deflate, gzip", true},
		{"gzip;q=0.5", true},
		{"gzip ; q = 0.5", true},
		{"gzip; q=0.001", true},
		{"gzip;q=0", false},
		{"gzip;q=0.", false},
		{"gzip;q=0.00", false},
		{"gzip; Q=0", false},
		{"gzip;q=zero", false},
		{"gzip;q=-1", false},
		{"gzip;q=2", false},
		{"gzip;level=9", true},
		{"gzip;level=9;q=0", false},
		{"identity;q=0, gzip", true},
		{"*", true},
		{"*;q=0", false},
		{"*, gzip;q=0", false},
		{"gzip;q=0, *", false},
		{"identity;q=1, *;q=0.5", true},
		{"br;q=1.0, gzip;q=0.8", true},
	}
	for _, tt := range tests {
		h := http.Header{}
		if tt.header != "" {
			h.Set("Accept-Encoding", tt.header)
		}
		if got := Accepts(h, "gzip"); got != tt.want {
			t.Errorf("Accepts(%q, gzip) = %v, want %v", tt.header, got, tt.want)
		}
	}
}

func TestAcceptsReadsEveryHeaderLine(t *testing.T) {
	h := http.Header{"Accept-Encoding": {"br", "gzip;q=0.5"}}
	if !Accepts(h, "gzip") || !Accepts(h, "br") || Accepts(h, "zstd") {
		t.Fatalf("Accepts misread %q", h.Values("Accept-Encoding"))
	}
}
