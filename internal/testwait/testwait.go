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
