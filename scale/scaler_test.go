package scale_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/scale"
)

// fakeTarget is a Target whose load the test sets.
type fakeTarget struct {
	mu          sync.Mutex
	busy, limit int
}

func (f *fakeTarget) Busy() int        { f.mu.Lock(); defer f.mu.Unlock(); return f.busy }
func (f *fakeTarget) Concurrency() int { f.mu.Lock(); defer f.mu.Unlock(); return f.limit }
func (f *fakeTarget) SetConcurrency(n int) error {
	if n < 1 {
		return fmt.Errorf("concurrency %d is below 1", n)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.limit = n
	return nil
}
func (f *fakeTarget) set(busy, limit int) { f.mu.Lock(); f.busy, f.limit = busy, limit; f.mu.Unlock() }

// fakeStats is a StatsReader serving set statistics.
type fakeStats struct {
	mu    sync.Mutex
	stats map[string]broker.QueueStats
	err   error
}

func (f *fakeStats) QueueStats(_ context.Context, p *broker.QueueStatsParams) (*broker.QueueStats, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	st := f.stats[p.Queue]
	st.Queue = p.Queue
	return &st, nil
}

func (f *fakeStats) set(queue string, st broker.QueueStats) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stats == nil {
		f.stats = map[string]broker.QueueStats{}
	}
	f.stats[queue] = st
}

// clock is a settable clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) advance(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

// bundle is a Scaler on a fake target, stats and clock, with its metrics
// in a registry of their own.
type bundle struct {
	t      *testing.T
	s      *scale.Scaler
	target *fakeTarget
	stats  *fakeStats
	clock  *clock
	reg    *prometheus.Registry
}

func setup(t *testing.T, busy, limit int, cfg scale.Config) *bundle {
	t.Helper()
	bu := &bundle{t: t, target: &fakeTarget{busy: busy, limit: limit}, stats: &fakeStats{},
		clock: &clock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}, reg: prometheus.NewRegistry()}
	cfg.Now, cfg.Registerer, cfg.Logger = bu.clock.Now, bu.reg, slog.New(slog.DiscardHandler)
	if cfg.Stats == nil {
		cfg.Stats, cfg.Queues = bu.stats, []string{"invoices", "reports"}
	}
	s, err := scale.New(bu.target, cfg)
	if err != nil {
		t.Fatal(err)
	}
	bu.s = s
	return bu
}

// eval evaluates once and checks the decision's direction, reason and
// resulting concurrency.
func (bu *bundle) eval(dir scale.Direction, reason string, to int) scale.Decision {
	bu.t.Helper()
	d, err := bu.s.Evaluate(context.Background())
	if err != nil {
		bu.t.Fatalf("Evaluate: %v", err)
	}
	if d.Direction != dir || d.Reason != reason || d.To != to || bu.target.Concurrency() != to {
		bu.t.Fatalf("decision %+v, target at %d; want %s (%s) to %d", d, bu.target.Concurrency(), dir, reason, to)
	}
	return d
}

// gauge returns a gauge's value from the registry.
func (bu *bundle) gauge(name string) float64 {
	bu.t.Helper()
	mfs, err := bu.reg.Gather()
	if err != nil {
		bu.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	bu.t.Fatalf("metric %s not registered", name)
	return 0
}

// counter returns decisions_total for one direction and reason.
func (bu *bundle) counter(dir scale.Direction, reason string) float64 {
	bu.t.Helper()
	mfs, err := bu.reg.Gather()
	if err != nil {
		bu.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "aibos_worker_scaler_decisions_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["direction"] == string(dir) && labels["reason"] == reason {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// TestScalesUpUnderLoad: a fully busy target grows ×1.5 a step, one step
// per scale-up cooldown, up to MaxWorkers, where it stays.
func TestScalesUpUnderLoad(t *testing.T) {
	bu := setup(t, 1, 1, scale.Config{})
	bu.eval(scale.Up, scale.ReasonUtilization, 2)
	bu.target.set(2, 2)
	bu.clock.advance(5*time.Minute - time.Second)
	if d := bu.eval(scale.None, scale.ReasonCooldown, 2); d.Desired != 3 {
		t.Fatalf("desired %d during the cooldown, want 3", d.Desired)
	}
	if got := bu.gauge("aibos_worker_scaler_desired_concurrency"); got != 3 {
		t.Fatalf("desired_workers gauge %v during the cooldown, want 3", got)
	}
	for _, want := range []int{3, 5, 8, 10} {
		bu.clock.advance(5 * time.Minute)
		bu.eval(scale.Up, scale.ReasonUtilization, want)
		bu.target.set(want, want)
	}
	bu.clock.advance(time.Hour)
	bu.eval(scale.None, scale.ReasonAtMax, 10)
	if got := bu.counter(scale.Up, scale.ReasonUtilization); got != 5 {
		t.Fatalf("decisions_total{up,utilization} = %v, want 5", got)
	}
	if got := bu.gauge("aibos_worker_scaler_current_concurrency"); got != 10 {
		t.Fatalf("current_workers gauge %v, want 10", got)
	}
}

// TestLatencyScalesUp: a half-busy target scales up when the oldest
// pending job of a watched queue has waited past LatencyThreshold, and not
// before; a paused queue's jobs do not count.
func TestLatencyScalesUp(t *testing.T) {
	bu := setup(t, 2, 4, scale.Config{LatencyThreshold: time.Minute})
	now := bu.clock.Now()
	bu.stats.set("reports", broker.QueueStats{Pending: 7, OldestPendingAt: now.Add(-time.Minute)})
	bu.stats.set("invoices", broker.QueueStats{Pending: 50, OldestPendingAt: now.Add(-time.Hour), Paused: true})
	if d := bu.eval(scale.None, scale.ReasonSteady, 4); d.Pending != 7 || d.OldestPending != time.Minute {
		t.Fatalf("decision %+v, want 7 pending, oldest 1m (paused queue left out)", d)
	}
	bu.clock.advance(time.Second)
	bu.eval(scale.Up, scale.ReasonLatency, 6)
}

// TestScalesDownWhenIdle: an idle target with nothing pending shrinks
// ×0.75 a step, one step per scale-down cooldown, to MinWorkers; pending
// jobs, or statistics that cannot be read, keep it from shrinking.
func TestScalesDownWhenIdle(t *testing.T) {
	bu := setup(t, 0, 10, scale.Config{})
	bu.stats.set("invoices", broker.QueueStats{Pending: 1, OldestPendingAt: bu.clock.Now()})
	bu.eval(scale.None, scale.ReasonSteady, 10)
	bu.stats.set("invoices", broker.QueueStats{})
	bu.stats.err = errors.New("broker down")
	bu.eval(scale.None, scale.ReasonStatsError, 10)
	bu.stats.err = nil

	bu.eval(scale.Down, scale.ReasonIdle, 7)
	bu.clock.advance(10*time.Minute - time.Second)
	bu.eval(scale.None, scale.ReasonCooldown, 7)
	for _, want := range []int{5, 3, 2, 1} {
		bu.clock.advance(10 * time.Minute)
		bu.eval(scale.Down, scale.ReasonIdle, want)
	}
	bu.clock.advance(time.Hour)
	bu.eval(scale.None, scale.ReasonAtMin, 1)
	if got := bu.counter(scale.Down, scale.ReasonIdle); got != 5 {
		t.Fatalf("decisions_total{down,idle} = %v, want 5", got)
	}
}

// TestCooldownsFollowAnyChange: after a scale-up, a scale-down waits its
// own cooldown counted from that change, and ScaleTo starts the cooldowns
// too.
func TestCooldownsFollowAnyChange(t *testing.T) {
	bu := setup(t, 4, 4, scale.Config{ScaleUpCooldown: time.Minute, ScaleDownCooldown: 3 * time.Minute})
	bu.eval(scale.Up, scale.ReasonUtilization, 6)
	bu.target.set(0, 6)
	bu.clock.advance(2 * time.Minute)
	bu.eval(scale.None, scale.ReasonCooldown, 6)
	bu.clock.advance(time.Minute)
	bu.eval(scale.Down, scale.ReasonIdle, 4)

	bu.clock.advance(time.Hour)
	if _, err := bu.s.ScaleTo(2); err != nil {
		t.Fatal(err)
	}
	bu.target.set(2, 2)
	bu.clock.advance(30 * time.Second)
	bu.eval(scale.None, scale.ReasonCooldown, 2)
	bu.clock.advance(30 * time.Second)
	bu.eval(scale.Up, scale.ReasonUtilization, 3)
	if got := bu.counter(scale.Down, scale.ReasonManual); got != 1 {
		t.Fatalf("decisions_total{down,manual} = %v, want 1", got)
	}
}

// TestBounds: ScaleTo refuses counts outside the bounds and changes
// nothing then; a target moved outside the bounds by someone else is
// brought back at the next evaluation, cooldown or not, and at Start.
func TestBounds(t *testing.T) {
	bu := setup(t, 0, 3, scale.Config{MinWorkers: 2, MaxWorkers: 6})
	for _, n := range []int{1, 7, 0, -1} {
		_, err := bu.s.ScaleTo(n)
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("scale to %d workers: outside [2, 6]", n)) {
			t.Errorf("ScaleTo(%d) = %v, want an error naming the bounds [2, 6]", n, err)
		}
	}
	if got := bu.target.Concurrency(); got != 3 {
		t.Fatalf("target at %d after refused ScaleTo calls, want 3", got)
	}
	if d, err := bu.s.ScaleTo(6); err != nil || d.Direction != scale.Up || d.To != 6 {
		t.Fatalf("ScaleTo(6) = %+v, %v", d, err)
	}
	bu.target.set(0, 20)
	bu.eval(scale.Down, scale.ReasonBounds, 6)
	bu.target.set(0, 1)
	bu.eval(scale.Up, scale.ReasonBounds, 2)

	bu.target.set(0, 9)
	if err := bu.s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer bu.s.Stop()
	if got := bu.target.Concurrency(); got != 6 {
		t.Fatalf("target at %d after Start, want it brought down to MaxWorkers 6", got)
	}
	if err := bu.s.Start(context.Background()); err == nil {
		t.Fatal("second Start succeeded")
	}
}

func TestConfigErrors(t *testing.T) {
	target := &fakeTarget{limit: 1}
	if _, err := scale.New(nil, scale.Config{}); err == nil || !strings.Contains(err.Error(), "target is nil") {
		t.Errorf("New(nil) = %v", err)
	}
	for _, c := range []struct {
		cfg  scale.Config
		want string
	}{
		{scale.Config{MinWorkers: -1}, "min workers -1 is below 1"},
		{scale.Config{MinWorkers: 5, MaxWorkers: 3}, "max workers 3 is below min workers 5"},
		{scale.Config{ScaleUpThreshold: 1.5}, "scale-up threshold 1.5 is outside (0, 1]"},
		{scale.Config{ScaleUpThreshold: 0.5, ScaleDownThreshold: 0.6}, "scale-down threshold 0.6 is outside [0, scale-up threshold 0.5)"},
		{scale.Config{Interval: -time.Second}, "interval -1s is negative"},
		{scale.Config{Stats: &fakeStats{}}, "queues to watch are required"},
		{scale.Config{Stats: &fakeStats{}, Queues: []string{""}}, "queue"},
	} {
		if _, err := scale.New(target, c.cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("New(%+v) = %v, want an error saying %q", c.cfg, err, c.want)
		}
	}
	reg := prometheus.NewRegistry()
	if _, err := scale.New(target, scale.Config{Registerer: reg}); err != nil {
		t.Fatal(err)
	}
	if _, err := scale.New(target, scale.Config{Registerer: reg}); err == nil || !strings.Contains(err.Error(), "register metrics") {
		t.Errorf("second Scaler on one registry: %v, want a register error", err)
	}
	s, err := scale.New(target, scale.Config{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.Config()
	if cfg.MinWorkers != 1 || cfg.MaxWorkers != 10 || cfg.ScaleUpThreshold != 0.8 || cfg.ScaleDownThreshold != 0.2 ||
		cfg.ScaleUpCooldown != 5*time.Minute || cfg.ScaleDownCooldown != 10*time.Minute || cfg.Interval != 15*time.Second {
		t.Fatalf("defaults %+v, want the seed's", cfg)
	}
	s.Stop() // never started: a no-op
}
