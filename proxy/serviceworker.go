package proxy

import (
	"io"
	"net/http"
)

// Service workers are disabled on fronted sites. A service worker can answer
// navigations from its cache or build pages itself, and such pages never pass
// through the proxy, so they would reach the visitor without the visitor
// script (and agents would lose the visitor). Injecting into worker-built
// responses cannot be made reliable, so the proxy answers every fetch of a
// worker script (browsers mark them with "Service-Worker: script", on
// registration and on every update check) with selfRemovingWorker, without
// contacting the upstream. A new registration installs a worker that removes
// itself at once; a worker that was installed before cobrowse fronted the
// site is replaced by it at the browser's next update check (at the latest
// a day later, usually at the next navigation). Pages keep working: a site
// without its service worker loads from the network, through the proxy.
const selfRemovingWorker = `// cobrowse: service workers are disabled while this site is fronted by
// cobrowse, so that every page comes through it. This worker removes itself.
self.addEventListener('install', function () { self.skipWaiting(); });
self.addEventListener('activate', function (event) {
  event.waitUntil(self.registration.unregister());
});
`

// serveSelfRemovingWorker answers r with selfRemovingWorker and reports true
// if r fetches a service worker script; otherwise it does nothing.
func serveSelfRemovingWorker(w http.ResponseWriter, r *http.Request) bool {
	if headerValue(r.Header, "Service-Worker") != "script" {
		return false
	}
	h := w.Header()
	h.Set("Content-Type", "text/javascript; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	io.WriteString(w, selfRemovingWorker)
	return true
}
