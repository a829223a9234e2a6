// Package testserver holds what the helpers that start a private server for
// a test package (redistest, pgtest) share: the server started on first use,
// the TestMain that stops it by pid and then checks for leaked goroutines,
// and the rule that a missing server skips a test, or fails it in CI.
package testserver

import (
	"fmt"
	"net"
	"os"
	"sync"
	"testing"

	"go.uber.org/goleak"
)

// Stopper is a server process a test helper started.
type Stopper interface {
	// Stop ends the process by pid and waits for it. Safe to call twice.
	Stop()
}

// Shared is one server per test package, started on first use and stopped
// by Main. Safe for concurrent use by the package's tests.
type Shared[S Stopper] struct {
	start   func() (S, error)
	once    sync.Once
	server  S
	err     error
	started bool
}

// NewShared returns a Shared that starts its server with start.
func NewShared[S Stopper](start func() (S, error)) *Shared[S] {
	return &Shared[S]{start: start}
}

// Get starts the server on the first call and returns it, or the error
// that starting it gave, to every call.
func (s *Shared[S]) Get() (S, error) {
	s.once.Do(func() {
		s.server, s.err = s.start()
		s.started = s.err == nil
	})
	return s.server, s.err
}

// Stop stops the server if Get started one. Call it only once the tests
// are over.
func (s *Shared[S]) Stop() {
	if s.started {
		s.server.Stop()
	}
}

// Main runs the package's tests, then every stop (the helpers' shared
// servers, by pid), and, if the tests passed, fails the run when
// goroutines leaked (goleak). A helper's own Main calls it; TestMain
// passes its result to os.Exit.
func Main(m *testing.M, stops ...func()) int {
	code := m.Run()
	for _, stop := range stops {
		stop()
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	return code
}

// Unavailable skips t because server cannot be had, for err; with CI set
// (where every server is installed) it fails t instead.
func Unavailable(t testing.TB, server string, err error) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is required in CI: %v", server, err)
	}
	t.Skipf("skipping: %v", err)
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
