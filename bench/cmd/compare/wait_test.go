package main

import (
	"testing"
	"time"
)

// TestPreciseWait: the flood's jobs last at least their 2 ms (a wait that
// returned early would flatter every figure of phase g), and a wait of
// nothing returns.
func TestPreciseWait(t *testing.T) {
	for _, d := range []time.Duration{0, -time.Millisecond, 2 * time.Millisecond} {
		start := time.Now()
		if err := preciseWait(d); err != nil {
			t.Fatalf("preciseWait(%v): %v", d, err)
		}
		if took := time.Since(start); took < d {
			t.Fatalf("preciseWait(%v) returned after %v", d, took)
		}
	}
}
