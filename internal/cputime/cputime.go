// Package cputime reads the CPU time this process has used, for benchmarks
// that report CPU per operation: on a machine shared with other work, CPU
// spent is a steadier figure than wall-clock throughput.
package cputime

import "time"

// Process returns the user plus system CPU time this process has used so
// far, and false where the platform does not say (the figure is then 0).
func Process() (time.Duration, bool) { return process() }
