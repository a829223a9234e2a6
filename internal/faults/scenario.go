package faults

import (
	"context"
	"fmt"
	"math/rand/v2"
	"syscall"
	"testing"
	"time"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/internal/faults/oracle"
)

// workerBin is the faultworker binary the scenarios start; TestMain
// builds it.
var workerBin string

// Scenario is one fault the suite runs. Run gets a context bounded by
// Bound and returns its table; full selects the published sizes, else the
// smoke's small ones.
type Scenario struct {
	Name  string
	Bound func(full bool) time.Duration
	Run   func(ctx context.Context, t testing.TB, full bool, tab *Table) error
}

// Scenarios lists the suite in the order it runs.
var Scenarios = []Scenario{
	{Name: "worker SIGKILL under load", Bound: bound(90*time.Second, 10*time.Minute), Run: runKill},
	{Name: "graceful SIGTERM", Bound: bound(60*time.Second, 3*time.Minute), Run: runTerm},
	{Name: "Redis SIGKILL and restart, appendfsync always", Bound: bound(60*time.Second, 5*time.Minute), Run: runRedisKill("always")},
	{Name: "Redis SIGKILL and restart, appendfsync everysec", Bound: bound(60*time.Second, 5*time.Minute), Run: runRedisKill("everysec")},
	{Name: "Redis restarted empty", Bound: bound(60*time.Second, 3*time.Minute), Run: runRedisEmpty},
	{Name: "worker SIGSTOPped past its lease, then SIGCONT", Bound: bound(60*time.Second, 3*time.Minute), Run: runStop},
	{Name: "Redis unreachable (connections refused)", Bound: bound(90*time.Second, 4*time.Minute), Run: runOutage("refuse")},
	{Name: "Redis unreachable (packets silently dropped)", Bound: bound(90*time.Second, 4*time.Minute), Run: runOutage("drop")},
	{Name: "50 worker processes racing on one queue", Bound: bound(2*time.Minute, 15*time.Minute), Run: runRace},
	{Name: "cron on 3 instances, one killed and restarted repeatedly", Bound: bound(90*time.Second, 8*time.Minute), Run: runCron},
	{Name: "clock skew ±5 min", Bound: bound(90*time.Second, 4*time.Minute), Run: runSkew},
	{Name: "poison jobs", Bound: bound(3*time.Minute, 5*time.Minute), Run: runPoison},
	{Name: "Sentinel failover under load", Bound: bound(2*time.Minute, 4*time.Minute), Run: runSentinelFailover},
	{Name: "Cluster master failover under load", Bound: bound(2*time.Minute, 4*time.Minute), Run: runClusterFailover},
	{Name: "retention at 1,000,000 processed jobs", Bound: bound(3*time.Minute, 15*time.Minute), Run: runRetention},
}

func bound(smoke, full time.Duration) func(bool) time.Duration {
	return func(f bool) time.Duration {
		if f {
			return full
		}
		return smoke
	}
}

// RunScenario runs s as a subtest and returns its table; a scenario that
// fails keeps the figures it got, with the error.
func RunScenario(t *testing.T, s Scenario, full bool) *Table {
	tab := &Table{Name: s.Name}
	t.Run(s.Name, func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), s.Bound(full))
		defer cancel()
		begin := time.Now()
		err := s.Run(ctx, t, full, tab)
		tab.Took = time.Since(begin)
		if err != nil {
			tab.Failed = err.Error()
		}
	})
	return tab
}

// enqueueWork enqueues n fault.work jobs of lo..hi ms in batches.
func enqueueWork(ctx context.Context, e *Env, n, lo, hi int) error {
	const batch = 500
	for i := 0; i < n; i += batch {
		specs := make([]worker.JobSpec, 0, batch)
		for j := i; j < min(n, i+batch); j++ {
			specs = append(specs, WorkSpec(lo+rand.IntN(hi-lo+1)))
		}
		if err := e.Add(ctx, specs...); err != nil {
			return fmt.Errorf("enqueue: %w", err)
		}
	}
	return nil
}

// stopAll stops every running worker gracefully and waits for them.
func stopAll(ctx context.Context, e *Env) {
	for _, p := range e.Procs() {
		_ = p.Signal(syscall.SIGTERM)
	}
	for _, p := range e.Procs() {
		if _, _, err := p.Wait(ctx); err != nil {
			p.Kill()
		}
	}
}

// recoverySlack is what recovery may take beyond the lease: when the
// killed worker was maintaining the queue, another takes over within the
// Manager's MaintainLease (5 × MaintainInterval = 5 s), then recovers at
// its next round (MaintainInterval, 1 s); half a second for the machine.
const recoverySlack = 6500 * time.Millisecond

// maxCrashes is WORKER_MAX_CRASHES's default, which the workers run with:
// a job whose worker died under it 5 times in a row is quarantined.
const maxCrashes = 5

// runKill: workers × concurrency process jobs of 0.1–2 s while one worker
// is SIGKILLed every period and started again at once, as a supervisor
// would.
func runKill(ctx context.Context, t testing.TB, full bool, tab *Table) error {
	workers, conc, jobs, lo, hi, lease, period := 2, 5, 150, 50, 300, 1000, 1500*time.Millisecond
	if full {
		workers, conc, jobs, lo, hi, lease, period = 5, 20, 10000, 100, 2000, 5000, 5*time.Second
	}
	tab.Setup = fmt.Sprintf("%d workers × %d concurrency, %d jobs of %d–%d ms, lease %d ms; one worker SIGKILLed every %s "+
		"(round robin) and started again at once, until the queue is drained.", workers, conc, jobs, lo, hi, lease, period)
	e := NewEnv(t, Options{Concurrency: conc, LeaseMS: lease})
	if err := enqueueWork(ctx, e, jobs, lo, hi); err != nil {
		return err
	}
	cur := make([]*Proc, workers)
	for i := range cur {
		p, err := e.StartWorker(ctx, i+1)
		if err != nil {
			return err
		}
		cur[i] = p
	}
	type kill struct {
		name string
		at   time.Time
	}
	var kills []kill
	tick := time.NewTicker(period)
	defer tick.Stop()
	drained := make(chan error, 1)
	go func() { drained <- e.WaitDrained(ctx) }()
	var drainErr error
loop:
	for i := 0; ; i++ {
		select {
		case drainErr = <-drained:
			break loop
		case <-tick.C:
		}
		slot := i % workers
		at := time.Now()
		cur[slot].Kill()
		kills = append(kills, kill{cur[slot].Name, at})
		p, err := e.StartWorker(ctx, slot+1)
		if err != nil {
			return err
		}
		cur[slot] = p
	}
	stopAll(ctx, e)
	c, err := e.Count(context.WithoutCancel(ctx))
	if err != nil {
		return err
	}
	tab.add("workers SIGKILLed", len(kills))
	tab.addCount(c, true)
	q, err := e.Quarantined(context.WithoutCancel(ctx), maxCrashes)
	if err != nil {
		return err
	}
	tab.promise(fmt.Sprintf("healthy jobs quarantined (their worker died under them %d times in a row)", maxCrashes), q, "0", q == 0)
	var recs []time.Duration
	orphans, missing := 0, 0
	for _, k := range kills {
		r := RecoveryAfter(c.Runs, k.name, k.at)
		orphans += r.Orphans
		missing += r.Missing
		if r.Orphans > 0 {
			recs = append(recs, r.Max)
		}
	}
	tab.add("runs cut short by the kills", orphans)
	tab.promise("cut-short runs never restarted", missing, "0", missing == 0)
	tab.add("recovery after a kill (last orphan restarted), median", quantile(recs, 0.5).Round(time.Millisecond))
	tab.promise("recovery after a kill, max", quantile(recs, 1).Round(time.Millisecond),
		fmt.Sprintf("lease (%d ms) + maintainer takeover (5 s, when the maintainer died) + a maintenance round (1 s) "+
			"+ the crash spread (2 × lease, for a job whose worker died under it twice in a row)", lease),
		quantile(recs, 1) <= 3*time.Duration(lease)*time.Millisecond+recoverySlack)
	return drainErr
}

// runTerm: a worker full of long jobs gets SIGTERM while two others idle;
// its jobs are handed back at the drain timeout and the others take them.
func runTerm(ctx context.Context, t testing.TB, full bool, tab *Table) error {
	conc, ms, drain := 5, 3000, 500
	if full {
		conc, ms, drain = 20, 5000, 1000
	}
	tab.Setup = fmt.Sprintf("Worker 1 (concurrency %d) runs %d jobs of %d ms; workers 2 and 3 idle. Worker 1 gets SIGTERM "+
		"with WORKER_DRAIN_TIMEOUT %d ms: it must stop within the drain timeout and hand its jobs back, and the others must start them at once.",
		conc, conc, ms, drain)
	e := NewEnv(t, Options{Concurrency: conc, LeaseMS: 30000, DrainMS: drain})
	w1, err := e.StartWorker(ctx, 1)
	if err != nil {
		return err
	}
	specs := make([]worker.JobSpec, conc)
	for i := range specs {
		specs[i] = WorkSpec(ms)
	}
	if err := e.Add(ctx, specs...); err != nil {
		return err
	}
	if err := until(ctx, 50*time.Millisecond, func() bool { return startsBy(e, w1.Name) >= conc }); err != nil {
		return fmt.Errorf("wait for worker 1 to start its jobs: %w", err)
	}
	for slot := 2; slot <= 3; slot++ {
		if _, err := e.StartWorker(ctx, slot); err != nil {
			return err
		}
	}
	sent := time.Now()
	if err := w1.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	code, exited, err := w1.Wait(ctx)
	if err != nil {
		return err
	}
	c, drainErr, err := e.drainStopCount(ctx)
	if err != nil {
		return err
	}
	exit := exited.Sub(sent)
	tab.promise("exit code", code, "0 (clean drain)", code == 0)
	tab.promise("exit time after SIGTERM", exit.Round(time.Millisecond), fmt.Sprintf("drain timeout (%d ms) + hand-back, under %d ms", drain, drain+2000),
		exit < time.Duration(drain+2000)*time.Millisecond)
	handed, delays, charged := handBacks(c, w1.Name)
	tab.promise("jobs handed back", handed, fmt.Sprintf("%d (all it ran)", conc), handed == conc)
	slow := 0
	for _, d := range delays {
		if d > time.Second {
			slow++
		}
	}
	tab.promise("handed-back jobs not re-picked within 1 s", slow+handed-len(delays), "0", slow == 0 && len(delays) == handed)
	tab.add("re-pick delay, max", quantile(delays, 1).Round(time.Millisecond))
	tab.promise("re-picked jobs charged a new attempt", charged, "0 (a hand-back is not a failure)", charged == 0)
	tab.addCount(c, true)
	return drainErr
}

// startsBy counts the runs workerName started, from its run file.
func startsBy(e *Env, workerName string) int {
	runs, err := readRunsOf(e, workerName)
	if err != nil {
		return 0
	}
	n := 0
	for _, l := range runs {
		if l.Kind == "start" {
			n++
		}
	}
	return n
}

// handBacks returns how many of workerName's runs ended cancelled and, for
// each that started again elsewhere, how long after its cancellation, and
// how many of those reruns counted a new attempt (a hand-back must not).
func handBacks(c *Count, workerName string) (n int, delays []time.Duration, charged int) {
	for _, l := range c.Runs {
		if l.Worker != workerName || l.Kind != "end" || l.Err == "" {
			continue
		}
		n++
		var next *oracle.Line
		for i, m := range c.Runs {
			if m.Job == l.Job && m.Kind == "start" && m.Worker != workerName && m.Start >= l.Start && (next == nil || m.Start < next.Start) {
				next = &c.Runs[i]
			}
		}
		if next != nil {
			delays = append(delays, time.Duration(next.Start-l.End))
			if next.Attempt != l.Attempt {
				charged++
			}
		}
	}
	return n, delays, charged
}

func readRunsOf(e *Env, workerName string) ([]oracle.Line, error) {
	return oracle.ReadRunsOf(e.Dir, workerName)
}
