package faults

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/internal/faults/oracle"
)

// runStop: a worker is SIGSTOPped while running its jobs, past their
// lease; another worker takes them; then the first is SIGCONTed and its
// processors (which ignore cancellation) report success late. The broker
// must keep the current holder's completion and reject the old one's.
func runStop(ctx context.Context, t testing.TB, full bool, tab *Table) error {
	conc, ms, lease := 5, 3000, 1000
	if full {
		conc, ms, lease = 20, 4000, 2000
	}
	tab.Setup = fmt.Sprintf("Worker 1 (concurrency %d, lease %d ms) starts %d jobs of %d ms whose processor ignores cancellation, "+
		"and is SIGSTOPped. Worker 2 starts; once it has started every job again (after the lease expired), worker 1 is SIGCONTed.",
		conc, lease, conc, ms)
	e := NewEnv(t, Options{Concurrency: conc, LeaseMS: lease})
	w1, err := e.StartWorker(ctx, 1)
	if err != nil {
		return err
	}
	specs := make([]worker.JobSpec, conc)
	for i := range specs {
		specs[i] = worker.JobSpec{Type: oracle.TypeWork, Data: oracle.Work{MS: ms, IgnoreCancel: true}}
	}
	if err := e.Add(ctx, specs...); err != nil {
		return err
	}
	if err := until(ctx, 20*time.Millisecond, func() bool { return startsBy(e, w1.Name) >= conc }); err != nil {
		return fmt.Errorf("wait for worker 1 to start its jobs: %w", err)
	}
	if err := w1.Signal(syscall.SIGSTOP); err != nil {
		return err
	}
	stopped := time.Now()
	w2, err := e.StartWorker(ctx, 2)
	if err != nil {
		return err
	}
	if err := until(ctx, 50*time.Millisecond, func() bool { return startsBy(e, w2.Name) >= conc }); err != nil {
		return fmt.Errorf("wait for worker 2 to start the jobs again: %w", err)
	}
	taken := time.Since(stopped)
	if err := w1.Signal(syscall.SIGCONT); err != nil {
		return err
	}
	resumed := time.Now()
	drainErr := e.WaitDrained(ctx)
	// Worker 1's late runs end on their own timers; wait for their lines.
	if err := until(ctx, 50*time.Millisecond, func() bool { return endsBy(e, w1.Name) >= conc }); err != nil {
		return fmt.Errorf("wait for worker 1's late runs to end: %w", err)
	}
	stopAll(ctx, e)
	c, err := e.Count(context.WithoutCancel(ctx))
	if err != nil {
		return err
	}
	late := 0
	for _, l := range c.Runs {
		if l.Worker == w1.Name && l.Kind == "end" && l.Err == "" && l.End >= resumed.UnixNano() {
			late++
		}
	}
	discarded, err := countLogLines(e.Dir+"/log-"+w1.Name+".jsonl", "job lease lost; result discarded")
	if err != nil {
		return err
	}
	tab.add("time until worker 2 had started every job again", taken.Round(time.Millisecond))
	tab.promise("jobs run again elsewhere", startsBy(e, w2.Name), fmt.Sprintf("%d (all)", conc), startsBy(e, w2.Name) == conc)
	tab.add("late successes of the stopped worker's processors", late)
	tab.add("of those, discarded by the worker itself (it saw the lease lost)", discarded)
	tab.add("of those, sent to the broker (must be rejected by the token)", late-discarded)
	tab.addCount(c, true)
	if late == discarded {
		tab.Notes = append(tab.Notes, "Worker 1's heartbeat, due while it was stopped, ran first on SIGCONT and saw every lease lost, "+
			"so the Manager discarded each late success itself and none reached the broker: this run shows the first line of "+
			"defence, not the broker's token check, which brokertest's StaleTokenRejected pins on both engines.")
	}
	return drainErr
}

// endsBy counts the runs workerName ended, from its run file.
func endsBy(e *Env, workerName string) int {
	runs, err := readRunsOf(e, workerName)
	if err != nil {
		return 0
	}
	n := 0
	for _, l := range runs {
		if l.Kind == "end" {
			n++
		}
	}
	return n
}

// countLogLines counts the JSON log lines of a worker's log whose message
// is msg.
func countLogLines(path, msg string) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("read a worker's log: %w", err)
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if strings.Contains(sc.Text(), `"msg":"`+msg+`"`) {
			n++
		}
	}
	return n, sc.Err()
}
