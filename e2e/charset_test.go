package e2e

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// A page whose HTTP Content-Type names no charset gets its encoding from a
// <meta> declaration, which browsers look for only so far into the page.
// The snippet the proxy inserts must not push a declaration out of sight:
// Chromium decodes each page through the proxy as it decodes it direct.
// The text is windows-1251 Cyrillic under a windows-1252 declaration, so
// that a lost declaration shows (Chromium then guesses windows-1251).
func TestPagesKeepTheirEncoding(t *testing.T) {
	const text = "\xcf\xf0\xe8\xe2\xe5\xf2 \xec\xe8\xf0" // "Привет мир" in windows-1251
	tail := "<p id=t>" + text + "</p></body></html>"
	// padTo pads head with text so that tail ends at byte end.
	padTo := func(head, tail string, end int) string {
		return head + strings.Repeat("x", end-len(head)-len(tail)) + tail
	}
	pages := map[string]string{
		// Chromium stops looking at byte 1024 once the head is over.
		"/in-body":    padTo("<html><body><p>", "</p><meta charset=windows-1252>", 1000) + tail,
		"/in-head":    padTo("<html><head><title>", "</title><meta charset=windows-1252>", 1000) + "</head><body>" + tail,
		"/first":      "<!doctype html><html><head><meta name=viewport content=width=device-width><meta charset=windows-1252><title>t</title></head><body>" + tail,
		"/http-equiv": padTo("<html><head><link rel=icon href=data:,>", `<meta http-equiv=Content-Type content="text/html; charset=windows-1252">`, 1010) + "</head><body>" + tail,
	}
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		page, ok := pages[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html")
		w.Write([]byte(page))
	}))
	t.Cleanup(upstream.Close)
	c := startCobrowse(t, "serve", "--upstream", upstream.URL)

	visitor := visitorBrowser(t).WithPanic(func(v any) { t.Helper(); t.Fatalf("visitor browser: %v", v) })
	page := visitor.MustPage("").Timeout(60 * time.Second)
	decoded := func(url string) string {
		page.MustNavigate(url).MustWaitLoad()
		return page.MustEval(`() => document.characterSet + ": " + document.getElementById('t').textContent`).Str()
	}
	for path := range pages {
		direct := decoded(upstream.URL + path)
		proxied := decoded(c.visitorURL + strings.TrimPrefix(path, "/"))
		if !strings.HasPrefix(direct, "windows-1252: ") {
			t.Errorf("%s direct: %q; the test expects Chromium to honour the declaration", path, direct)
		}
		if proxied != direct {
			t.Errorf("%s through the proxy decodes as %q, direct as %q", path, proxied, direct)
		}
		if html := page.MustHTML(); !strings.Contains(html, "/__cobrowse/visitor.js") {
			t.Errorf("%s through the proxy has no visitor script", path)
		}
	}
}
