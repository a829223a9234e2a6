// Package testwait waits in tests for a condition a user would observe, by
// polling it, instead of sleeping and then asserting.
package testwait

import (
	"testing"
	"time"
)

// For polls cond every 10 ms until it holds, and fails the test if timeout
// passes first, naming what it waited for.
func For(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Progress polls count every 50 ms (it may be a broker query) until it
// reaches n, and fails the test if count stays the same for stall, naming
// what it waited for. It bounds a hang, not a speed: a loaded machine makes
// the wait longer but cannot fail it while work goes on.
func Progress(t testing.TB, stall time.Duration, what string, n int, count func() int) {
	t.Helper()
	last, since := count(), time.Now()
	for last < n {
		time.Sleep(50 * time.Millisecond)
		c := count()
		switch {
		case c != last:
			last, since = c, time.Now()
		case time.Since(since) > stall:
			t.Fatalf("no progress for %v waiting for %s: %d of %d", stall, what, c, n)
		}
	}
}
