package faults

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// runRace: many worker processes race on one queue of short jobs.
func runRace(ctx context.Context, t testing.TB, full bool, tab *Table) error {
	workers, conc, jobs := 10, 4, 2000
	if full {
		workers, conc, jobs = 50, 4, 100000
	}
	tab.Setup = fmt.Sprintf("%d worker processes × %d concurrency race on one queue holding %d jobs of 0 ms (each still "+
		"writes two fsynced run lines and one effect).", workers, conc, jobs)
	e := NewEnv(t, Options{Concurrency: conc, LeaseMS: 30000})
	if err := enqueueWork(ctx, e, jobs, 0, 0); err != nil {
		return err
	}
	begin := time.Now()
	for slot := 1; slot <= workers; slot++ {
		if _, err := e.StartWorker(ctx, slot); err != nil {
			return err
		}
	}
	drainErr := e.WaitDrained(ctx)
	took := time.Since(begin)
	stopAll(ctx, e)
	c, err := e.Count(context.WithoutCancel(ctx))
	if err != nil {
		return err
	}
	tab.add("time from the first worker's start to an empty queue", took.Round(time.Millisecond))
	tab.add("throughput (jobs/s, worker start-up included)", fmt.Sprintf("%.0f", float64(c.Completed+c.Removed)/took.Seconds()))
	tab.promise("jobs run more than once (no fault: a run twice is a double lease)", c.Reran, "0", c.Reran == 0)
	tab.addCount(c, true)
	return drainErr
}
