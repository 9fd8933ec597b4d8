package browserpool

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/cobrowse/cobrowse/web"
)

// replayOrigin is where the replay page lives in a renderer's tab. No server
// listens there: the tab's request interception answers it from
// web.Replay(), and a name under .invalid never resolves, so nothing else
// can answer it.
const replayOrigin = "http://cobrowse-replay.invalid"

// replayPageCSP lets the replay page run its own scripts and nothing else;
// the Replayer's iframe inherits it (and is sandboxed without
// allow-scripts besides).
const replayPageCSP = "script-src " + replayOrigin + "/; object-src 'none'; base-uri 'none'; form-action 'none'; connect-src 'none'"

const (
	// maxViewport and maxPixelRatio bound the tab's size in CSS pixels and
	// its device pixel ratio, whatever the visitor claims: they come from
	// the visitor. (A ratio below 1 is drawn at 1.)
	maxViewport   = 4096
	maxPixelRatio = 3
	// maxConcurrentAnswers bounds the subresource requests of one tab that
	// are resolved at once; the others wait, paused in the browser.
	maxConcurrentAnswers = 16
	// ackWait is how long a screencast frame waits for a viewer to take it
	// before it is acknowledged anyway.
	ackWait = time.Second
)

// replayTab is a leased tab that replays one session.
type replayTab struct {
	rd     *rendering
	target *chromedp.Target
	cfg    RenderConfig
	call   time.Duration // the pool's CallTimeout

	// pageKnown is closed when the feed first described the visitor's page:
	// subresource requests wait for it, as they are resolved for the page.
	pageKnown chan struct{}
	knowPage  sync.Once

	mu      sync.Mutex
	screen  visitorScreen // what the tab emulates
	pageURL string        // the visitor's page, as its last Meta event said
}

// visitorScreen is the visitor's viewport in CSS pixels and its device
// pixel ratio.
type visitorScreen struct {
	width, height int64
	pixelRatio    float64
}

// replay replays the session in the lease's tab until the tab is lost, the
// session ends or ctx ends, and returns why it stopped.
func (rd *rendering) replay(ctx context.Context, lease *Lease) error {
	tabCtx, stop := context.WithCancelCause(lease.Context())
	defer stop(nil)
	stopWithParent := context.AfterFunc(ctx, func() { stop(ctx.Err()) })
	defer stopWithParent()

	t := &replayTab{
		rd:     rd,
		target: chromedp.FromContext(tabCtx).Target,
		cfg:    rd.r.cfg,
		call:   rd.r.cfg.Pool.cfg.CallTimeout,

		pageKnown: make(chan struct{}),
	}
	// Subscribe before anything can trigger the events.
	paused := chromedp.Events(tabCtx, fetch.RequestPaused)
	frames := chromedp.Events(tabCtx, page.ScreencastFrame)

	var wg sync.WaitGroup
	wg.Go(func() {
		select {
		case <-lease.Done():
			stop(lease.Err())
		case <-tabCtx.Done():
		}
	})
	wg.Go(func() { t.answerRequests(tabCtx, paused) })
	wg.Go(func() { t.forwardFrames(tabCtx, frames) })
	rd.setTab(t)
	err := t.play(tabCtx)
	rd.setTab(nil)
	select {
	case <-lease.Done():
		// The tab's context ends as soon as its browser's connection does,
		// often before the pool has said why: its reason tells more.
		err = lease.Err()
	default:
	}
	stop(err)
	wg.Wait()
	return context.Cause(tabCtx)
}

// callTab sends one command to the tab within the pool's CallTimeout.
func callTab[P, R any](ctx context.Context, t *replayTab, cmd cdp.Command[P, R], params P) (R, error) {
	ctx, cancel := context.WithTimeout(ctx, t.call)
	defer cancel()
	return cdp.Call(ctx, t.target, cmd, params)
}

// play opens the replay page, then feeds it the session's messages.
func (t *replayTab) play(ctx context.Context) error {
	if _, err := callTab(ctx, t, fetch.Enable, fetch.EnableParams{Patterns: []*fetch.RequestPattern{{URLPattern: "*"}}}); err != nil {
		return fmt.Errorf("intercepting the tab's requests: %w", err)
	}
	// Headless Chromium stops painting a tab that it thinks is in the
	// background, and several tabs share a browser.
	if _, err := callTab(ctx, t, emulation.SetFocusEmulationEnabled, emulation.SetFocusEmulationEnabledParams{Enabled: true}); err != nil {
		return fmt.Errorf("emulating focus: %w", err)
	}
	nav, err := callTab(ctx, t, page.Navigate, page.NavigateParams{URL: replayOrigin + "/replay.html"})
	if err == nil && nav.ErrorText != "" {
		err = errors.New(nav.ErrorText)
	}
	if err != nil {
		return fmt.Errorf("opening the replay page: %w", err)
	}
	if err := t.waitForReplayPage(ctx); err != nil {
		return err
	}

	feed, err := t.cfg.Open(t.rd.id)
	if err != nil {
		return err
	}
	defer feed.Close()
	casting := false
	for {
		msgs, err := feed.Next(ctx)
		if err != nil {
			return err
		}
		for _, msg := range msgs {
			if err := t.receive(ctx, msg); err != nil {
				return err
			}
		}
		if !casting {
			_, err := callTab(ctx, t, page.StartScreencast, page.StartScreencastParams{
				Format:            page.StartScreencastFormatJpeg,
				Quality:           new(int64(t.cfg.JPEGQuality)),
				MaxWidth:          int64(t.cfg.MaxWidth),
				MaxHeight:         int64(t.cfg.MaxHeight),
				EveryNthFrame:     1,
				MaxFramesInFlight: 1,
			})
			if err != nil {
				return fmt.Errorf("starting the screencast: %w", err)
			}
			casting = true
		}
	}
}

// waitForReplayPage waits until the replay page's script has loaded.
func (t *replayTab) waitForReplayPage(ctx context.Context) error {
	deadline := time.Now().Add(t.call)
	for {
		res, err := callTab(ctx, t, runtime.Evaluate, runtime.EvaluateParams{
			Expression:    "typeof cobrowseReceive === 'function'",
			ReturnByValue: new(true),
		})
		if err == nil && res.Result != nil && string(res.Result.Value) == "true" {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the replay page did not load within %s (last error: %v)", t.call, err)
		}
		sleep(ctx, 20*time.Millisecond)
	}
}

// receive hands one hub message to the replay page, notes the page's URL and
// sizes the tab to the visitor's viewport and pixel ratio when the message
// changed them. The message is JSON that
// the hub wrote (every event in it was parsed and re-encoded on the way in),
// so as a JavaScript expression it is a literal: data, not code.
func (t *replayTab) receive(ctx context.Context, msg []byte) error {
	res, err := callTab(ctx, t, runtime.Evaluate, runtime.EvaluateParams{
		Expression:    "cobrowseReceive(" + string(msg) + ")",
		ReturnByValue: new(true),
	})
	if err != nil {
		return fmt.Errorf("replaying a message: %w", err)
	}
	if res.ExceptionDetails != nil {
		// The Replayer threw on this message: the view may be off until the
		// next snapshot, but the tab is fine.
		d := res.ExceptionDetails
		if d.Exception != nil {
			d.Text += " " + d.Exception.Description
		}
		t.rd.log.Warn("the replay page threw on a message", "err", d.Text)
		return nil
	}
	var page *struct {
		Href          string
		Width, Height int64
		PixelRatio    float64
	}
	if res.Result != nil && len(res.Result.Value) > 0 {
		if err := json.Unmarshal(res.Result.Value, &page); err != nil {
			return fmt.Errorf("reading the replay page's description of the visitor's page: %w", err)
		}
	}
	if page == nil {
		return nil
	}
	screen := visitorScreen{
		width:      min(max(page.Width, 1), maxViewport),
		height:     min(max(page.Height, 1), maxViewport),
		pixelRatio: min(max(page.PixelRatio, 1), maxPixelRatio),
	}
	t.mu.Lock()
	changed := screen != t.screen
	t.screen = screen
	t.pageURL = page.Href
	t.mu.Unlock()
	t.knowPage.Do(func() { close(t.pageKnown) })
	if !changed {
		return nil
	}
	_, err = callTab(ctx, t, emulation.SetDeviceMetricsOverride, emulation.SetDeviceMetricsOverrideParams{
		Width:             screen.width,
		Height:            screen.height,
		DeviceScaleFactor: screen.pixelRatio,
	})
	if err != nil {
		return fmt.Errorf("sizing the tab to the visitor's viewport: %w", err)
	}
	return nil
}

// forwardFrames passes each screencast frame on to the viewers and then
// acknowledges it, which lets the browser send the next one: at most one
// frame is in flight, and the browser paints no faster than the fastest
// viewer takes frames (or one per ackWait when nobody does).
func (t *replayTab) forwardFrames(ctx context.Context, frames func(func(page.EventScreencastFrame, error) bool)) {
	for ev, err := range frames {
		if err != nil {
			return
		}
		select { // forget a take of an earlier frame
		case <-t.rd.taken:
		default:
		}
		f := &Frame{JPEG: ev.Data, At: time.Now()}
		if m := ev.Metadata; m != nil {
			f.Width, f.Height = int(m.DeviceWidth), int(m.DeviceHeight)
		}
		t.rd.publish(f)
		wait := time.NewTimer(ackWait)
		select {
		case <-t.rd.taken:
		case <-wait.C:
		case <-ctx.Done():
		}
		wait.Stop()
		if ctx.Err() != nil {
			return
		}
		if _, err := callTab(ctx, t, page.ScreencastFrameAck, page.ScreencastFrameAckParams{SessionID: ev.SessionID}); err != nil {
			return
		}
	}
}

// screenshot captures the tab as a PNG.
func (t *replayTab) screenshot(ctx context.Context) ([]byte, error) {
	res, err := callTab(ctx, t, page.CaptureScreenshot, page.CaptureScreenshotParams{Format: page.CaptureScreenshotFormatPng})
	if err != nil {
		return nil, fmt.Errorf("capturing the rendered view: %w", err)
	}
	return res.Data, nil
}

// document returns the replayed page's document as HTML.
func (t *replayTab) document(ctx context.Context) (string, error) {
	res, err := callTab(ctx, t, runtime.Evaluate, runtime.EvaluateParams{
		Expression:    "(() => { const f = document.querySelector('#stage iframe'); return f && f.contentDocument ? f.contentDocument.documentElement.outerHTML : ''; })()",
		ReturnByValue: new(true),
	})
	if err != nil {
		return "", fmt.Errorf("reading the rendered view's document: %w", err)
	}
	var html string
	if res.Result != nil && len(res.Result.Value) > 0 {
		if err := json.Unmarshal(res.Result.Value, &html); err != nil {
			return "", fmt.Errorf("reading the rendered view's document: %w", err)
		}
	}
	return html, nil
}

// answerRequests answers every request the tab makes. Each one is answered
// (fulfilled or failed), on its own goroutine, at most
// maxConcurrentAnswers at a time; the iteration ends with ctx.
func (t *replayTab) answerRequests(ctx context.Context, paused func(func(fetch.EventRequestPaused, error) bool)) {
	slots := make(chan struct{}, maxConcurrentAnswers)
	var wg sync.WaitGroup
	defer wg.Wait()
	for ev, err := range paused {
		if err != nil {
			return
		}
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		wg.Go(func() {
			defer func() { <-slots }()
			t.answer(ctx, ev)
		})
	}
}

// answer fulfils one paused request, or fails it. Only the replay page's own
// files and GETs of the kinds of subresources a page's markup and CSS load
// are answered with content: the replayed page runs no script, so it needs
// no script, XHR, fetch, WebSocket or document from anywhere else.
func (t *replayTab) answer(ctx context.Context, ev fetch.EventRequestPaused) {
	req := ev.Request
	res, refusal := t.resolve(ctx, ev)
	if refusal != "" {
		t.rd.log.Debug("refused a subresource of the rendered view", "url", truncateURL(req.URL), "type", ev.ResourceType, "reason", refusal)
		callTab(ctx, t, fetch.FailRequest, fetch.FailRequestParams{RequestID: ev.RequestID, ErrorReason: network.ErrorReasonBlockedByClient})
		return
	}
	headers := make([]*fetch.HeaderEntry, 0, len(res.Header)+1)
	for name, values := range res.Header {
		for _, v := range values {
			headers = append(headers, &fetch.HeaderEntry{Name: name, Value: v})
		}
	}
	// The replay page's origin is not the visitor's, so fonts and other
	// CORS-mode loads need this to be used at all.
	if res.Header.Get("Access-Control-Allow-Origin") == "" {
		headers = append(headers, &fetch.HeaderEntry{Name: "Access-Control-Allow-Origin", Value: "*"})
	}
	_, err := callTab(ctx, t, fetch.FulfillRequest, fetch.FulfillRequestParams{
		RequestID:       ev.RequestID,
		ResponseCode:    int64(res.Status),
		ResponseHeaders: headers,
		Body:            res.Body,
	})
	if err != nil && ctx.Err() == nil {
		t.rd.log.Debug("answering a subresource request failed", "url", truncateURL(req.URL), "err", err)
	}
}

// resolve returns the response for a paused request, or why it is refused.
func (t *replayTab) resolve(ctx context.Context, ev fetch.EventRequestPaused) (*Resource, string) {
	req := ev.Request
	if file, ok := strings.CutPrefix(req.URL, replayOrigin+"/"); ok {
		res, err := replayFile(file)
		if err != nil {
			return nil, err.Error()
		}
		return res, ""
	}
	if req.Method != http.MethodGet {
		return nil, "only GET requests are made for a rendered view"
	}
	switch ev.ResourceType {
	case network.ResourceTypeStylesheet, network.ResourceTypeImage, network.ResourceTypeFont,
		network.ResourceTypeMedia, network.ResourceTypeTextTrack, network.ResourceTypeOther:
	default:
		return nil, fmt.Sprintf("a rendered view loads no %s resources", ev.ResourceType)
	}
	rctx, cancel := context.WithTimeout(ctx, t.cfg.ResolveTimeout)
	defer cancel()
	select {
	case <-t.pageKnown:
	case <-rctx.Done():
		return nil, "the visitor's page URL is unknown"
	}
	t.mu.Lock()
	pageURL := t.pageURL
	t.mu.Unlock()
	res, err := t.cfg.Resolver.Resolve(rctx, Subresource{
		SessionID: t.rd.id,
		PageURL:   pageURL,
		URL:       req.URL,
		Header:    requestHeader(req.Headers),
	})
	if err != nil {
		return nil, err.Error()
	}
	return res, ""
}

// replayFile is one file of the replay page, or an error for a name it has
// not got.
func replayFile(name string) (*Resource, error) {
	name, _, _ = strings.Cut(name, "?")
	body, err := fs.ReadFile(web.Replay(), name)
	if err != nil {
		return nil, fmt.Errorf("the replay page has no %q", name)
	}
	h := http.Header{}
	h.Set("Content-Type", mime.TypeByExtension(path.Ext(name)))
	h.Set("Cache-Control", "no-store")
	if path.Ext(name) == ".html" {
		h.Set("Content-Security-Policy", replayPageCSP)
	}
	return &Resource{Status: http.StatusOK, Header: h, Body: body}, nil
}

// requestHeader converts the browser's request headers.
func requestHeader(h network.Headers) http.Header {
	out := make(http.Header, len(h))
	for name, v := range h {
		if s, ok := v.(string); ok {
			out.Set(name, s)
		}
	}
	return out
}

// truncateURL keeps logs short and free of long query strings.
func truncateURL(u string) string {
	u, _, _ = strings.Cut(u, "?")
	if len(u) > 200 {
		return u[:200] + "…"
	}
	return u
}
