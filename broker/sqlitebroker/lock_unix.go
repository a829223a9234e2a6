//go:build unix

package sqlitebroker

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// lockFile takes an exclusive, non-blocking flock on path + ".lock" and
// records this process's pid in it. The kernel drops the lock when the
// process dies, so a crash never leaves a stale lock behind.
func lockFile(path string) (*os.File, error) {
	name := lockName(path)
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open sqlite store %s: create lock file: %w", path, err)
	}
	if err := flockWithGrace(f); err != nil {
		defer f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			holder := "another process"
			if b, err := os.ReadFile(name); err == nil {
				if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
					holder = fmt.Sprintf("process %d", pid)
					if pid == os.Getpid() {
						holder = "another Broker of this process"
					}
				}
			}
			return nil, fmt.Errorf("open sqlite store %s: %w (held by %s through %s)", path, ErrInUse, holder, name)
		}
		return nil, fmt.Errorf("open sqlite store %s: lock %s: %w", path, name, err)
	}
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return f, nil
}

// lockName is the lock file of the store at path: next to the file path
// names once symbolic links are resolved, so that a store opened through
// a link and through its target takes one lock (the Broker caches what
// only one writer may assume, Broker.plain).
func lockName(path string) string {
	if p, err := filepath.EvalSymlinks(path); err == nil {
		return p + ".lock"
	}
	if d, err := filepath.EvalSymlinks(filepath.Dir(path)); err == nil {
		return filepath.Join(d, filepath.Base(path)) + ".lock"
	}
	return path + ".lock"
}

// lockGrace is how long Open waits for a lock that was just released. A
// holder that closed its store can still hold the lock for a moment through
// a copy of its descriptor in a child being forked (the copy closes when
// the child execs), and a restarted service may start while its
// predecessor exits.
const lockGrace = 500 * time.Millisecond

// flockWithGrace takes the lock, retrying for up to lockGrace while it is
// held elsewhere.
func flockWithGrace(f *os.File) error {
	deadline := time.Now().Add(lockGrace)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if !errors.Is(err, syscall.EWOULDBLOCK) || time.Now().After(deadline) {
			return err
		}
		time.Sleep(10 * time.Millisecond)
	}
}
