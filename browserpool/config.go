package browserpool

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"time"
)

// DefaultChromePath is the browser that a Config without ChromePath and
// without $CHROME_PATH runs: Debian's and Ubuntu's Chromium package.
const DefaultChromePath = "/usr/bin/chromium"

// Config is the configuration of a Pool. A zero field takes the default that
// its comment names; a negative number is an error. The pool never downloads
// a browser: the binary must be installed.
type Config struct {
	// ChromePath is the Chromium (or Chrome) binary. Empty means $CHROME_PATH,
	// and DefaultChromePath when that is empty too.
	ChromePath string

	// Browsers is the number of browser processes the pool keeps running.
	// Default 1.
	Browsers int

	// TabsPerBrowser is how many leases one browser serves at a time.
	// Default 4. More tabs per browser save memory; fewer limit how many
	// sessions one browser crash interrupts.
	TabsPerBrowser int

	// QueueLength is how many Lease calls may wait for a tab when every tab
	// is busy. Zero means no waiting: a Lease fails with ErrCapacity at once.
	QueueLength int

	// WaitTimeout is the longest a Lease call waits in the queue before it
	// fails with ErrCapacity. Default 5s.
	WaitTimeout time.Duration

	// RecycleAfterLeases replaces a browser after it has served this many
	// leases. Zero means never.
	RecycleAfterLeases int

	// RecycleAfter replaces a browser this long after it started. Zero
	// means never.
	RecycleAfter time.Duration

	// MaxRSSMiB replaces a browser whose process group (the browser and
	// every renderer, GPU and utility process it started) holds more than
	// this many MiB of resident memory, as the sum of VmRSS in
	// /proc/<pid>/status. Shared pages count once per process, so the sum
	// overstates the real use; set the cap with that in mind. Zero means
	// no cap.
	MaxRSSMiB int

	// ProbeInterval is how often the pool checks each browser (with
	// Browser.getVersion), each leased tab (with Runtime.evaluate "1") and
	// the recycling limits. Default 5s.
	ProbeInterval time.Duration

	// ProbeTimeout is how long a probe may take. A browser or tab that does
	// not answer in time is treated as dead. Default 4s.
	ProbeTimeout time.Duration

	// StartTimeout bounds the start of a browser process, up to its first
	// answer on the DevTools pipe. Default 20s.
	StartTimeout time.Duration

	// CallTimeout bounds each step the pool runs in a browser: opening a
	// lease's tab in its own browser context, and closing it. Default 10s.
	CallTimeout time.Duration

	// TempDir is where the pool creates its temporary directory, which holds
	// one profile directory per browser and is removed by Close. Empty means
	// os.TempDir(). Keep it short: Chromium puts a unix socket (at most 107
	// bytes of path) in each profile, and New rejects a directory too long
	// for it. New also deletes the directories that the pools of killed
	// processes left in TempDir (their browsers died with them).
	TempDir string

	// Logger receives the pool's structured logs. Nil means slog.Default().
	Logger *slog.Logger
}

// withDefaults returns c with the defaults of the zero fields filled in and
// ChromePath resolved, or an error that lists every invalid field.
func (c Config) withDefaults() (Config, error) {
	var errs []error
	positive := func(name string, v int, def int) int {
		if v < 0 {
			errs = append(errs, fmt.Errorf("%s is %d; it must be 1 or more (or 0 for the default, %d)", name, v, def))
		}
		if v <= 0 {
			return def
		}
		return v
	}
	duration := func(name string, v, def time.Duration) time.Duration {
		if v < 0 {
			errs = append(errs, fmt.Errorf("%s is %s; it must be positive (or 0 for the default, %s)", name, v, def))
		}
		if v <= 0 {
			return def
		}
		return v
	}
	optional := func(name string, v int) {
		if v < 0 {
			errs = append(errs, fmt.Errorf("%s is %d; it must be 0 (off) or more", name, v))
		}
	}

	c.Browsers = positive("Browsers", c.Browsers, 1)
	c.TabsPerBrowser = positive("TabsPerBrowser", c.TabsPerBrowser, 4)
	optional("QueueLength", c.QueueLength)
	c.WaitTimeout = duration("WaitTimeout", c.WaitTimeout, 5*time.Second)
	optional("RecycleAfterLeases", c.RecycleAfterLeases)
	if c.RecycleAfter < 0 {
		errs = append(errs, fmt.Errorf("RecycleAfter is %s; it must be 0 (off) or positive", c.RecycleAfter))
	}
	optional("MaxRSSMiB", c.MaxRSSMiB)
	c.ProbeInterval = duration("ProbeInterval", c.ProbeInterval, 5*time.Second)
	c.ProbeTimeout = duration("ProbeTimeout", c.ProbeTimeout, 4*time.Second)
	c.StartTimeout = duration("StartTimeout", c.StartTimeout, 20*time.Second)
	c.CallTimeout = duration("CallTimeout", c.CallTimeout, 10*time.Second)

	if c.ChromePath == "" {
		c.ChromePath = os.Getenv("CHROME_PATH")
	}
	if c.ChromePath == "" {
		c.ChromePath = DefaultChromePath
	}
	path, err := exec.LookPath(c.ChromePath)
	if err != nil {
		errs = append(errs, fmt.Errorf("no runnable Chromium at %q (install the chromium package, or point ChromePath, --chrome or CHROME_PATH at the browser binary; the pool never downloads one): %w", c.ChromePath, err))
	} else {
		c.ChromePath = path
	}

	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if len(errs) > 0 {
		return c, fmt.Errorf("browserpool: invalid config: %w", errors.Join(errs...))
	}
	return c, nil
}
