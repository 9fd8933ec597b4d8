package policies

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cobrowse/cobrowse/internal/logtest"
)

func policyWithRule(name string) string {
	return "version: 1\nrules:\n  - name: " + name + "\n    block_page: true\n"
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

// replaceFile writes data to path the way many editors do: into a new file
// renamed over the old one.
func replaceFile(t *testing.T, path, data string) {
	t.Helper()
	tmp := path + ".tmp"
	writeFile(t, tmp, data)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls cond until it holds or a generous deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestSourceDefault(t *testing.T) {
	s, err := NewSource("", nil)
	if err != nil {
		t.Fatal(err)
	}
	if p := s.Policy(); p == nil || len(p.Rules()) != 0 || !slices.Equal(p.ForPage("x", "/").Detectors.Names(), builtinNames()) {
		t.Errorf("Policy() = %+v", p)
	}
	if err := s.Reload(); err != nil {
		t.Errorf("Reload() = %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	if err := s.Watch(ctx); err != nil || ctx.Err() == nil {
		t.Errorf("Watch() = %v before ctx ended", err)
	}
}

func TestNewSourceRefusesBadFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "policy.yaml")
	writeFile(t, path, "version: 1\nmaks: []\n")
	if _, err := NewSource(path, nil); err == nil || !strings.Contains(err.Error(), "policy.yaml:2:1: unknown key") {
		t.Errorf("NewSource(bad) = %v", err)
	}
	if _, err := NewSource(filepath.Join(t.TempDir(), "missing.yaml"), nil); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("NewSource(missing) = %v", err)
	}
}

func TestSourceReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "policy.yaml")
	writeFile(t, path, policyWithRule("first"))
	var logs logtest.Buffer
	s, err := NewSource(path, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	before := s.Policy()
	reloads := 0
	s.OnReload(func() { reloads++ })

	// A bad file keeps the old policy, and the error says where.
	writeFile(t, path, "version: 1\nrules:\n  - name: second\n    maks: [.a]\n")
	err = s.Reload()
	var errs Errors
	if !errors.As(err, &errs) || errs[0].Line != 4 || errs[0].Column != 5 {
		t.Fatalf("Reload(bad) = %v", err)
	}
	if s.Policy() != before {
		t.Error("a bad file replaced the policy")
	}
	if l := logs.String(); !strings.Contains(l, "line=4 column=5") || !strings.Contains(l, "keeping the current policy") {
		t.Errorf("log: %s", l)
	}

	// A missing file too.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := s.Reload(); !errors.Is(err, os.ErrNotExist) || s.Policy() != before {
		t.Errorf("Reload(missing) = %v", err)
	}

	// A good file replaces it.
	writeFile(t, path, policyWithRule("third"))
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := s.Policy().Rules(); !slices.Equal(got, []string{"third"}) {
		t.Errorf("after reload: %q", got)
	}
	if reloads != 1 {
		t.Errorf("OnReload called %d times, want once (for the good file only)", reloads)
	}
	if !strings.Contains(logs.String(), "policy reloaded") {
		t.Errorf("log: %s", logs.String())
	}
}

func TestSourceWatch(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "policy.yaml")
	writeFile(t, path, policyWithRule("v1"))
	var logs logtest.Buffer
	s, err := NewSource(path, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Watch(ctx) }()
	rules := func() []string { return s.Policy().Rules() }

	// The watcher starts asynchronously: write until it sees a change.
	waitFor(t, "a rewritten file to be picked up", func() bool {
		if slices.Equal(rules(), []string{"v2"}) {
			return true
		}
		writeFile(t, path, policyWithRule("v2"))
		time.Sleep(3 * reloadDelay)
		return false
	})

	replaceFile(t, path, policyWithRule("v3"))
	waitFor(t, "a renamed-over file to be picked up", func() bool { return slices.Equal(rules(), []string{"v3"}) })

	// A bad version keeps v3 and is logged once, however often the
	// directory changes.
	replaceFile(t, path, "version: 1\nrules:\n  - name: v4\n    maks: [.a]\n")
	waitFor(t, "the bad file to be logged", func() bool { return strings.Contains(logs.String(), "line=4") })
	writeFile(t, filepath.Join(dir, "other.txt"), "unrelated")
	time.Sleep(3 * reloadDelay)
	if got := strings.Count(logs.String(), "line=4"); got != 1 {
		t.Errorf("bad file logged %d times", got)
	}
	if !slices.Equal(rules(), []string{"v3"}) {
		t.Errorf("bad file replaced the policy: %q", rules())
	}

	// Changes that never pause are reloaded all the same.
	stop := time.Now().Add(3 * maxReloadDelay)
	for i := 0; time.Now().Before(stop) && !slices.Equal(rules(), []string{"v6"}); i++ {
		writeFile(t, filepath.Join(dir, "busy.log"), strings.Repeat("x", i))
		if i == 0 {
			writeFile(t, path, policyWithRule("v6"))
		}
		time.Sleep(reloadDelay / 4)
	}
	if !slices.Equal(rules(), []string{"v6"}) {
		t.Fatalf("a busy directory held off the reload: %q", rules())
	}

	// Removed and written again, as some tools do.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, policyWithRule("v7"))
	waitFor(t, "a recreated file to be picked up", func() bool { return slices.Equal(rules(), []string{"v7"}) })

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Watch() = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Watch did not return after ctx ended")
	}
}

func TestSourceWatchMissingDir(t *testing.T) {
	path := filepath.Join(t.TempDir(), "policy.yaml")
	writeFile(t, path, policyWithRule("v1"))
	s, err := NewSource(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Dir(path)); err != nil {
		t.Fatal(err)
	}
	if err := s.Watch(t.Context()); err == nil {
		t.Error("Watch on a removed directory succeeded")
	}
}

func TestSourceConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "policy.yaml")
	writeFile(t, path, policyWithRule("a"))
	s, err := NewSource(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			for j := range 50 {
				if i == 0 {
					writeFile(t, path, policyWithRule(string(rune('a'+j%26))))
					_ = s.Reload()
				}
				if p := s.Policy(); p == nil {
					t.Error("nil policy")
				} else {
					p.ForPage("x", "/")
				}
			}
		})
	}
	wg.Wait()
}
