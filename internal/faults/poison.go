package faults

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/internal/faults/oracle"
)

// runPoison: among a steady flow of normal jobs, one job panics, one never
// returns (it ignores its context), and one ends its worker's process at
// every attempt. A supervisor starts any worker that exits again, as
// Kubernetes would.
func runPoison(ctx context.Context, t testing.TB, full bool, tab *Table) error {
	const workers, conc, exitAttempts = 3, 10, 10
	flow := 3 * time.Second
	if full {
		flow = 10 * time.Second
	}
	tab.Setup = fmt.Sprintf("%d workers × %d concurrency, lease 2000 ms, under a flow of normal jobs (4 producers, a job every 20 ms each). "+
		"Enqueued once each: fault.panic (3 attempts), fault.hang (never returns, ignores its context; timeout 1 s, 2 attempts) and "+
		"fault.exit (os.Exit mid-run; %d attempts; added once fault.hang is finished, as a worker it kills would take an abandoned "+
		"attempt with it), with WORKER_ABANDON_GRACE 2 s and WORKER_MAX_CRASHES at its default %d. "+
		"A supervisor restarts any worker that exits. The flow runs until the three are finished and at least %s, "+
		"then the normal jobs drain.", workers, conc, exitAttempts, maxCrashes, flow)
	e := NewEnv(t, Options{Concurrency: conc, LeaseMS: 2000, Env: []string{"WORKER_ABANDON_GRACE=2000"}})
	cur := make([]*Proc, workers)
	for i := range cur {
		p, err := e.StartWorker(ctx, i+1)
		if err != nil {
			return err
		}
		cur[i] = p
	}
	var mu sync.Mutex
	exits := 0
	superCtx, stopSuper := context.WithCancel(ctx)
	superDone := make(chan error, 1)
	go func() {
		superDone <- until(superCtx, 100*time.Millisecond, func() bool {
			for i, p := range cur {
				if !p.Exited() {
					continue
				}
				mu.Lock()
				exits++
				mu.Unlock()
				np, err := e.StartWorker(superCtx, i+1)
				if err != nil {
					return false
				}
				cur[i] = np
			}
			return false
		})
	}()
	prod := produce(e, 4, 20*time.Millisecond, 50, 200)
	defer prod.Stop()
	ids := map[string]string{}
	add := func(spec worker.JobSpec) error {
		j, err := e.Client.Add(ctx, Queue, spec)
		if err != nil {
			return err
		}
		ids[spec.Type] = j.ID
		return nil
	}
	// The exiting job comes once the never-returning one is finished: a
	// worker it kills would take the abandoned attempt with it.
	for _, spec := range []worker.JobSpec{
		{Type: oracle.TypePanic, MaxAttempts: 3},
		{Type: oracle.TypeHang, MaxAttempts: 2, Timeout: time.Second},
	} {
		if err := add(spec); err != nil {
			stopSuper()
			<-superDone
			return err
		}
	}
	begin := time.Now()
	finished := func(id string) bool {
		j, err := e.Client.Get(ctx, Queue, id)
		return err == nil && j.State != worker.StatePending && j.State != worker.StateActive && j.State != worker.StateScheduled
	}
	var exitTook, hangTook time.Duration
	var exitAdded time.Time
	var addErr error
	stuck := 0.0 // the most abandoned processors the live workers reported at once
	err := until(ctx, 200*time.Millisecond, func() bool {
		now := 0.0
		for _, p := range e.Procs() {
			if !p.Exited() {
				if v, merr := p.Metric(ctx, "aibos_worker_manager_stuck_processors"); merr == nil {
					now += v
				}
			}
		}
		stuck = max(stuck, now)
		if exitTook == 0 && !exitAdded.IsZero() && finished(ids[oracle.TypeExit]) {
			exitTook = time.Since(exitAdded)
		}
		if hangTook == 0 && finished(ids[oracle.TypeHang]) {
			hangTook = time.Since(begin)
			if addErr = add(worker.JobSpec{Type: oracle.TypeExit, MaxAttempts: exitAttempts}); addErr != nil {
				return true
			}
			exitAdded = time.Now()
		}
		return time.Since(begin) >= flow && exitTook > 0 && hangTook > 0 && finished(ids[oracle.TypePanic])
	})
	prod.Stop()
	err = errors.Join(err, addErr)
	if err == nil {
		// The normal jobs drain.
		err = until(ctx, 200*time.Millisecond, func() bool {
			st, err := e.Client.Stats(ctx, Queue)
			return err == nil && st.Pending+st.Scheduled+st.Active == 0
		})
	}
	stopSuper()
	<-superDone
	mu.Lock()
	nExits := exits
	mu.Unlock()
	state := func(id string) *worker.Job {
		j, err := e.Client.Get(context.WithoutCancel(ctx), Queue, id)
		if err != nil {
			return &worker.Job{State: "missing", LastError: err.Error()}
		}
		return j
	}
	pj, hj, xj := state(ids[oracle.TypePanic]), state(ids[oracle.TypeHang]), state(ids[oracle.TypeExit])
	// SIGTERM: a worker whose processor never returns must still exit
	// (the drain gives up on it at the drain timeout).
	var slowest time.Duration
	stuckStop := 0
	for _, p := range e.Procs() {
		if p.Exited() {
			continue
		}
		sent := time.Now()
		_ = p.Signal(syscall.SIGTERM)
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		if _, at, werr := p.Wait(wctx); werr != nil {
			stuckStop++
			p.Kill()
		} else {
			slowest = max(slowest, at.Sub(sent))
		}
		cancel()
	}
	c, cerr := e.Count(context.WithoutCancel(ctx))
	if cerr != nil {
		return cerr
	}
	tab.promise("panicking job: state, attempts", fmt.Sprintf("%s, %d", pj.State, pj.Attempt), "dead after 3 attempts, the panic recorded",
		pj.State == worker.StateDead && pj.Attempt == 3 && strings.Contains(pj.LastError, "panic"))
	tab.promise("never-returning job: state, attempts, last error", fmt.Sprintf("%s, %d, %q", hj.State, hj.Attempt, firstLine(hj.LastError)),
		"dead after 2 attempts, each ended WORKER_ABANDON_GRACE (2 s) after its 1 s timeout",
		hj.State == worker.StateDead && hj.Attempt == 2 && strings.Contains(hj.LastError, "did not return within"))
	tab.add("time until the never-returning job was finished", hangTook.Round(time.Millisecond))
	tab.promise("abandoned processors holding a slot, most seen at once (aibos_worker_manager_stuck_processors, summed over live workers)", stuck,
		"at least 1 (Go cannot stop them: each keeps its slot until its process ends)", stuck >= 1)
	tab.add("workers the exiting job took down", nExits)
	tab.promise("exiting job: state, attempts, last error", fmt.Sprintf("%s, %d, %q", xj.State, xj.Attempt, firstLine(xj.LastError)),
		fmt.Sprintf("dead (quarantined) after killing its worker %d times (WORKER_MAX_CRASHES), with that reason", maxCrashes),
		xj.State == worker.StateDead && nExits == maxCrashes && xj.LastError == broker.QuarantineReason(maxCrashes))
	tab.add("time from adding the exiting job until it was finished", exitTook.Round(time.Millisecond))
	tab.promise("workers that did not exit within 10 s of SIGTERM (killed)", stuckStop, "0 (drain timeout 1 s)", stuckStop == 0)
	tab.add("slowest exit after SIGTERM", slowest.Round(time.Millisecond))
	// The normal flow (the three poison jobs were added apart from it).
	tab.addCount(c, true)
	q, qerr := e.Quarantined(context.WithoutCancel(ctx), maxCrashes)
	if qerr != nil {
		return qerr
	}
	tab.promise("normal jobs quarantined (died beside the exiting job)", q-1, "0 (the crash spread runs them apart from it)", q == 1)
	tab.Notes = append(tab.Notes, "Go cannot stop a goroutine: a processor that ignores its context keeps its run slot "+
		"until it returns (here: until its process stops), but WORKER_ABANDON_GRACE after its timeout its attempt ends "+
		"without it, failed and retried per policy, so the job finishes and the other slots keep serving.")
	return err
}

// firstLine returns s up to its first newline.
func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}
