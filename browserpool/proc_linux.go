//go:build linux

package browserpool

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// checkPlatform reports whether the pool can keep its process guarantees
// here. On Linux it can.
func checkPlatform() error { return nil }

// setProcAttr starts the browser in a process group of its own, so that the
// pool can kill it with every child it forked (zygotes, renderers, GPU and
// utility processes) in one signal, and asks the kernel to kill it when the
// Go process dies. The parent-death signal follows the OS thread that
// started the process; chromedp starts the browser from a goroutine locked
// to its thread until the process exits, which keeps the signal armed for
// the browser's whole life. The browser's children end on their own when
// the browser is gone (their IPC channels close); killing the group and
// sweeping leftovers (killLeftovers) make that certain.
func setProcAttr(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = new(syscall.SysProcAttr)
	}
	cmd.SysProcAttr.Setpgid = true
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
}

// killGroup sends SIGKILL to the process group led by pid.
func killGroup(pid int) {
	if pid > 0 {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
	}
}

// staleAfter is how long a pool's directory must have been left alone before
// removeStale may take it for a dead pool's.
const staleAfter = time.Minute

// removeStale deletes the directories that the pools of killed processes
// left in tempDir: their browsers died with them (see setProcAttr), but
// nobody deleted their profiles. A directory counts as stale when it is
// named like a pool's, belongs to this user, was not modified for
// staleAfter, and no process names it on its command line (a live pool's
// browsers all do). It returns the directories it deleted.
func removeStale(tempDir string) []string {
	if tempDir == "" {
		tempDir = os.TempDir()
	}
	matches, _ := filepath.Glob(filepath.Join(tempDir, dirPattern))
	var removed []string
	for _, dir := range matches {
		fi, err := os.Lstat(dir)
		if err != nil || !fi.IsDir() || time.Since(fi.ModTime()) < staleAfter {
			continue
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); !ok || int(st.Uid) != os.Geteuid() {
			continue
		}
		if len(processesUsing(dir)) > 0 {
			continue
		}
		if os.RemoveAll(dir) == nil {
			removed = append(removed, dir)
		}
	}
	return removed
}

// killLeftovers kills every process whose command line mentions dir (as an
// argument equal to it, ending in "="+dir, or holding dir+"/"), until three
// scans in a row find none or two seconds pass. A process can fork just as
// its parent dies, so one scan is not enough. Every Chromium process of a
// pool names its profile directory on its command line (--user-data-dir,
// and HOME points there too), so this finds a process that left the
// group. It returns how many processes it killed.
func killLeftovers(dir string) int {
	const (
		quietScans = 3
		pause      = 10 * time.Millisecond
		limit      = 2 * time.Second
	)
	total := 0
	deadline := time.Now().Add(limit)
	for quiet := 0; quiet < quietScans && time.Now().Before(deadline); {
		pids := processesUsing(dir)
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		total += len(pids)
		if len(pids) == 0 {
			quiet++
		} else {
			quiet = 0
		}
		time.Sleep(pause)
	}
	return total
}

// processesUsing lists the processes other than this one whose command line
// mentions dir, as killLeftovers describes.
func processesUsing(dir string) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	exact := []byte(dir)
	suffix := []byte("=" + dir)
	inside := []byte(dir + string(filepath.Separator))
	self := os.Getpid()
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		for arg := range bytes.SplitSeq(cmdline, []byte{0}) {
			if bytes.Equal(arg, exact) || bytes.HasSuffix(arg, suffix) || bytes.Contains(arg, inside) {
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids
}

// groupRSS returns the resident memory of the process group pgid in bytes:
// the sum of VmRSS over its processes. Shared pages count once per process.
func groupRSS(pgid int) (int64, error) {
	return groupMemory(pgid, "status", "VmRSS:")
}

// groupPSS returns the proportional set size of the process group pgid in
// bytes: the sum of Pss over its processes, so that shared pages count once
// in all.
func groupPSS(pgid int) (int64, error) {
	return groupMemory(pgid, "smaps_rollup", "Pss:")
}

// groupMemory sums, over the processes of group pgid, the "field NNN kB"
// line of /proc/<pid>/file, in bytes.
func groupMemory(pgid int, file, field string) (int64, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	var total int64
	found := false
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil || statPgrp(stat) != pgid {
			continue
		}
		content, err := os.ReadFile(filepath.Join("/proc", e.Name(), file))
		if err != nil {
			continue // the process ended between the two reads
		}
		found = true
		total += kBField(content, field)
	}
	if !found {
		return 0, errors.New("no process in the browser's process group")
	}
	return total, nil
}

// statPgrp returns the process group of a /proc/<pid>/stat line, or -1. The
// command name (field 2) is in parentheses and can hold spaces and
// parentheses, so the fields are counted from the last ')'.
func statPgrp(stat []byte) int {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return -1
	}
	// After ')': " state ppid pgrp ..."
	fields := bytes.Fields(stat[i+1:])
	if len(fields) < 3 {
		return -1
	}
	pgrp, err := strconv.Atoi(string(fields[2]))
	if err != nil {
		return -1
	}
	return pgrp
}

// kBField returns the value of a "field  NNN kB" line (as in
// /proc/<pid>/status and smaps_rollup) in bytes, or 0.
func kBField(content []byte, field string) int64 {
	for line := range bytes.SplitSeq(content, []byte{'\n'}) {
		rest, ok := bytes.CutPrefix(line, []byte(field))
		if !ok {
			continue
		}
		f := bytes.Fields(rest) // "123456 kB"
		if len(f) < 1 {
			return 0
		}
		kb, err := strconv.ParseInt(string(f[0]), 10, 64)
		if err != nil {
			return 0
		}
		return kb << 10
	}
	return 0
}
