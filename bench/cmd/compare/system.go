package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// system is one job system under test. Every method starts from an empty
// Redis (the caller flushes) and cleans up what it started.
type system interface {
	name() string
	// enqueue adds n jobs one by one from g goroutines.
	enqueue(ctx context.Context, n, g int) (time.Duration, error)
	// bulk adds n jobs in batches; errUnsupported if the system has no bulk add.
	bulk(ctx context.Context, n, batch int) (time.Duration, error)
	// fill adds n pending jobs as fast as the system can.
	fill(ctx context.Context, n int) error
	// process starts a worker at concurrency conc and times it draining n
	// pending no-op jobs (until they are all acknowledged).
	process(ctx context.Context, n, conc int) (time.Duration, error)
	// latency adds rate jobs/s for seconds to a running, idle worker and
	// returns each job's enqueue-to-start time in ms.
	latency(ctx context.Context, rate int, seconds float64, conc int) ([]float64, error)
	// delayed adds n jobs evenly over seconds, each due delay after its add,
	// and returns each job's start minus due time in ms (negative: early).
	delayed(ctx context.Context, n int, seconds float64, delay time.Duration) ([]float64, error)
}

var errUnsupported = errors.New("unsupported")

// payload is the no-op job's data for every system.
var payload = []byte(`{"invoice":"INV-0001","amount":1250}`)

// stampPayload carries the instant a job should start (enqueue time, or due
// time for a delayed job) in unix ms.
type stampPayload struct {
	Invoice string  `json:"invoice"`
	Amount  int     `json:"amount"`
	Due     float64 `json:"due"`
}

func nowMs() float64 { return float64(time.Now().UnixNano()) / 1e6 }

// pace calls f(i) for i in [0, total) at evenly spaced instants over
// seconds, each in its own goroutine, and waits for all of them.
func pace(total int, seconds float64, f func(i int) error) error {
	gap := time.Duration(seconds * float64(time.Second) / float64(total))
	t0 := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for i := 0; i < total; i++ {
		if d := time.Until(t0.Add(time.Duration(i) * gap)); d > 0 {
			time.Sleep(d)
		}
		wg.Go(func() {
			if err := f(i); err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return first
}

// lagRecorder collects lags from handlers and reports when all arrived.
type lagRecorder struct {
	mu    sync.Mutex
	lags  []float64
	total int
	done  chan struct{}
}

func newLagRecorder(total int) *lagRecorder {
	return &lagRecorder{total: total, done: make(chan struct{}), lags: make([]float64, 0, total)}
}

func (r *lagRecorder) add(due float64) {
	lag := nowMs() - due
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lags = append(r.lags, lag)
	if len(r.lags) == r.total {
		close(r.done)
	}
}

// wait waits for every job, up to timeout after the last was added.
func (r *lagRecorder) wait(timeout time.Duration) ([]float64, error) {
	select {
	case <-r.done:
	case <-time.After(timeout):
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.lags) < r.total {
		return nil, fmt.Errorf("only %d of %d jobs started within %v", len(r.lags), r.total, timeout)
	}
	return append([]float64(nil), r.lags...), nil
}

// counter counts handled jobs and reports when n were.
type counter struct {
	mu   sync.Mutex
	n    int
	want int
	done chan struct{}
}

func newCounter(want int) *counter { return &counter{want: want, done: make(chan struct{})} }

func (c *counter) inc() {
	c.mu.Lock()
	c.n++
	if c.n == c.want {
		close(c.done)
	}
	c.mu.Unlock()
}

func (c *counter) wait(timeout time.Duration) error {
	select {
	case <-c.done:
		return nil
	case <-time.After(timeout):
		c.mu.Lock()
		defer c.mu.Unlock()
		return fmt.Errorf("only %d of %d jobs ran within %v", c.n, c.want, timeout)
	}
}

// waitUntil polls cond every 2 ms until it holds or timeout passes.
func waitUntil(timeout time.Duration, cond func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, err := cond()
		if err != nil || ok {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("condition not met within %v", timeout)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// split runs f over [0, n) from g goroutines, each taking a contiguous range.
func split(n, g int, f func(i int) error) error {
	per := (n + g - 1) / g
	errs := make(chan error, g)
	for w := 0; w < g; w++ {
		go func() {
			for i := w * per; i < min(n, (w+1)*per); i++ {
				if err := f(i); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	var first error
	for w := 0; w < g; w++ {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// redisServer is a private redis-server on a free loopback port.
type redisServer struct {
	cmd     *exec.Cmd
	addr    string
	url     string
	version string
	client  *redis.Client
}

// startRedis starts a private redis-server (with args added to its
// command line), or reaches the one at addr if addr is not empty.
func startRedis(bin, addr string, args ...string) (*redisServer, error) {
	if addr != "" {
		s := &redisServer{addr: addr, url: "redis://" + addr, client: redis.NewClient(&redis.Options{Addr: addr})}
		info, err := s.client.Info(context.Background(), "server").Result()
		if err != nil {
			return nil, fmt.Errorf("reach redis at %s: %w", addr, err)
		}
		s.version = infoField(info, "redis_version")
		return s, nil
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("find a free port: %w", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	cmd := exec.Command(bin, append([]string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"}, args...)...)
	cmd.Stdout, cmd.Stderr = io.Discard, os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	s := &redisServer{cmd: cmd, addr: fmt.Sprintf("127.0.0.1:%d", port)}
	s.url = "redis://" + s.addr
	s.client = redis.NewClient(&redis.Options{Addr: s.addr})
	err = waitUntil(10*time.Second, func() (bool, error) {
		return s.client.Ping(context.Background()).Err() == nil, nil
	})
	if err != nil {
		s.stop()
		return nil, fmt.Errorf("redis-server did not answer: %w", err)
	}
	info, _ := s.client.Info(context.Background(), "server").Result()
	s.version = infoField(info, "redis_version")
	return s, nil
}

// stop ends the server by its pid.
func (s *redisServer) stop() {
	_ = s.client.Close()
	if s.cmd != nil {
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
	}
}

// stopOnSignal makes an interrupted run (SIGINT, SIGTERM) still stop the
// server, and run cleanups, before exiting, until the returned func is
// called.
func (s *redisServer) stopOnSignal(cleanups ...func()) (release func()) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		if _, ok := <-sig; ok {
			s.stop()
			for _, f := range cleanups {
				f()
			}
			os.Exit(1)
		}
	}()
	return func() { signal.Stop(sig); close(sig) }
}

func (s *redisServer) flush(ctx context.Context) error {
	if err := s.client.FlushAll(ctx).Err(); err != nil {
		return fmt.Errorf("flush redis: %w", err)
	}
	return nil
}

func (s *redisServer) usedMemory(ctx context.Context) (int64, error) {
	info, err := s.client.Info(ctx, "memory").Result()
	if err != nil {
		return 0, fmt.Errorf("read redis memory: %w", err)
	}
	return strconv.ParseInt(infoField(info, "used_memory"), 10, 64)
}

func (s *redisServer) usedCPU(ctx context.Context) (time.Duration, error) {
	info, err := s.client.Info(ctx, "cpu").Result()
	if err != nil {
		return 0, fmt.Errorf("read redis cpu: %w", err)
	}
	sys, _ := strconv.ParseFloat(infoField(info, "used_cpu_sys"), 64)
	user, _ := strconv.ParseFloat(infoField(info, "used_cpu_user"), 64)
	return time.Duration((sys + user) * float64(time.Second)), nil
}

// commandStat is one command's line of INFO commandstats.
type commandStat struct {
	calls int64
	usec  int64
}

// commandStats reads INFO commandstats: calls and microseconds per command
// (scripts count under evalsha, fcall and the commands they call).
func (s *redisServer) commandStats(ctx context.Context) (map[string]commandStat, error) {
	info, err := s.client.Info(ctx, "commandstats").Result()
	if err != nil {
		return nil, fmt.Errorf("read redis commandstats: %w", err)
	}
	stats := map[string]commandStat{}
	for _, line := range strings.Split(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		name, found := strings.CutPrefix(name, "cmdstat_")
		if !ok || !found {
			continue
		}
		var st commandStat
		for _, f := range strings.Split(rest, ",") {
			k, v, _ := strings.Cut(f, "=")
			switch k {
			case "calls":
				st.calls, _ = strconv.ParseInt(v, 10, 64)
			case "usec":
				st.usec, _ = strconv.ParseInt(v, 10, 64)
			}
		}
		stats[name] = st
	}
	return stats, nil
}

// printCommandStats writes, per command, the calls and microseconds per
// job between two commandstats readings, most expensive first.
func printCommandStats(w io.Writer, label string, before, after map[string]commandStat, jobs int) {
	type row struct {
		name        string
		calls, usec float64
	}
	var rows []row
	for name, a := range after {
		b := before[name]
		if a.calls == b.calls {
			continue
		}
		rows = append(rows, row{name, float64(a.calls-b.calls) / float64(jobs), float64(a.usec-b.usec) / float64(jobs)})
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].usec > rows[j].usec })
	for _, r := range rows {
		fmt.Fprintf(w, "%s commandstats %-16s %8.4f calls/job %8.3f us/job\n", label, r.name, r.calls, r.usec)
	}
}

func infoField(info, name string) string {
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
			return v
		}
	}
	return ""
}

// npmInstall installs the pinned BullMQ under dir unless it is there.
func npmInstall(dir string) error {
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "bullmq")); err == nil {
		return nil
	}
	cmd := exec.Command("npm", "install", "--no-audit", "--no-fund", "--silent")
	cmd.Dir, cmd.Stdout, cmd.Stderr = dir, os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("npm install in %s: %w", dir, err)
	}
	return nil
}

// results maps system → metric → value.
type results map[string]map[string]float64

func (r results) set(sys, metric string, v float64) {
	if r[sys] == nil {
		r[sys] = map[string]float64{}
	}
	r[sys][metric] = v
}

// rowsEnv names the file a child run (phase h's, service_child.go) writes
// its figures to, as JSON, instead of printing the table.
const rowsEnv = "AIBOS_COMPARE_ROWS"

// writeRows writes r as JSON to path. JSON has no NaN (a percentile of no
// samples), so such a figure is left out, and shows as "–" in the table.
func writeRows(path string, r results) error {
	out := results{}
	for sys, m := range r {
		for metric, v := range m {
			if !math.IsNaN(v) {
				out.set(sys, metric, v)
			}
		}
	}
	b, err := json.Marshal(out)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o600)
}

// median takes each figure's median over runs.
func median(runs []results) results {
	out := results{}
	for sys := range runs[0] {
		for metric := range runs[0][sys] {
			var vs []float64
			for _, r := range runs {
				if v, ok := r[sys][metric]; ok {
					vs = append(vs, v)
				}
			}
			out.set(sys, metric, percentile(vs, 50))
		}
	}
	return out
}

// percentile returns the p-th percentile (nearest rank) of vs.
func percentile(vs []float64, p float64) float64 {
	if len(vs) == 0 {
		return math.NaN()
	}
	s := append([]float64(nil), vs...)
	sort.Float64s(s)
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

func printTable(w io.Writer, r results) {
	metrics := map[string]bool{}
	for _, m := range r {
		for k := range m {
			metrics[k] = true
		}
	}
	names := make([]string, 0, len(metrics))
	for k := range metrics {
		names = append(names, k)
	}
	sort.Strings(names)
	cell := func(sys, m string) string {
		v, ok := r[sys][m]
		if !ok || math.IsNaN(v) {
			return "–"
		}
		return format(v)
	}
	ratio := func(other, m string) string {
		a, ok1 := r["aibos"][m]
		b, ok2 := r[other][m]
		if !ok1 || !ok2 || b == 0 || math.IsNaN(a) || math.IsNaN(b) {
			return "–"
		}
		if a/b < 0.1 {
			return fmt.Sprintf("%.2g×", a/b)
		}
		return fmt.Sprintf("%.2f×", a/b)
	}
	fmt.Fprintln(w, "| workload | aibos (Redis) | asynq | BullMQ | aibos/asynq | aibos/BullMQ | aibos (SQLite) |")
	fmt.Fprintln(w, "|---|--:|--:|--:|--:|--:|--:|")
	for _, m := range names {
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s |\n", m, cell("aibos", m), cell("asynq", m), cell("bullmq", m),
			ratio("asynq", m), ratio("bullmq", m), cell("sqlite", m))
	}
}

func format(v float64) string {
	switch {
	case v >= 1000:
		return strconv.FormatFloat(math.Round(v), 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
}

// settleScript makes ARGV[2] lookups of a missing member in the hash or
// sorted set KEYS[1] (ARGV[1]: its type).
var settleScript = redis.NewScript(`
local cmd = ARGV[1] == 'hash' and 'HEXISTS' or 'ZSCORE'
for _ = 1, tonumber(ARGV[2]) do
  redis.call(cmd, KEYS[1], '')
end
return 0`)

// settleAbove is the size from which settle touches a hash or sorted set:
// smaller ones finish rehashing within a few of the drain's commands.
const settleAbove = 10000

// settle finishes Redis's rehashing of every hash and sorted set of more
// than settleAbove entries whose key matches match (SCAN MATCH).
//
// Redis grows such a table (the pending set's, the body hash's) by
// rehashing it a bucket at a time, one bucket per command that reads or
// writes it, never in the background (serverCron rehashes only the
// keyspace's own tables). How much of a growth is left when a bulk fill
// ends depends on where the fill ended: a fill of 1,020,000 jobs ends
// after nearly all of its last growth (at 524,288) has moved, one of
// 1,100,000 to 1,200,000 just after the growth at 1,048,576, and the
// drain measured next pays for the move: 1.7-2.3 µs of Redis CPU per job
// more than after settle (11.3-11.8 against 9.5-9.6, 100,000-job drains
// on a loaded machine; perf: dictRehash and dictSdsHash, a fifth of the
// samples, none after settle). That is the fill's cost, not the cost of
// having a million jobs pending, and where it falls made the curve swing.
//
// A step moves one of the old table's buckets that hold entries, or
// passes ten that hold none, and a table grows when its entries reach its
// buckets: the old table's rest is moved by one lookup per entry, and a
// tenth more; settle makes two.
func (s *redisServer) settle(ctx context.Context, match string) error {
	var cursor uint64
	for {
		keys, next, err := s.client.Scan(ctx, cursor, match, 1000).Result()
		if err != nil {
			return fmt.Errorf("list keys to settle: %w", err)
		}
		for _, k := range keys {
			if err := s.settleKey(ctx, k); err != nil {
				return err
			}
		}
		if cursor = next; cursor == 0 {
			return nil
		}
	}
}

func (s *redisServer) settleKey(ctx context.Context, key string) error {
	typ, err := s.client.Type(ctx, key).Result()
	if err != nil {
		return fmt.Errorf("read the type of %s: %w", key, err)
	}
	var n int64
	switch typ {
	case "hash":
		n, err = s.client.HLen(ctx, key).Result()
	case "zset":
		n, err = s.client.ZCard(ctx, key).Result()
	default:
		return nil
	}
	if err != nil {
		return fmt.Errorf("count the entries of %s: %w", key, err)
	}
	if n <= settleAbove {
		return nil
	}
	if err := settleScript.Run(ctx, s.client, []string{key}, typ, 2*n).Err(); err != nil {
		return fmt.Errorf("settle %s: %w", key, err)
	}
	return nil
}
