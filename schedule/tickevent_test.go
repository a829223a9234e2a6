package schedule_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/schedule"
)

// tickLog records OnTick events.
type tickLog struct {
	mu     sync.Mutex
	events []schedule.TickEvent
}

func (l *tickLog) add(e schedule.TickEvent) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, e)
}

func (l *tickLog) all() []schedule.TickEvent {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]schedule.TickEvent(nil), l.events...)
}

// TestOnTickCountsMissedAndLate: after ten ticks pass with no scheduler,
// the catch-up claim reports the nine that got no job of their own and
// how late it came; with CatchUpSkip the next on-time tick reports all
// ten.
func TestOnTickCountsMissedAndLate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		policy schedule.CatchUp
		wait   time.Duration // after the scheduler starts
		tick   time.Duration // the claimed tick, after t0
		missed int
		late   time.Duration
	}{
		{schedule.CatchUpOnce, 0, 10 * time.Minute, 9, 30 * time.Second},
		{schedule.CatchUpSkip, 31 * time.Second, 11 * time.Minute, 10, time.Second},
	} {
		t.Run(string(tc.policy), func(t *testing.T) {
			t.Parallel()
			var clk fakeClock
			t0 := time.Date(2025, 6, 1, 10, 0, 0, 0, time.UTC)
			clk.set(t0)
			b := openSQLite(t, clk.now)
			var log tickLog
			tr := &fakeTracer{}
			c := newCron(t, b, schedule.Config{PollInterval: 10 * time.Millisecond, OnTick: log.add, Tracer: tr})
			if _, err := c.Upsert(context.Background(), schedule.Entry{Name: "reports", Spec: "* * * * *", CatchUp: tc.policy,
				Job: schedule.JobTemplate{Queue: "q", Type: "report"}}); err != nil {
				t.Fatal(err)
			}
			clk.advance(10*time.Minute + 30*time.Second)
			runCron(t, c)
			clk.advance(tc.wait)
			waitFor(t, 5*time.Second, "a claimed tick", func() bool { return len(log.all()) > 0 })
			got := log.all()[0]
			want := schedule.TickEvent{Schedule: "reports", Tick: t0.Add(tc.tick), Status: broker.ClaimOK, Late: tc.late, Missed: tc.missed}
			if !got.Tick.Equal(want.Tick) || got.Schedule != want.Schedule || got.Status != want.Status ||
				got.Missed != want.Missed || got.Late != want.Late {
				t.Errorf("first tick event %+v, want %+v", got, want)
			}
			jobs := pendingJobs(t, b, "q")
			if len(jobs) != 1 || jobs[0].Headers["traceparent"] != tr.header("reports") {
				t.Errorf("jobs %v: want one whose traceparent is the tick span's %q", jobs, tr.header("reports"))
			}
			if e := tr.endedTicks(); len(e) == 0 || e[0] != "reports:ok" {
				t.Errorf("tick spans ended %v, want the first reports:ok", e)
			}
		})
	}
}

// fakeTracer stands in for package tracing's Tracer (which imports
// nothing of schedule's, so its own test covers the real spans): it
// records the ticks it was asked to trace and injects a header naming
// the schedule.
type fakeTracer struct {
	mu    sync.Mutex
	ended []string
}

type tickKey struct{}

func (f *fakeTracer) endedTicks() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.ended...)
}

func (f *fakeTracer) header(s string) string { return "span-of-" + s }

func (f *fakeTracer) StartTick(ctx context.Context, s string, _ time.Time) (context.Context, func(string, error)) {
	return context.WithValue(ctx, tickKey{}, s), func(status string, _ error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.ended = append(f.ended, s+":"+status)
	}
}

func (f *fakeTracer) Inject(ctx context.Context, h map[string]string) {
	if s, ok := ctx.Value(tickKey{}).(string); ok {
		h["traceparent"] = f.header(s)
	}
}
