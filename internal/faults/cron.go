package faults

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/schedule"
)

// cronName is the schedule of the cron scenarios: every second.
const cronName = "every-second"

// cronConfig is the workers' config file part that declares it.
const cronConfig = "schedules:\n  - name: " + cronName + "\n    cron: \"* * * * * *\"\n    job: {queue: " + Queue +
	", type: fault.work, data: {ms: 100}, max_attempts: 25}\n"

// runCron: three instances run the same every-second schedule; one is
// SIGKILLed and started again every few seconds. Every tick in the window
// must have exactly one job, run to success once.
func runCron(ctx context.Context, t testing.TB, full bool, tab *Table) error {
	length, period := 20*time.Second, 3*time.Second
	if full {
		length, period = 5*time.Minute, 5*time.Second
	}
	tab.Setup = fmt.Sprintf("3 instances run the schedule %q (cron \"* * * * * *\", a 100 ms job); instance 1 is SIGKILLed "+
		"every %s and started again at once, for %s. Every second of the window (less 2 s at each end) must have its tick's job.",
		cronName, period, length)
	extra := cronConfig
	e := NewEnv(t, Options{Concurrency: 5, LeaseMS: 2000, ConfigExtra: extra})
	cur := make([]*Proc, 3)
	for i := range cur {
		p, err := e.StartWorker(ctx, i+1)
		if err != nil {
			return err
		}
		cur[i] = p
	}
	from := time.Now().Add(2 * time.Second).Truncate(time.Second)
	end := time.Now().Add(length)
	kills := 0
	for time.Until(end) > 0 {
		if err := sleepCtx(ctx, min(period, time.Until(end))); err != nil {
			return err
		}
		if time.Until(end) <= 0 {
			break
		}
		cur[0].Kill()
		kills++
		p, err := e.StartWorker(ctx, 1)
		if err != nil {
			return err
		}
		cur[0] = p
	}
	to := time.Now().Add(-2 * time.Second).Truncate(time.Second)
	// The last ticks' jobs finish; then the instances stop.
	if err := sleepCtx(ctx, 3*time.Second); err != nil {
		return err
	}
	c, drainErr, err := e.drainStopCount(ctx)
	if err != nil {
		return err
	}
	tk, err := checkTicks(context.WithoutCancel(ctx), e, c, from, to)
	if err != nil {
		return err
	}
	tab.add("instance kills", kills)
	tk.add(tab)
	tab.add("tick jobs run more than once (a kill cut the run short)", c.Reran)
	tab.promise("effects applied twice", c.Doubled, "0 (idempotency table)", c.Doubled == 0)
	tab.promise("stale writes (completion accepted from an old lease)", c.StaleWrites, "0 (fencing)", c.StaleWrites == 0)
	return drainErr
}

// ticks is what checkTicks finds of the cron schedule's ticks.
type ticks struct {
	n, missed, doubles, early int
	lates                     []time.Duration // tick to its job's first start
}

// checkTicks checks every tick of the schedule from from to to: its job
// exists, succeeded at most once and never started before its tick.
func checkTicks(ctx context.Context, e *Env, c *Count, from, to time.Time) (*ticks, error) {
	tk := &ticks{}
	firstStart := map[string]int64{}
	for _, l := range c.Runs {
		if l.Kind == "start" && (firstStart[l.Job] == 0 || l.Start < firstStart[l.Job]) {
			firstStart[l.Job] = l.Start
		}
	}
	for s := from; !s.After(to); s = s.Add(time.Second) {
		tk.n++
		id := schedule.TickJobID(cronName, s)
		if _, err := e.Client.Get(ctx, Queue, id); err != nil {
			if !errors.Is(err, broker.ErrNotFound) {
				return nil, fmt.Errorf("look up tick job %s: %w", id, err)
			}
			tk.missed++
			continue
		}
		if st, ok := firstStart[id]; ok {
			tk.lates = append(tk.lates, time.Duration(st-s.UnixNano()))
		}
	}
	succeeded := map[string]int{}
	for _, l := range c.Runs {
		tick, ok := tickOf(l.Job)
		if !ok {
			continue
		}
		if l.Kind == "start" && l.Start < tick.UnixNano() {
			tk.early++
		}
		if l.Kind == "end" && l.Err == "" {
			succeeded[l.Job]++
		}
	}
	for _, n := range succeeded {
		if n > 1 {
			tk.doubles++
		}
	}
	return tk, nil
}

// add writes the tick figures.
func (tk *ticks) add(tab *Table) {
	tab.add("ticks in the window", tk.n)
	tab.promise("missed ticks (no job)", tk.missed, "0", tk.missed == 0)
	tab.promise("doubled ticks (a tick's job succeeded twice)", tk.doubles, "0", tk.doubles == 0)
	tab.promise("early runs (started before the tick)", tk.early, "0", tk.early == 0)
	tab.add("tick to first start, median", quantile(tk.lates, 0.5).Round(time.Millisecond))
	tab.add("tick to first start, max", quantile(tk.lates, 1).Round(time.Millisecond))
}

// tickOf returns the tick of a cron job id of the scenario's schedule.
func tickOf(id string) (time.Time, bool) {
	s, ok := strings.CutPrefix(id, "cron:"+cronName+":")
	if !ok {
		return time.Time{}, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.Unix(n, 0), true
}
