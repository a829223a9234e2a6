package faults

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	worker "github.com/aibos/worker"
)

// runSkew: three instances run the every-second schedule and process
// delayed jobs; two of them have their service clock 5 minutes ahead and
// behind (service.Config.TestClockOffset). Nothing may start early, no
// tick may be missed or doubled, and no job may run twice.
func runSkew(ctx context.Context, t testing.TB, full bool, tab *Table) error {
	length, delayed := 15*time.Second, 100
	if full {
		length, delayed = time.Minute, 1000
	}
	offsets := []time.Duration{5 * time.Minute, -5 * time.Minute, 0}
	tab.Setup = fmt.Sprintf("3 instances run the schedule %q (every second) for %s; instance 1's clock is 5 minutes ahead, "+
		"instance 2's 5 minutes behind, instance 3's right (service.Config.TestClockOffset). %d jobs are added with delays "+
		"of 1 s to %s. The offsets are checked first in each instance's run lines.", cronName, length, delayed, length/2)
	e := NewEnv(t, Options{Concurrency: 5, LeaseMS: 2000, ConfigExtra: cronConfig})
	var procs []*Proc
	for i, off := range offsets {
		p, err := e.StartWorker(ctx, i+1, "FAULTS_CLOCK_OFFSET="+off.String())
		if err != nil {
			return err
		}
		procs = append(procs, p)
	}
	from := time.Now().Add(2 * time.Second).Truncate(time.Second)
	specs := make([]worker.JobSpec, delayed)
	for i := range specs {
		specs[i] = WorkSpec(100)
		specs[i].Delay = time.Second + rand.N(length/2)
	}
	if err := e.Add(ctx, specs...); err != nil {
		return err
	}
	if err := sleepCtx(ctx, length); err != nil {
		return err
	}
	to := time.Now().Add(-2 * time.Second).Truncate(time.Second)
	if err := sleepCtx(ctx, 2*time.Second); err != nil {
		return err
	}
	c, drainErr, err := e.drainStopCount(ctx)
	if err != nil {
		return err
	}
	// The offsets took effect: each instance's own clock, read at the
	// start of a run, is off by its offset.
	unverified := 0
	for i, p := range procs {
		var seen []time.Duration
		for _, l := range c.Runs {
			if l.Worker == p.Name && l.Kind == "start" {
				seen = append(seen, time.Duration(l.Clock-l.Start))
			}
		}
		got := quantile(seen, 0.5)
		ok := len(seen) > 0 && (got-offsets[i]).Abs() < time.Second
		if !ok {
			unverified++
		}
		tab.promise(fmt.Sprintf("instance %d: its clock minus the machine's (median over %d runs)", i+1, len(seen)),
			got.Round(time.Millisecond), offsets[i].String(), ok)
	}
	early := 0
	for _, l := range c.Runs {
		if l.Kind != "start" {
			continue
		}
		if _, tick := tickOf(l.Job); tick {
			continue // counted by checkTicks
		}
		j, err := e.Client.Get(context.WithoutCancel(ctx), Queue, l.Job)
		if err == nil && l.Start < j.RunAt.UnixNano() {
			early++
		}
	}
	tk, err := checkTicks(context.WithoutCancel(ctx), e, c, from, to)
	if err != nil {
		return err
	}
	tk.add(tab)
	tab.promise("delayed jobs started before they were due", early, "0", early == 0)
	tab.promise("jobs run more than once (no worker died: a second run is a duplicate)", c.Reran, "0", c.Reran == 0)
	tab.addCount(c, true)
	if unverified > 0 {
		return fmt.Errorf("the clock offset of %d instance(s) could not be seen in their runs", unverified)
	}
	return drainErr
}
