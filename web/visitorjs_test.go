package web

import "testing"

// TestVisitorScriptInNode runs the visitor script's own tests
// (visitor/visitor.test.mjs) with node's built-in test runner. They drive
// visitor.js against fake browser APIs: batching, acks and resends,
// reconnects, page restarts, masking.
func TestVisitorScriptInNode(t *testing.T) {
	runNodeTests(t, "visitor/visitor.test.mjs")
}
