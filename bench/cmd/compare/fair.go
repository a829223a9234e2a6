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
// every 10 ms for cfg.floodS seconds; every job takes 2 ms, concurrency 10
// (-flood-concurrency).
// Run without the flood (B–E alone), with it and fairness off, and with it
// and fairness on. The bars: B–E's enqueue-to-start p99 with the flood and
// fairness on within 2× of the no-flood p99; A's throughput with fairness
// on ≥ 0.9× of A's without it. A B–E job waits at most the window's length:
// one not started when the window ends counts as that (one added in the
// last tick has a second more to start). Enqueue-to-start is measured on
// this process's clock, in microseconds (from just before the Add call to the
// handler's start): the brokers' CreatedAt and StartedAt have millisecond
// resolution, too coarse for a ratio of p99s of a few milliseconds.
//
// Each B–E wait is split in two (floodTrace): add → leased by the Manager
// (its JobFetch returned the job) and leased → handler start, the rows
// "add-to-lease" and "lease-to-start". The "ideal" rows are the waits, in
// the run with the flood and fairness on, of a scheduler with no fetch
// latency that gives each run slot, as it freed in that run, to the oldest
// B–E job then stored (idealWaits): what no scheduler that keeps the
// concurrency and never idles a slot can beat. With jobs of exactly 2 ms
// the slots free in step, a round every job length, and a B–E job waits
// for the next round: the ideal p99 is about a round.
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
	rows := floodRows(cfg)
	type flood struct{ p99, aRate float64 }
	floods := map[string]flood{}
	for _, v := range []struct {
		name  string
		fair  bool
		flood int
	}{{"no flood", true, 0}, {"fair off", false, cfg.floodN}, {"fair on", true, cfg.floodN}} {
		if err := flush(ctx); err != nil {
			return err
		}
		r, err := fairFlood(ctx, s, floodRun{fair: v.fair, flood: v.flood, window: time.Duration(cfg.floodS * float64(time.Second)),
			spread: cfg.floodSpread, conc: cfg.floodConc})
		if err != nil {
			return fmt.Errorf("flood %s: %w", v.name, err)
		}
		p99 := percentile(r.waits, 99)
		floods[v.name] = flood{p99, r.aRate}
		name := rows + " " + v.name
		for _, p := range []float64{50, 90} {
			set(fmt.Sprintf("%s B-E p%.0f ms", name, p), percentile(r.waits, p))
		}
		set(name+" B-E p99 ms", p99)
		set(name+" B-E max ms", percentile(r.waits, 100))
		set(name+" B-E started", r.started)
		if len(r.toLease) > 0 {
			for _, p := range []float64{50, 99} {
				set(fmt.Sprintf("%s B-E add-to-lease p%.0f ms", name, p), percentile(r.toLease, p))
				set(fmt.Sprintf("%s B-E lease-to-start p%.0f ms", name, p), percentile(r.toStart, p))
			}
		}
		if v.flood > 0 {
			set(name+" A jobs/s", r.aRate)
			set(name+" A job ms", r.aJobMs)
		}
		if v.flood > 0 && v.fair {
			floods["ideal"] = flood{p99: percentile(r.ideal, 99)}
			set(rows+" ideal B-E p50 ms", percentile(r.ideal, 50))
			set(rows+" ideal B-E p99 ms", floods["ideal"].p99)
		}
	}
	set(rows+" p99 fair on/no flood", floods["fair on"].p99/floods["no flood"].p99)
	set(rows+" p99 ideal/no flood", floods["ideal"].p99/floods["no flood"].p99)
	set(rows+" A fair on/off", floods["fair on"].aRate/floods["fair off"].aRate)
	return nil
}

// floodRows returns the name the flood's rows start with: "g flood", then
// the job lengths' spread and the concurrency where they are not the
// issue's.
func floodRows(cfg *config) string {
	rows := "g flood"
	if cfg.floodSpread > 0 {
		rows += fmt.Sprintf(" 2±%v", cfg.floodSpread)
	}
	if cfg.floodConc != defaultFloodConc {
		rows += fmt.Sprintf(" c%d", cfg.floodConc)
	}
	return rows
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

// floodTenant is the tenant that floods the queue in phase g.
const floodTenant = "t-a"

// floodResult is what one run of the flood workload measured. Waits are in
// ms, with µs resolution.
type floodResult struct {
	waits []float64 // B–E: add → handler start, capped at the window
	// toLease and toStart split the wait of each B–E job that started:
	// add → leased by the Manager (JobFetch returned it), and leased →
	// handler start.
	toLease, toStart []float64
	// ideal is each B–E job's wait under an ideal scheduler of the same
	// run slots (idealWaits); only with a flood.
	ideal                  []float64
	aRate, started, aJobMs float64
}

// floodRun is one run of the flood workload.
type floodRun struct {
	fair   bool
	flood  int           // jobs tenant A adds first
	window time.Duration // how long B–E add jobs
	spread time.Duration // job lengths: floodJob ± up to spread
	conc   int           // the Manager's concurrency
}

// ms returns d in ms with µs resolution.
func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// fairFlood runs the flood workload once: B–E's enqueue-to-start waits,
// their two parts, and the ideal waits; A's jobs/s over the window; the
// share of B–E's jobs started within it.
func fairFlood(ctx context.Context, s *aibos, r floodRun) (*floodResult, error) {
	c, b, closeB, err := s.client()
	if err != nil {
		return nil, err
	}
	defer closeB()
	if err := c.SetFairPolicy(ctx, &broker.FairPolicy{Queue: aibosQueue, Fair: r.fair}); err != nil {
		return nil, err
	}
	if err := addTenantJobs(ctx, c, floodTenant, r.flood); err != nil {
		return nil, err
	}
	trace := newFloodTrace(r.conc, r.window)
	tb, err := trace.traced(b)
	if err != nil {
		return nil, err
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
		if r.spread > 0 {
			d += time.Duration(rand.Int64N(int64(2*r.spread)+1)) - r.spread
		}
		if err := preciseWait(d); err != nil {
			waitErr.CompareAndSwap(nil, &err)
		}
		trace.slotFreed()
	}
	t0 := time.Now()
	m, err := startManager(ctx, tb, r.conc, func(j *worker.Job) {
		if j.TenantID == floodTenant {
			st := time.Now()
			work()
			aWorkNs.Add(int64(time.Since(st)))
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
		return nil, err
	}
	defer func() { _ = m.Shutdown(ctx) }()
	type add struct {
		id         string
		at, stored time.Time // when Add was called, and when it returned
	}
	adds := make([]add, 0, 4*int(r.window/(10*time.Millisecond)+1))
	a0 := aDone.Load()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for end := time.Now().Add(r.window); time.Now().Before(end); <-tick.C {
		for _, tn := range []string{"t-b", "t-c", "t-d", "t-e"} {
			at := time.Now()
			j, err := c.Add(ctx, aibosQueue, worker.JobSpec{Type: "bench", TenantID: tn})
			if err != nil {
				return nil, err
			}
			adds = append(adds, add{j.ID, at, time.Now()})
		}
	}
	res := &floodResult{aRate: float64(aDone.Load()-a0) / r.window.Seconds()}
	if err := waitErr.Load(); err != nil {
		return nil, *err
	}
	if n := aDone.Load(); n > 0 {
		res.aJobMs = float64(aWorkNs.Load()) / float64(n) / 1e6
	}
	if len(adds) == 0 {
		return nil, fmt.Errorf("no job of tenants B-E was added")
	}
	// The last tick's jobs were added a moment ago: give them up to a
	// second to start, else their wait would read as the window's length.
	for deadline := time.Now().Add(min(time.Second, r.window)); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		mu.Lock()
		all := len(began) >= len(adds)
		mu.Unlock()
		if all {
			break
		}
	}
	mu.Lock()
	defer mu.Unlock()
	res.waits = make([]float64, 0, len(adds))
	seen := 0
	for _, a := range adds {
		wait := r.window
		if st, ok := began[a.id]; ok {
			wait = min(st.Sub(a.at), r.window)
			seen++
			if lt, ok := trace.leasedAt(a.id); ok {
				res.toLease = append(res.toLease, ms(lt.Sub(a.at)))
				res.toStart = append(res.toStart, ms(st.Sub(lt)))
			}
		}
		res.waits = append(res.waits, ms(wait))
	}
	res.started = float64(seen) / float64(len(adds))
	if r.flood > 0 {
		added, durable := make([]time.Duration, len(adds)), make([]time.Duration, len(adds))
		for i, a := range adds {
			added[i], durable[i] = a.at.Sub(t0), a.stored.Sub(t0)
		}
		for _, w := range idealWaits(added, durable, trace.freedSince(t0), r.window) {
			res.ideal = append(res.ideal, ms(w))
		}
	}
	return res, nil
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
