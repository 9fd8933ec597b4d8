package e2e

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// A site's service worker could serve pages from its cache, without the
// visitor script. Through cobrowse, the registration installs the proxy's
// self-removing worker instead: no worker stays registered, and the site's
// own worker script is never fetched from the upstream.
func TestServiceWorkersDoNotSurviveTheProxy(t *testing.T) {
	var workerFetches atomic.Int32
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/sw.js":
			workerFetches.Add(1)
			w.Header().Set("Content-Type", "text/javascript")
			io.WriteString(w, `self.addEventListener('fetch', e => e.respondWith(new Response('<h1>from the worker</h1>', {headers: {'Content-Type': 'text/html'}})));`)
		default:
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			io.WriteString(w, `<!doctype html><html><head><title>PWA</title></head><body><h1>PWA</h1></body></html>`)
		}
	}))
	t.Cleanup(upstream.Close)
	c := startCobrowse(t, "serve", "--upstream", upstream.URL)

	visitor := visitorBrowser(t).WithPanic(func(v any) { t.Helper(); t.Fatalf("visitor browser: %v", v) })
	page := visitor.MustPage("").Timeout(60 * time.Second)
	page.MustNavigate(c.visitorURL).MustWaitLoad()
	left := page.MustEval(`async () => {
		const reg = await navigator.serviceWorker.register('/sw.js');
		const worker = reg.installing || reg.waiting || reg.active;
		if (worker && worker.state !== 'redundant') {
			await new Promise(resolve => {
				worker.addEventListener('statechange', () => { if (worker.state === 'redundant' || worker.state === 'activated') resolve(); });
				setTimeout(resolve, 5000);
			});
		}
		for (let i = 0; i < 50; i++) {
			if ((await navigator.serviceWorker.getRegistrations()).length === 0) return 0;
			await new Promise(r => setTimeout(r, 100));
		}
		return (await navigator.serviceWorker.getRegistrations()).length;
	}`).Int()
	if left != 0 {
		t.Errorf("%d service worker registrations survived", left)
	}
	if n := workerFetches.Load(); n != 0 {
		t.Errorf("the upstream's worker script was fetched %d times through the proxy", n)
	}
	// A reload still comes from the network, through the proxy, with the
	// visitor script.
	page.MustReload().MustWaitLoad()
	if html := page.MustHTML(); !strings.Contains(html, "/__cobrowse/visitor.js") || strings.Contains(html, "from the worker") {
		t.Errorf("after reload the page is not the proxied one:\n%.300s", html)
	}
}
