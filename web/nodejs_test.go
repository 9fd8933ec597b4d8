package web

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"
)

// TestPlayerInNode runs the agent player's own tests
// (agent/player.test.mjs) with node's built-in test runner: what the rrweb
// Replayer gets, with every resource URL pointed at the asset route.
func TestPlayerInNode(t *testing.T) {
	runNodeTests(t, "agent/player.test.mjs")
}

// runNodeTests runs a test file of ours with node's built-in test runner.
//
// CI always has node (and `make test` requires it): there a missing node is
// a failure. Elsewhere the test is skipped.
func runNodeTests(t *testing.T, file string) {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("node is not on PATH (%v); CI must run %s", err, file)
		}
		t.Skipf("node is not on PATH: skipping %s (install Node.js to run it; CI fails without it)", file)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "--test", "--test-reporter=spec", file)
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("node --test %s timed out:\n%s", file, out)
	}
	if err != nil {
		t.Fatalf("node --test %s: %v\n%s", file, err, out)
	}
	if testing.Verbose() {
		t.Logf("%s", out)
	}
}
