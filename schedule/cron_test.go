package schedule_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/broker/redisbroker"
	"github.com/aibos/worker/broker/sqlitebroker"
	"github.com/aibos/worker/internal/redistest"
	"github.com/aibos/worker/schedule"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// fakeClock is an adjustable broker clock for the SQLite broker.
type fakeClock struct{ ms atomic.Int64 }

func (c *fakeClock) now() time.Time          { return time.UnixMilli(c.ms.Load()) }
func (c *fakeClock) set(t time.Time)         { c.ms.Store(t.UnixMilli()) }
func (c *fakeClock) advance(d time.Duration) { c.ms.Add(d.Milliseconds()) }

func openSQLite(t *testing.T, now func() time.Time) *sqlitebroker.Broker {
	t.Helper()
	b, err := sqlitebroker.Open(filepath.Join(t.TempDir(), "worker.db"), sqlitebroker.Config{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func newCron(t *testing.T, b broker.Broker, cfg schedule.Config) *schedule.Cron {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = quiet
	}
	c, err := schedule.New(b, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// runCron runs c until the test ends.
func runCron(t *testing.T, c *schedule.Cron) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = c.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func pendingJobs(t *testing.T, b broker.Broker, queue string) []*broker.Job {
	t.Helper()
	page, err := b.JobList(context.Background(), &broker.JobListParams{Queue: queue, State: broker.StatePending, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return page.Jobs
}

// TestEmbeddedSchedulersOneJobPerTick: four schedulers in one process share
// one SQLite broker and run ten @every 1s schedules for 62 s; one of them is
// stopped at 30 s and started again 3 s later. Every (schedule, tick) must
// have exactly one job.
func TestEmbeddedSchedulersOneJobPerTick(t *testing.T) {
	if testing.Short() {
		t.Skip("runs schedulers for a minute")
	}
	t.Parallel()
	b := openSQLite(t, nil)
	c := newCron(t, b, schedule.Config{})
	soakEntries(t, c)
	start := time.Now()
	var wg sync.WaitGroup
	run := func(ctx context.Context) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = newCron(t, b, schedule.Config{PollInterval: 200 * time.Millisecond}).Run(ctx)
		}()
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); wg.Wait() }()
	for range 3 {
		run(ctx)
	}
	stopped, stop := context.WithCancel(ctx)
	run(stopped)
	time.Sleep(30 * time.Second) // the soak itself: the schedulers run meanwhile
	stop()
	time.Sleep(3 * time.Second)
	run(ctx)
	time.Sleep(time.Until(start.Add(62 * time.Second)))
	stopAt := time.Now()
	cancel()
	wg.Wait()
	// Ticks are judged up to the last one every schedule had claimed when
	// the schedulers stopped (each claims its ticks in order), not up to
	// a margin before the stop: on a loaded machine a claim came more
	// than 2 s after its tick, and the ticks not yet claimed counted as
	// missed. The window must still reach well past the restart.
	to := claimedThrough(t, c)
	if to.Before(start.Add(40 * time.Second)) {
		t.Fatalf("by the stop (%v after the start) every schedule had claimed its ticks only up to %v after: too slow to decide", stopAt.Sub(start), to.Sub(start))
	}
	tc := countTicks(t, b, start.Add(time.Second).Truncate(time.Second), to)
	t.Logf("sqlite, 4 schedulers on one broker, %d schedules @every 1s, %v, one stopped for 3 s: %d jobs; judged %d (schedule, tick) pairs: duplicates %d, misses %d, catch-up jobs %d",
		soakSchedules, stopAt.Sub(start).Round(time.Second), tc.jobs, tc.ticks, tc.duplicates, tc.misses, tc.catchUps)
	if tc.duplicates != 0 || tc.misses != 0 {
		t.Fatalf("duplicates %d, misses %d; missed %v", tc.duplicates, tc.misses, tc.missed[:min(10, len(tc.missed))])
	}
}

// TestCatchUpOnce: after all schedulers were down for ten ticks, one job
// stands for them all, never a burst.
func TestCatchUpOnce(t *testing.T) {
	t.Parallel()
	var clk fakeClock
	t0 := time.Date(2025, 6, 1, 10, 0, 0, 0, time.UTC)
	clk.set(t0)
	b := openSQLite(t, clk.now)
	c := newCron(t, b, schedule.Config{PollInterval: 10 * time.Millisecond})
	ctx := context.Background()
	if _, err := c.Upsert(ctx, schedule.Entry{Name: "reports", Spec: "* * * * *", Job: schedule.JobTemplate{Queue: "cu", Type: "report"}}); err != nil {
		t.Fatal(err)
	}
	clk.advance(10*time.Minute + 30*time.Second) // ticks 10:01 … 10:10 pass with no scheduler
	runCron(t, c)
	waitFor(t, 5*time.Second, "the catch-up job", func() bool { return len(pendingJobs(t, b, "cu")) > 0 })
	newest := t0.Add(10 * time.Minute)
	waitFor(t, 5*time.Second, "the last tick to be recorded", func() bool {
		s, err := c.Get(ctx, "reports")
		return err == nil && s.LastTick.Equal(newest)
	})
	jobs := pendingJobs(t, b, "cu")
	if len(jobs) != 1 || jobs[0].ID != schedule.TickJobID("reports", newest) || jobs[0].Headers["schedule-missed"] != "10" {
		t.Fatalf("after 10 missed ticks: %d jobs %v; want one job for %v with schedule-missed=10", len(jobs), jobs, newest)
	}
}

// TestCatchUpSkip: missed ticks are dropped; the next tick runs.
func TestCatchUpSkip(t *testing.T) {
	t.Parallel()
	var clk fakeClock
	t0 := time.Date(2025, 6, 1, 10, 0, 0, 0, time.UTC)
	clk.set(t0)
	b := openSQLite(t, clk.now)
	c := newCron(t, b, schedule.Config{PollInterval: 10 * time.Millisecond})
	ctx := context.Background()
	if _, err := c.Upsert(ctx, schedule.Entry{Name: "skipper", Spec: "* * * * *", CatchUp: schedule.CatchUpSkip,
		Job: schedule.JobTemplate{Queue: "skip", Type: "report"}}); err != nil {
		t.Fatal(err)
	}
	clk.advance(10*time.Minute + 30*time.Second)
	runCron(t, c)
	clk.advance(31 * time.Second) // 10:11:01: the 10:11 tick is due and on time
	want := t0.Add(11 * time.Minute)
	waitFor(t, 5*time.Second, "the 10:11 job", func() bool { return len(pendingJobs(t, b, "skip")) > 0 })
	jobs := pendingJobs(t, b, "skip")
	if len(jobs) != 1 || jobs[0].ID != schedule.TickJobID("skipper", want) {
		t.Fatalf("jobs %v; want only the job of %v: the missed ticks are skipped", jobs, want)
	}
}

// TestCronAPI: upsert, list with next fire times, pause, resume, trigger and
// remove, on both brokers.
func TestCronAPI(t *testing.T) {
	t.Parallel()
	brokers := map[string]func(t *testing.T) broker.Broker{
		"sqlite": func(t *testing.T) broker.Broker { return openSQLite(t, nil) },
		"redis": func(t *testing.T) broker.Broker {
			b, err := redisbroker.New(redistest.Client(t), redisbroker.Config{Prefix: redistest.Prefix(t)})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = b.Close() })
			return b
		},
	}
	for name, open := range brokers {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := open(t)
			c := newCron(t, b, schedule.Config{PollInterval: 20 * time.Millisecond})
			ctx := context.Background()
			in, err := c.Upsert(ctx, schedule.Entry{Name: "daily-reports", Spec: "0 2 * * *", TimeZone: "America/New_York",
				Job: schedule.JobTemplate{Queue: "reports", Type: "report.daily", TenantID: "t1"}})
			if err != nil {
				t.Fatal(err)
			}
			if len(in.Next) != 5 || in.Next[0].Hour() != 2 || in.Next[0].Location().String() != "America/New_York" {
				t.Fatalf("next fire times %v; want five at 02:00 New York time", in.Next)
			}
			_, err = c.Upsert(ctx, schedule.Entry{Name: "bad", Spec: "0 0 30 2 *", Job: schedule.JobTemplate{Queue: "q", Type: "t"}})
			var se *schedule.SpecError
			if !errors.As(err, &se) || se.Field != "day-of-month" {
				t.Fatalf("upsert of Feb 30: %v; want a SpecError on day-of-month", err)
			}
			if _, err := c.Upsert(ctx, schedule.Entry{Name: "ticker", Spec: "@every 1s", Job: schedule.JobTemplate{Queue: "ticks", Type: "tick"}}); err != nil {
				t.Fatal(err)
			}
			list, err := c.List(ctx, 3)
			if err != nil || len(list) != 2 || list[0].Name != "daily-reports" || len(list[1].Next) != 3 {
				t.Fatalf("List: %v, %v", list, err)
			}
			if err := c.Pause(ctx, "ticker"); err != nil {
				t.Fatal(err)
			}
			runCron(t, c)
			j, err := c.Trigger(ctx, "ticker")
			if err != nil || j.Headers["schedule-trigger"] != "manual" {
				t.Fatalf("Trigger: %v, %v", j, err)
			}
			if err := c.Resume(ctx, "ticker"); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 5*time.Second, "a tick after resume", func() bool { return len(pendingJobs(t, b, "ticks")) >= 2 })
			if err := c.Remove(ctx, "ticker"); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Get(ctx, "ticker"); !errors.Is(err, broker.ErrScheduleNotFound) {
				t.Fatalf("Get after Remove: %v; want ErrScheduleNotFound", err)
			}
		})
	}
}

// TestOneTime: schedule by name idempotently, reschedule, list, cancel.
func TestOneTime(t *testing.T) {
	t.Parallel()
	b := openSQLite(t, nil)
	o, err := schedule.NewOneTime(b)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	at := time.Now().Add(24 * time.Hour)
	job := schedule.JobTemplate{Queue: "reminders", Type: "invoice.reminder", TenantID: "t1"}
	j1, err := o.Schedule(ctx, "inv-1-reminder", at, job)
	if err != nil || j1.State != broker.StateScheduled {
		t.Fatalf("Schedule: %v, %v", j1, err)
	}
	j2, err := o.Schedule(ctx, "inv-1-reminder", at.Add(time.Hour), job)
	if err != nil || !j2.RunAt.Equal(j1.RunAt) {
		t.Fatalf("second Schedule of the same name: %v, %v; want the first job unchanged", j2, err)
	}
	if _, err := o.Schedule(ctx, "inv-2-reminder", at, job); err != nil {
		t.Fatal(err)
	}
	r, err := o.Reschedule(ctx, "reminders", "inv-1-reminder", time.Now().Add(-time.Second))
	if err != nil || r.State != broker.StatePending {
		t.Fatalf("Reschedule to the past: %v, %v; want pending at once", r, err)
	}
	list, err := o.List(ctx, "reminders")
	if err != nil || len(list) != 2 {
		t.Fatalf("List: %d jobs, %v; want 2", len(list), err)
	}
	if _, err := o.Cancel(ctx, "reminders", "inv-2-reminder"); err != nil {
		t.Fatal(err)
	}
	if _, err := o.Reschedule(ctx, "reminders", "inv-2-reminder", at); !errors.Is(err, broker.ErrWrongState) {
		t.Fatalf("Reschedule of a cancelled job: %v; want ErrWrongState", err)
	}
}
