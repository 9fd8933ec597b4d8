package viewer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/cobrowse/cobrowse/assets"
	"github.com/cobrowse/cobrowse/rewrite"
)

// AssetSource fetches, on the server, the subresources a session's page
// names, so that an agent's browser in DOM mode never contacts the
// visitor's site or any other origin (docs/assets.md). cobrowse serve
// gives an assets.Fetcher with the visitor's remembered cookies.
type AssetSource interface {
	// Asset answers req, a GET, as the session's visitor would have got it.
	// The viewer fills URL, PageURL, Header and SessionID; the source adds
	// the visitor's Cookie. An error wraps assets.ErrNotAllowed for a URL
	// the rules refuse.
	Asset(ctx context.Context, req assets.Request) (*assets.Asset, error)
}

// assetMaxAge is how long an agent's browser may keep an asset it got from
// the asset route: long enough for a page's repeated images, short enough
// that a visitor's changed avatar shows soon.
const assetMaxAge = 5 * time.Minute

// assetRequestHeaders are the agent's request headers the source may pass
// on: what the browser accepts, for content negotiation. Never its
// Cookie or Authorization, which are the agent's credentials here.
var assetRequestHeaders = []string{"Accept", "Accept-Language", "User-Agent"}

// assetPath is the asset route for an absolute URL of a session's page.
// The fragment stays a fragment of the route (an SVG sprite's #icon).
func assetPath(sessionID string, u *url.URL) string {
	frag := u.EscapedFragment()
	v := *u
	v.Fragment, v.RawFragment = "", ""
	p := "/api/sessions/" + url.PathEscape(sessionID) + "/asset?url=" + url.QueryEscape(v.String())
	if frag != "" {
		p += "#" + frag
	}
	return p
}

// asset serves GET /api/sessions/{id}/asset?url=URL: the resource at URL as
// the session's visitor gets it, fetched by the server (docs/api.md).
// Stylesheets come back with their url()s and @imports pointing at this
// route too.
func (s *Server) asset(w http.ResponseWriter, r *http.Request) error {
	sess, err := s.hub.Lookup(r.PathValue("id"))
	if err != nil {
		return err
	}
	raw := r.URL.Query().Get("url")
	target, err := url.Parse(raw)
	if err != nil || (target.Scheme != "http" && target.Scheme != "https") || target.Host == "" {
		writeError(w, http.StatusBadRequest, "url must be an absolute http or https URL, encoded as a query parameter: ?url=https%3A%2F%2Fshop.example%2Flogo.png")
		return nil
	}
	if s.assets == nil {
		writeError(w, http.StatusServiceUnavailable, "this server fetches no assets for agents")
		return nil
	}
	// The fetch carries the visitor's cookies: not before agents may see
	// the session at all.
	if !s.hub.Viewable(sess) {
		writeError(w, http.StatusForbidden, fmt.Sprintf("the visitor has not accepted this session (consent: %s); its assets load once the visitor does", sess.Consent))
		return nil
	}
	header := http.Header{}
	for _, k := range assetRequestHeaders {
		if v := r.Header.Values(k); len(v) > 0 {
			header[k] = v
		}
	}
	a, err := s.assets.Asset(r.Context(), assets.Request{
		URL:       raw,
		PageURL:   sess.URL,
		Header:    header,
		SessionID: sess.ID,
	})
	switch {
	case errors.Is(err, assets.ErrNotAllowed):
		writeError(w, http.StatusForbidden, err.Error()+" (the server's --asset-allow, --asset-deny and --asset-allow-private decide what it fetches)")
		return nil
	case r.Context().Err() != nil:
		return nil // the agent's browser no longer wants it
	case err != nil:
		s.logFor(r).Info("asset fetch for an agent failed", "session", sess.ID, "err", err)
		writeError(w, http.StatusBadGateway, "fetching the asset failed: "+err.Error())
		return nil
	case a.Status < 200 || a.Status > 299:
		status := a.Status
		if status < 400 || status > 599 {
			status = http.StatusBadGateway
		}
		writeError(w, status, fmt.Sprintf("the site answered %d %s", a.Status, http.StatusText(a.Status)))
		return nil
	}
	contentType := a.Header.Get("Content-Type")
	mediaType, _, _ := mime.ParseMediaType(contentType)
	final, err := url.Parse(a.URL)
	if err != nil { // the fetcher returns the URL it fetched, which parsed
		return fmt.Errorf("asset fetched from an unparsable URL: %w", err)
	}
	if !isSubresource(mediaType, final.Path) {
		writeError(w, http.StatusForbidden, fmt.Sprintf("the answer is of type %q, not a stylesheet, image, font or media file: this route serves only those, because it fetches with the visitor's cookies", contentType))
		return nil
	}
	body := a.Body
	if mediaType == "text/css" {
		body = rewrite.AppendCSSURLs(make([]byte, 0, len(body)+len(body)/8), body, func(ref string) (string, bool) {
			u, err := final.Parse(cleanURLRef(ref))
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return "", false
			}
			return assetPath(sess.ID, u), true
		})
	}
	h := w.Header()
	if contentType == "" {
		contentType = "application/octet-stream"
	}
	h.Set("Content-Type", contentType)
	h.Set("X-Content-Type-Options", "nosniff")
	// An SVG or other document opened from here runs no script, in an
	// opaque origin.
	h.Set("Content-Security-Policy", "sandbox")
	h.Set("Cache-Control", fmt.Sprintf("private, max-age=%d", int(assetMaxAge.Seconds())))
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body)) // Range requests, for media
	return nil
}

// isSubresource reports whether a response of mediaType (lower case, no
// parameters) for a URL path may be served to an agent's page: a
// stylesheet, image, font, audio or video, or a body without a meaningful
// type (none, or application/octet-stream as servers send fonts they do
// not know) whose name says it is a font, an image or media. The route
// fetches with the visitor's cookies: a page, an API answer or a
// download of the visitor's would show an agent what no policy redacted.
func isSubresource(mediaType, urlPath string) bool {
	top, sub, _ := strings.Cut(mediaType, "/")
	switch {
	case mediaType == "text/css", mediaType == "text/vtt":
		return true
	case top == "image", top == "font", top == "audio", top == "video":
		return true
	case top == "application" && (strings.Contains(sub, "font") || sub == "vnd.ms-fontobject" || sub == "ogg"):
		return true
	case mediaType == "" || mediaType == "application/octet-stream" || mediaType == "binary/octet-stream":
		switch strings.ToLower(path.Ext(urlPath)) {
		case ".woff2", ".woff", ".ttf", ".otf", ".eot",
			".png", ".jpg", ".jpeg", ".gif", ".webp", ".avif", ".ico", ".bmp",
			".mp4", ".webm", ".ogg", ".ogv", ".mp3", ".m4a", ".wav", ".vtt":
			return true
		}
	}
	return false
}

// cleanURLRef removes what a browser's URL parser removes from a URL
// before parsing it: leading and trailing spaces and C0 controls, and tabs
// and newlines anywhere.
func cleanURLRef(ref string) string {
	ref = strings.TrimFunc(ref, func(r rune) bool { return r <= ' ' })
	if strings.ContainsAny(ref, "\t\n\r") {
		ref = strings.NewReplacer("\t", "", "\n", "", "\r", "").Replace(ref)
	}
	return ref
}
