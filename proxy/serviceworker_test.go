package proxy

import (
	"net/http/httptest"
	"strings"
	"testing"
)

func TestServiceWorkerScriptsAreReplaced(t *testing.T) {
	req := httptest.NewRequest("GET", "/sw.js", nil)
	req.Header.Set("Service-Worker", "script")
	rec := httptest.NewRecorder()
	if !serveSelfRemovingWorker(rec, req) {
		t.Fatal("a service worker script fetch was not answered")
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/javascript") {
		t.Errorf("Content-Type %q, want JavaScript (browsers refuse other types for workers)", ct)
	}
	if rec.Header().Get("Cache-Control") != "no-store" {
		t.Error("the replacement worker may be cached: update checks would not see it")
	}
	if !strings.Contains(rec.Body.String(), "registration.unregister()") {
		t.Errorf("body %q does not unregister the worker", rec.Body.String())
	}

	plain := httptest.NewRequest("GET", "/sw.js", nil)
	if serveSelfRemovingWorker(httptest.NewRecorder(), plain) {
		t.Error("an ordinary fetch of the same URL was answered by the replacement")
	}
}
