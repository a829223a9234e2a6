package faults

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/internal/faults/oracle"
)

// runPoison: among a steady flow of normal jobs, one job panics, one never
// returns (it ignores its context), and one ends its worker's process at
// every attempt. A supervisor starts any worker that exits again, as
// Kubernetes would.
func runPoison(ctx context.Context, t testing.TB, full bool, tab *Table) error {
	const workers, conc, exitAttempts = 3, 5, 10
	flow := 3 * time.Second
	if full {
		flow = 10 * time.Second
	}
	tab.Setup = fmt.Sprintf("%d workers × %d concurrency, lease 2000 ms, under a flow of normal jobs (4 producers, a job every 20 ms each). "+
		"Enqueued once each: fault.panic (3 attempts), fault.hang (never returns, ignores its context; timeout 1 s, 2 attempts) and "+
		"fault.exit (os.Exit mid-run; %d attempts). A supervisor restarts any worker that exits. The flow runs until the exit job "+
		"is finished and at least %s, then the normal jobs drain.", workers, conc, exitAttempts, flow)
	e := NewEnv(t, Options{Concurrency: conc, LeaseMS: 2000})
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
	for _, spec := range []worker.JobSpec{
		{Type: oracle.TypePanic, MaxAttempts: 3},
		{Type: oracle.TypeHang, MaxAttempts: 2, Timeout: time.Second},
		{Type: oracle.TypeExit, MaxAttempts: exitAttempts},
	} {
		j, err := e.Client.Add(ctx, Queue, spec)
		if err != nil {
			stopSuper()
			<-superDone
			return err
		}
		ids[spec.Type] = j.ID
	}
	begin := time.Now()
	finished := func(id string) bool {
		j, err := e.Client.Get(ctx, Queue, id)
		return err == nil && j.State != worker.StatePending && j.State != worker.StateActive && j.State != worker.StateScheduled
	}
	err := until(ctx, 200*time.Millisecond, func() bool {
		return time.Since(begin) >= flow && finished(ids[oracle.TypeExit]) && finished(ids[oracle.TypePanic])
	})
	exitTook := time.Since(begin)
	prod.Stop()
	if err == nil {
		// The normal jobs drain.
		err = until(ctx, 200*time.Millisecond, func() bool {
			st, err := e.Client.Stats(ctx, Queue)
			return err == nil && st.Pending+st.Scheduled == 0 && st.Active <= 1 // the never-returning job may stay active
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
	tab.add("never-returning job when the others were done: state, attempts, last error",
		fmt.Sprintf("%s, %d, %q", hj.State, hj.Attempt, firstLine(hj.LastError)))
	tab.add("workers the exiting job took down", nExits)
	tab.promise("exiting job: state, attempts, last error", fmt.Sprintf("%s, %d, %q", xj.State, xj.Attempt, firstLine(xj.LastError)),
		"dead (quarantined) after killing its worker 3 times, with that reason",
		xj.State == worker.StateDead && nExits <= 3 && strings.Contains(xj.LastError, "killed its worker 3 times"))
	tab.add("time until the exiting job was finished", exitTook.Round(time.Millisecond))
	tab.promise("workers that did not exit within 10 s of SIGTERM (killed)", stuckStop, "0 (drain timeout 1 s)", stuckStop == 0)
	tab.add("slowest exit after SIGTERM", slowest.Round(time.Millisecond))
	// The normal flow (the three poison jobs were added apart from it).
	tab.addCount(c, true)
	tab.Notes = append(tab.Notes, "Go cannot stop a goroutine: a processor that ignores its context keeps its job active "+
		"(the heartbeat keeps extending the lease) and its slot taken until its process exits; the job comes back when "+
		"the process stops. Its timeout does not end the attempt.")
	return err
}

// firstLine returns s up to its first newline.
func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}
