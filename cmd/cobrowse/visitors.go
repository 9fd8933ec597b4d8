package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/cobrowse/cobrowse/session"
	"github.com/cobrowse/cobrowse/webhook"
)

// visitorLabels are the flags that name, for the dashboard, where a
// visitor's label comes from: a cookie of the fronted site, or a response
// header it sends (e.g. the signed-in user's id). Never a secret: agents
// see it.
type visitorLabels struct {
	cookie string
	header string
}

func (l *visitorLabels) register(fs *flag.FlagSet) {
	fs.StringVar(&l.cookie, "visitor-label-cookie", "", "`name` of a cookie of the fronted site whose value labels the visitor on the dashboard (e.g. a user id; never a session token: agents see it)")
	fs.StringVar(&l.header, "visitor-label-header", "", "`name` of a response header of the fronted site whose value labels the visitor on the dashboard (e.g. X-User-Id)")
}

// ownPrefix is the path prefix the visitor listener keeps for cobrowse's
// own handlers (visitorScriptPath, session.VisitorPath,
// policies.ClientPath); the fronted site never sees a request under it.
const ownPrefix = "/__cobrowse/"

// visitorRoutes returns the visitor listener's handler. A request whose path
// as received (r.URL.Path: percent-decoded, not cleaned) starts with
// ownPrefix goes to own, and so does one with no path at all (a forward
// proxy's CONNECT host:port, which own answers 404). Every other request goes
// to site as it came, in any method, its path, escaping and query untouched,
// as a fronting proxy must (like nginx's proxy_pass without a URI):
// /img//https://cdn.example/x.png, /a/../b and /a%2Fb are the upstream's
// to interpret, not ours to clean or redirect.
//
// Consequences of testing the path as sent:
//   - browsers resolve dot segments before sending, so what a page asks
//     for under ownPrefix reaches own as asked;
//   - own may be an http.ServeMux: its cleaning is harmless there
//     (/__cobrowse/../x gets a redirect to /x, which then goes to site);
//   - a path that becomes /__cobrowse/... only once cleaned
//     (/x/../__cobrowse/ws, //__cobrowse/ws) is the site's like any other,
//     for the upstream to decide; it never reaches own;
//   - a path that decodes into ownPrefix (/%5F%5Fcobrowse/ws,
//     /__cobrowse%2Fws) is own's: the upstream never sees one.
//
// No path picks the host: site forwards to its configured upstream only.
func visitorRoutes(own, site http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/") || strings.HasPrefix(r.URL.Path, ownPrefix) {
			own.ServeHTTP(w, r)
			return
		}
		site.ServeHTTP(w, r)
	})
}

// frontVisitors wraps the fronting handler with what cobrowse learns from
// each request of a visitor's browser: its session (the visitor cookie is
// set on the very first response, since the page and its images come
// before the visitor script's socket), the Cookie header the asset fetcher
// replays as that visitor, and the visitor's label.
func frontVisitors(site http.Handler, visitors *session.VisitorHandler, assets *assetService, labels visitorLabels, hub *session.Hub) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := visitors.Identify(w, r)
		assets.RememberCookie(id, r.Host, r.Header.Get("Cookie"))
		if labels.cookie != "" {
			if c, err := r.Cookie(labels.cookie); err == nil && c.Value != "" {
				hub.SetLabel(id, c.Value)
			}
		}
		if labels.header != "" {
			w = &headerWatcher{ResponseWriter: w, name: labels.header, found: func(v string) { hub.SetLabel(id, v) }}
		}
		site.ServeHTTP(w, r)
	})
}

// headerWatcher passes a response through and reports the value of one of
// its headers when the headers are written.
type headerWatcher struct {
	http.ResponseWriter
	name    string
	found   func(string)
	written bool
}

func (h *headerWatcher) WriteHeader(code int) {
	if !h.written {
		h.written = true
		if v := h.Header().Get(h.name); v != "" {
			h.found(v)
		}
	}
	h.ResponseWriter.WriteHeader(code)
}

func (h *headerWatcher) Write(b []byte) (int, error) {
	if !h.written {
		h.WriteHeader(http.StatusOK)
	}
	return h.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach Flush and Hijack (streamed
// pages, WebSocket upgrades).
func (h *headerWatcher) Unwrap() http.ResponseWriter { return h.ResponseWriter }

// webhookOptions are the flags of the session webhook.
type webhookOptions struct {
	url    string
	secret string
}

func (o *webhookOptions) register(fs *flag.FlagSet) {
	fs.StringVar(&o.url, "webhook", "", "`URL` that gets a signed JSON POST when a session starts or ends (docs/webhooks.md), for helpdesk integrations")
	fs.StringVar(&o.secret, "webhook-secret", os.Getenv("COBROWSE_WEBHOOK_SECRET"), "`secret` (16+ bytes) the webhook deliveries are signed with (HMAC-SHA256; default $COBROWSE_WEBHOOK_SECRET)")
}

// startWebhook returns the webhook sender, or nil without --webhook.
func startWebhook(o webhookOptions, logger *slog.Logger) (*webhook.Sender, error) {
	if o.url == "" {
		return nil, nil
	}
	s, err := webhook.New(webhook.Config{URL: o.url, Secret: []byte(o.secret), Logger: logger.With("component", "webhook")})
	if err != nil {
		return nil, fmt.Errorf("--webhook: %w", err)
	}
	return s, nil
}

// sessionEvents passes the hub's session.started and session.ended records
// to the webhook (nil: none), with their fields.
func sessionEvents(hook *webhook.Sender) func(event string, fields ...any) {
	return func(event string, fields ...any) {
		if hook == nil || !strings.HasPrefix(event, "session.") {
			return
		}
		e := webhook.Event{Event: event, At: time.Now().UTC(), Fields: map[string]any{}}
		for i := 0; i+1 < len(fields); i += 2 {
			key, _ := fields[i].(string)
			if key == "session" {
				e.Session, _ = fields[i+1].(string)
			} else {
				e.Fields[key] = fields[i+1]
			}
		}
		hook.Send(e)
	}
}

// closeWebhook gives queued deliveries a moment on the way out.
func closeWebhook(hook *webhook.Sender) {
	if hook == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	hook.Close(ctx)
}
