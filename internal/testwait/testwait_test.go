package testwait

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fakeTB records a Fatalf instead of ending the test, so the failure path
// can be checked.
type fakeTB struct {
	testing.TB
	failed string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.failed = format
	panic(f)
}

func TestProgressWaitsWhileCountGrows(t *testing.T) {
	var n atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 20 {
			time.Sleep(5 * time.Millisecond)
			n.Add(1)
		}
	}()
	// The whole run takes longer than stall; each step does not.
	Progress(t, time.Second, "counter", 20, func() int { return int(n.Load()) })
	<-done
}

func TestProgressFailsWhenCountStalls(t *testing.T) {
	f := &fakeTB{TB: t}
	func() {
		defer func() {
			if r := recover(); r != nil && r != any(f) {
				panic(r)
			}
		}()
		Progress(f, 50*time.Millisecond, "stuck counter", 3, func() int { return 1 })
	}()
	if !strings.Contains(f.failed, "no progress") {
		t.Fatalf("a count that never moves did not fail the wait (got %q)", f.failed)
	}
}
