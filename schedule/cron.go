package schedule

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/internal/schedstore"
)

// CatchUp is a schedule's policy for ticks missed while no scheduler ran.
type CatchUp string

// The catch-up policies. A tick is missed when it is more than
// Config.Grace old by the time a scheduler sees it; ticks within Grace are
// merely late and each runs.
const (
	// CatchUpOnce runs one job for all missed ticks within the catch-up
	// window: the job of the newest missed tick, with the header
	// "schedule-missed" counting the ticks it stands for. Older ticks are
	// dropped. The default.
	CatchUpOnce CatchUp = "once"
	// CatchUpSkip drops missed ticks.
	CatchUpSkip CatchUp = "skip"
)

// DefaultCatchUpWindow is how far back CatchUpOnce looks unless a schedule
// sets its own window.
const DefaultCatchUpWindow = 24 * time.Hour

// JobTemplate is the job each tick enqueues.
type JobTemplate struct {
	Queue       string            // required
	Type        string            // required
	Data        json.RawMessage   // JSON payload
	Priority    int               //
	MaxAttempts int               // defaults to 3
	TenantID    string            //
	CompanyID   string            //
	Headers     map[string]string //
	// UniqueKey, when set, makes a tick enqueue nothing while the previous
	// tick's job is unfinished (no overlapping runs).
	UniqueKey string
	Timeout   time.Duration
	TTL       time.Duration
}

// Entry is a named recurring schedule.
type Entry struct {
	Name     string // letters, digits and "._-:"
	Spec     string // see Spec
	TimeZone string // IANA name; "" means UTC
	Job      JobTemplate
	// CatchUp defaults to CatchUpOnce.
	CatchUp CatchUp
	// CatchUpWindow bounds CatchUpOnce. Defaults to DefaultCatchUpWindow.
	CatchUpWindow time.Duration
	// ManagedBy and ConfigFile mark a schedule declared in a configuration
	// file (see Reconcile); leave them empty otherwise.
	ManagedBy  string
	ConfigFile string
}

// Info is a stored schedule with its coming fire times.
type Info struct {
	broker.Schedule
	// Next lists the coming fire times (after the last claimed tick and now).
	Next []time.Time
}

// Config configures a Cron. The zero value works.
type Config struct {
	// PollInterval is how often Run re-reads the schedules when no tick is
	// due sooner. Defaults to 1s.
	PollInterval time.Duration
	// MinInterval rejects specs firing more often. Defaults to 1s.
	MinInterval time.Duration
	// Grace is how late a tick may be and still count as on time rather than
	// missed. Defaults to 10s.
	Grace time.Duration
	// Logger receives scheduler errors. Defaults to slog.Default().
	Logger *slog.Logger
	// OnTick, when set, is told of every tick this scheduler claimed (e.g.
	// metrics.CronMetrics.Observe). It must be fast and safe for concurrent
	// use. Defaults to none.
	OnTick func(TickEvent)
	// Tracer, when set, runs each claim in a span whose context the tick's
	// job carries (package tracing's Tracer). Defaults to none.
	Tracer TickTracer
	// Encryption, when set, seals the job template of each schedule whose
	// queue or type it applies to, and the data of each tick's job
	// (worker.Encryption). Give it the keys the Managers hold. Defaults to
	// none.
	Encryption Sealer
	// Now is the local clock. Ticks are claimed on the broker's clock, which
	// the scheduler estimates from its own, so a local clock that is off
	// moves nothing; tests set one to show it. Defaults to time.Now.
	Now func() time.Time
}

// Cron manages recurring schedules stored in a broker and, in Run, enqueues
// their ticks: the seed's CronScheduler. Any number of Cron values, in any
// number of processes, may Run on one broker: each tick is claimed
// atomically by (schedule, tick time), so exactly one job is enqueued per
// tick. A restarted scheduler carries on from the stored state. Cron is
// safe for concurrent use.
type Cron struct {
	b     broker.Broker
	store *schedstore.Store
	cfg   Config

	mu    sync.Mutex
	specs map[string]*Spec // parsed specs by spec + "\x00" + zone
	skew  time.Duration    // broker clock minus local clock, last seen
}

// New returns a Cron on b, which must implement broker.Committer (both
// brokers of this module do).
func New(b broker.Broker, cfg Config) (*Cron, error) {
	if b == nil {
		return nil, errors.New("worker: new cron: broker is nil")
	}
	store, err := schedstore.New(b)
	if err != nil {
		return nil, fmt.Errorf("worker: new cron: %w", err)
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = time.Second
	}
	if cfg.MinInterval <= 0 {
		cfg.MinInterval = DefaultMinInterval
	}
	if cfg.Grace <= 0 {
		cfg.Grace = 10 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Cron{b: b, store: store, cfg: cfg, specs: map[string]*Spec{}}, nil
}

// parse returns the parsed spec of a schedule, cached.
func (c *Cron) parse(spec, tz string) (*Spec, error) {
	key := spec + "\x00" + tz
	c.mu.Lock()
	sp, ok := c.specs[key]
	c.mu.Unlock()
	if ok {
		return sp, nil
	}
	sp, err := Parse(spec, tz, ParseOptions{MinInterval: c.cfg.MinInterval})
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.specs[key] = sp
	c.mu.Unlock()
	return sp, nil
}

// Upsert validates and stores a schedule, replacing one of the same name.
// A changed spec, zone or queue takes effect from now: no tick before the
// change runs. Errors: a *SpecError for a bad spec or zone, an
// *broker.InvalidError for a bad name or job template.
func (c *Cron) Upsert(ctx context.Context, e Entry) (*Info, error) {
	return c.UpsertIf(ctx, e, nil)
}

// UpsertIf is Upsert with a guard: check, when not nil, is called with the
// stored schedule (nil if there is none) right before the write, which is
// a compare-and-set on what check saw; an error it returns is returned as
// is and nothing is written. The admin API refuses this way to overwrite a
// schedule managed by config or belonging to another tenant.
func (c *Cron) UpsertIf(ctx context.Context, e Entry, check func(cur *broker.Schedule) error) (*Info, error) {
	sp, err := c.parse(e.Spec, e.TimeZone)
	if err != nil {
		return nil, fmt.Errorf("worker: upsert schedule %q: %w", e.Name, err)
	}
	switch e.CatchUp {
	case "":
		e.CatchUp = CatchUpOnce
	case CatchUpOnce, CatchUpSkip:
	default:
		return nil, fmt.Errorf("worker: upsert schedule %q: catch-up policy %q: want %q or %q", e.Name, e.CatchUp, CatchUpOnce, CatchUpSkip)
	}
	if e.CatchUpWindow < 0 {
		return nil, fmt.Errorf("worker: upsert schedule %q: catch-up window %v is negative", e.Name, e.CatchUpWindow)
	}
	if e.CatchUpWindow == 0 {
		e.CatchUpWindow = DefaultCatchUpWindow
	}
	if e.Job.MaxAttempts == 0 {
		e.Job.MaxAttempts = 3
	}
	j := e.Job
	tmpl, err := sealTemplate(c.cfg.Encryption, e.Name, broker.JobInsertParams{Queue: j.Queue, Type: j.Type, Data: j.Data, Priority: j.Priority, MaxAttempts: j.MaxAttempts,
		TenantID: j.TenantID, CompanyID: j.CompanyID, Headers: j.Headers, UniqueKey: j.UniqueKey, Timeout: j.Timeout, TTL: j.TTL})
	if err != nil {
		return nil, fmt.Errorf("worker: upsert schedule %q: %w", e.Name, err)
	}
	s, err := c.store.ScheduleWrite(ctx, &broker.Schedule{Name: e.Name, Spec: sp.String(), TimeZone: e.TimeZone,
		CatchUp: string(e.CatchUp), CatchUpWindow: e.CatchUpWindow, ManagedBy: e.ManagedBy, ConfigFile: e.ConfigFile,
		Job: tmpl}, check)
	if err != nil {
		return nil, fmt.Errorf("worker: upsert schedule %q: %w", e.Name, err)
	}
	return c.info(s, 5), nil
}

// info adds the next n fire times to a stored schedule.
func (c *Cron) info(s *broker.Schedule, n int) *Info {
	in := &Info{Schedule: *s}
	// Callers see the template as it was given; one that does not open
	// (a key removed) is shown sealed, as Client.Get shows such a job.
	if tmpl, err := openTemplate(c.cfg.Encryption, s.Name, s.Job); err == nil {
		in.Job = tmpl
	}
	if sp, err := c.parse(s.Spec, s.TimeZone); err == nil {
		from := c.brokerNow()
		if s.LastTick.After(from) {
			from = s.LastTick
		}
		if s.Since.After(from) {
			from = s.Since
		}
		in.Next = sp.NextN(from, n)
	}
	return in
}

// Get returns one schedule with its next five fire times.
// broker.ErrScheduleNotFound if absent.
func (c *Cron) Get(ctx context.Context, name string) (*Info, error) {
	s, err := c.store.ScheduleGet(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("worker: get schedule %q: %w", name, err)
	}
	return c.info(s, 5), nil
}

// List returns every schedule, sorted by name, each with its next n fire
// times.
func (c *Cron) List(ctx context.Context, n int) ([]*Info, error) {
	l, err := c.store.ScheduleList(ctx)
	if err != nil {
		return nil, fmt.Errorf("worker: list schedules: %w", err)
	}
	c.observe(l.Now)
	out := make([]*Info, len(l.Schedules))
	for i, s := range l.Schedules {
		out[i] = c.info(s, n)
	}
	return out, nil
}

// Remove deletes a schedule. Jobs it enqueued stay.
// broker.ErrScheduleNotFound if absent.
func (c *Cron) Remove(ctx context.Context, name string) error {
	if err := c.store.ScheduleDelete(ctx, name); err != nil {
		return fmt.Errorf("worker: remove schedule %q: %w", name, err)
	}
	return nil
}

// Pause stops a schedule's ticks until Resume. Ticks that fall while paused
// are skipped, not caught up.
func (c *Cron) Pause(ctx context.Context, name string) error {
	if err := c.store.SchedulePause(ctx, name, true); err != nil {
		return fmt.Errorf("worker: pause schedule %q: %w", name, err)
	}
	return nil
}

// Resume restarts a paused schedule from its next tick.
func (c *Cron) Resume(ctx context.Context, name string) error {
	if err := c.store.SchedulePause(ctx, name, false); err != nil {
		return fmt.Errorf("worker: resume schedule %q: %w", name, err)
	}
	return nil
}

// Trigger enqueues the schedule's job now, outside its ticks (id
// "cron:<name>:manual:<uuid>"), paused or not.
func (c *Cron) Trigger(ctx context.Context, name string) (*broker.Job, error) {
	return c.TriggerIf(ctx, name, nil)
}

// withHeaders returns h plus extra, without changing h.
func withHeaders(h, extra map[string]string) map[string]string {
	out := make(map[string]string, len(h)+len(extra))
	for k, v := range h {
		out[k] = v
	}
	for k, v := range extra {
		out[k] = v
	}
	return out
}

// TickJobID is the deterministic id of a schedule's job for one tick.
func TickJobID(name string, tick time.Time) string {
	return "cron:" + name + ":" + strconv.FormatInt(tick.Unix(), 10)
}

// observe records the broker clock read at about local now.
func (c *Cron) observe(brokerNow time.Time) {
	if brokerNow.IsZero() {
		return
	}
	c.mu.Lock()
	c.skew = brokerNow.Sub(c.cfg.Now())
	c.mu.Unlock()
}

// brokerNow estimates the broker's clock.
func (c *Cron) brokerNow() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cfg.Now().Add(c.skew)
}
