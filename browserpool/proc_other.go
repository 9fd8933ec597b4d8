//go:build !linux

package browserpool

import (
	"errors"
	"os/exec"
)

// checkPlatform reports that the pool cannot keep its process guarantees
// here: they rest on Linux's parent-death signal, process groups and /proc.
func checkPlatform() error {
	return errors.New("browserpool: rendered mode needs Linux (parent-death signal, process groups, /proc); run cobrowse on Linux or use DOM mode")
}

// The functions below are never reached, because New fails on checkPlatform
// first; they exist so that the package builds everywhere.

func setProcAttr(*exec.Cmd)       {}
func killGroup(int)               {}
func killLeftovers(string) int    { return 0 }
func processesUsing(string) []int { return nil }
func groupRSS(int) (int64, error) { return 0, errors.ErrUnsupported }
func groupPSS(int) (int64, error) { return 0, errors.ErrUnsupported }
