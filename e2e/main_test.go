// Package e2e runs cobrowse end to end in real headless Chromium: the built
// binary, a visitor browser driven by go-rod and an agent browser driven by
// chromedp. Screenshots are kept in e2e/artifacts/.
package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
)

// chromiumPath is Debian's Chromium; `make test` installs it. Tests never
// download a browser.
const chromiumPath = "/usr/bin/chromium"

// run holds what every test of this process shares.
var run struct {
	binary      string // the cobrowse binary under test
	browserRoot string // every test browser's --user-data-dir lives under it
	// serverRoot holds each cobrowse process's TMPDIR, where its own
	// Chromium profiles (--render) live. It is short because Chromium puts a
	// unix socket (at most 107 bytes of path) in a profile.
	serverRoot   string
	servers      atomic.Int64 // names the next TMPDIR under serverRoot
	artifactsDir string
}

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	if _, err := os.Stat(chromiumPath); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %s is missing; `make test` installs Debian's chromium (apt-get install chromium)\n", chromiumPath)
		return 1
	}
	tmp, err := os.MkdirTemp("", "cobrowse-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(tmp)
	run.browserRoot = filepath.Join(tmp, "browsers")
	if run.serverRoot, err = os.MkdirTemp("", "cbs-"); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(run.serverRoot)
	run.binary = filepath.Join(tmp, "cobrowse")
	run.artifactsDir, _ = filepath.Abs("artifacts")
	if err := os.MkdirAll(run.artifactsDir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	build := exec.Command("go", "build", "-o", run.binary, "../cmd/cobrowse")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: building cobrowse:", err)
		return 1
	}

	code := m.Run()

	if left := append(leftoverBrowsers(run.browserRoot), leftoverBrowsers(run.serverRoot)...); len(left) > 0 {
		fmt.Fprintf(os.Stderr, "e2e: FAIL: %d Chromium processes were left running (pids %v); killed them\n", len(left), left)
		for _, pid := range left {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		return 1
	}
	return code
}

// leftoverBrowsers returns the pids of processes whose command line mentions
// dir: the Chromium processes (and their helpers) this run started.
func leftoverBrowsers(dir string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		if bytes.Contains(cmdline, []byte(dir)) && strings.Contains(string(cmdline), "chrom") {
			pids = append(pids, pid)
		}
	}
	return pids
}
