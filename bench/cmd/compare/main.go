// Command compare runs the same workloads on aibos-worker (Redis and
// embedded SQLite), asynq and BullMQ, against one private redis-server on
// loopback, and prints one table with the ratios aibos/asynq and
// aibos/BullMQ. See bench/RESULTS.md.
//
//	cd bench && go run ./cmd/compare                 # everything, 1 run
//	cd bench && go run ./cmd/compare -runs 3          # medians of 3 runs
//	cd bench && go run ./cmd/compare -phases b,c -systems aibos,asynq
//	cd bench && go run ./cmd/compare -phases g -systems aibos -runs 3   # issue 19's fairness bars
//	cd bench && go run ./cmd/compare -scale           # issue 24's scale curves, tables and PNGs (scale.go)
//	cd bench && go run ./cmd/compare -scale -scale-curves queues -scale-max 100
//	cd bench && go run ./cmd/compare -phases h -systems aibos -n 2000   # the service's API and HTTP processing
//
// Phase h runs in a child: this command built with -tags servicebench
// (service_child.go says why).
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"github.com/aibos/worker/internal/cputime"
)

// config is what the flags select.
type config struct {
	phases    []string
	systems   []string
	runs      int
	n         int
	memN      int
	floodN    int
	floodS    float64
	floodOnly bool
	// overheadOnly runs phase g's overhead workloads only, not the flood.
	overheadOnly bool
	// floodSpread spreads the flood jobs' lengths: each takes 2 ms ± up
	// to this, uniformly (0: exactly 2 ms, as issue 19 states).
	floodSpread time.Duration
	// floodConc is the concurrency of phase g's flood Manager.
	floodConc int
	latencyS  float64
	redisBin  string
	nodeDir   string
	verbose   bool
	redisAddr string // filled in once the server runs
}

// overheadRuns returns how many of phase g's overhead workloads run.
func (c *config) overheadRuns() int {
	if c.floodOnly {
		return 0
	}
	return 4
}

// defaultFloodConc is issue 19's concurrency for the flood, and
// maxFloodConc the most -flood-concurrency takes.
const (
	defaultFloodConc = 10
	maxFloodConc     = 1000
)

// checkFlood reports a flood flag out of range.
func (c *config) checkFlood() error {
	if c.floodSpread < 0 || c.floodSpread >= floodJob {
		return fmt.Errorf("-flood-spread: %v is not in [0, %v)", c.floodSpread, floodJob)
	}
	if c.floodConc < 1 || c.floodConc > maxFloodConc {
		return fmt.Errorf("-flood-concurrency: %d is not in [1, %d]", c.floodConc, maxFloodConc)
	}
	return nil
}

func (c *config) has(list []string, v string) bool { return slices.Contains(list, v) }

func main() {
	if spec := os.Getenv(childEnv); spec != "" {
		os.Exit(runChild(spec, os.Stdin, os.Stdout))
	}
	var cfg config
	var phases, systems string
	flag.StringVar(&phases, "phases", "a,b,c,d,e,f", "workloads to run: a enqueue, b process, c latency, d delayed, e memory and cpu, f embedded SQLite store (a-c), g fairness overhead and flood (aibos on Redis and SQLite; not in the default set), h the service through its HTTP API and HTTP-endpoint processing (Redis and SQLite; not in the default set)")
	flag.StringVar(&systems, "systems", "aibos,asynq,bullmq", "systems to run (f always runs aibos on SQLite)")
	flag.IntVar(&cfg.runs, "runs", 1, "repeat everything and report the median of each figure")
	flag.IntVar(&cfg.n, "n", 50000, "jobs per enqueue and processing workload")
	flag.IntVar(&cfg.memN, "mem-n", 100000, "pending jobs for the memory workload")
	flag.IntVar(&cfg.floodN, "flood-n", 100000, "jobs tenant A floods the queue with in phase g")
	flag.Float64Var(&cfg.floodS, "flood-seconds", 5, "how long tenants B-E add jobs in phase g's flood")
	flag.BoolVar(&cfg.floodOnly, "flood-only", false, "phase g runs the flood only, not the fairness overhead workloads")
	flag.BoolVar(&cfg.overheadOnly, "overhead-only", false, "phase g runs the fairness overhead workloads only, not the flood (with -cpuprofile, each workload's samples carry the label workload=<row>)")
	flag.DurationVar(&cfg.floodSpread, "flood-spread", 0, "phase g's flood jobs take 2 ms ± up to this, uniformly (0: exactly 2 ms; below 2ms); the flood rows are then named \"g flood 2±<spread>\"")
	flag.IntVar(&cfg.floodConc, "flood-concurrency", defaultFloodConc, fmt.Sprintf("the concurrency of phase g's flood Manager (1 to %d); the flood rows are then named \"g flood c<N>\" unless it is %d", maxFloodConc, defaultFloodConc))
	flag.Float64Var(&cfg.latencyS, "latency-seconds", 5, "how long the 1,000 jobs/s latency workload runs")
	flag.StringVar(&cfg.redisBin, "redis-server", "redis-server", "redis-server binary")
	flag.StringVar(&cfg.nodeDir, "node-dir", "node", "directory of package.json and bullmq.js")
	flag.BoolVar(&cfg.verbose, "v", false, "log each figure as it is measured")
	flag.StringVar(&cfg.redisAddr, "redis-addr", "", "use this running Redis (host:port) instead of starting one; it is flushed")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of this process (the Go systems' client side) to this file")
	scale := flag.Bool("scale", false, "measure the scale curves instead of the table (see the -scale-* flags)")
	var sc scaleConfig
	scaleDone := scaleFlags(flag.CommandLine, &sc)
	flag.Parse()
	if *scale {
		if err := scaleDone(); err != nil {
			log.Fatalf("compare: %v", err)
		}
		sc.redisBin, sc.redisAddr, sc.verbose = cfg.redisBin, cfg.redisAddr, cfg.verbose
		if err := runScale(context.Background(), &sc, os.Stdout); err != nil {
			log.Fatalf("compare: %v", err)
		}
		return
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			log.Fatalf("compare: %v", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Fatalf("compare: %v", err)
		}
		defer pprof.StopCPUProfile()
	}
	if cfg.floodOnly && cfg.overheadOnly {
		log.Fatalf("compare: -flood-only and -overhead-only exclude each other")
	}
	if err := cfg.checkFlood(); err != nil {
		log.Fatalf("compare: %v", err)
	}
	cfg.phases = strings.Split(phases, ",")
	cfg.systems = strings.Split(systems, ",")
	if err := run(&cfg); err != nil {
		pprof.StopCPUProfile()
		log.Fatalf("compare: %v", err)
	}
}

func run(cfg *config) error {
	srv, err := startRedis(cfg.redisBin, cfg.redisAddr)
	if err != nil {
		return err
	}
	defer srv.stop()
	defer srv.stopOnSignal()()
	cfg.redisAddr = srv.addr
	if cfg.has(cfg.systems, "bullmq") {
		if err := npmInstall(cfg.nodeDir); err != nil {
			return err
		}
	}
	ctx := context.Background()
	all := make([]results, 0, cfg.runs)
	for r := 0; r < cfg.runs; r++ {
		res := results{}
		start := time.Now()
		for _, s := range []system{
			newAibosRedis(srv), &asynqSystem{srv: srv}, &bullmqSystem{cfg: cfg, srv: srv},
		} {
			if !cfg.has(cfg.systems, s.name()) {
				continue
			}
			if err := measure(ctx, cfg, srv, s, res); err != nil {
				return fmt.Errorf("run %d, %s: %w", r+1, s.name(), err)
			}
		}
		if cfg.has(cfg.phases, "f") {
			if err := measureSQLite(ctx, cfg, res); err != nil {
				return fmt.Errorf("run %d, sqlite: %w", r+1, err)
			}
		}
		if cfg.has(cfg.phases, "g") {
			if err := measureFairAll(ctx, cfg, srv, res); err != nil {
				return fmt.Errorf("run %d, fairness: %w", r+1, err)
			}
		}
		if cfg.has(cfg.phases, "h") {
			if err := measureServiceAll(ctx, cfg, srv, res); err != nil {
				return fmt.Errorf("run %d, service: %w", r+1, err)
			}
		}
		fmt.Fprintf(os.Stderr, "run %d of %d took %v\n", r+1, cfg.runs, time.Since(start).Round(time.Second))
		all = append(all, res)
	}
	if path := os.Getenv(rowsEnv); path != "" {
		return writeRows(path, median(all))
	}
	fmt.Printf("redis-server %s on loopback; %d jobs per workload; medians of %d run(s)\n\n", srv.version, cfg.n, cfg.runs)
	printTable(os.Stdout, median(all))
	return nil
}

// measure runs every selected phase of one system, flushing Redis before each.
func measure(ctx context.Context, cfg *config, srv *redisServer, s system, res results) error {
	set := func(metric string, v float64) {
		res.set(s.name(), metric, v)
		if cfg.verbose {
			fmt.Fprintf(os.Stderr, "%-7s %-28s %12.2f\n", s.name(), metric, v)
		}
	}
	step := func(phase string, f func() error) error {
		if !cfg.has(cfg.phases, phase) {
			return nil
		}
		if err := srv.flush(ctx); err != nil {
			return err
		}
		return f()
	}
	if err := step("a", func() error { return enqueuePhase(ctx, cfg, srv, s, set) }); err != nil {
		return err
	}
	for _, conc := range []int{10, 50} {
		if err := step("b", func() error { return processPhase(ctx, cfg, srv, s, conc, set) }); err != nil {
			return err
		}
	}
	if err := step("c", func() error {
		lags, err := s.latency(ctx, 1000, cfg.latencyS, 10)
		if err != nil {
			return fmt.Errorf("latency: %w", err)
		}
		set("c latency p50 ms", percentile(lags, 50))
		set("c latency p95 ms", percentile(lags, 95))
		set("c latency p99 ms", percentile(lags, 99))
		return nil
	}); err != nil {
		return err
	}
	if err := step("d", func() error {
		lags, err := s.delayed(ctx, 1000, 10, 2*time.Second)
		if err != nil {
			return fmt.Errorf("delayed: %w", err)
		}
		early := 0
		for _, l := range lags {
			if l < 0 {
				early++
			}
		}
		set("d delayed lag p50 ms", percentile(lags, 50))
		set("d delayed lag p99 ms", percentile(lags, 99))
		set("d delayed started early", float64(early))
		return nil
	}); err != nil {
		return err
	}
	return step("e", func() error {
		before, err := srv.usedMemory(ctx)
		if err != nil {
			return err
		}
		if err := s.fill(ctx, cfg.memN); err != nil {
			return fmt.Errorf("fill: %w", err)
		}
		after, err := srv.usedMemory(ctx)
		if err != nil {
			return err
		}
		set("e redis bytes/pending job", float64(after-before)/float64(cfg.memN))
		return nil
	})
}

func enqueuePhase(ctx context.Context, cfg *config, srv *redisServer, s system, set func(string, float64)) error {
	for _, g := range []int{1, 32} {
		d, err := s.enqueue(ctx, cfg.n, g)
		if err != nil {
			return fmt.Errorf("enqueue from %d: %w", g, err)
		}
		set(fmt.Sprintf("a enqueue x%d jobs/s", g), float64(cfg.n)/d.Seconds())
		if err := srv.flush(ctx); err != nil {
			return err
		}
	}
	d, err := s.bulk(ctx, cfg.n, 1000)
	if err == errUnsupported {
		return nil
	}
	if err != nil {
		return fmt.Errorf("bulk enqueue: %w", err)
	}
	set("a enqueue bulk jobs/s", float64(cfg.n)/d.Seconds())
	return nil
}

// processPhase fills the queue, then times a worker draining it and
// measures the Redis CPU spent per job meanwhile.
func processPhase(ctx context.Context, cfg *config, srv *redisServer, s system, conc int, set func(string, float64)) error {
	if err := s.fill(ctx, cfg.n); err != nil {
		return fmt.Errorf("fill: %w", err)
	}
	stats0, err := srv.commandStats(ctx)
	if err != nil {
		return err
	}
	cpu0, err := srv.usedCPU(ctx)
	if err != nil {
		return err
	}
	own0, _ := cputime.Process()
	d, err := s.process(ctx, cfg.n, conc)
	if err != nil {
		return fmt.Errorf("process at %d: %w", conc, err)
	}
	own1, ownOK := cputime.Process()
	cpu1, err := srv.usedCPU(ctx)
	if err != nil {
		return err
	}
	set(fmt.Sprintf("b process c%d jobs/s", conc), float64(cfg.n)/d.Seconds())
	// The c50 row keeps its name from before there was a c10 one, so
	// tables stay comparable.
	metric := "e redis cpu us/processed job"
	if conc != 50 {
		metric += fmt.Sprintf(" c%d", conc)
	}
	set(metric, (cpu1-cpu0).Seconds()*1e6/float64(cfg.n))
	// The Go systems' workers run in this process (getrusage); BullMQ's
	// runs in node, whose start-up would count too.
	if ownOK && s.name() != "bullmq" {
		set(fmt.Sprintf("e worker cpu us/processed job c%d", conc), (own1-own0).Seconds()*1e6/float64(cfg.n))
	}
	if cfg.verbose {
		stats1, err := srv.commandStats(ctx)
		if err != nil {
			return err
		}
		printCommandStats(os.Stderr, fmt.Sprintf("%s c%d", s.name(), conc), stats0, stats1, cfg.n)
	}
	return nil
}
