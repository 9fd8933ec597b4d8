package policies

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
)

// reloadDelay is how long Watch waits after the last change in the file's
// directory before it reloads, so that an editor's burst of writes and
// renames gives one reload of the finished file. Changes that never pause
// are reloaded maxReloadDelay after the first one.
const (
	reloadDelay    = 100 * time.Millisecond
	maxReloadDelay = time.Second
)

// Source holds the current policy of a running server and reloads it from
// its file. It is safe for concurrent use.
type Source struct {
	path string // "" for the built-in default
	log  *slog.Logger

	current atomic.Pointer[Policy]

	mu       sync.Mutex        // serializes reloads
	last     [sha256.Size]byte // the contents last read, good or bad
	onReload func()            // called after each successful reload
}

// OnReload sets a function that is called, with no lock held by the Source,
// after every reload that changed the policy (cobrowse serve asks every tab
// for a new snapshot, so that the new policy applies at once).
func (s *Source) OnReload(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onReload = f
}

// NewSource loads the policy file at path, or uses Default when path is ""
// (and then never reloads). An invalid file is an error: a server must not
// start with a policy other than the one its operator wrote. log receives
// reload results; nil discards them.
func NewSource(path string, log *slog.Logger) (*Source, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Source{path: path, log: log}
	if path == "" {
		s.current.Store(Default())
		return s, nil
	}
	data, err := readFile(path)
	if err != nil {
		return nil, err
	}
	p, err := Parse(path, data)
	if err != nil {
		return nil, err
	}
	s.last = sha256.Sum256(data)
	s.current.Store(p)
	return s, nil
}

// Policy returns the current policy; never nil.
func (s *Source) Policy() *Policy {
	return s.current.Load()
}

// Reload re-reads the file. On success the new policy replaces the current
// one for every later call of Policy; on error the current policy stays, the
// error is logged with the line and column of each problem, and returned.
// Reloading a source without a file does nothing.
func (s *Source) Reload() error {
	return s.reload(true)
}

// reload re-reads the file; unless force, contents equal to those last read
// are not parsed or logged again. After a policy change it calls the
// OnReload function, outside the lock.
func (s *Source) reload(force bool) error {
	if s.path == "" {
		return nil
	}
	notify, err := s.load(force)
	if notify != nil {
		notify()
	}
	return err
}

// load is reload's part under the lock. It returns the function to call
// when the policy changed (nil if it did not, or if none is set).
func (s *Source) load(force bool) (notify func(), err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	data, err := readFile(s.path)
	if err != nil {
		s.log.Error("policy reload failed; keeping the current policy", "file", s.path, "error", err)
		return nil, err
	}
	sum := sha256.Sum256(data)
	if !force && sum == s.last {
		return nil, nil
	}
	s.last = sum
	p, err := Parse(s.path, data)
	if err != nil {
		var errs Errors
		errors.As(err, &errs) // Parse's errors are always Errors
		for _, e := range errs {
			s.log.Error("policy reload failed; keeping the current policy", "file", e.File, "line", e.Line, "column", e.Column, "problem", e.Msg)
		}
		return nil, fmt.Errorf("policy not reloaded, the current one stays: %w", err)
	}
	s.current.Store(p)
	s.log.Info("policy reloaded", "file", s.path, "rules", len(p.rules))
	return s.onReload, nil
}

// Watch reloads the policy when its file changes, until ctx ends; it then
// returns nil. It watches the file's directory, not the file, so that it
// follows editors that write a new file and rename it over the old one, and
// mounts that swap a symbolic link (as Kubernetes does with ConfigMaps); a
// change is reloaded once the directory has been quiet for a moment. Without
// a file it just waits for ctx to end, so that callers need no special case.
// An error means watching could not start.
func (s *Source) Watch(ctx context.Context) error {
	if s.path == "" {
		<-ctx.Done()
		return nil
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch policy file: %w", err)
	}
	defer w.Close()
	dir := filepath.Dir(s.path)
	if err := w.Add(dir); err != nil {
		return fmt.Errorf("watch policy file: directory %s: %w", dir, err)
	}
	timer := time.NewTimer(reloadDelay)
	timer.Stop()
	var first time.Time // of the changes not reloaded yet; zero when there are none
	for {
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			if ev.Op == fsnotify.Chmod {
				continue
			}
			if first.IsZero() {
				first = time.Now()
			}
			timer.Reset(min(reloadDelay, time.Until(first.Add(maxReloadDelay))))
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			s.log.Warn("watching the policy file", "file", s.path, "error", err)
		case <-timer.C:
			first = time.Time{}
			// Reload logs its own errors; contents unchanged since the last
			// reload (another file of the directory changed) are skipped.
			_ = s.reload(false)
		}
	}
}
