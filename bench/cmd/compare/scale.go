package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/broker/redisbroker"
	"github.com/aibos/worker/broker/sqlitebroker"
)

// The -scale mode (issue 24 point 4) measures how aibos-worker's costs grow
// with the size of what it serves, on Redis and on the embedded store:
//
//   - pending: P pending jobs in one queue. The store is filled with P+M
//     no-op jobs (bulk enqueue), then, once Redis has finished growing its
//     tables (redisServer.settle), a Manager at concurrency 10 processes
//     M of them, so P are still pending at the end.
//   - queues: one Manager serving N queues. Busy: M jobs spread over the
//     queues. Idle: the same Manager, in a child process with nothing to do,
//     after a warm-up: its CPU per second (/proc) and, on Redis, the
//     commands per second it sends (a go-redis hook in the child) and that
//     Redis executes (INFO commandstats, scripts' inner calls included).
//   - tenants: M jobs of T tenants in one queue with fairness on.
//   - managers: K Managers in separate processes (this binary re-executed
//     in child mode) on one Redis draining M jobs. Redis only: the embedded
//     store belongs to one process by design.
//
// Throughput is M over the time from the Managers' start until the M-th
// backlog job ran. The latency figure is the enqueue-to-start p99 (from
// the call to Client.Add to the processor's start, on the machine's wall
// clock, which the child processes share) of probe jobs added at a steady
// rate while the backlog drains, at priority 1, round robin over
// the queues. Priority 1 keeps the probes from waiting behind the whole
// backlog (same-priority FIFO would make their wait the backlog's length
// over the throughput, which says nothing new): what they measure is how
// quickly a Manager finds a newly added urgent job as the store grows.

// scaleConfig is what the -scale-* flags select.
type scaleConfig struct {
	curves      []string
	stores      []string
	pending     []int
	queues      []int
	tenants     []int
	managers    []int
	max         int
	jobs        int
	mgrJobs     int
	mgrBare     bool // the managers curve's children run bareLoop
	runs        int
	conc        int
	probeRate   float64
	idleWarm    time.Duration
	idleWindow  time.Duration
	out         string
	redisBin    string
	redisAddr   string
	verbose     bool
	childBinary string // the binary re-executed for child Managers; os.Executable by default
}

var allCurves = []string{"pending", "queues", "tenants", "managers"}

// scaleFlags registers the -scale-* flags on fs.
func scaleFlags(fs *flag.FlagSet, sc *scaleConfig) func() error {
	curves := fs.String("scale-curves", strings.Join(allCurves, ","), "curves of -scale: pending, queues, tenants, managers")
	stores := fs.String("scale-stores", "redis,sqlite", "stores of -scale: redis, sqlite (managers is Redis only)")
	pending := fs.String("scale-pending", "1000,100000,1000000", "pending jobs of the pending curve")
	queues := fs.String("scale-queues", "1,10,100,1000", "queues of the queues curve")
	tenants := fs.String("scale-tenants", "1,100,10000", "tenants of the tenants curve")
	managers := fs.String("scale-managers", "1,10,50", "Manager processes of the managers curve")
	fs.IntVar(&sc.max, "scale-max", 0, "drop every size above this (0: keep all), for a quick run")
	fs.IntVar(&sc.jobs, "scale-jobs", 20000, "backlog jobs processed at each point")
	fs.BoolVar(&sc.mgrBare, "scale-managers-bare", false, "the managers curve's child processes run a bare fetch-and-acknowledge loop instead of a Manager: the ceiling of any client of this shape on this machine")
	fs.IntVar(&sc.mgrJobs, "scale-managers-jobs", 200000, "backlog jobs processed at each point of the managers curve (20,000 over 50 processes is 400 each, which their start-up dominates)")
	fs.IntVar(&sc.runs, "scale-runs", 1, "measure each point this many times and keep the medians")
	fs.IntVar(&sc.conc, "scale-concurrency", 10, "concurrency of each Manager")
	fs.Float64Var(&sc.probeRate, "scale-probe-rate", 200, "priority-1 probe jobs added per second while the backlog drains")
	fs.DurationVar(&sc.idleWarm, "scale-idle-warmup", 2*time.Second, "idle Manager, and probes without backlog: time after the Manager's start before measuring")
	fs.DurationVar(&sc.idleWindow, "scale-idle-window", 5*time.Second, "idle Manager: how long CPU and commands are counted")
	fs.StringVar(&sc.out, "scale-out", "scale", "directory the curves' PNGs are written to (relative to the working directory)")
	return func() error {
		sc.curves = strings.Split(*curves, ",")
		sc.stores = strings.Split(*stores, ",")
		for _, c := range sc.curves {
			if !slices.Contains(allCurves, c) {
				return fmt.Errorf("-scale-curves: unknown curve %q (want some of %s)", c, strings.Join(allCurves, ", "))
			}
		}
		for _, s := range sc.stores {
			if s != "redis" && s != "sqlite" {
				return fmt.Errorf("-scale-stores: unknown store %q (want redis, sqlite)", s)
			}
		}
		for _, f := range []struct {
			name string
			in   string
			dst  *[]int
		}{{"pending", *pending, &sc.pending}, {"queues", *queues, &sc.queues}, {"tenants", *tenants, &sc.tenants}, {"managers", *managers, &sc.managers}} {
			sizes, err := parseSizes(f.in, sc.max)
			if err != nil {
				return fmt.Errorf("-scale-%s: %w", f.name, err)
			}
			*f.dst = sizes
		}
		switch {
		case sc.jobs < 1:
			return fmt.Errorf("-scale-jobs: %d is not a positive number of jobs", sc.jobs)
		case sc.mgrJobs < 1:
			return fmt.Errorf("-scale-managers-jobs: %d is not a positive number of jobs", sc.mgrJobs)
		case sc.runs < 1:
			return fmt.Errorf("-scale-runs: %d is not a positive number of runs", sc.runs)
		case sc.conc < 1:
			return fmt.Errorf("-scale-concurrency: %d is not a positive concurrency", sc.conc)
		case sc.probeRate <= 0:
			return fmt.Errorf("-scale-probe-rate: %v is not a positive rate", sc.probeRate)
		case sc.idleWindow <= 0 || sc.idleWarm < 0:
			return fmt.Errorf("-scale-idle-window and -scale-idle-warmup: want a positive window and a warm-up of at least 0, got %v and %v", sc.idleWindow, sc.idleWarm)
		}
		return nil
	}
}

// parseSizes reads a comma-separated list of positive sizes, keeping those
// at or below max (max 0 keeps all).
func parseSizes(s string, max int) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(strings.ReplaceAll(f, "_", "")))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a positive size", f)
		}
		if max == 0 || n <= max {
			out = append(out, n)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no size of %q is at or below -scale-max %d", s, max)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

func (sc *scaleConfig) has(curve string) bool { return slices.Contains(sc.curves, curve) }

func (sc *scaleConfig) hasStore(store string) bool { return slices.Contains(sc.stores, store) }

// point is one measured point of a curve.
type point struct {
	store string
	size  int
	jobsS float64 // backlog jobs/s
	// midJobsS is the backlog jobs/s over the middle half of the drain
	// (midRate); 0 where not measured.
	midJobsS float64
	p99      float64 // probes' enqueue-to-start p99, ms
	cpuUs    float64 // Redis: Redis CPU µs per backlog job
	cmds     float64 // Redis: commands Redis executed per backlog job
	// clientUs is the Manager processes' CPU µs per backlog job.
	clientUs float64
	// idle Manager (queues curve only); NaN-free: idle is false when absent
	idle     bool
	cpuMsS   float64 // CPU ms per second of the idle Manager process
	lightP99 float64 // probes' p99 without a backlog, ms
	sentS    float64 // commands per second it sent (Redis)
	serverS  float64 // commands per second Redis executed, scripts' inner calls included
	scriptsS float64 // of which script calls (EVALSHA and EVAL)
}

// curveResult is one curve's points, in the order measured.
type curveResult struct {
	name   string
	xLabel string
	points []point
}

func (c *curveResult) find(store string, size int) (point, bool) {
	for _, p := range c.points {
		if p.store == store && p.size == size {
			return p, true
		}
	}
	return point{}, false
}

// runScale runs the selected curves and prints their tables, bars and
// where the PNGs went.
func runScale(ctx context.Context, sc *scaleConfig, w io.Writer) error {
	srv, err := startRedis(sc.redisBin, sc.redisAddr)
	if err != nil {
		return err
	}
	defer srv.stop()
	if sc.childBinary == "" {
		if sc.childBinary, err = os.Executable(); err != nil {
			return fmt.Errorf("find this binary to re-execute: %w", err)
		}
	}
	tmp, err := os.MkdirTemp("", "aibos-scale-")
	if err != nil {
		return fmt.Errorf("make a directory for the embedded stores: %w", err)
	}
	defer os.RemoveAll(tmp)
	// Child Managers, in the same process group, get the signal too.
	defer srv.stopOnSignal(func() { _ = os.RemoveAll(tmp) })()
	r := &scaleRun{sc: sc, srv: srv, tmp: tmp}
	var curves []*curveResult
	// points measures a curve a size at a time; pendingCurve alternates
	// its sizes.
	points := func(sizes []int, run func(context.Context, *curveResult, int) error) func(context.Context, *curveResult) error {
		return func(ctx context.Context, res *curveResult) error {
			for _, size := range sizes {
				if err := run(ctx, res, size); err != nil {
					return fmt.Errorf("at %d: %w", size, err)
				}
			}
			return nil
		}
	}
	for _, c := range []struct {
		name, x string
		measure func(context.Context, *curveResult) error
	}{
		{"pending", "pending jobs", r.pendingCurve},
		{"queues", "queues served by one Manager", points(sc.queues, r.queuesPoint)},
		{"tenants", "tenants in one fair queue", points(sc.tenants, r.tenantsPoint)},
		{"managers", managersLabel(sc.mgrBare), points(sc.managers, r.managersPoint)},
	} {
		if !sc.has(c.name) {
			continue
		}
		res := &curveResult{name: c.name, xLabel: c.x}
		start := time.Now()
		if err := c.measure(ctx, res); err != nil {
			return fmt.Errorf("curve %s: %w", c.name, err)
		}
		fmt.Fprintf(os.Stderr, "curve %s took %v\n", c.name, time.Since(start).Round(time.Second))
		curves = append(curves, res)
	}
	fmt.Fprintf(w, "redis-server %s on loopback; %d backlog jobs per point (%d in the managers curve), concurrency %d per Manager, %.0f probes/s at priority 1\n\n",
		srv.version, sc.jobs, sc.mgrJobs, sc.conc, sc.probeRate)
	if err := os.MkdirAll(sc.out, 0o755); err != nil {
		return fmt.Errorf("make %s: %w", sc.out, err)
	}
	for _, c := range curves {
		printCurve(w, c)
		path := filepath.Join(sc.out, c.name+".png")
		if err := plotCurve(c, path); err != nil {
			return fmt.Errorf("plot %s: %w", c.name, err)
		}
		fmt.Fprintf(w, "plot: %s\n\n", path)
	}
	printBars(w, curves)
	return nil
}

// scaleRun holds what every point of a -scale run shares.
type scaleRun struct {
	sc  *scaleConfig
	srv *redisServer
	tmp string
	n   int // stores opened, naming the SQLite files
}

func (r *scaleRun) logf(format string, args ...any) {
	if r.sc.verbose {
		fmt.Fprintf(os.Stderr, format+"\n", args...)
	}
}

// store is a fresh, empty store of one kind, with what reaching it takes
// from another process.
type store struct {
	kind  string
	b     broker.Broker
	c     *worker.Client
	path  string // the SQLite file; "" on Redis
	keys  string // on Redis, the pattern (SCAN MATCH) of its keys
	close func()
}

// open returns an empty store: Redis flushed, or a new SQLite file.
func (r *scaleRun) open(ctx context.Context, kind string) (*store, error) {
	if kind == "redis" {
		if err := r.srv.flush(ctx); err != nil {
			return nil, err
		}
	}
	return r.openBeside(kind, "")
}

// openBeside returns a new store that leaves the others be: on Redis, the
// keys under prefix ("": the default), which are taken to be free; on
// SQLite, a new file.
func (r *scaleRun) openBeside(kind, prefix string) (*store, error) {
	var (
		b     broker.Broker
		path  string
		close func()
	)
	switch kind {
	case "redis":
		rb, err := redisbroker.Open(r.srv.url, redisbroker.Config{Prefix: prefix})
		if err != nil {
			return nil, fmt.Errorf("open redis broker: %w", err)
		}
		b, close = rb, func() { _ = rb.Close() }
	case "sqlite":
		var remove func()
		path, remove = r.sqlitePath()
		sb, err := sqlitebroker.Open(path, sqlitebroker.Config{})
		if err != nil {
			return nil, fmt.Errorf("open sqlite broker: %w", err)
		}
		b, close = sb, func() { _ = sb.Close(); remove() }
	}
	c, err := worker.NewClient(b, worker.ClientConfig{})
	if err != nil {
		close()
		return nil, fmt.Errorf("new client: %w", err)
	}
	if prefix == "" {
		prefix = redisbroker.DefaultPrefix
	}
	return &store{kind: kind, b: b, c: c, path: path, keys: prefix + ":*", close: close}, nil
}

// sqlitePath names a new embedded store file and returns a func removing
// it and its companions (WAL, shared memory, lock) once closed.
func (r *scaleRun) sqlitePath() (path string, remove func()) {
	r.n++
	path = filepath.Join(r.tmp, fmt.Sprintf("scale-%d.db", r.n))
	return path, func() {
		for _, suffix := range []string{"", "-wal", "-shm", ".lock"} {
			_ = os.Remove(path + suffix)
		}
	}
}

// queueNames names n queues so that they sort in order.
func queueNames(n int) []string {
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("q%04d", i)
	}
	return names
}

// fillSpread bulk-adds n backlog jobs, job i to queue i mod len(queues)
// and tenant i mod tenants (no tenant when tenants is 0), 1,000 per AddMany.
func fillSpread(ctx context.Context, c *worker.Client, n int, queues []string, tenants int) error {
	byQueue := make(map[string][]worker.JobSpec, len(queues))
	flush := func(q string) error {
		if len(byQueue[q]) == 0 {
			return nil
		}
		_, err := c.AddMany(ctx, q, byQueue[q])
		byQueue[q] = byQueue[q][:0]
		if err != nil {
			return fmt.Errorf("fill queue %s: %w", q, err)
		}
		return nil
	}
	for i := range n {
		q := queues[i%len(queues)]
		spec := worker.JobSpec{Type: "bench", Data: json.RawMessage(payload)}
		if tenants > 0 {
			spec.TenantID = fmt.Sprintf("t-%05d", i%tenants)
		}
		byQueue[q] = append(byQueue[q], spec)
		if len(byQueue[q]) == 1000 {
			if err := flush(q); err != nil {
				return err
			}
		}
	}
	for _, q := range queues {
		if err := flush(q); err != nil {
			return err
		}
	}
	return nil
}

// tally counts the backlog jobs a Manager ran and records the probes'
// enqueue-to-start times. It is the handler of every Manager of -scale,
// in this process or in a child.
type tally struct {
	backlog atomic.Int64
	last    atomic.Int64 // wall clock (UnixNano) of the latest backlog job's start
	want    int64
	done    chan struct{}
	once    sync.Once
	mu      sync.Mutex
	lags    []float64 // probes: start minus the instant Add was called, ms
	// keepStarts has starts record every backlog job's start (wall clock,
	// UnixNano); a child Manager keeps them for midRate.
	keepStarts bool
	starts     []int64
}

func newTally(want int) *tally { return &tally{want: int64(want), done: make(chan struct{})} }

func (t *tally) handle(_ context.Context, j *worker.Job) error {
	if j.Type == "probe" {
		var p stampPayload
		if err := json.Unmarshal(j.Data, &p); err != nil {
			return fmt.Errorf("read probe job: %w", err)
		}
		lag := nowMs() - p.Due
		t.mu.Lock()
		t.lags = append(t.lags, lag)
		t.mu.Unlock()
		return nil
	}
	// Stored before the count, so a reader of the count finds the time of
	// the job that made it, or a later one.
	now := time.Now().UnixNano()
	t.last.Store(now)
	if t.keepStarts {
		t.mu.Lock()
		t.starts = append(t.starts, now)
		t.mu.Unlock()
	}
	if t.backlog.Add(1) == t.want {
		t.once.Do(func() { close(t.done) })
	}
	return nil
}

func (t *tally) probeLags() []float64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.lags)
}

func (t *tally) backlogStarts() []int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.starts)
}

// midRate is the rate, per second, at which the backlog jobs whose starts
// (UnixNano, any order) are given started over the middle half of them:
// from the start of the job a quarter of the way through to the one three
// quarters of the way. It leaves out how long the Managers took to start
// and the tail where few jobs were left, and is 0 with fewer than 4 jobs
// or no time between the two.
func midRate(starts []int64) float64 {
	if len(starts) < 4 {
		return 0
	}
	s := slices.Clone(starts)
	slices.Sort(s)
	lo, hi := len(s)/4, 3*len(s)/4
	if s[hi] <= s[lo] {
		return 0
	}
	return float64(hi-lo) / time.Duration(s[hi]-s[lo]).Seconds()
}

// newScaleManager makes a Manager serving queues at concurrency conc with
// default settings otherwise, its processors counting into t.
func newScaleManager(b broker.Broker, queues []string, conc int, fair bool, t *tally) (*worker.Manager, error) {
	qs := make([]worker.QueueConfig, len(queues))
	for i, q := range queues {
		qs[i] = worker.QueueConfig{Name: q, Fair: fair}
	}
	m, err := worker.NewManager(b, worker.ManagerConfig{Queues: qs, Concurrency: conc, Logger: quietLogger()})
	if err != nil {
		return nil, fmt.Errorf("new manager: %w", err)
	}
	for _, typ := range []string{"bench", "probe"} {
		if err := m.HandleFunc(typ, t.handle); err != nil {
			return nil, fmt.Errorf("handle %s: %w", typ, err)
		}
	}
	return m, nil
}

// managersLabel is the managers curve's x label: its processes run
// Managers, or with -scale-managers-bare the bare loop.
func managersLabel(bare bool) string {
	if bare {
		return "processes on one Redis, each a bare fetch-and-acknowledge loop (no Manager)"
	}
	return "Manager processes on one Redis"
}

// prober adds priority-1 probe jobs at rate per second, round robin over
// queues, until stop is called, and returns how many it added.
type prober struct {
	stop  func()
	added func() (int, error)
}

func startProber(ctx context.Context, c *worker.Client, queues []string, rate float64) *prober {
	quit := make(chan struct{})
	var (
		wg    sync.WaitGroup
		n     int
		first error
	)
	wg.Go(func() {
		gap := time.Duration(float64(time.Second) / rate)
		t0 := time.Now()
		for i := 0; ; i++ {
			select {
			case <-quit:
				return
			case <-time.After(time.Until(t0.Add(time.Duration(i) * gap))):
			}
			// The wall clock is the machine's, shared by the child
			// processes: the lag is taken on one clock.
			p := stampPayload{Invoice: "INV-0001", Amount: 1250, Due: nowMs()}
			_, err := c.Add(ctx, queues[i%len(queues)], worker.JobSpec{Type: "probe", Priority: 1, TenantID: "t-probe", Data: p})
			if err != nil {
				first = fmt.Errorf("add probe job: %w", err)
				return
			}
			n++
		}
	})
	var once sync.Once
	stop := func() { once.Do(func() { close(quit); wg.Wait() }) }
	return &prober{stop: stop, added: func() (int, error) { stop(); return n, first }}
}

// busyResult is what one busy measurement gives.
type busyResult struct {
	jobsS, p99 float64
	// midJobsS is the backlog's midRate, where Managers in child
	// processes report their jobs' starts (the managers curve); 0
	// elsewhere.
	midJobsS float64
	// On Redis: Redis's CPU µs and executed commands (scripts' inner
	// calls included) per backlog job, probes and all.
	cpuUs, cmds float64
	// CPU µs per backlog job of the Manager processes (a Manager in this
	// process: this process, the probe adder included).
	clientUs float64
}

func (b busyResult) point(store string, size int) point {
	return point{store: store, size: size, jobsS: b.jobsS, midJobsS: b.midJobsS, p99: b.p99, cpuUs: b.cpuUs, cmds: b.cmds, clientUs: b.clientUs}
}

// redisLoad is what Redis had spent at an instant: CPU, and commands
// executed (all but this process's INFO), of which script calls.
type redisLoad struct {
	cpu            time.Duration
	calls, scripts int64
}

func (r *scaleRun) redisLoad(ctx context.Context) (redisLoad, error) {
	cpu, err := r.srv.usedCPU(ctx)
	if err != nil {
		return redisLoad{}, err
	}
	calls, err := r.srv.commandCalls(ctx)
	if err != nil {
		return redisLoad{}, err
	}
	l := redisLoad{cpu: cpu}
	for name, n := range calls {
		if name == "info" {
			continue
		}
		l.calls += n
		if name == "evalsha" || name == "eval" || name == "evalsha_ro" || name == "eval_ro" {
			l.scripts += n
		}
	}
	return l, nil
}

// meter measures Redis's load over a busy measurement: on other stores
// it does nothing.
func (r *scaleRun) meter(ctx context.Context, kind string, jobs int) (done func(b *busyResult) error, err error) {
	if kind != "redis" {
		return func(*busyResult) error { return nil }, nil
	}
	l0, err := r.redisLoad(ctx)
	if err != nil {
		return nil, err
	}
	return func(b *busyResult) error {
		l1, err := r.redisLoad(ctx)
		if err != nil {
			return err
		}
		b.cpuUs = float64((l1.cpu - l0.cpu).Microseconds()) / float64(jobs)
		b.cmds = float64(l1.calls-l0.calls) / float64(jobs)
		return nil
	}, nil
}

// busyInProcess measures one busy point with a Manager in this process:
// the store holds the backlog already; the Manager runs until jobs backlog
// jobs ran, probes being added meanwhile.
func (r *scaleRun) busyInProcess(ctx context.Context, s *store, queues []string, fair bool) (busyResult, error) {
	t := newTally(r.sc.jobs)
	m, err := newScaleManager(s.b, queues, r.sc.conc, fair, t)
	if err != nil {
		return busyResult{}, err
	}
	metered, err := r.meter(ctx, s.kind, r.sc.jobs)
	if err != nil {
		return busyResult{}, err
	}
	cpu0 := cpuTime()
	start := time.Now()
	if err := m.Start(ctx); err != nil {
		return busyResult{}, fmt.Errorf("start manager: %w", err)
	}
	defer func() { _ = m.Shutdown(ctx) }()
	p := startProber(ctx, s.c, queues, r.sc.probeRate)
	defer p.stop()
	select {
	case <-t.done:
	case <-time.After(r.timeout()):
		p.stop()
		return busyResult{}, fmt.Errorf("only %d of %d backlog jobs ran within %v", t.backlog.Load(), r.sc.jobs, r.timeout())
	}
	res := busyResult{jobsS: float64(r.sc.jobs) / time.Since(start).Seconds()}
	res.clientUs = float64((cpuTime() - cpu0).Microseconds()) / float64(r.sc.jobs)
	if err := metered(&res); err != nil {
		return busyResult{}, err
	}
	added, err := p.added()
	if err != nil {
		return busyResult{}, err
	}
	lags, err := waitLags(added, t.probeLags)
	if err != nil {
		return busyResult{}, err
	}
	res.p99 = percentile(lags, 99)
	return res, nil
}

// timeout bounds one point's processing: generous, a loaded machine may
// run at a few hundred jobs/s.
func (r *scaleRun) timeout() time.Duration {
	return 2*time.Minute + time.Duration(max(r.sc.jobs, r.sc.mgrJobs))*5*time.Millisecond
}

// waitLags waits until want probes have run and returns their lags.
func waitLags(want int, lags func() []float64) ([]float64, error) {
	var got []float64
	err := waitUntil(time.Minute, func() (bool, error) {
		got = lags()
		return len(got) >= want, nil
	})
	if err != nil {
		return nil, fmt.Errorf("%d of %d probe jobs ran: %w", len(got), want, err)
	}
	if want == 0 {
		return nil, fmt.Errorf("no probe job was added (raise -scale-probe-rate or -scale-jobs)")
	}
	return got, nil
}

// inProcessPoint measures one point of the queues or tenants curve on
// each store: a fresh store is topped up to a run's backlog (-scale-jobs)
// spread over queues and tenants, then a Manager in this process drains
// it, runs times over (medians kept). With idle, the queues' idle Manager
// is measured too.
func (r *scaleRun) inProcessPoint(ctx context.Context, res *curveResult, size int, queues []string, tenants int, fair, idle bool) error {
	for _, kind := range r.sc.stores {
		s, err := r.open(ctx, kind)
		if err != nil {
			return err
		}
		b, err := r.medianOf(func() (busyResult, error) {
			if err := r.topUp(ctx, res.name, s, queues, tenants, r.sc.jobs); err != nil {
				return busyResult{}, err
			}
			return r.busyInProcess(ctx, s, queues, fair)
		})
		s.close()
		if err != nil {
			return fmt.Errorf("%s: %w", kind, err)
		}
		p := b.point(kind, size)
		if idle {
			if err := r.idle(ctx, kind, size, &p); err != nil {
				return fmt.Errorf("%s idle: %w", kind, err)
			}
			light, err := r.medianOf(func() (busyResult, error) {
				p99, err := r.lightP99(ctx, kind, queues)
				return busyResult{p99: p99}, err
			})
			if err != nil {
				return fmt.Errorf("%s without backlog: %w", kind, err)
			}
			p.lightP99 = light.p99
		}
		r.add(res, p)
	}
	return nil
}

// topUp adds backlog jobs to s until its queues hold want pending jobs
// (a Manager runs on a little past the jobs a run times, so the next run
// finds fewer), spread over queues and tenants as fillSpread does.
func (r *scaleRun) topUp(ctx context.Context, curve string, s *store, queues []string, tenants, want int) error {
	var pending int64
	for _, q := range queues {
		st, err := s.b.QueueStats(ctx, &broker.QueueStatsParams{Queue: q})
		if err != nil {
			return fmt.Errorf("count pending jobs of queue %s: %w", q, err)
		}
		pending += st.Pending
	}
	n := want - int(pending)
	if n <= 0 {
		return nil
	}
	start := time.Now()
	if err := fillSpread(ctx, s.c, n, queues, tenants); err != nil {
		return err
	}
	r.logf("%s %s: added %d backlog jobs in %v", curve, s.kind, n, time.Since(start).Round(time.Millisecond))
	if s.kind != "redis" {
		return nil
	}
	// The drain is measured on tables at rest (redisServer.settle).
	start = time.Now()
	if err := r.srv.settle(ctx, s.keys); err != nil {
		return err
	}
	r.logf("%s %s: settled Redis's tables in %v", curve, s.kind, time.Since(start).Round(time.Millisecond))
	return nil
}

// lightP99 is the probes' enqueue-to-start p99 without a backlog: a
// Manager serving queues on an empty store gets two seconds' probe jobs,
// once -scale-idle-warmup has passed since its start.
// With a backlog in every queue, a probe waits for the Manager's turn at
// its queue; without, for the Manager to notice it.
func (r *scaleRun) lightP99(ctx context.Context, kind string, queues []string) (float64, error) {
	s, err := r.open(ctx, kind)
	if err != nil {
		return 0, err
	}
	defer s.close()
	t := newTally(0)
	m, err := newScaleManager(s.b, queues, r.sc.conc, false, t)
	if err != nil {
		return 0, err
	}
	if err := m.Start(ctx); err != nil {
		return 0, fmt.Errorf("start manager: %w", err)
	}
	defer func() { _ = m.Shutdown(ctx) }()
	// As for the idle figures, the Manager's start (a first maintenance
	// round over every queue) is left out: with a thousand queues it
	// overlapped the first probes, and two of them are the p99 of 200.
	time.Sleep(r.sc.idleWarm)
	p := startProber(ctx, s.c, queues, r.sc.probeRate)
	defer p.stop()
	// Two seconds' probes: the p99 is the fourth slowest, not the second.
	want := max(20, int(2*r.sc.probeRate))
	if err := waitUntil(time.Minute, func() (bool, error) { return len(t.probeLags()) >= want, nil }); err != nil {
		return 0, fmt.Errorf("%d probe jobs: %w", want, err)
	}
	added, err := p.added()
	if err != nil {
		return 0, err
	}
	lags, err := waitLags(added, t.probeLags)
	if err != nil {
		return 0, err
	}
	return percentile(lags, 99), nil
}

// medianOf measures runs times and keeps the median of each figure.
func (r *scaleRun) medianOf(measure func() (busyResult, error)) (busyResult, error) {
	m, err := alternate(1, r.sc.runs, func(int) (busyResult, error) { return measure() })
	if err != nil {
		return busyResult{}, err
	}
	return m[0], nil
}

// alternate measures points 0 to n-1 in turn, runs times over (0, 1, ...,
// n-1, 0, 1, ...), and returns each point's median of each figure. A
// machine whose speed drifts (other processes, the hour) then moves every
// point alike, where measuring one point's runs in a row, then the next
// one's, put the drift between points: a curve's bar is a ratio of two.
func alternate(n, runs int, measure func(i int) (busyResult, error)) ([]busyResult, error) {
	all := make([][]busyResult, n)
	for range runs {
		for i := range n {
			b, err := measure(i)
			if err != nil {
				return nil, err
			}
			all[i] = append(all[i], b)
		}
	}
	out := make([]busyResult, n)
	for i, bs := range all {
		med := func(f func(busyResult) float64) float64 {
			vs := make([]float64, len(bs))
			for k, b := range bs {
				vs[k] = f(b)
			}
			return percentile(vs, 50)
		}
		out[i] = busyResult{jobsS: med(func(b busyResult) float64 { return b.jobsS }), midJobsS: med(func(b busyResult) float64 { return b.midJobsS }),
			p99: med(func(b busyResult) float64 { return b.p99 }), cpuUs: med(func(b busyResult) float64 { return b.cpuUs }),
			cmds: med(func(b busyResult) float64 { return b.cmds }), clientUs: med(func(b busyResult) float64 { return b.clientUs })}
	}
	return out, nil
}

// pendingCurve measures the pending curve, on each store: one store per
// size (on Redis, side by side under a prefix each), each filled with its
// size plus a run's backlog, then the sizes measured in turn (alternate),
// each run topping its store up again.
func (r *scaleRun) pendingCurve(ctx context.Context, res *curveResult) error {
	queues := []string{aibosQueue}
	for _, kind := range r.sc.stores {
		if kind == "redis" {
			if err := r.srv.flush(ctx); err != nil {
				return err
			}
		}
		stores := make([]*store, 0, len(r.sc.pending))
		closeAll := func() {
			for _, s := range stores {
				s.close()
			}
		}
		for _, size := range r.sc.pending {
			s, err := r.openBeside(kind, fmt.Sprintf("scale-pending-%d", size))
			if err != nil {
				closeAll()
				return fmt.Errorf("%s at %d: %w", kind, size, err)
			}
			stores = append(stores, s)
		}
		meds, err := alternate(len(stores), r.sc.runs, func(i int) (busyResult, error) {
			if err := r.topUp(ctx, res.name, stores[i], queues, 0, r.sc.pending[i]+r.sc.jobs); err != nil {
				return busyResult{}, fmt.Errorf("%s at %d: %w", kind, r.sc.pending[i], err)
			}
			b, err := r.busyInProcess(ctx, stores[i], queues, false)
			if err != nil {
				return busyResult{}, fmt.Errorf("%s at %d: %w", kind, r.sc.pending[i], err)
			}
			return b, nil
		})
		closeAll()
		if err != nil {
			return err
		}
		for i, size := range r.sc.pending {
			r.add(res, meds[i].point(kind, size))
		}
	}
	return nil
}

func (r *scaleRun) queuesPoint(ctx context.Context, res *curveResult, size int) error {
	return r.inProcessPoint(ctx, res, size, queueNames(size), 0, false, true)
}

func (r *scaleRun) tenantsPoint(ctx context.Context, res *curveResult, size int) error {
	return r.inProcessPoint(ctx, res, size, []string{aibosQueue}, size, true, false)
}

func (r *scaleRun) add(res *curveResult, p point) {
	res.points = append(res.points, p)
	r.logf("%-8s %-6s %8d  %10.0f jobs/s (mid-drain %.0f)  p99 %8.1f ms  redis %.1f µs/job %.1f commands/job  managers %.1f µs/job  idle: cpu %.1f ms/s sent %.1f/s executed %.1f/s",
		res.name, p.store, p.size, p.jobsS, p.midJobsS, p.p99, p.cpuUs, p.cmds, p.clientUs, p.cpuMsS, p.sentS, p.serverS)
}
