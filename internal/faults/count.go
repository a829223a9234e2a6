package faults

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/internal/faults/oracle"
)

// Count is what the harness counts at the end of a scenario, from the
// oracle's files and the broker, for the acknowledged enqueues.
type Count struct {
	Acked     int // enqueues the broker acknowledged
	Completed int // completed in the broker
	// Removed: done (its effect applied) and its record already removed
	// by completed-job retention (the Manager keeps about 10,000).
	Removed int
	// Lost: acknowledged, its effect never applied, and nothing left in
	// the broker that would still run it.
	Lost int
	// Stuck: acknowledged, not finished, still in the broker (pending,
	// active, scheduled) at the end.
	Stuck int
	// Dead: in the dead state (attempts used up).
	Dead int
	// Reran: jobs whose processor started more than once.
	Reran int
	// ExtraRuns: processor starts beyond the first, over all jobs.
	ExtraRuns int
	// KeyHits: runs that reached the effect and found it applied already:
	// the effect would have happened twice without the idempotency key.
	KeyHits int
	// Doubled: jobs whose effect was applied more than once (a broken
	// idempotency check).
	Doubled int
	// StaleWrites: completed jobs whose accepted completion came from a
	// lease older than the newest lease a run of the job started with.
	StaleWrites int
	// Runs is every line of the run files, for the scenario's own figures.
	Runs []oracle.Line
}

// Count reads the oracle and the broker. Call it once the workers are
// stopped or the queue is drained.
func (e *Env) Count(ctx context.Context) (*Count, error) {
	runs, err := oracle.ReadRuns(e.Dir)
	if err != nil {
		return nil, err
	}
	eff, err := oracle.ReadEffects(e.Dir)
	if err != nil {
		return nil, err
	}
	acked := e.Acked()
	c := &Count{Acked: len(acked), KeyHits: eff.Hits, Runs: runs}
	starts := map[string]int{}
	maxToken := map[string]int64{}
	for _, l := range runs {
		if l.Kind != "start" {
			continue
		}
		starts[l.Job]++
		maxToken[l.Job] = max(maxToken[l.Job], l.Token)
	}
	for _, n := range starts {
		if n > 1 {
			c.Reran++
			c.ExtraRuns += n - 1
		}
	}
	for _, n := range eff.Rows {
		if n > 1 {
			c.Doubled++
		}
	}
	for id := range acked {
		j, err := e.Client.Get(ctx, Queue, id)
		switch {
		case errors.Is(err, broker.ErrNotFound):
			if eff.Rows[id] == 0 {
				c.Lost++
			} else {
				c.Removed++
			}
			continue
		case err != nil:
			return nil, fmt.Errorf("count: get job %s: %w", id, err)
		}
		switch j.State {
		case worker.StateCompleted:
			c.Completed++
			var r oracle.Result
			if json.Unmarshal(j.Result, &r) == nil && r.Token < maxToken[id] {
				c.StaleWrites++
			}
		case worker.StateDead:
			c.Dead++
		case worker.StatePending, worker.StateActive, worker.StateScheduled:
			c.Stuck++
		default: // cancelled or expired: nobody asked for that here
			if eff.Rows[id] == 0 {
				c.Lost++
			}
		}
	}
	return c, nil
}

// Recovery is how long after a worker died its unfinished runs started
// again elsewhere.
type Recovery struct {
	Orphans int           // runs the dead worker left unfinished
	Max     time.Duration // the last orphan's restart after the death
	Missing int           // orphans that never started again
}

// RecoveryAfter measures, from the run lines, how long the runs that
// worker left unfinished took to start again on another worker after at.
func RecoveryAfter(runs []oracle.Line, workerName string, at time.Time) Recovery {
	open := map[string]bool{}
	for _, l := range runs {
		if l.Worker != workerName {
			continue
		}
		switch l.Kind {
		case "start":
			open[l.Job] = true
		case "end":
			delete(open, l.Job)
		}
	}
	var r Recovery
	r.Orphans = len(open)
	next := map[string]int64{}
	for _, l := range runs {
		if l.Kind == "start" && open[l.Job] && l.Worker != workerName && l.Start >= at.UnixNano() {
			if t, ok := next[l.Job]; !ok || l.Start < t {
				next[l.Job] = l.Start
			}
		}
	}
	for id := range open {
		t, ok := next[id]
		if !ok {
			r.Missing++
			continue
		}
		r.Max = max(r.Max, time.Duration(t-at.UnixNano()))
	}
	return r
}

// quantile returns the q-quantile of ds (0 for none).
func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[int(q*float64(len(s)-1))]
}

// Quarantined counts the dead jobs of Queue whose last error is the
// quarantine rule's (broker.QuarantineReason(maxCrashes)).
func (e *Env) Quarantined(ctx context.Context, maxCrashes int) (int, error) {
	want := broker.QuarantineReason(maxCrashes)
	n := 0
	for off := 0; off >= 0; {
		page, err := e.Client.List(ctx, worker.ListParams{Queue: Queue, State: worker.StateDead, Offset: off, Limit: 500})
		if err != nil {
			return 0, fmt.Errorf("list the dead jobs: %w", err)
		}
		for _, j := range page.Jobs {
			if j.LastError == want {
				n++
			}
		}
		off = page.NextOffset
	}
	return n, nil
}
