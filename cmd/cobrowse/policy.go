package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/cobrowse/cobrowse/browserpool"
	"github.com/cobrowse/cobrowse/policies"
)

const policyUsage = `Usage:
  cobrowse policy check FILE   validate a redaction policy file (docs/policies.md);
                               prints each problem as FILE:LINE:COLUMN: problem,
                               exit status 1 if there is any
  cobrowse policy test [--policy FILE] [--url URL] [--screenshot OUT.png] PAGE.html|URL
                               print the page as an agent would see it under the
                               policy (default: the built-in one), then a table of
                               every redaction; a URL is fetched (e.g. through a
                               running cobrowse), a file is taken as served at --url;
                               --screenshot also renders that view in headless
                               Chromium (scripts off) into a PNG
`

// policyCommand runs "cobrowse policy ...": the tools for the people who
// write redaction policies.
func policyCommand(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, policyUsage)
		if len(args) == 0 {
			return errors.New("policy: a subcommand is required")
		}
		return nil
	}
	switch args[0] {
	case "check":
		if len(args) != 2 {
			fmt.Fprint(stderr, policyUsage)
			return errors.New("policy check: give exactly one FILE")
		}
		return checkPolicy(args[1], stdout, stderr)
	case "test":
		return testPolicy(args[1:], stdout, stderr)
	}
	fmt.Fprint(stderr, policyUsage)
	return fmt.Errorf("policy: unknown subcommand %q", args[0])
}

// checkPolicy validates the policy file at path: its problems go to stderr
// and make the command fail with status 1; a valid file is summarised on
// stdout.
func checkPolicy(path string, stdout, stderr io.Writer) error {
	p, err := policies.Load(path)
	if err != nil {
		var errs policies.Errors
		if !errors.As(err, &errs) {
			return err // the file could not be read
		}
		for _, e := range errs {
			fmt.Fprintln(stderr, e)
		}
		return exitStatus{1, fmt.Sprintf("%s: %d problem(s); the file was not accepted", path, len(errs))}
	}
	rules := p.Rules()
	fmt.Fprintf(stdout, "%s: ok, %d rule(s)", path, len(rules))
	if len(rules) > 0 {
		fmt.Fprintf(stdout, ": %s", strings.Join(rules, ", "))
	}
	fmt.Fprintln(stdout)
	return nil
}

// testPolicy runs "cobrowse policy test": the page as an agent would see it,
// and what was redacted.
func testPolicy(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("policy test", "show what an agent would see of a page under a policy", stderr)
	policyFile := fs.String("policy", "", "policy `file` (default: the built-in policy)")
	pageURL := fs.String("url", "", "the `URL` the page is served at, which chooses the rules (default: the URL given, or http://localhost/ for a file)")
	screenshot := fs.String("screenshot", "", "also render the redacted view in headless Chromium (scripts off) into this PNG `file`")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errors.New("policy test: give exactly one PAGE.html or URL")
	}
	policy := policies.Default()
	if *policyFile != "" {
		var err error
		if policy, err = policies.Load(*policyFile); err != nil {
			return fmt.Errorf("--policy: %w (run 'cobrowse policy check %s')", err, *policyFile)
		}
	}
	page, where, err := openPage(fs.Arg(0))
	if err != nil {
		return err
	}
	defer page.Close()
	rep, err := policy.Explain(cmp.Or(*pageURL, where), io.LimitReader(page, maxTestPage))
	if err != nil {
		return fmt.Errorf("policy test: %w", err)
	}
	fmt.Fprintln(stdout, rep.HTML)
	fmt.Fprintf(stdout, "\npage %s\n", rep.URL)
	rules := "none"
	if len(rep.Rules) > 0 {
		rules = strings.Join(rep.Rules, ", ")
	}
	fmt.Fprintf(stdout, "rules that apply: %s\n", rules)
	if rep.Blocked {
		fmt.Fprintln(stdout, "the page is blocked (block_page): agents see a placeholder")
	}
	fmt.Fprintf(stdout, "%7s  %s\n", "count", "redaction (rule selector, detector, input masking)")
	for _, r := range rep.Redactions {
		fmt.Fprintf(stdout, "%7d  %s\n", r.Count, r.What)
	}
	if len(rep.Redactions) == 0 {
		fmt.Fprintf(stdout, "%7d  nothing redacted\n", 0)
	}
	if *screenshot != "" {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		png, err := renderHTML(ctx, rep.HTML)
		if err != nil {
			return fmt.Errorf("--screenshot: %w", err)
		}
		if err := os.WriteFile(*screenshot, png, 0o644); err != nil {
			return fmt.Errorf("--screenshot: %w", err)
		}
		fmt.Fprintf(stdout, "the redacted view, rendered: %s\n", *screenshot)
	}
	return nil
}

// renderHTML renders a document in a headless Chromium tab (1280×800, its
// scripts off, its images and styles loaded from where it names them) and
// returns a PNG of the whole page.
func renderHTML(ctx context.Context, doc string) ([]byte, error) {
	pool, err := browserpool.New(ctx, browserpool.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	lease, err := pool.Lease(ctx)
	if err != nil {
		return nil, err
	}
	defer lease.Release()
	tab := lease.Context()
	if _, err := chromedp.Call(tab, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true}); err != nil {
		return nil, err
	}
	if _, err := chromedp.Call(tab, emulation.SetDeviceMetricsOverride, emulation.SetDeviceMetricsOverrideParams{Width: 1280, Height: 800, DeviceScaleFactor: 1}); err != nil {
		return nil, err
	}
	tree, err := chromedp.Call(tab, page.GetFrameTree, cdp.Empty{})
	if err != nil {
		return nil, err
	}
	if _, err := chromedp.Call(tab, page.SetDocumentContent, page.SetDocumentContentParams{FrameID: tree.FrameTree.Frame.ID, HTML: doc}); err != nil {
		return nil, err
	}
	// Wait for the images and fonts the page names (at most 5 s: one may
	// never answer).
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		state, err := chromedp.Call(tab, runtime.Evaluate, runtime.EvaluateParams{Expression: "document.readyState", ReturnByValue: new(true)})
		if err != nil {
			return nil, err
		}
		if state.Result != nil && string(state.Result.Value) == `"complete"` {
			break
		}
	}
	shot, err := chromedp.Call(tab, page.CaptureScreenshot, page.CaptureScreenshotParams{Format: page.CaptureScreenshotFormatPng, CaptureBeyondViewport: new(true)})
	if err != nil {
		return nil, err
	}
	return shot.Data, nil
}

// maxTestPage bounds the page policy test reads.
const maxTestPage = 64 << 20

// openPage opens the page to test: an http(s) URL is fetched, anything else
// is a file. where is the page's URL for the rules: the URL, or
// http://localhost/ for a file.
func openPage(arg string) (page io.ReadCloser, where string, err error) {
	if !strings.HasPrefix(arg, "http://") && !strings.HasPrefix(arg, "https://") {
		f, err := os.Open(arg)
		if err != nil {
			return nil, "", fmt.Errorf("policy test: %w", err)
		}
		return f, "http://localhost/", nil
	}
	client := &http.Client{Timeout: 30 * time.Second}
	resp, err := client.Get(arg)
	if err != nil {
		return nil, "", fmt.Errorf("policy test: fetching the page: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, "", fmt.Errorf("policy test: fetching the page: %s answered %s", arg, resp.Status)
	}
	return resp.Body, arg, nil
}

// exitStatus is an error that ends the command with a given exit status and
// message.
type exitStatus struct {
	code int
	msg  string
}

func (e exitStatus) Error() string { return e.msg }
