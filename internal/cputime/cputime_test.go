package cputime_test

import (
	"runtime"
	"testing"

	"github.com/aibos/worker/internal/cputime"
)

// Busy work shows as CPU time used, never as less than before.
func TestProcessGrowsWithWork(t *testing.T) {
	if runtime.GOOS == "windows" || runtime.GOOS == "plan9" {
		t.Skip("no getrusage")
	}
	before, ok := cputime.Process()
	if !ok {
		t.Fatal("Process: not available on a unix system")
	}
	x := 0
	for {
		for i := range 1_000_000 {
			x += i % 7
		}
		after, _ := cputime.Process()
		if after < before {
			t.Fatalf("CPU time went back from %v to %v", before, after)
		}
		if after > before {
			break
		}
	}
	_ = x
}
