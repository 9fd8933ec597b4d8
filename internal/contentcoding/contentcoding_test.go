package contentcoding

import (
	"net/http"
	"slices"
	"strings"
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

func TestAcceptsRefusesNaN(t *testing.T) {
	h := http.Header{"Accept-Encoding": {"gzip;q=NaN, *"}}
	if Accepts(h, "gzip") {
		t.Error(`Accepts("gzip;q=NaN, *", gzip) = true, want false`)
	}
}

func TestPreferred(t *testing.T) {
	offered := []string{"br", "zstd", "gzip", "deflate"}
	tests := []struct {
		header string
		want   string
	}{
		{"", ""},
		{"identity", ""},
		{"*;q=0", ""},
		{"gzip", "gzip"},
		{"x-gzip", "gzip"},
		{"gzip, deflate, br, zstd", "br, zstd, gzip, deflate"}, // Chrome: equal weights, our order
		{"gzip, deflate, br", "br, gzip, deflate"},
		{"deflate;q=0.2, gzip;q=0.5, br;q=0.9", "br, gzip, deflate"},
		{"gzip;q=1.0, br;q=0.5", "gzip, br"},
		{"br;q=0, *", "zstd, gzip, deflate"},
		{"*;q=0.5, gzip", "gzip, br, zstd, deflate"},
		{"compress, gzip;q=0", ""},
		{"ZSTD", "zstd"},
	}
	for _, tt := range tests {
		h := http.Header{}
		if tt.header != "" {
			h.Set("Accept-Encoding", tt.header)
		}
		if got := strings.Join(Preferred(h, offered...), ", "); got != tt.want {
			t.Errorf("Preferred(%q) = %q, want %q", tt.header, got, tt.want)
		}
	}
}

func TestChoose(t *testing.T) {
	offered := []string{"br", "zstd", "gzip"}
	tests := []struct {
		header string
		want   string
	}{
		{"", ""},
		{"deflate", ""},
		{"gzip", "gzip"},
		{"x-gzip", "gzip"},
		{"gzip, deflate, br, zstd", "br"},
		{"gzip, deflate", "gzip"},
		{"gzip, zstd", "zstd"},
		{"br;q=0.5, gzip", "gzip"},
		{"br;q=0.5, zstd;q=0.5, gzip;q=0.1", "br"},
		{"*", "br"},
		{"*, br;q=0", "zstd"},
		{"*;q=0", ""},
		{"identity, gzip;q=0.5", ""},           // identity named and preferred
		{"identity;q=0.5, gzip", "gzip"},       // identity named but ranked lower
		{"identity;q=0.5, gzip;q=0.5", "gzip"}, // a tie goes to the coding
		{"*;q=0.9, gzip;q=0.5", "br"},          // "*" does not speak for identity
		{"gzip;q=0", ""},
	}
	for _, tt := range tests {
		h := http.Header{}
		if tt.header != "" {
			h.Set("Accept-Encoding", tt.header)
		}
		if got := Choose(h, offered...); got != tt.want {
			t.Errorf("Choose(%q) = %q, want %q", tt.header, got, tt.want)
		}
	}
}

// FuzzNegotiation checks, for any Accept-Encoding (one or two header
// lines), that the three functions agree with each other: Preferred lists
// exactly the offered codings that Accepts accepts, by decreasing quality
// and in the order of offered among equals; Choose picks Preferred's first,
// unless identity outranks it and Choose picks identity ("").
func FuzzNegotiation(f *testing.F) {
	for _, h := range []string{"", "gzip", "br;q=0.5, gzip", "*;q=0.1, zstd;q=0", "identity, gzip;q=0.5",
		"x-gzip;q=1.0, deflate;q=0.999", "gzip;q=NaN, *", "BR; Q=1, *;q=0"} {
		f.Add(h, "")
		f.Add(h, "zstd;q=0.2")
	}
	offered := []string{"zstd", "br", "gzip", "deflate"}
	f.Fuzz(func(t *testing.T, line1, line2 string) {
		h := http.Header{"Accept-Encoding": {line1}}
		if line2 != "" {
			h.Add("Accept-Encoding", line2)
		}
		lines, accept := h.Values("Accept-Encoding"), parse(h, nil)
		preferred := Preferred(h, offered...)
		var accepted []string
		for _, c := range offered {
			if Accepts(h, c) {
				accepted = append(accepted, c)
			}
		}
		inOffered := slices.Clone(preferred)
		slices.SortFunc(inOffered, func(a, b string) int { return slices.Index(offered, a) - slices.Index(offered, b) })
		if !slices.Equal(inOffered, accepted) {
			t.Fatalf("%q: Preferred = %q, but Accepts accepts %q", lines, preferred, accepted)
		}
		for i := 1; i < len(preferred); i++ {
			prev, next := weigh(accept, preferred[i-1]), weigh(accept, preferred[i])
			if prev < next || prev == next && slices.Index(offered, preferred[i-1]) > slices.Index(offered, preferred[i]) {
				t.Fatalf("%q: Preferred = %q, out of order at %d", lines, preferred, i)
			}
		}
		choice := Choose(h, offered...)
		switch {
		case choice != "" && (len(preferred) == 0 || choice != preferred[0]):
			t.Fatalf("%q: Choose = %q, Preferred = %q", lines, choice, preferred)
		case choice == "" && len(preferred) > 0 && named(accept, "identity") <= weigh(accept, preferred[0]):
			t.Fatalf("%q: Choose = identity, but Preferred = %q and identity does not outrank %s", lines, preferred, preferred[0])
		}
	})
}
