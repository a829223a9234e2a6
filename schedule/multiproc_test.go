package schedule_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/broker/redisbroker"
	"github.com/aibos/worker/internal/redistest"
	"github.com/aibos/worker/schedule"
)

// The multi-process test re-executes the test binary as a scheduler.
const (
	childEnv       = "SCHEDULE_TEST_CHILD"
	childURLEnv    = "SCHEDULE_TEST_REDIS_URL"
	childPrefixEnv = "SCHEDULE_TEST_PREFIX"
	soakSchedules  = 10
	soakQueue      = "soak"
)

// schedulerChild runs a Cron scheduler on Redis until it is killed or gets
// SIGTERM.
func schedulerChild() {
	b, err := redisbroker.Open(os.Getenv(childURLEnv), redisbroker.Config{Prefix: os.Getenv(childPrefixEnv)})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child: open broker:", err)
		os.Exit(2)
	}
	defer b.Close()
	c, err := schedule.New(b, schedule.Config{PollInterval: 200 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	_ = c.Run(ctx)
}

func startScheduler(t *testing.T, url, prefix string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=1", childURLEnv+"="+url, childPrefixEnv+"="+prefix)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start scheduler process: %v", err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	return cmd
}

// soakEntries upserts the ten @every 1s schedules of the soak tests.
func soakEntries(t *testing.T, c *schedule.Cron) {
	t.Helper()
	for i := range soakSchedules {
		_, err := c.Upsert(context.Background(), schedule.Entry{Name: fmt.Sprintf("soak-%02d", i), Spec: "@every 1s", TimeZone: "Europe/Berlin",
			Job: schedule.JobTemplate{Queue: soakQueue, Type: "soak.tick"}})
		if err != nil {
			t.Fatalf("upsert schedule: %v", err)
		}
	}
}

// claimedThrough returns the last tick every soak schedule has claimed.
func claimedThrough(t *testing.T, c *schedule.Cron) time.Time {
	t.Helper()
	var to time.Time
	for i := range soakSchedules {
		s, err := c.Get(context.Background(), fmt.Sprintf("soak-%02d", i))
		if err != nil {
			t.Fatalf("get schedule soak-%02d: %v", i, err)
		}
		if i == 0 || s.LastTick.Before(to) {
			to = s.LastTick
		}
	}
	return to
}

// tickCount is what countTicks found.
type tickCount struct {
	jobs, ticks, duplicates, misses, catchUps int
	missed                                    []string
}

// countTicks lists every job of the soak queue and counts them per
// (schedule, tick) against the ticks that fell in [from, to].
func countTicks(t *testing.T, b broker.Broker, from, to time.Time) tickCount {
	t.Helper()
	var jobs []*broker.Job
	for offset := 0; offset >= 0; {
		page, err := b.JobList(context.Background(), &broker.JobListParams{Queue: soakQueue, State: broker.StatePending, Offset: offset, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		jobs = append(jobs, page.Jobs...)
		offset = page.NextOffset
	}
	var tc tickCount
	tc.jobs = len(jobs)
	seen := map[string]int{}
	for _, j := range jobs {
		name, tick := j.Headers["schedule"], j.Headers["schedule-tick"]
		if name == "" || tick == "" {
			t.Fatalf("job %s lacks the schedule headers: %v", j.ID, j.Headers)
		}
		if j.Headers["schedule-missed"] != "" {
			tc.catchUps++
		}
		seen[name+"@"+tick]++
		tt, _ := time.Parse(time.RFC3339, tick)
		if !j.RunAt.Equal(tt) {
			t.Errorf("job %s: RunAt %v, want its tick %v", j.ID, j.RunAt, tt)
		}
		if j.ID != schedule.TickJobID(name, tt) {
			t.Errorf("job id %s, want %s", j.ID, schedule.TickJobID(name, tt))
		}
	}
	for _, n := range seen {
		if n > 1 {
			tc.duplicates += n - 1
		}
	}
	for i := range soakSchedules {
		name := fmt.Sprintf("soak-%02d", i)
		for s := from.Unix(); s <= to.Unix(); s++ {
			key := name + "@" + time.Unix(s, 0).UTC().Format(time.RFC3339)
			tc.ticks++
			if seen[key] == 0 {
				tc.misses++
				tc.missed = append(tc.missed, key)
			}
		}
	}
	sort.Strings(tc.missed)
	return tc
}

// TestMultiProcessRedisOneJobPerTick: three scheduler processes run the
// same ten @every 1s schedules on one Redis for 62 s; one is killed with
// SIGKILL at 30 s and restarted 3 s later. Every (schedule, tick) must have
// exactly one job.
func TestMultiProcessRedisOneJobPerTick(t *testing.T) {
	if testing.Short() {
		t.Skip("runs scheduler processes for a minute")
	}
	t.Parallel()
	url, prefix := redistest.URL(t), redistest.Prefix(t)
	b, err := redisbroker.Open(url, redisbroker.Config{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	c, err := schedule.New(b, schedule.Config{})
	if err != nil {
		t.Fatal(err)
	}
	soakEntries(t, c)
	start := time.Now()
	procs := []*exec.Cmd{startScheduler(t, url, prefix), startScheduler(t, url, prefix), startScheduler(t, url, prefix)}
	time.Sleep(30 * time.Second) // the soak itself: the schedulers run meanwhile
	if err := procs[0].Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = procs[0].Wait()
	killedAt := time.Now()
	time.Sleep(3 * time.Second)
	procs[0] = startScheduler(t, url, prefix)
	time.Sleep(time.Until(start.Add(62 * time.Second)))
	stopAt := time.Now()
	for _, p := range procs {
		_ = p.Process.Signal(syscall.SIGTERM)
		_ = p.Wait()
	}
	// Judge the ticks from 2 s after the start (the children need a moment
	// to boot) to 2 s before the stop.
	tc := countTicks(t, b, start.Add(2*time.Second).Truncate(time.Second), stopAt.Add(-2*time.Second))
	t.Logf("redis, 3 processes, %d schedules @every 1s, %v, one SIGKILLed at %v and restarted 3 s later: %d jobs; judged %d (schedule, tick) pairs: duplicates %d, misses %d, catch-up jobs %d",
		soakSchedules, stopAt.Sub(start).Round(time.Second), killedAt.Sub(start).Round(time.Second), tc.jobs, tc.ticks, tc.duplicates, tc.misses, tc.catchUps)
	if tc.duplicates != 0 || tc.misses != 0 {
		t.Fatalf("duplicates %d, misses %d; first misses: %s", tc.duplicates, tc.misses, strings.Join(tc.missed[:min(10, len(tc.missed))], ", "))
	}
	if tc.ticks < soakSchedules*55 {
		t.Fatalf("only %d ticks judged; the soak was too short to prove anything", tc.ticks)
	}
}
