package e2e

import (
	"fmt"
	"image/color"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// In DOM mode the agent's browser replays the visitor's page itself, but
// loads every image, font, stylesheet and media file through the agent
// listener's asset route, which the server answers as the visitor would
// get it (with the visitor's cookies on the visitor's site): a login-gated
// image shows, a font whose CDN allows only the site's origin applies, an
// external stylesheet's relative URLs work, and the agent's browser
// contacts nothing but the agent listener, in DOM mode and in Rendered
// mode.
func TestDOMModeLoadsAssetsThroughTheAgentListener(t *testing.T) {
	font := anyFont(t)
	stripe := solidPNG(8, 8, color.RGBA{250, 220, 0, 255})
	cdnFetches := &serverSideFetches{}
	// A second origin: the font (for the site's own origin only, as CDNs
	// are set up) and a stylesheet that rrweb cannot inline (another
	// origin, no CORS), whose image URL is relative to it.
	cdn := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cdnFetches.note(r)
		switch r.URL.Path {
		case "/probe.ttf":
			if o := r.Header.Get("Origin"); o != "" && !strings.HasPrefix(o, "http://127.0.0.1:") {
				http.Error(w, "not for you", http.StatusForbidden)
				return
			}
			w.Header().Set("Content-Type", "font/ttf")
			w.Header().Set("Access-Control-Allow-Origin", r.Header.Get("Origin"))
			w.Write(font)
		case "/theme.css":
			w.Header().Set("Content-Type", "text/css")
			fmt.Fprint(w, `.probe { background: url(img/stripe.png) repeat-x left bottom / 8px 12px; }`)
		case "/img/stripe.png":
			w.Header().Set("Content-Type", "image/png")
			w.Write(stripe)
		default:
			http.NotFound(w, r)
		}
	}))
	defer cdn.Close()
	intranet, intranetFetches := intranetServer(t)
	site, siteFetches := gatedSite(t, cdn.URL+"/probe.ttf", intranet.URL+"/secret.png",
		`<link rel="stylesheet" href="`+cdn.URL+`/theme.css">`)

	c := startCobrowse(t, "serve", "--upstream", site.URL, "--render",
		"--asset-allow-private", strings.TrimPrefix(cdn.URL, "http://"))
	visitor := visitorBrowser(t).WithPanic(func(v any) { t.Helper(); t.Fatalf("visitor browser: %v", v) })
	page := visitor.MustPage("").Timeout(60 * time.Second)
	// Small enough for the agent's view to show it unscaled.
	page.MustSetViewport(960, 600, 1, false)
	page.MustNavigate(c.visitorURL + "login").MustWaitLoad()
	page.MustElement("#badge")
	page.MustWait(`() => document.fonts.check('64px Probe') && document.getElementById('badge').naturalWidth > 0`)
	id := waitForSession(t, c)
	// Before an agent joins, which the visitor's page then shows.
	seen := page.MustScreenshot()
	saveArtifact(t, "domassets-visitor.png", seen)

	// Every request the agent's browser makes, from the sign-in on.
	agent := agentBrowser(t)
	requests := &frameLog{}
	go func() {
		for ev, err := range chromedp.Events(agent, network.RequestWillBeSent) {
			if err != nil {
				return
			}
			requests.add(ev.Request.URL)
		}
	}()
	if err := chromedp.Do(agent,
		chromedp.Navigate(c.agentURL+"/login?token="+c.token),
		chromedp.Navigate(c.agentURL+"/sessions/"+id),
		chromedp.WaitVisible(chromedp.CSS(`#stage iframe`)),
	); err != nil {
		t.Fatalf("agent opening the session: %v", err)
	}
	eventually(t, 15*time.Second, "the agent's DOM view shows the gated image, the font and the external stylesheet", func() string {
		state, err := inReplay[map[string]any](agent, `doc => ({
			badge: doc.getElementById('badge').naturalWidth,
			font: [...doc.fonts].some(f => f.family.replace(/["']/g, '') === 'Probe' && f.status === 'loaded') && doc.fonts.check('64px Probe'),
			stripe: doc.defaultView.getComputedStyle(doc.querySelector('.probe')).backgroundImage,
		})`)
		if err != nil || state["badge"] != float64(200) || state["font"] != true || !strings.Contains(fmt.Sprint(state["stripe"]), "/asset?url=") {
			return fmt.Sprintf("%v (%v)", state, err)
		}
		return ""
	})

	// The agent sees what the visitor saw.
	sameView(t, "the agent's DOM view", "domassets-agent-dom.png", seen, func() ([]byte, error) {
		return chromedp.Run(agent, chromedp.Screenshot(chromedp.CSS(`#stage iframe`)))
	})

	// The server fetched them: the image with the visitor's login, the
	// font, the stylesheet and the image it names; never the intranet.
	if got := siteFetches.list(); !slices.Contains(got, "/private/badge.png") {
		t.Errorf("the site served %q to the server; want the image behind the login", got)
	}
	for _, p := range []string{"/probe.ttf", "/theme.css", "/img/stripe.png"} {
		if got := cdnFetches.list(); !slices.Contains(got, p) {
			t.Errorf("the second origin served %q to the server; want %s", got, p)
		}
	}
	if got := intranetFetches.list(); len(got) > 0 {
		t.Errorf("the server fetched %q from a loopback server that is not allowed", got)
	}
	// ... for the agent's browser, which asked the asset route for them.
	for _, u := range []string{c.visitorURL + "private/badge.png", cdn.URL + "/probe.ttf", cdn.URL + "/theme.css", cdn.URL + "/img/stripe.png"} {
		route := "/api/sessions/" + id + "/asset?url=" + url.QueryEscape(u)
		if !slices.ContainsFunc(requests.list(), func(r string) bool { return strings.HasSuffix(r, route) }) {
			t.Errorf("the agent's browser never asked for %s", route)
		}
	}

	// Rendered mode: frames come, and still nothing but the agent listener.
	switchToRendered(t, agent)

	all := requests.list()
	for _, r := range all {
		if !strings.HasPrefix(r, c.agentURL+"/") && !strings.HasPrefix(r, "data:") && !strings.HasPrefix(r, "blob:") {
			t.Errorf("the agent's browser requested %s, which is not on the agent listener %s", r, c.agentURL)
		}
	}
	t.Logf("the agent's browser made %d requests, all to the agent listener (or data:/blob:)", len(all))
}
