package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"image/png"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/broker/redisbroker"
)

// TestMain runs the test binary as a child Manager when the scale smoke
// test re-executes it, as compare's main does.
func TestMain(m *testing.M) {
	if spec := os.Getenv(childEnv); spec != "" {
		os.Exit(runChild(spec, os.Stdin, os.Stdout))
	}
	goleak.VerifyTestMain(m)
}

// TestScaleSmoke runs every curve of -scale end to end at tiny sizes, on a
// private redis-server and the embedded store, child Manager processes
// included, and checks what a reader gets: a table per curve with a row
// per size and a figure in each cell, the bars, and a PNG per curve.
func TestScaleSmoke(t *testing.T) {
	sc, text := runSmoke(t, "-scale-pending", "10,100", "-scale-queues", "1,10", "-scale-tenants", "1,10",
		"-scale-managers", "1,2", "-scale-jobs", "200", "-scale-managers-jobs", "200", "-scale-idle-warmup", "100ms", "-scale-idle-window", "300ms")
	figure := `[0-9][0-9.,]*`
	for _, c := range []struct {
		name  string
		sizes []string
		cells int // figures per row after the size
	}{
		{"pending", []string{"10", "100"}, 8},
		{"queues", []string{"1", "10"}, 14},
		{"tenants", []string{"1", "10"}, 8},
		{"managers", []string{"1", "2"}, 6}, // and the mid-drain jobs/s
	} {
		if !strings.Contains(text, "### "+c.name+"\n") {
			t.Errorf("no table of curve %s in:\n%s", c.name, text)
		}
		for _, size := range c.sizes {
			row := `(?m)^\| ` + regexp.QuoteMeta(size) + strings.Repeat(` \| `+figure+`( \(`+figure+`\))?`, c.cells) + ` \|$`
			if !regexp.MustCompile(row).MatchString(text) {
				t.Errorf("curve %s: no row for size %s with %d figures in:\n%s", c.name, size, c.cells, text)
			}
		}
		path := filepath.Join(sc.out, c.name+".png")
		f, err := os.Open(path)
		if err != nil {
			t.Errorf("curve %s: %v", c.name, err)
			continue
		}
		img, err := png.Decode(f)
		_ = f.Close()
		if err != nil {
			t.Errorf("curve %s: %s is not a PNG: %v", c.name, path, err)
			continue
		}
		if b := img.Bounds(); b.Dx() < 400 || b.Dy() < 300 {
			t.Errorf("curve %s: the plot is %v, too small to read", c.name, b)
		}
	}
	if !strings.Contains(text, "### bars (issue 24)") {
		t.Errorf("no bars in:\n%s", text)
	}
}

// TestScaleBareManagersSmoke: with -scale-managers-bare the managers
// curve's children drain the backlog with bareLoop (the run would time
// out if they did not count what they took), and its table says so.
func TestScaleBareManagersSmoke(t *testing.T) {
	_, text := runSmoke(t, "-scale-curves", "managers", "-scale-stores", "redis", "-scale-managers", "1,2",
		"-scale-managers-jobs", "300", "-scale-managers-bare")
	figure := `[0-9][0-9.,]*`
	for _, size := range []string{"1", "2"} {
		row := `(?m)^\| ` + size + strings.Repeat(` \| `+figure, 6) + ` \|$`
		if !regexp.MustCompile(row).MatchString(text) {
			t.Errorf("no row for %s bare processes with 6 figures in:\n%s", size, text)
		}
	}
	if !strings.Contains(text, "bare fetch-and-acknowledge loop (no Manager)") {
		t.Errorf("the table does not say its processes ran no Manager:\n%s", text)
	}
}

// runSmoke runs -scale with args on a private redis-server, its PNGs in a
// temporary directory, and returns its configuration and what it printed;
// an error fails the test.
func runSmoke(t *testing.T, args ...string) (*scaleConfig, string) {
	t.Helper()
	bin := redisServerBin(t)
	sc := smokeConfig(t, args...)
	sc.redisBin = bin
	sc.out = filepath.Join(t.TempDir(), "png")
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := runScale(ctx, sc, &out); err != nil {
		t.Fatalf("runScale: %v\n%s", err, out.String())
	}
	return sc, out.String()
}

// TestCommandCounterCountsEachCommand: the idle Manager's "commands
// sent" counts a pipeline's commands one by one, as Redis executes them.
func TestCommandCounterCountsEachCommand(t *testing.T) {
	srv := testRedis(t)
	var sent atomic.Int64
	c, err := countingClient(srv.url, &sent)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	before, err := srv.commandCalls(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	_, err = c.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, "a", 1, 0)
		p.Incr(ctx, "a")
		p.Get(ctx, "a")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	after, err := srv.commandCalls(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var executed int64
	for name, n := range after {
		if name != "info" && name != "hello" && name != "client" { // INFO is this test's; the others go-redis's handshake
			executed += n - before[name]
		}
	}
	if sent.Load() != 4 || executed != 4 {
		t.Errorf("a PING and a pipeline of 3: counted %d sent and %d executed, want 4 and 4", sent.Load(), executed)
	}
}

// redisServerBin finds redis-server, or skips (fails under CI) without it.
// testRedis starts a private redis-server that the test stops.
func testRedis(t *testing.T) *redisServer {
	t.Helper()
	srv, err := startRedis(redisServerBin(t), "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.stop)
	return srv
}

// backlog adds jobs backlog jobs to the first scale queue of srv and
// returns the client that added them.
func backlog(t *testing.T, srv *redisServer, jobs int) *worker.Client {
	t.Helper()
	b, err := redisbroker.Open(srv.url, redisbroker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	c, err := worker.NewClient(b, worker.ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if err := fillSpread(context.Background(), c, jobs, queueNames(1), 0); err != nil {
		t.Fatal(err)
	}
	return c
}

func redisServerBin(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("redis-server is not installed (apt-get install redis-server): %v", err)
		}
		t.Skipf("redis-server is not installed (apt-get install redis-server): %v", err)
	}
	return bin
}

// smokeConfig parses args as compare's -scale-* flags.
func smokeConfig(t *testing.T, args ...string) *scaleConfig {
	t.Helper()
	var sc scaleConfig
	fs := flag.NewFlagSet("compare", flag.ContinueOnError)
	done := scaleFlags(fs, &sc)
	if err := fs.Parse(args); err != nil {
		t.Fatalf("parse %q: %v", args, err)
	}
	if err := done(); err != nil {
		t.Fatalf("check %q: %v", args, err)
	}
	return &sc
}

// TestScaleFlagsRefuseBadInput: a wrong -scale-* flag is an error naming
// the flag and what is wrong with it.
func TestScaleFlagsRefuseBadInput(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-scale-curves", "pending,disks"}, `-scale-curves: unknown curve "disks"`},
		{[]string{"-scale-stores", "postgres"}, `-scale-stores: unknown store "postgres"`},
		{[]string{"-scale-pending", "1000,x"}, `-scale-pending: "x" is not a positive size`},
		{[]string{"-scale-queues", "0"}, `-scale-queues: "0" is not a positive size`},
		{[]string{"-scale-max", "10", "-scale-pending", "1000"}, `-scale-pending: no size of "1000" is at or below -scale-max 10`},
		{[]string{"-scale-jobs", "0"}, "-scale-jobs: 0 is not a positive number of jobs"},
		{[]string{"-scale-managers-jobs", "-1"}, "-scale-managers-jobs: -1 is not a positive number of jobs"},
		{[]string{"-scale-concurrency", "-1"}, "-scale-concurrency: -1 is not a positive concurrency"},
		{[]string{"-scale-probe-rate", "0"}, "-scale-probe-rate: 0 is not a positive rate"},
		{[]string{"-scale-idle-window", "0s"}, "-scale-idle-window and -scale-idle-warmup"},
	} {
		var sc scaleConfig
		fs := flag.NewFlagSet("compare", flag.ContinueOnError)
		done := scaleFlags(fs, &sc)
		if err := fs.Parse(c.args); err != nil {
			t.Fatalf("parse %q: %v", c.args, err)
		}
		err := done()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want one containing %q", c.args, err, c.want)
		}
	}
}

// TestParseSizesKeepsAtMostMax: -scale-max drops the larger sizes and the
// rest come back sorted without repeats.
func TestParseSizesKeepsAtMostMax(t *testing.T) {
	got, err := parseSizes("1000000,1_000,100000,1000", 100000)
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{1000, 100000}; !slices.Equal(got, want) {
		t.Errorf("parseSizes = %v, want %v", got, want)
	}
}

// TestChildReportsWhenItsLastJobStarted: a child Manager's counts carry the
// wall-clock time its latest backlog job started, which the managers curve
// takes as the end of a drain; it lies between the child's start and the
// moment its counts said every job ran. So does each of the starts it
// reports when it stops (the mid-drain rate's input), one per job.
func TestChildReportsWhenItsLastJobStarted(t *testing.T) {
	srv := testRedis(t)
	const jobs = 20
	backlog(t, srv, jobs)
	child, err := startChild(os.Args[0], childSpec{Store: "redis", URL: srv.url, Queues: 1, Conc: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer child.kill()
	start := time.Now()
	if err := child.send("go"); err != nil {
		t.Fatal(err)
	}
	if err := waitUntil(time.Minute, func() (bool, error) { return child.backlog.Load() >= jobs, nil }); err != nil {
		t.Fatalf("the child ran %d of %d jobs: %v", child.backlog.Load(), jobs, err)
	}
	seen := time.Now()
	if last := time.Unix(0, child.last.Load()); last.Before(start) || last.After(seen) {
		t.Errorf("the child's last job started at %v, not between its start %v and %v", last, start, seen)
	}
	starts, _, err := child.stop()
	if err != nil {
		t.Fatal(err)
	}
	if len(starts) != jobs {
		t.Errorf("the child reported %d starts of backlog jobs, want %d", len(starts), jobs)
	}
	for _, ns := range starts {
		if at := time.Unix(0, ns); at.Before(start) || at.After(seen) {
			t.Errorf("the child reported a job started at %v, not between its start %v and %v", at, start, seen)
		}
	}
}

// TestMidRateTakesTheMiddleHalf: the mid-drain rate counts the jobs
// between the first and third quartile of the starts over the time
// between them, whatever the order the starts come in; a slow start or
// tail does not move it.
func TestMidRateTakesTheMiddleHalf(t *testing.T) {
	ms := func(v ...int64) []int64 {
		for i := range v {
			v[i] *= int64(time.Millisecond)
		}
		return v
	}
	for _, tc := range []struct {
		name   string
		starts []int64
		want   float64
	}{
		{"steady", ms(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11), 6 / 0.006},
		{"slow start and tail", ms(-900, -800, -700, 3, 4, 5, 6, 7, 8, 9, 5000, 9000), 6 / 0.006},
		{"any order", ms(9, 5000, 3, -700, 8, 4, 9000, 6, -900, 5, 7, -800), 6 / 0.006},
		{"too few", ms(0, 1, 2), 0},
		{"no time between", ms(0, 1, 2, 5, 5, 5, 5, 5, 5, 5, 10, 11), 0},
	} {
		if got := midRate(tc.starts); math.Abs(got-tc.want) > 1e-6*tc.want {
			t.Errorf("%s: midRate = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestMeterCountsPerJobDrained: Redis's commands per job are the commands
// over the jobs the point drained, which meter is told, whatever
// -scale-jobs says (the managers curve drains -scale-managers-jobs).
func TestMeterCountsPerJobDrained(t *testing.T) {
	srv := testRedis(t)
	r := &scaleRun{sc: &scaleConfig{jobs: 20000}, srv: srv}
	ctx := context.Background()
	const jobs, perJob = 10, 5
	done, err := r.meter(ctx, "redis", jobs)
	if err != nil {
		t.Fatal(err)
	}
	for i := range jobs * perJob {
		if err := srv.client.Set(ctx, "k", i, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	var b busyResult
	if err := done(&b); err != nil {
		t.Fatal(err)
	}
	// Reading CPU and commandstats costs Redis commands too (INFO is left
	// out, CONFIG or the like may not be): allow one per job more.
	if b.cmds < perJob || b.cmds > perJob+1 {
		t.Errorf("meter says %.3f commands per job; %d commands over %d jobs were sent", b.cmds, jobs*perJob, jobs)
	}
}

// TestChildReportsItsCostsAndProfile: a child Manager's stats grow as it
// runs jobs (commands it sent, CPU, the context switches of its waits for
// Redis), and with AIBOS_SCALE_CHILD_CPUPROFILE set it leaves a CPU
// profile of its run, named by its pid, in that directory.
func TestChildReportsItsCostsAndProfile(t *testing.T) {
	srv := testRedis(t)
	const jobs = 200
	backlog(t, srv, jobs)
	dir := t.TempDir()
	t.Setenv(childProfileEnv, dir)
	child, err := startChild(os.Args[0], childSpec{Store: "redis", URL: srv.url, Queues: 1, Conc: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer child.kill()
	pid := child.cmd.Process.Pid
	st0, err := child.stats()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.send("go"); err != nil {
		t.Fatal(err)
	}
	if err := waitUntil(time.Minute, func() (bool, error) { return child.backlog.Load() >= jobs, nil }); err != nil {
		t.Fatalf("the child ran %d of %d jobs: %v", child.backlog.Load(), jobs, err)
	}
	st1, err := child.stats()
	if err != nil {
		t.Fatal(err)
	}
	if st1.sent <= st0.sent || st1.cpu <= st0.cpu || st1.vol <= st0.vol {
		t.Errorf("the child ran %d jobs, but its stats went from %+v to %+v: want more commands sent, CPU and voluntary context switches", jobs, st0, st1)
	}
	if _, _, err := child.stop(); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("child-%d.pprof", pid)))
	if err != nil {
		t.Fatalf("no CPU profile of child %d: %v", pid, err)
	}
	if len(raw) < 2 || raw[0] != 0x1f || raw[1] != 0x8b {
		t.Errorf("child %d's CPU profile is not a gzipped pprof profile (%d bytes)", pid, len(raw))
	}
}

// TestSettleFinishesRehashing: after settle, no big hash or sorted set of
// the store is still being rehashed, so the drain measured next does not
// pay for the fill's table growth (DEBUG HTSTATS-KEY tells).
func TestSettleFinishesRehashing(t *testing.T) {
	srv, err := startRedis(redisServerBin(t), "", "--enable-debug-command", "yes")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.stop)
	ctx := context.Background()
	// The table grows from 16,384 to 32,768 buckets at the 16,385th entry:
	// it has all of its old buckets to move.
	const entries = 16385
	fill := redis.NewScript(`
for i = 1, tonumber(ARGV[1]) do
  redis.call('HSET', KEYS[1], 'f' .. i, 'x')
  redis.call('ZADD', KEYS[2], i, 'm' .. i)
end
return 0`)
	keys := []string{"big-hash", "big-zset"}
	if err := fill.Run(ctx, srv.client, keys, entries).Err(); err != nil {
		t.Fatal(err)
	}
	rehashing := func(key string) bool {
		t.Helper()
		stats, err := srv.client.Do(ctx, "DEBUG", "HTSTATS-KEY", key).Text()
		if err != nil {
			t.Fatal(err)
		}
		return strings.Contains(stats, "rehashing target")
	}
	for _, k := range keys {
		if !rehashing(k) {
			t.Fatalf("%s is not being rehashed after the fill: the test shows nothing", k)
		}
	}
	if err := srv.settle(ctx, "big-*"); err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if rehashing(k) {
			t.Errorf("%s of %d entries is still being rehashed after settle", k, entries)
		}
	}
}

// TestAlternateTakesTurnsAndMedians: alternate measures each point once
// per run, the points in turn (so that a drift of the machine's speed
// reaches every point alike), and keeps each point's medians.
func TestAlternateTakesTurnsAndMedians(t *testing.T) {
	var order []int
	runs := map[int]int{}
	meds, err := alternate(2, 5, func(i int) (busyResult, error) {
		order = append(order, i)
		runs[i]++
		// Point 0: 50, 30, 10, 40, 20 jobs/s, median 30, neither the
		// first, middle nor last; point 1: ten times as many.
		v := float64([]int{50, 30, 10, 40, 20}[runs[i]-1] * (1 + 9*i))
		return busyResult{jobsS: v, p99: v / 10, cpuUs: v / 100}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{0, 1, 0, 1, 0, 1, 0, 1, 0, 1}; !slices.Equal(order, want) {
		t.Errorf("measured the points in the order %v, want %v", order, want)
	}
	for i, want := range []float64{30, 300} {
		if m := meds[i]; m.jobsS != want || m.p99 != want/10 || m.cpuUs != want/100 {
			t.Errorf("point %d: medians %+v, want %v jobs/s, p99 %v, cpu %v", i, m, want, want/10, want/100)
		}
	}
	if _, err := alternate(2, 3, func(i int) (busyResult, error) { return busyResult{}, fmt.Errorf("point %d failed", i) }); err == nil {
		t.Error("a failed measurement is not reported")
	}
}
