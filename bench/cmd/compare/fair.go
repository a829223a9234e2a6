package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"time"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/internal/cputime"
)

// Phase g: issue 19's fairness workloads on aibos-worker only, on Redis
// (column aibos) and on the embedded store (column sqlite).
//
// Overhead: cfg.n pending no-op jobs through a Manager at concurrency 10
// with default settings, fairness off and on, with one tenant and with the
// jobs spread over 100 tenants (added one tenant after another); the bar
// is on/off ≥ 0.85. The off-with-100-tenants row tells what the tenants
// cost without fairness.
//
// Flood: tenant A adds cfg.floodN jobs, then tenants B–E each add one job
// every 10 ms for cfg.floodS seconds; every job takes 2 ms, concurrency 10.
// Run without the flood (B–E alone), with it and fairness off, and with it
// and fairness on. The bars: B–E's enqueue-to-start p99 with the flood and
// fairness on within 2× of the no-flood p99; A's throughput with fairness
// on ≥ 0.9× of A's without it. A B–E job waits at most the window's length:
// one not started when the window ends counts as that (one added in the
// last tick has a second more to start). Enqueue-to-start is measured on
// this process's clock, in microseconds (from just before the Add call to the
// handler's start): the brokers' CreatedAt and StartedAt have millisecond
// resolution, too coarse for a ratio of p99s of a few milliseconds.
func measureFair(ctx context.Context, cfg *config, s *aibos, flush func(context.Context) error, set func(string, float64)) error {
	jobsPerS := map[string]float64{}
	for _, v := range []struct {
		name    string
		fair    bool
		tenants int
	}{{"off", false, 1}, {"off 100 tenants", false, 100}, {"on 1 tenant", true, 1}, {"on 100 tenants", true, 100}}[:cfg.overheadRuns()] {
		if err := flush(ctx); err != nil {
			return err
		}
		r, cpu, err := fairOverhead(ctx, s, s.name()+" "+v.name, cfg.n, v.fair, v.tenants)
		if err != nil {
			return fmt.Errorf("fair overhead %s: %w", v.name, err)
		}
		jobsPerS[v.name] = r
		set("g fair "+v.name+" c10 jobs/s", r)
		if cpu > 0 {
			set("g fair "+v.name+" c10 worker cpu us/job", cpu)
		}
	}
	if !cfg.floodOnly {
		set("g fair on/off 1 tenant", jobsPerS["on 1 tenant"]/jobsPerS["off"])
		set("g fair on/off 100 tenants", jobsPerS["on 100 tenants"]/jobsPerS["off"])
	}

	if cfg.overheadOnly {
		return nil
	}
	rows := "g flood" // the flood rows' name
	if cfg.floodSpread > 0 {
		rows = fmt.Sprintf("g flood 2±%v", cfg.floodSpread)
	}
	type flood struct{ p99, aRate, started, aJobMs float64 }
	floods := map[string]flood{}
	for _, v := range []struct {
		name  string
		fair  bool
		flood int
	}{{"no flood", true, 0}, {"fair off", false, cfg.floodN}, {"fair on", true, cfg.floodN}} {
		if err := flush(ctx); err != nil {
			return err
		}
		waits, aRate, started, aJobMs, err := fairFlood(ctx, s, v.fair, v.flood, time.Duration(cfg.floodS*float64(time.Second)), cfg.floodSpread)
		if err != nil {
			return fmt.Errorf("flood %s: %w", v.name, err)
		}
		p99 := percentile(waits, 99)
		floods[v.name] = flood{p99, aRate, started, aJobMs}
		for _, p := range []float64{50, 90} {
			set(fmt.Sprintf("%s %s B-E p%.0f ms", rows, v.name, p), percentile(waits, p))
		}
		set(rows+" "+v.name+" B-E p99 ms", p99)
		set(rows+" "+v.name+" B-E max ms", percentile(waits, 100))
		set(rows+" "+v.name+" B-E started", started)
		if v.flood > 0 {
			set(rows+" "+v.name+" A jobs/s", aRate)
			set(rows+" "+v.name+" A job ms", aJobMs)
		}
	}
	set(rows+" p99 fair on/no flood", floods["fair on"].p99/floods["no flood"].p99)
	set(rows+" A fair on/off", floods["fair on"].aRate/floods["fair off"].aRate)
	return nil
}

// fairOverhead processes n no-op jobs of tenants tenants in a queue with
// fairness on or off and returns jobs/s and the CPU this process spent per
// job processing them (0 where unknown): all of it on the embedded store,
// which runs in this process and whose figure holds on a loaded machine;
// the worker's side only on Redis. The CPU samples of adding the jobs
// and of processing them carry the pprof label workload=<name> add and
// <name> process, to tell them apart in a -cpuprofile.
func fairOverhead(ctx context.Context, s *aibos, name string, n int, fair bool, tenants int) (jobsPerS, cpuUsPerJob float64, err error) {
	c, b, closeB, err := s.client()
	if err != nil {
		return 0, 0, err
	}
	defer closeB()
	if err := c.SetFairPolicy(ctx, &broker.FairPolicy{Queue: aibosQueue, Fair: fair}); err != nil {
		return 0, 0, err
	}
	pprof.Do(ctx, pprof.Labels("workload", name+" add"), func(ctx context.Context) {
		for t := range tenants {
			if err = addTenantJobs(ctx, c, fmt.Sprintf("t-%03d", t), n/tenants); err != nil {
				return
			}
		}
	})
	if err != nil {
		return 0, 0, err
	}
	n = n / tenants * tenants
	cpu0, ok0 := cputime.Process()
	pprof.Do(ctx, pprof.Labels("workload", name+" process"), func(ctx context.Context) {
		jobsPerS, err = processAll(ctx, b, n)
	})
	if cpu1, ok1 := cputime.Process(); ok0 && ok1 {
		cpuUsPerJob = float64(cpu1-cpu0) / float64(time.Microsecond) / float64(n)
	}
	return jobsPerS, cpuUsPerJob, err
}

// processAll processes the n jobs pending in b through a Manager of
// concurrency 10 and returns jobs/s.
func processAll(ctx context.Context, b broker.Broker, n int) (float64, error) {
	cnt := newCounter(n)
	start := time.Now()
	m, err := startManager(ctx, b, 10, func(*worker.Job) { cnt.inc() })
	if err != nil {
		return 0, err
	}
	defer func() { _ = m.Shutdown(ctx) }()
	if err := cnt.wait(5 * time.Minute); err != nil {
		return 0, err
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// floodJob is how long a job of phase g's flood takes.
const floodJob = 2 * time.Millisecond

// fairFlood runs the flood workload once; it returns B–E's enqueue-to-start
// waits in ms, A's jobs/s over the window and the share of B–E's jobs
// started within it.
func fairFlood(ctx context.Context, s *aibos, fair bool, flood int, window, spread time.Duration) (waits []float64, aRate, started, aJobMs float64, err error) {
	c, b, closeB, err := s.client()
	if err != nil {
		return nil, 0, 0, 0, err
	}
	defer closeB()
	if err := c.SetFairPolicy(ctx, &broker.FairPolicy{Queue: aibosQueue, Fair: fair}); err != nil {
		return nil, 0, 0, 0, err
	}
	if err := addTenantJobs(ctx, c, "t-a", flood); err != nil {
		return nil, 0, 0, 0, err
	}
	var (
		mu      sync.Mutex
		began   = map[string]time.Time{} // B–E: when the handler began, by job id
		aDone   atomic.Int64
		aWorkNs atomic.Int64 // the time A's jobs spent in their work
		waitErr atomic.Pointer[error]
	)
	work := func() { // the job's work: 2 ms, ± up to spread
		d := floodJob
		if spread > 0 {
			d += time.Duration(rand.Int64N(int64(2*spread)+1)) - spread
		}
		if err := preciseWait(d); err != nil {
			waitErr.CompareAndSwap(nil, &err)
		}
	}
	m, err := startManager(ctx, b, 10, func(j *worker.Job) {
		if j.TenantID == "t-a" {
			t0 := time.Now()
			work()
			aWorkNs.Add(int64(time.Since(t0)))
			aDone.Add(1)
			return
		}
		now := time.Now()
		mu.Lock()
		began[j.ID] = now
		mu.Unlock()
		work()
	})
	if err != nil {
		return nil, 0, 0, 0, err
	}
	defer func() { _ = m.Shutdown(ctx) }()
	added := map[string]time.Time{} // B–E: when Add was called, by job id
	a0 := aDone.Load()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for end := time.Now().Add(window); time.Now().Before(end); <-tick.C {
		for _, tn := range []string{"t-b", "t-c", "t-d", "t-e"} {
			at := time.Now()
			j, err := c.Add(ctx, aibosQueue, worker.JobSpec{Type: "bench", TenantID: tn})
			if err != nil {
				return nil, 0, 0, 0, err
			}
			added[j.ID] = at
		}
	}
	aRate = float64(aDone.Load()-a0) / window.Seconds()
	if err := waitErr.Load(); err != nil {
		return nil, 0, 0, 0, *err
	}
	if n := aDone.Load(); n > 0 {
		aJobMs = float64(aWorkNs.Load()) / float64(n) / 1e6
	}
	if len(added) == 0 {
		return nil, 0, 0, 0, fmt.Errorf("no job of tenants B-E was added")
	}
	// The last tick's jobs were added a moment ago: give them up to a
	// second to start, else their wait would read as the window's length.
	for deadline := time.Now().Add(min(time.Second, window)); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		mu.Lock()
		all := len(began) >= len(added)
		mu.Unlock()
		if all {
			break
		}
	}
	mu.Lock()
	defer mu.Unlock()
	waits = make([]float64, 0, len(added)) // ms, with µs resolution
	seen := 0
	for id, at := range added {
		wait := window
		if st, ok := began[id]; ok {
			wait = min(st.Sub(at), window)
			seen++
		}
		waits = append(waits, float64(wait.Microseconds())/1000)
	}
	return waits, aRate, float64(seen) / float64(len(added)), aJobMs, nil
}

// addTenantJobs adds n bench jobs of tenant tn, 1,000 per AddMany.
func addTenantJobs(ctx context.Context, c *worker.Client, tn string, n int) error {
	specs := make([]worker.JobSpec, 1000)
	for i := range specs {
		specs[i] = worker.JobSpec{Type: "bench", TenantID: tn}
	}
	for added := 0; added < n; added += len(specs) {
		if _, err := c.AddMany(ctx, aibosQueue, specs[:min(len(specs), n-added)]); err != nil {
			return err
		}
	}
	return nil
}

// measureFairAll runs phase g on Redis (when aibos is selected) and on the
// embedded store.
func measureFairAll(ctx context.Context, cfg *config, srv *redisServer, res results) error {
	setter := func(sys string) func(string, float64) {
		return func(metric string, v float64) {
			res.set(sys, metric, v)
			if cfg.verbose {
				fmt.Fprintf(os.Stderr, "%-7s %-36s %12.2f\n", sys, metric, v)
			}
		}
	}
	if cfg.has(cfg.systems, "aibos") {
		if err := measureFair(ctx, cfg, newAibosRedis(srv), srv.flush, setter("aibos")); err != nil {
			return fmt.Errorf("redis: %w", err)
		}
	}
	s, cleanup, err := sqliteSystem()
	if err != nil {
		return err
	}
	defer cleanup()
	noFlush := func(context.Context) error { return nil } // each workload opens a fresh file
	if err := measureFair(ctx, cfg, s, noFlush, setter("sqlite")); err != nil {
		return fmt.Errorf("sqlite: %w", err)
	}
	return nil
}
