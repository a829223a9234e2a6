package series_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/aibos/worker"
	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/internal/series"
	"github.com/aibos/worker/internal/testbroker"
)

func event(kind worker.EventKind, queue string, at time.Time, d time.Duration) worker.Event {
	return worker.Event{Kind: kind, Job: &worker.Job{Queue: queue, ID: "j"}, Time: at, Duration: d}
}

func TestQuantile(t *testing.T) {
	rep := func(ms int64, n int) []int64 {
		out := make([]int64, n)
		for i := range out {
			out[i] = ms
		}
		return out
	}
	for _, c := range []struct {
		ms       []int64
		p50, p95 int64
	}{
		{nil, 0, 0},
		{[]int64{1, 2, 3}, 5, 5},
		{append(rep(7, 19), 4000), 10, 10},
		{append(rep(1, 18), 900, 900), 5, 1000},
		{append(rep(30, 10), rep(70, 10)...), 50, 100},
		{[]int64{400000}, -1, -1},
	} {
		var l series.Latency
		for _, ms := range c.ms {
			l.Add(time.Duration(ms) * time.Millisecond)
		}
		if p50, p95 := l.Quantile(0.5), l.Quantile(0.95); p50 != c.p50 || p95 != c.p95 {
			t.Errorf("%v: p50 %d, p95 %d; want %d, %d", c.ms, p50, p95, c.p50, c.p95)
		}
	}
}

// TestConcurrentFlushesMerge has three recorders (three processes) record
// known counts into the same minutes and flush at the same time, many
// rounds: every count must arrive exactly once.
func TestConcurrentFlushesMerge(t *testing.T) {
	testbroker.Each(t, func(t *testing.T, b broker.Broker) {
		ctx := context.Background()
		const recorders, rounds, perRound = 3, 8, 5
		base := time.Now().Truncate(time.Minute).Add(-10 * time.Minute)
		minutes := []time.Time{base, base.Add(time.Minute)}
		var wg sync.WaitGroup
		errs := make(chan error, recorders*rounds)
		for range recorders {
			r, err := series.NewRecorder(b, series.Config{})
			if err != nil {
				t.Fatal(err)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range rounds {
					for i := range perRound {
						for _, m := range minutes {
							at := m.Add(time.Duration(i) * time.Second)
							r.Observe(event(worker.EventCompleted, "q", at, 20*time.Millisecond))
							r.Observe(event(worker.EventRetrying, "q", at, 3*time.Millisecond))
							r.Observe(event(worker.EventDead, "q", at, 2*time.Second))
							r.Observe(event(worker.EventStarted, "q", at, 0))
						}
					}
					errs <- r.Flush(ctx)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		got, err := series.Read(ctx, b, series.ReadParams{Queue: "q", From: base, To: base.Add(time.Minute)})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 {
			t.Fatalf("read %d minutes, want 2", len(got))
		}
		const n = recorders * rounds * perRound
		for i, m := range got {
			if !m.Start.Equal(minutes[i]) {
				t.Errorf("minute %d starts at %v, want %v", i, m.Start, minutes[i])
			}
			want := fmt.Sprintf("completed %d failed %d dead %d latency count %d sum %d", n, 2*n, n, 3*n, n*(20+3+2000))
			have := fmt.Sprintf("completed %d failed %d dead %d latency count %d sum %d", m.Completed, m.Failed, m.Dead, m.Latency.Count, m.Latency.SumMs)
			if have != want {
				t.Errorf("minute %v: %s; want %s", m.Start, have, want)
			}
			if len(m.Started) != 1 || m.Started[""] != n {
				t.Errorf("minute %v: starts %v, want %d of no tenant", m.Start, m.Started, n)
			}
			if m.Latency.Buckets[0] != n || m.Latency.Buckets[2] != n || m.Latency.Buckets[8] != n {
				t.Errorf("minute %v: buckets %v, want %d in the 5ms, 25ms and 2500ms buckets", m.Start, m.Latency.Buckets, n)
			}
		}
	})
}

func TestReadRangeAndRetention(t *testing.T) {
	testbroker.Each(t, func(t *testing.T, b broker.Broker) {
		ctx := context.Background()
		now := time.Now().Truncate(time.Minute)
		r, err := series.NewRecorder(b, series.Config{Retention: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		for _, ago := range []time.Duration{3 * time.Hour, 30 * time.Minute, 20 * time.Minute, 10 * time.Minute} {
			r.Observe(event(worker.EventCompleted, "q", now.Add(-ago), time.Millisecond))
			r.Observe(event(worker.EventCompleted, "other", now.Add(-ago), time.Millisecond))
		}
		// The first flush stores the 3h-old minute, the second prunes it.
		for range 2 {
			if err := r.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			r.Observe(event(worker.EventCompleted, "q", now, time.Millisecond))
		}
		all, err := series.Read(ctx, b, series.ReadParams{Queue: "q", From: now.Add(-24 * time.Hour), To: now})
		if err != nil {
			t.Fatal(err)
		}
		var starts []string
		for _, m := range all {
			starts = append(starts, now.Sub(m.Start).String())
		}
		if fmt.Sprint(starts) != "[30m0s 20m0s 10m0s 0s]" {
			t.Fatalf("stored minutes (age): %v; want 30m, 20m, 10m and now, the 3h one pruned", starts)
		}
		some, err := series.Read(ctx, b, series.ReadParams{Queue: "q", From: now.Add(-25 * time.Minute), To: now.Add(-10 * time.Minute)})
		if err != nil {
			t.Fatal(err)
		}
		if len(some) != 2 || some[0].Completed != 1 {
			t.Fatalf("range 25m..10m ago: %d minutes, want 2 with one completion each", len(some))
		}
		if _, err := series.Read(ctx, b, series.ReadParams{Queue: "q", From: now, To: now.Add(-time.Minute)}); err == nil {
			t.Fatal("Read accepted from after to")
		}
	})
}

// TestRunFlushesAtStop checks that a stopping recorder stores what it holds.
func TestRunFlushesAtStop(t *testing.T) {
	b := testbroker.SQLite(t)
	r, err := series.NewRecorder(b, series.Config{FlushInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	now := time.Now()
	r.Observe(event(worker.EventCompleted, "q", now, time.Millisecond))
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	got, err := series.Read(context.Background(), b, series.ReadParams{Queue: "q", From: now, To: now})
	if err != nil || len(got) != 1 || got[0].Completed != 1 {
		t.Fatalf("after Run stopped: %v, %v; want one minute with one completion", got, err)
	}
}

// TestFailedFlushKeepsCounts checks that counts a flush could not store are
// stored by the next one.
func TestFailedFlushKeepsCounts(t *testing.T) {
	testbroker.Each(t, func(t *testing.T, b broker.Broker) {
		r, err := series.NewRecorder(b, series.Config{})
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		r.Observe(event(worker.EventCompleted, "q", now, time.Millisecond))
		cancelled, cancel := context.WithCancel(context.Background())
		cancel()
		if err := r.Flush(cancelled); err == nil {
			t.Fatal("a flush with a cancelled context succeeded; the test cannot tell whether counts are kept")
		}
		r.Observe(event(worker.EventCompleted, "q", now, time.Millisecond))
		if err := r.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
		got, err := series.Read(context.Background(), b, series.ReadParams{Queue: "q", From: now, To: now})
		if err != nil || len(got) != 1 || got[0].Completed != 2 {
			t.Fatalf("after a failed and a good flush: %v, %v; want one minute with 2 completions", got, err)
		}
	})
}

// TestSweepPrunesIdleQueues: a queue nobody records into any more loses its
// old minutes to another recorder's sweep.
func TestSweepPrunesIdleQueues(t *testing.T) {
	testbroker.Each(t, func(t *testing.T, b broker.Broker) {
		ctx := context.Background()
		now := time.Now().Truncate(time.Minute)
		keeper, err := series.NewRecorder(b, series.Config{}) // 24h: keeps the 3h-old minute
		if err != nil {
			t.Fatal(err)
		}
		keeper.Observe(event(worker.EventCompleted, "idle", now.Add(-3*time.Hour), time.Millisecond))
		keeper.Observe(event(worker.EventCompleted, "idle", now.Add(-time.Minute), time.Millisecond))
		if err := keeper.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if got, err := series.Read(ctx, b, series.ReadParams{Queue: "idle", From: now.Add(-4 * time.Hour), To: now}); err != nil || len(got) != 2 {
			t.Fatalf("before the sweep: %d minutes, %v; want 2", len(got), err)
		}
		sweeper, err := series.NewRecorder(b, series.Config{Retention: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		sweeper.Observe(event(worker.EventCompleted, "busy", now, time.Millisecond))
		if err := sweeper.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		got, err := series.Read(ctx, b, series.ReadParams{Queue: "idle", From: now.Add(-4 * time.Hour), To: now})
		if err != nil || len(got) != 1 || !got[0].Start.Equal(now.Add(-time.Minute)) {
			t.Fatalf("after another recorder's sweep: %v, %v; want only the minute a minute ago", got, err)
		}
	})
}

// TestStartRates: starts recorded per tenant over the last minutes come
// back as jobs per second over the window widened to whole minutes; starts
// before the window do not count.
func TestStartRates(t *testing.T) {
	testbroker.Each(t, func(t *testing.T, b broker.Broker) {
		ctx := context.Background()
		now := time.Now().Truncate(time.Minute).Add(30 * time.Second)
		r, err := series.NewRecorder(b, series.Config{})
		if err != nil {
			t.Fatal(err)
		}
		start := func(tenant string, at time.Time, n int) {
			for range n {
				r.Observe(worker.Event{Kind: worker.EventStarted, Job: &worker.Job{Queue: "q", ID: "j", TenantID: tenant}, Time: at})
			}
		}
		start("acme", now.Add(-90*time.Second), 60) // in the window's first minute
		start("acme", now.Add(-10*time.Second), 30)
		start("globex", now.Add(-20*time.Second), 15)
		start("", now.Add(-5*time.Second), 3)
		start("acme", now.Add(-10*time.Minute), 1000) // before the window
		if err := r.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		got, err := series.StartRates(ctx, b, "q", 2*time.Minute, now)
		if err != nil {
			t.Fatal(err)
		}
		// The window [now-2m, now] widens to 150s at its start.
		want := map[string]float64{"acme": 90.0 / 150, "globex": 15.0 / 150, "": 3.0 / 150}
		if len(got) != len(want) {
			t.Fatalf("rates %v, want %v", got, want)
		}
		for tenant, w := range want {
			if d := got[tenant] - w; d > 1e-9 || d < -1e-9 {
				t.Errorf("rate of %q: %v, want %v", tenant, got[tenant], w)
			}
		}
		if _, err := series.StartRates(ctx, b, "q", time.Second, now); err == nil {
			t.Error("a window under a minute was accepted")
		}
	})
}
