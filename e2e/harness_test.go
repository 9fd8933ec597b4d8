package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/go-rod/rod"
	"github.com/go-rod/rod/lib/launcher"
	"github.com/go-rod/rod/lib/launcher/flags"

	"github.com/cobrowse/cobrowse/internal/logtest"
)

// chromiumFlags are the flags every test browser runs with, besides
// headless and a fresh --user-data-dir: no sandbox (tests run as root in CI),
// and nothing that reaches for the network on its own.
var chromiumFlags = []string{
	"no-sandbox", "disable-background-networking", "disable-component-update",
	"disable-sync", "disable-quic", "no-first-run", "disable-gpu",
}

// newUserDataDir returns a fresh profile directory under the run's browser
// root (which is how leftover processes are found).
func newUserDataDir(t testing.TB) string {
	t.Helper()
	if err := os.MkdirAll(run.browserRoot, 0o755); err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp(run.browserRoot, "profile-")
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// visitorBrowser starts a Chromium driven by go-rod: the visitor, a browser
// independent of the product's own CDP code. extraFlags are added to
// chromiumFlags (e.g. "ignore-certificate-errors" for a test certificate).
func visitorBrowser(t testing.TB, extraFlags ...string) *rod.Browser {
	t.Helper()
	l := launcher.New().Bin(chromiumPath).Headless(true).Leakless(false).
		UserDataDir(newUserDataDir(t)).Set("window-size", "1280,900")
	for _, f := range append(chromiumFlags, extraFlags...) {
		l = l.Set(flags.Flag(f))
	}
	controlURL, err := l.Launch()
	if err != nil {
		t.Fatalf("starting the visitor's Chromium: %v", err)
	}
	browser := rod.New().ControlURL(controlURL)
	if err := browser.Connect(); err != nil {
		l.Kill()
		t.Fatalf("connecting to the visitor's Chromium: %v", err)
	}
	t.Cleanup(func() {
		browser.Close()
		l.Kill()
		l.Cleanup()
	})
	return browser
}

// agentBrowser starts a Chromium driven by chromedp: the support agent.
func agentBrowser(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath),
		chromedp.UserDataDir(newUserDataDir(t)),
		chromedp.WindowSize(1280, 900),
	)
	for _, f := range chromiumFlags {
		opts = append(opts, chromedp.Flag(f, true))
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		cancel()
		cancelAlloc()
		t.Fatalf("starting the agent's Chromium: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		cancelAlloc() // waits for the browser process to exit
	})
	return ctx
}

// cobrowse is a running cobrowse binary.
type cobrowse struct {
	visitorURL string // e.g. http://127.0.0.1:40001/
	agentURL   string // e.g. http://127.0.0.1:40002
	token      string
	stderr     *logtest.Buffer
	// tmpDir is the process's TMPDIR, under run.serverRoot: the profiles of
	// the server's own Chromium (--render) live there, so the leftover check
	// of TestMain sees them too.
	tmpDir string
	proc   *os.Process
}

var (
	visitorURLLine = regexp.MustCompile(`visitor URL:\s+(https?://\S+)`)
	agentURLLine   = regexp.MustCompile(`agent sign-in:\s+(http://[^/\s]+)`)
)

// startDemo runs the cobrowse binary's demo on loopback ports it chooses.
func startDemo(t *testing.T) *cobrowse {
	t.Helper()
	return startCobrowse(t, "demo")
}

// agentToken is the agent token of the servers the tests start.
const agentToken = "e2e-agent-token-0123456789"

// startCobrowse runs the cobrowse binary with args (a subcommand and its
// flags) on loopback ports it chooses, with a known agent token.
func startCobrowse(t testing.TB, args ...string) *cobrowse {
	t.Helper()
	// Agents see sessions without the visitor's consent unless a test asks
	// for it (a later --join wins): most tests are not about consent.
	args = append([]string{args[0], "--join", "none"}, args[1:]...)
	args = append(args, "--listen", "127.0.0.1:0", "--agent-listen", "127.0.0.1:0",
		"--agent-token", agentToken, "--log-level", "debug")
	c := launch(t, args, func(c *cobrowse, line string) bool {
		if m := visitorURLLine.FindStringSubmatch(line); m != nil {
			c.visitorURL = m[1]
		}
		if m := agentURLLine.FindStringSubmatch(line); m != nil {
			c.agentURL = m[1]
		}
		return c.visitorURL != "" && c.agentURL != ""
	})
	c.token = agentToken
	return c
}

// launch runs the cobrowse binary with args, in a temporary directory of
// its own, until the test ends (SIGINT, then SIGKILL after 10 s), and
// reads its standard output until ready says it has printed what the
// test needs.
func launch(t testing.TB, args []string, ready func(c *cobrowse, line string) bool) *cobrowse {
	t.Helper()
	c := &cobrowse{stderr: &logtest.Buffer{}}
	c.tmpDir = filepath.Join(run.serverRoot, strconv.FormatInt(run.servers.Add(1), 10))
	if err := os.Mkdir(c.tmpDir, 0o700); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(run.binary, args...)
	cmd.Env = append(os.Environ(), "TMPDIR="+c.tmpDir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = c.stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting cobrowse %s: %v", args[0], err)
	}
	c.proc = cmd.Process
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			t.Error("cobrowse did not stop within 10 s of SIGINT")
		}
		if t.Failed() {
			t.Logf("cobrowse log:\n%s", c.stderr.String())
		}
	})
	lines := bufio.NewScanner(stdout)
	deadline := time.AfterFunc(30*time.Second, func() { cmd.Process.Kill() })
	defer deadline.Stop()
	started := false
	for !started && lines.Scan() {
		started = ready(c, lines.Text())
	}
	if !started {
		t.Fatalf("cobrowse %s did not say it started; log:\n%s", args[0], c.stderr.String())
	}
	go io.Copy(io.Discard, stdout)
	return c
}

// api GETs an agent API path with the Bearer token and decodes the JSON.
func (c *cobrowse) api(t testing.TB, path string, into any) {
	t.Helper()
	body := c.rawGET(t, path)
	if err := json.Unmarshal(body, into); err != nil {
		t.Fatalf("GET %s: %v\n%s", path, err, body)
	}
}

// rawGET returns the body of an agent API path, failing the test unless it
// answers 200.
func (c *cobrowse) rawGET(t testing.TB, path string) []byte {
	t.Helper()
	status, body := c.agentGET(t, path)
	if status != http.StatusOK {
		t.Fatalf("GET %s: %d: %s", path, status, body)
	}
	return body
}

// agentGET returns the status and body of an agent API path.
func (c *cobrowse) agentGET(t testing.TB, path string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", c.agentURL+path, nil)
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

// eventually polls check every 50 ms until it returns "" (success) or the
// bound passes, then fails with the last reason.
func eventually(t testing.TB, within time.Duration, what string, check func() string) time.Duration {
	t.Helper()
	start := time.Now()
	reason := ""
	for time.Since(start) < within {
		if reason = check(); reason == "" {
			return time.Since(start)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: not within %v: %s", what, within, reason)
	return 0
}

func saveArtifact(t *testing.T, name string, data []byte) {
	t.Helper()
	path := filepath.Join(run.artifactsDir, name)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Errorf("saving %s: %v", name, err)
		return
	}
	t.Logf("artifact: %s", path)
}
