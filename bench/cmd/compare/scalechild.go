package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/broker/redisbroker"
	"github.com/aibos/worker/broker/sqlitebroker"
	"github.com/aibos/worker/internal/rediscount"
)

// childEnv carries a child Manager's settings (childSpec as JSON): this
// binary started with it set runs one Manager and talks to its parent over
// stdin and stdout instead of benchmarking.
const childEnv = "AIBOS_SCALE_CHILD"

// childSpec is what a child Manager serves.
type childSpec struct {
	Store  string `json:"store"` // redis or sqlite
	URL    string `json:"url"`   // Redis URL
	Path   string `json:"path"`  // SQLite file
	Queues int    `json:"queues"`
	Conc   int    `json:"conc"`
	// Bare has the child run bareLoop instead of a Manager.
	Bare bool `json:"bare,omitempty"`
}

// The protocol, one line at a time. The child prints "ready" once its
// broker is open; then the parent sends "go" to start the Manager, and
// "stats" to have the child print "stats <commands sent> <CPU µs> <voluntary
// context switches> <involuntary ones>" (a thread's sleeps, what a process
// waking for every reply pays, and its preemptions). While
// its Manager runs, the child prints "count <backlog jobs> <probe jobs>
// <UnixNano of the latest backlog job's start>" every countEvery when they
// changed. When its stdin closes the child shuts the
// Manager down, prints "starts <JSON array of its backlog jobs' starts,
// UnixNano>", then "lags <JSON array of the probes' lags in ms>", and exits
// 0.

// runChild is the child mode's main; it returns the exit code.
func runChild(spec string, stdin io.Reader, stdout io.Writer) int {
	if err := child(spec, stdin, stdout); err != nil {
		fmt.Fprintf(os.Stderr, "compare child: %v\n", err)
		return 1
	}
	return 0
}

func child(raw string, stdin io.Reader, stdout io.Writer) error {
	var spec childSpec
	if err := json.Unmarshal([]byte(raw), &spec); err != nil {
		return fmt.Errorf("read %s: %w", childEnv, err)
	}
	var (
		b    broker.Broker
		sent atomic.Int64
		err  error
	)
	switch spec.Store {
	case "redis":
		b, err = openCountingRedis(spec.URL, &sent)
	case "sqlite":
		b, err = sqlitebroker.Open(spec.Path, sqlitebroker.Config{})
	default:
		err = fmt.Errorf("unknown store %q", spec.Store)
	}
	if err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	defer b.Close()
	t := newTally(0)
	t.keepStarts = true
	m, err := newScaleManager(b, queueNames(spec.Queues), spec.Conc, false, t)
	if err != nil {
		return err
	}
	var outMu sync.Mutex
	say := func(format string, args ...any) {
		outMu.Lock()
		defer outMu.Unlock()
		fmt.Fprintf(stdout, format+"\n", args...)
	}
	say("ready")
	ctx := context.Background()
	quit := make(chan struct{})
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(quit)
	started := false
	in := bufio.NewScanner(stdin)
	for in.Scan() {
		switch in.Text() {
		case "go":
			if started {
				continue
			}
			if spec.Bare {
				wg.Go(func() { bareLoop(b, queueNames(spec.Queues)[0], spec.Conc, t, quit, say) })
			} else if err := m.Start(ctx); err != nil {
				return fmt.Errorf("start manager: %w", err)
			}
			started = !spec.Bare
			stopProfile, err := startChildProfile()
			if err != nil {
				return err
			}
			defer stopProfile()
			wg.Go(func() { reportCounts(t, quit, say) })
		case "stats":
			vol, invol := contextSwitches()
			say("stats %d %d %d %d", sent.Load(), cpuTime().Microseconds(), vol, invol)
		}
	}
	if started {
		if err := m.Shutdown(ctx); err != nil {
			return fmt.Errorf("shut down manager: %w", err)
		}
	}
	starts, err := json.Marshal(t.backlogStarts())
	if err != nil {
		return fmt.Errorf("encode starts: %w", err)
	}
	say("starts %s", starts)
	lags, err := json.Marshal(t.probeLags())
	if err != nil {
		return fmt.Errorf("encode lags: %w", err)
	}
	say("lags %s", lags)
	return nil
}

// bareLoop is a child without a Manager: two goroutines that each fetch up
// to 4×conc jobs of queue (about what the Manager's adaptive prefetch
// fetches at a time with a backlog), count them (tally.handle, as the Manager's
// handler would) and acknowledge them in one batch, until quit is closed.
// It is the least any client of the broker does per job, so the managers
// curve run with -scale-managers-bare is the ceiling that 1, 10 and 50
// processes on this machine reach whatever the Manager does; a failed
// call is said as "error ..." and ends the loop.
func bareLoop(b broker.Broker, queue string, conc int, t *tally, quit <-chan struct{}, say func(string, ...any)) {
	ctx := context.Background()
	id := fmt.Sprintf("bare-%d", os.Getpid())
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			var idle time.Duration
			for {
				select {
				case <-quit:
					return
				default:
				}
				jobs, err := b.JobFetch(ctx, &broker.JobFetchParams{Queue: queue, Limit: 4 * conc, LeaseDuration: time.Minute, WorkerID: id})
				if err != nil {
					say("error fetch: %v", err)
					return
				}
				if len(jobs) == 0 {
					// As the Manager's idle fetcher, at most 50 ms apart.
					idle = min(max(2*idle, time.Millisecond), 50*time.Millisecond)
					select {
					case <-quit:
						return
					case <-time.After(idle):
					}
					continue
				}
				idle = 0
				ps := make([]*broker.JobCompleteParams, len(jobs))
				for i, j := range jobs {
					_ = t.handle(ctx, &worker.Job{Type: j.Type, Data: j.Data})
					ps[i] = &broker.JobCompleteParams{JobLeaseParams: broker.JobLeaseParams{Queue: j.Queue, ID: j.ID, Token: j.LeaseToken}}
				}
				errs, err := b.JobComplete(ctx, ps)
				if err == nil {
					err = errors.Join(errs...)
				}
				if err != nil {
					say("error complete: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// childProfileEnv, when set to a directory, has each child Manager write
// a CPU profile of its run, from "go" to its shutdown, to
// <dir>/child-<pid>.pprof: what a job costs in one of many small
// processes (issue 24's managers curve) shows in no single-process
// benchmark. Merge them with go tool pprof <dir>/child-*.pprof.
const childProfileEnv = "AIBOS_SCALE_CHILD_CPUPROFILE"

// startChildProfile starts the CPU profile childProfileEnv asks for, if
// any, and returns what stops it.
func startChildProfile() (func(), error) {
	dir := os.Getenv(childProfileEnv)
	if dir == "" {
		return func() {}, nil
	}
	f, err := os.Create(filepath.Join(dir, fmt.Sprintf("child-%d.pprof", os.Getpid())))
	if err != nil {
		return nil, fmt.Errorf("create child cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("start child cpu profile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		_ = f.Close()
	}, nil
}

// countEvery is how often a child reports its counts. The parent takes the
// end of a drain from the children's last-job times, not from when it read
// them, so the reports can be rare: each one wakes the child, and at 50 a
// second (a 20 ms tick) fifty children spent 4 ms of CPU per second each
// on them, about 10 µs per job of the managers curve's 50-Manager point.
const countEvery = 100 * time.Millisecond

// reportCounts prints the tally's counts every countEvery while they
// change.
func reportCounts(t *tally, quit <-chan struct{}, say func(string, ...any)) {
	tick := time.NewTicker(countEvery)
	defer tick.Stop()
	var last [2]int
	for {
		select {
		case <-quit:
			return
		case <-tick.C:
		}
		now := [2]int{int(t.backlog.Load()), len(t.probeLags())}
		if now != last {
			say("count %d %d %d", now[0], now[1], t.last.Load())
			last = now
		}
	}
}

// openCountingRedis opens the Redis broker on a client that counts the
// commands it sends, a pipeline's one by one.
func openCountingRedis(url string, sent *atomic.Int64) (broker.Broker, error) {
	client, err := countingClient(url, sent)
	if err != nil {
		return nil, err
	}
	b, err := redisbroker.New(client, redisbroker.Config{})
	if err != nil {
		_ = client.Close()
		return nil, err
	}
	return closeBoth{b, client}, nil
}

// countingClient is a client of url, made as redisbroker.Open makes it,
// that adds each command it sends to sent.
func countingClient(url string, sent *atomic.Int64) (redis.UniversalClient, error) {
	o, err := redisbroker.ParseURL(url)
	if err != nil {
		return nil, err
	}
	client := o.NewClient()
	client.AddHook(rediscount.Hook(func(string) { sent.Add(1) }))
	return client, nil
}

// closeBoth closes the client New was given after the broker.
type closeBoth struct {
	*redisbroker.Broker
	client redis.UniversalClient
}

func (c closeBoth) Close() error {
	err := c.Broker.Close()
	_ = c.client.Close()
	return err
}

// cpuTime is the CPU time, user and system, this process used so far.
func cpuTime() time.Duration {
	ru := rusage()
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// contextSwitches is how often this process's threads were switched
// out so far, waiting (voluntary) or preempted (involuntary).
func contextSwitches() (vol, invol int64) {
	ru := rusage()
	return ru.Nvcsw, ru.Nivcsw
}

// rusage is what this process used so far; zero if it cannot be read.
func rusage() syscall.Rusage {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return syscall.Rusage{}
	}
	return ru
}

// childProc is a running child Manager as its parent sees it.
type childProc struct {
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	lines   chan string // every line but counts
	backlog atomic.Int64
	probes  atomic.Int64
	last    atomic.Int64 // UnixNano of its latest backlog job's start
	exited  chan struct{}
}

// startChild starts the binary in child mode and waits for its "ready".
func startChild(bin string, spec childSpec) (*childProc, error) {
	raw, err := json.Marshal(spec)
	if err != nil {
		return nil, fmt.Errorf("encode child spec: %w", err)
	}
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), childEnv+"="+string(raw))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("child stdin: %w", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("child stdout: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start child manager: %w", err)
	}
	c := &childProc{cmd: cmd, stdin: stdin, lines: make(chan string, 16), exited: make(chan struct{})}
	go c.read(stdout)
	if _, err := c.expect("ready", time.Minute); err != nil {
		c.kill()
		return nil, err
	}
	return c, nil
}

func (c *childProc) read(stdout io.Reader) {
	defer close(c.lines)
	in := bufio.NewScanner(stdout)
	in.Buffer(make([]byte, 1<<20), 1<<26)
	for in.Scan() {
		line := in.Text()
		if rest, ok := strings.CutPrefix(line, "count "); ok {
			var b, p, last int64
			if _, err := fmt.Sscan(rest, &b, &p, &last); err == nil {
				c.last.Store(last)
				c.backlog.Store(b)
				c.probes.Store(p)
			}
			continue
		}
		c.lines <- line
	}
}

// expect waits for the child's next line other than counts, which must
// start with word, and returns the rest.
func (c *childProc) expect(word string, timeout time.Duration) (string, error) {
	select {
	case line, ok := <-c.lines:
		if !ok {
			return "", fmt.Errorf("child manager %d ended before saying %q", c.cmd.Process.Pid, word)
		}
		rest, found := strings.CutPrefix(line, word)
		if !found {
			return "", fmt.Errorf("child manager %d said %q, want %q", c.cmd.Process.Pid, line, word)
		}
		return strings.TrimSpace(rest), nil
	case <-time.After(timeout):
		return "", fmt.Errorf("child manager %d did not say %q within %v", c.cmd.Process.Pid, word, timeout)
	}
}

func (c *childProc) send(line string) error {
	if _, err := io.WriteString(c.stdin, line+"\n"); err != nil {
		return fmt.Errorf("tell child manager %d %q: %w", c.cmd.Process.Pid, line, err)
	}
	return nil
}

// childStats is what a child says it used so far.
type childStats struct {
	sent       int64 // commands sent
	cpu        time.Duration
	vol, invol int64 // context switches, voluntary and not
}

// stats asks the child for the commands it sent, the CPU it used and its
// context switches.
func (c *childProc) stats() (childStats, error) {
	if err := c.send("stats"); err != nil {
		return childStats{}, err
	}
	rest, err := c.expect("stats", 10*time.Second)
	if err != nil {
		return childStats{}, err
	}
	var st childStats
	var us int64
	if _, err := fmt.Sscan(rest, &st.sent, &us, &st.vol, &st.invol); err != nil {
		return childStats{}, fmt.Errorf("read child manager stats %q: %w", rest, err)
	}
	st.cpu = time.Duration(us) * time.Microsecond
	return st, nil
}

// stop closes the child's stdin, reads its backlog jobs' starts and its
// probes' lags, and waits for it.
func (c *childProc) stop() (starts []int64, lags []float64, err error) {
	_ = c.stdin.Close()
	for _, r := range []struct {
		word string
		into any
	}{{"starts", &starts}, {"lags", &lags}} {
		rest, err := c.expect(r.word, time.Minute)
		if err != nil {
			c.kill()
			return nil, nil, err
		}
		if err := json.Unmarshal([]byte(rest), r.into); err != nil {
			c.kill()
			return nil, nil, fmt.Errorf("read child manager %s: %w", r.word, err)
		}
	}
	if err := c.cmd.Wait(); err != nil {
		return nil, nil, fmt.Errorf("child manager %d: %w", c.cmd.Process.Pid, err)
	}
	return starts, lags, nil
}

// kill ends the child by its pid.
func (c *childProc) kill() {
	_ = c.stdin.Close()
	_ = c.cmd.Process.Kill()
	_ = c.cmd.Wait()
}

// idle measures an idle Manager serving n queues in a child process.
func (r *scaleRun) idle(ctx context.Context, kind string, n int, p *point) error {
	spec := childSpec{Store: kind, Queues: n, Conc: r.sc.conc}
	switch kind {
	case "redis":
		if err := r.srv.flush(ctx); err != nil {
			return err
		}
		spec.URL = r.srv.url
	case "sqlite":
		var remove func()
		spec.Path, remove = r.sqlitePath()
		defer remove()
	}
	c, err := startChild(r.sc.childBinary, spec)
	if err != nil {
		return err
	}
	defer c.kill()
	if err := c.send("go"); err != nil {
		return err
	}
	time.Sleep(r.sc.idleWarm) // the Manager's start-up is not idle cost
	st0, err := c.stats()
	if err != nil {
		return err
	}
	var l0 redisLoad
	if kind == "redis" {
		if l0, err = r.redisLoad(ctx); err != nil {
			return err
		}
	}
	start := time.Now()
	time.Sleep(r.sc.idleWindow) // the window the idle costs are counted over
	st1, err := c.stats()
	if err != nil {
		return err
	}
	secs := time.Since(start).Seconds()
	p.idle = true
	p.cpuMsS = float64((st1.cpu - st0.cpu).Microseconds()) / 1000 / secs
	if kind == "redis" {
		l1, err := r.redisLoad(ctx)
		if err != nil {
			return err
		}
		p.sentS = float64(st1.sent-st0.sent) / secs
		p.serverS, p.scriptsS = float64(l1.calls-l0.calls)/secs, float64(l1.scripts-l0.scripts)/secs
	}
	_, _, err = c.stop()
	return err
}

// commandCalls reads INFO commandstats: calls per command name.
func (s *redisServer) commandCalls(ctx context.Context) (map[string]int64, error) {
	info, err := s.client.Info(ctx, "commandstats").Result()
	if err != nil {
		return nil, fmt.Errorf("read redis commandstats: %w", err)
	}
	out := map[string]int64{}
	for line := range strings.SplitSeq(info, "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_")
		if !ok {
			continue
		}
		name, fields, ok := strings.Cut(rest, ":")
		if !ok {
			continue
		}
		for f := range strings.SplitSeq(fields, ",") {
			if v, ok := strings.CutPrefix(f, "calls="); ok {
				n, err := strconv.ParseInt(v, 10, 64)
				if err != nil {
					return nil, fmt.Errorf("read redis commandstats %q: %w", line, err)
				}
				out[name] = n
			}
		}
	}
	return out, nil
}

// managersPoint drains the backlog with k Managers in child processes on
// Redis.
func (r *scaleRun) managersPoint(ctx context.Context, res *curveResult, k int) error {
	if !r.sc.hasStore("redis") {
		return nil
	}
	s, err := r.open(ctx, "redis")
	if err != nil {
		return err
	}
	defer s.close()
	queues := queueNames(1)
	b, err := r.medianOf(func() (busyResult, error) {
		if err := r.topUp(ctx, res.name, s, queues, 0, r.sc.mgrJobs); err != nil {
			return busyResult{}, err
		}
		return r.busyChildren(ctx, s, queues, k)
	})
	if err != nil {
		return err
	}
	r.add(res, b.point("redis", k))
	return nil
}

// busyChildren measures k child Managers processing jobs of the backlog
// s holds, probes being added meanwhile.
func (r *scaleRun) busyChildren(ctx context.Context, s *store, queues []string, k int) (busyResult, error) {
	children := make([]*childProc, 0, k)
	defer func() {
		for _, c := range children {
			c.kill()
		}
	}()
	for range k {
		c, err := startChild(r.sc.childBinary, childSpec{Store: "redis", URL: r.srv.url, Queues: len(queues), Conc: r.sc.conc, Bare: r.sc.mgrBare})
		if err != nil {
			return busyResult{}, err
		}
		children = append(children, c)
	}
	// stats sums the children's stats.
	stats := func() (childStats, error) {
		var sum childStats
		for _, c := range children {
			st, err := c.stats()
			if err != nil {
				return childStats{}, err
			}
			sum.sent, sum.cpu = sum.sent+st.sent, sum.cpu+st.cpu
			sum.vol, sum.invol = sum.vol+st.vol, sum.invol+st.invol
		}
		return sum, nil
	}
	st0, err := stats()
	if err != nil {
		return busyResult{}, err
	}
	metered, err := r.meter(ctx, s.kind, r.sc.mgrJobs)
	if err != nil {
		return busyResult{}, err
	}
	start := time.Now()
	for _, c := range children {
		if err := c.send("go"); err != nil {
			return busyResult{}, err
		}
	}
	p := startProber(ctx, s.c, queues, r.sc.probeRate)
	defer p.stop()
	sum := func(f func(*childProc) int64) int64 {
		var n int64
		for _, c := range children {
			n += f(c)
		}
		return n
	}
	err = waitUntil(r.timeout(), func() (bool, error) {
		return sum(func(c *childProc) int64 { return c.backlog.Load() }) >= int64(r.sc.mgrJobs), nil
	})
	if err != nil {
		return busyResult{}, fmt.Errorf("backlog of %d jobs: %w", r.sc.mgrJobs, err)
	}
	// The drain ended when the last backlog job started, up to countEvery
	// before the counts said so.
	end := time.Now()
	if last := time.Unix(0, maxOf(children, func(c *childProc) int64 { return c.last.Load() })); last.After(start) {
		end = last
	}
	res := busyResult{jobsS: float64(r.sc.mgrJobs) / end.Sub(start).Seconds()}
	if err := metered(&res); err != nil {
		return busyResult{}, err
	}
	st1, err := stats()
	if err != nil {
		return busyResult{}, err
	}
	jobs := float64(r.sc.mgrJobs)
	res.clientUs = float64((st1.cpu - st0.cpu).Microseconds()) / jobs
	r.logf("managers redis %8d  Managers sent %.3f commands/job (a pipeline's one by one), context switches %.3f voluntary and %.3f involuntary per job",
		k, float64(st1.sent-st0.sent)/jobs, float64(st1.vol-st0.vol)/jobs, float64(st1.invol-st0.invol)/jobs)
	added, err := p.added()
	if err != nil {
		return busyResult{}, err
	}
	err = waitUntil(time.Minute, func() (bool, error) {
		return sum(func(c *childProc) int64 { return c.probes.Load() }) >= int64(added), nil
	})
	if err != nil {
		return busyResult{}, fmt.Errorf("%d probe jobs: %w", added, err)
	}
	var (
		starts []int64
		lags   []float64
	)
	for _, c := range children {
		s, l, err := c.stop()
		if err != nil {
			return busyResult{}, err
		}
		starts, lags = append(starts, s...), append(lags, l...)
	}
	children = nil
	res.midJobsS = midRate(starts)
	if len(lags) == 0 {
		return busyResult{}, fmt.Errorf("no probe job was added (raise -scale-probe-rate or -scale-jobs)")
	}
	res.p99 = percentile(lags, 99)
	return res, nil
}

// maxOf returns the largest f over children.
func maxOf(children []*childProc, f func(*childProc) int64) int64 {
	var m int64
	for _, c := range children {
		m = max(m, f(c))
	}
	return m
}
