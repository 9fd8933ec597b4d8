package web

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"
)

// TestVisitorScriptInNode runs the visitor script's own tests
// (visitor/visitor.test.mjs) with node's built-in test runner. They drive
// visitor.js against fake browser APIs: batching, acks and resends,
// reconnects, page restarts, masking.
//
// CI always has node (and `make test` requires it): there a missing node is
// a failure. Elsewhere the test is skipped.
func TestVisitorScriptInNode(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("node is not on PATH (%v); CI must run the visitor script's tests", err)
		}
		t.Skip("node is not on PATH: skipping visitor/visitor.test.mjs (install Node.js to run it; CI fails without it)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "--test", "--test-reporter=spec", "visitor/visitor.test.mjs")
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("node --test visitor/visitor.test.mjs timed out:\n%s", out)
	}
	if err != nil {
		t.Fatalf("node --test visitor/visitor.test.mjs: %v\n%s", err, out)
	}
	if testing.Verbose() {
		t.Logf("%s", out)
	}
}
