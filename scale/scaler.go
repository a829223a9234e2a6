package scale

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/broker"
)

// Target is what a Scaler scales: a *worker.Manager in real use. Its
// methods must be safe for concurrent use.
type Target interface {
	// Busy returns how many jobs run now.
	Busy() int
	// Concurrency returns how many jobs may run at once.
	Concurrency() int
	// SetConcurrency changes how many jobs may run at once without
	// disturbing the running ones; it returns an error if n is not allowed.
	SetConcurrency(n int) error
}

// StatsReader reads queue statistics; every broker.Broker is one. Its
// method must be safe for concurrent use and honour ctx.
type StatsReader interface {
	QueueStats(ctx context.Context, p *broker.QueueStatsParams) (*broker.QueueStats, error)
}

// Config configures a Scaler. The zero value works with the seed's
// defaults; without Stats only utilisation is watched.
type Config struct {
	// MinWorkers and MaxWorkers bound the concurrency the Scaler sets.
	// Default to 1 and 10 (the seed's minWorkers and maxWorkers).
	MinWorkers, MaxWorkers int
	// ScaleUpThreshold is the utilisation (busy ÷ concurrency) at or above
	// which the Scaler scales up; ScaleDownThreshold the one at or below
	// which it scales down. Default to 0.8 and 0.2 (the seed's).
	ScaleUpThreshold, ScaleDownThreshold float64
	// ScaleUpCooldown is the least time from the last change of the
	// concurrency, in either direction and by ScaleTo too, to a scale-up;
	// ScaleDownCooldown the same for a scale-down. Measuring both from
	// any change keeps the Scaler from undoing its last step before the
	// step could show its effect. Default to 5m and 10m (the seed's);
	// negative means none.
	ScaleUpCooldown, ScaleDownCooldown time.Duration
	// Interval is how often Start's loop evaluates the signals. Defaults
	// to 15s.
	Interval time.Duration
	// Stats, when set, is read for the latency signal and the backlog:
	// QueueStats of every queue in Queues (paused queues are left out).
	// Without it the Scaler watches utilisation alone and counts no
	// backlog.
	Stats StatsReader
	// Queues to watch. Defaults to the target's queues when it is a
	// *worker.Manager; required with Stats otherwise.
	Queues []string
	// LatencyThreshold scales up when the oldest pending job of the
	// watched queues has waited longer than this. Defaults to 30s;
	// negative turns the latency signal off.
	LatencyThreshold time.Duration
	// Registerer, when set, receives the Scaler's metrics:
	//
	//	<ns>_scaler_desired_concurrency               the concurrency the last evaluation wanted, within bounds
	//	<ns>_scaler_current_concurrency               the target's concurrency, read at scrape time
	//	<ns>_scaler_decisions_total{direction,reason} evaluations and ScaleTo calls by outcome
	Registerer prometheus.Registerer
	// Namespace prefixes the metric names. Defaults to "aibos_worker".
	Namespace string
	// Logger receives one line per change of the concurrency (Info) and
	// per change held back by a bound or cooldown (Debug). Defaults to
	// slog.Default().
	Logger *slog.Logger
	// Now is the clock. Defaults to time.Now.
	Now func() time.Time
}

// Direction says which way a Decision moved the concurrency.
type Direction string

// The directions.
const (
	Up   Direction = "up"
	Down Direction = "down"
	None Direction = "none"
)

// The reasons a Decision gives.
const (
	ReasonUtilization = "utilization" // utilisation at or over ScaleUpThreshold
	ReasonLatency     = "latency"     // the oldest pending job waited over LatencyThreshold
	ReasonIdle        = "idle"        // utilisation at or under ScaleDownThreshold, nothing pending
	ReasonManual      = "manual"      // ScaleTo
	ReasonBounds      = "bounds"      // the concurrency was outside [MinWorkers, MaxWorkers]
	ReasonSteady      = "steady"      // between the thresholds, or idle with jobs pending
	ReasonCooldown    = "cooldown"    // a change was wanted but its cooldown runs
	ReasonAtMax       = "max_workers" // more were wanted but MaxWorkers is reached
	ReasonAtMin       = "min_workers" // fewer were wanted but MinWorkers is reached
	ReasonStatsError  = "stats_error" // idle, but the backlog could not be read
)

// Decision is the outcome of one evaluation or ScaleTo.
type Decision struct {
	Time      time.Time
	Direction Direction
	Reason    string
	// From and To are the concurrency before and after; equal when
	// Direction is None.
	From, To int
	// Desired is the concurrency the signals ask for, within bounds; it
	// differs from To while a cooldown holds the change back.
	Desired int
	// Utilization is busy ÷ concurrency; Busy the running jobs.
	Utilization float64
	Busy        int
	// Pending counts the watched queues' pending jobs and OldestPending
	// is how long the oldest of them has waited (zero without Stats).
	Pending       int64
	OldestPending time.Duration
}

// Scaler scales a Target's concurrency: the seed's WorkerScaler. Its
// methods are safe for concurrent use.
type Scaler struct {
	target Target
	cfg    Config
	log    *slog.Logger

	desired   prometheus.Gauge
	current   prometheus.GaugeFunc
	decisions *prometheus.CounterVec

	mu         sync.Mutex // serialises decisions
	lastChange time.Time  // zero: no change yet, no cooldown runs

	runMu   sync.Mutex
	started bool
	cancel  context.CancelFunc
	done    chan struct{}
}

// New returns a Scaler of target, not yet started. It fails on a nil
// target, a config out of range or metrics that cannot be registered.
func New(target Target, cfg Config) (*Scaler, error) {
	if target == nil {
		return nil, errors.New("scale: new scaler: target is nil")
	}
	if err := cfg.withDefaults(target); err != nil {
		return nil, fmt.Errorf("scale: new scaler: %w", err)
	}
	s := &Scaler{target: target, cfg: cfg, log: cfg.Logger.With("component", "scaler")}
	ns := cfg.Namespace
	s.desired = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "scaler_desired_concurrency",
		Help: "Concurrency the scaler's last evaluation asked for, within its bounds."})
	s.current = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Name: "scaler_current_concurrency",
		Help: "Concurrency of the scaled worker now."}, func() float64 { return float64(target.Concurrency()) })
	s.decisions = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "scaler_decisions_total",
		Help: "Scaler evaluations and ScaleTo calls by direction and reason."}, []string{"direction", "reason"})
	s.desired.Set(float64(target.Concurrency()))
	if cfg.Registerer != nil {
		for _, c := range []prometheus.Collector{s.desired, s.current, s.decisions} {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("scale: new scaler: register metrics: %w", err)
			}
		}
	}
	return s, nil
}

func (c *Config) withDefaults(target Target) error {
	if c.MinWorkers == 0 {
		c.MinWorkers = 1
	}
	if c.MaxWorkers == 0 {
		c.MaxWorkers = 10
	}
	if c.ScaleUpThreshold == 0 {
		c.ScaleUpThreshold = 0.8
	}
	if c.ScaleDownThreshold == 0 {
		c.ScaleDownThreshold = 0.2
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.ScaleUpCooldown, 5*time.Minute)
	def(&c.ScaleDownCooldown, 10*time.Minute)
	def(&c.Interval, 15*time.Second)
	def(&c.LatencyThreshold, 30*time.Second)
	if c.Namespace == "" {
		c.Namespace = "aibos_worker"
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	switch {
	case c.MinWorkers < 1:
		return fmt.Errorf("min workers %d is below 1", c.MinWorkers)
	case c.MaxWorkers < c.MinWorkers:
		return fmt.Errorf("max workers %d is below min workers %d", c.MaxWorkers, c.MinWorkers)
	case !(c.ScaleUpThreshold > 0 && c.ScaleUpThreshold <= 1):
		return fmt.Errorf("scale-up threshold %v is outside (0, 1]", c.ScaleUpThreshold)
	case !(c.ScaleDownThreshold >= 0 && c.ScaleDownThreshold < c.ScaleUpThreshold):
		return fmt.Errorf("scale-down threshold %v is outside [0, scale-up threshold %v)", c.ScaleDownThreshold, c.ScaleUpThreshold)
	case c.Interval < 0:
		return fmt.Errorf("interval %v is negative", c.Interval)
	}
	if c.Stats == nil {
		return nil
	}
	if len(c.Queues) == 0 {
		m, ok := target.(*worker.Manager)
		if !ok {
			return errors.New("queues to watch are required when the target is not a *worker.Manager")
		}
		for _, q := range m.Config().Queues {
			c.Queues = append(c.Queues, q.Name)
		}
	}
	for _, q := range c.Queues {
		if err := broker.ValidateQueueName(q); err != nil {
			return err
		}
	}
	return nil
}

// Config returns the Scaler's configuration with defaults filled in.
func (s *Scaler) Config() Config { return s.cfg }

// Start brings the target's concurrency within [MinWorkers, MaxWorkers]
// at once, then evaluates the signals every Interval in the background
// until ctx is done or Stop. It returns an error if the Scaler was started
// before or the target refuses the bounded concurrency.
func (s *Scaler) Start(ctx context.Context) error {
	s.runMu.Lock()
	defer s.runMu.Unlock()
	if s.started {
		return errors.New("scale: start scaler: already started")
	}
	if _, err := s.bound(); err != nil {
		return fmt.Errorf("scale: start scaler: %w", err)
	}
	s.started = true
	ctx, s.cancel = context.WithCancel(ctx)
	s.done = make(chan struct{})
	go s.loop(ctx)
	return nil
}

func (s *Scaler) loop(ctx context.Context) {
	defer close(s.done)
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		evalCtx, cancel := context.WithTimeout(ctx, s.cfg.Interval)
		if _, err := s.Evaluate(evalCtx); err != nil && ctx.Err() == nil {
			s.log.Error("evaluate scaling", "err", err)
		}
		cancel()
	}
}

// Stop stops Start's loop and waits for it to return. The target keeps
// its concurrency. Stop is idempotent and works on a Scaler never started.
func (s *Scaler) Stop() {
	s.runMu.Lock()
	defer s.runMu.Unlock()
	if s.cancel == nil {
		return
	}
	s.cancel()
	<-s.done
	s.cancel = nil
}

// Close is Stop, for an io.Closer; it returns nil.
func (s *Scaler) Close() error {
	s.Stop()
	return nil
}

// ScaleTo sets the target's concurrency to n now, whatever the signals
// and cooldowns say: the seed's scaleTo. The cooldowns then run from now,
// so the Scaler leaves n in place at least that long. It returns an error
// if n is outside [MinWorkers, MaxWorkers] or the target refuses it.
func (s *Scaler) ScaleTo(n int) (Decision, error) {
	if n < s.cfg.MinWorkers || n > s.cfg.MaxWorkers {
		return Decision{}, fmt.Errorf("scale: scale to %d workers: outside [%d, %d] (MinWorkers, MaxWorkers)", n, s.cfg.MinWorkers, s.cfg.MaxWorkers)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.observe(signals{})
	d.Desired, d.Reason = n, ReasonManual
	if err := s.apply(&d, n); err != nil {
		return d, fmt.Errorf("scale: scale to %d workers: %w", n, err)
	}
	return d, nil
}

// bound brings the target's concurrency within bounds.
func (s *Scaler) bound() (Decision, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.observe(signals{})
	n := min(max(d.From, s.cfg.MinWorkers), s.cfg.MaxWorkers)
	d.Desired, d.Reason = n, ReasonBounds
	if n == d.From {
		d.Reason = ReasonSteady
	}
	return d, s.apply(&d, n)
}

// signals is what the Scaler reads from the broker.
type signals struct {
	pending int64
	oldest  time.Duration
}

// Evaluate reads the signals, decides and applies the decision now; Start's
// loop calls it every Interval. A concurrency outside [MinWorkers,
// MaxWorkers] (set by someone else) is brought back at once, cooldown or
// not; otherwise a step up or down waits for its cooldown. It returns the
// decision, and an error if the target refused the change. A failed read
// of the queue statistics is logged and only keeps the Scaler from scaling
// down: the backlog is unknown.
func (s *Scaler) Evaluate(ctx context.Context) (Decision, error) {
	sig, statsErr := s.readStats(ctx)
	if statsErr != nil {
		s.log.Warn("read queue statistics for scaling", "err", statsErr)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.observe(sig)
	cfg := &s.cfg
	cur := d.From
	want, reason := cur, ReasonSteady
	switch {
	case cur < cfg.MinWorkers || cur > cfg.MaxWorkers:
		want, reason = min(max(cur, cfg.MinWorkers), cfg.MaxWorkers), ReasonBounds
	case d.Utilization >= cfg.ScaleUpThreshold:
		want, reason = stepUp(cur, cfg.MaxWorkers), ReasonUtilization
	case cfg.Stats != nil && cfg.LatencyThreshold > 0 && sig.oldest > cfg.LatencyThreshold:
		want, reason = stepUp(cur, cfg.MaxWorkers), ReasonLatency
	case d.Utilization <= cfg.ScaleDownThreshold && statsErr != nil:
		reason = ReasonStatsError
	case d.Utilization <= cfg.ScaleDownThreshold && sig.pending == 0:
		want, reason = stepDown(cur, cfg.MinWorkers), ReasonIdle
	}
	d.Desired, d.Reason = want, reason
	switch {
	case reason == ReasonBounds:
	case want == cur && (reason == ReasonUtilization || reason == ReasonLatency):
		d.Reason = ReasonAtMax
	case want == cur && reason == ReasonIdle:
		d.Reason = ReasonAtMin
	case want > cur && s.cooling(cfg.ScaleUpCooldown, d.Time), want < cur && s.cooling(cfg.ScaleDownCooldown, d.Time):
		d.Reason = ReasonCooldown
		want = cur
	}
	return d, s.apply(&d, want)
}

// stepUp is the next concurrency up: ×1.5, at least +1, at most max.
// Multiplying reaches a large need in few steps (1→2→3→5→8→10 for the
// default bounds), which matters with a 5-minute cooldown between steps: +1
// would take 45 minutes to go from 1 to 10 under a backlog.
func stepUp(cur, hi int) int {
	return min(max(cur+1, int(math.Ceil(float64(cur)*1.5))), hi)
}

// stepDown is the next concurrency down: ×0.75, at least −1, at least min.
// It steps down more gently than up (10→7→5→3→2→1): a step down too far
// costs latency until the next scale-up's cooldown ends.
func stepDown(cur, lo int) int {
	return max(min(cur-1, int(math.Floor(float64(cur)*0.75))), lo)
}

// cooling reports whether a cooldown from the last change runs at now.
func (s *Scaler) cooling(cooldown time.Duration, now time.Time) bool {
	return cooldown > 0 && !s.lastChange.IsZero() && now.Before(s.lastChange.Add(cooldown))
}

// observe starts a decision from the target's state; s.mu is held.
func (s *Scaler) observe(sig signals) Decision {
	cur, busy := s.target.Concurrency(), s.target.Busy()
	d := Decision{Time: s.cfg.Now(), Direction: None, From: cur, To: cur, Busy: busy,
		Pending: sig.pending, OldestPending: sig.oldest}
	if cur > 0 {
		d.Utilization = float64(busy) / float64(cur)
	}
	return d
}

// apply sets the target's concurrency to n when it differs, and records,
// logs and counts the decision; s.mu is held.
func (s *Scaler) apply(d *Decision, n int) error {
	if n != d.From {
		if err := s.target.SetConcurrency(n); err != nil {
			return fmt.Errorf("set concurrency %d: %w", n, err)
		}
		d.To, d.Direction, s.lastChange = n, Up, d.Time
		if n < d.From {
			d.Direction = Down
		}
	}
	s.desired.Set(float64(d.Desired))
	s.decisions.WithLabelValues(string(d.Direction), d.Reason).Inc()
	attrs := []any{"from", d.From, "to", d.To, "desired", d.Desired, "reason", d.Reason,
		"utilization", math.Round(d.Utilization*100) / 100, "busy", d.Busy,
		"pending", d.Pending, "oldest_pending", d.OldestPending}
	switch {
	case d.Direction != None:
		s.log.Info("scaled workers", attrs...)
	case d.Desired != d.From:
		s.log.Debug("scaling held back", attrs...)
	}
	return nil
}

// readStats sums the pending jobs of the watched, unpaused queues and
// finds how long the oldest has waited.
func (s *Scaler) readStats(ctx context.Context) (signals, error) {
	var sig signals
	if s.cfg.Stats == nil {
		return sig, nil
	}
	now := s.cfg.Now()
	for _, q := range s.cfg.Queues {
		st, err := s.cfg.Stats.QueueStats(ctx, &broker.QueueStatsParams{Queue: q})
		if err != nil {
			return sig, fmt.Errorf("read stats of queue %q: %w", q, err)
		}
		if st.Paused || st.Pending == 0 {
			continue
		}
		sig.pending += st.Pending
		if !st.OldestPendingAt.IsZero() {
			sig.oldest = max(sig.oldest, now.Sub(st.OldestPendingAt))
		}
	}
	return sig, nil
}
