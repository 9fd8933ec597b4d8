package policies

import (
	"os"
	"strings"
	"testing"
)

// TestDocExamples parses every YAML example of docs/policies.md, so that the
// documentation shows files that work.
func TestDocExamples(t *testing.T) {
	doc, err := os.ReadFile("../docs/policies.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := strings.Split(string(doc), "```yaml\n")[1:]
	if len(blocks) < 4 {
		t.Fatalf("found %d YAML examples", len(blocks))
	}
	for i, b := range blocks {
		src, _, ok := strings.Cut(b, "```")
		if !ok {
			t.Fatalf("example %d is not closed", i)
		}
		if !strings.HasPrefix(src, "version:") {
			continue // a fragment, not a file
		}
		if _, err := Parse("example", []byte(src)); err != nil {
			t.Errorf("example %d:\n%s\n%v", i, src, err)
		}
	}
}
