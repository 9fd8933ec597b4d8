package contentcoding

import (
	"net/http"
	"testing"
)

// BenchmarkNegotiation measures what the proxy asks per request: Preferred
// and Choose on the Accept-Encoding that browsers send.
func BenchmarkNegotiation(b *testing.B) {
	h := http.Header{"Accept-Encoding": {"gzip, deflate, br, zstd"}}
	b.ReportAllocs()
	for b.Loop() {
		if len(Preferred(h, "zstd", "br", "gzip", "deflate")) != 4 || Choose(h, "zstd", "br", "gzip") != "zstd" {
			b.Fatal("wrong negotiation")
		}
	}
}
