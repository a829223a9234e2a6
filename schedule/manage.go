package schedule

import (
	"context"
	"fmt"

	"github.com/google/uuid"

	"github.com/aibos/worker/broker"
)

// Scope limits a call to the schedules whose job belongs to one tenant.
// The zero Scope sees every schedule. A schedule of the seed's tenant "all"
// is in the scope of the tenant literally named "all" only: "all" is never
// a wildcard.
type Scope struct {
	Tenant string
	Scoped bool // false: every tenant
}

// TenantScope returns the Scope of tenant.
func TenantScope(tenant string) Scope { return Scope{Tenant: tenant, Scoped: true} }

// Check returns an error wrapping broker.ErrScheduleNotFound when cur is
// nil or outside the scope, so that a schedule of another tenant looks
// absent; nil otherwise.
func (sc Scope) Check(cur *broker.Schedule) error {
	if cur == nil || (sc.Scoped && cur.Job.TenantID != sc.Tenant) {
		return fmt.Errorf("schedule: %w", broker.ErrScheduleNotFound)
	}
	return nil
}

// ListScoped returns the schedules of the scope, sorted by name, each with
// its next n fire times. A scoped list reads the tenant's own index.
func (c *Cron) ListScoped(ctx context.Context, sc Scope, n int) ([]*Info, error) {
	if !sc.Scoped {
		return c.List(ctx, n)
	}
	l, err := c.store.ScheduleListTenant(ctx, sc.Tenant)
	if err != nil {
		return nil, fmt.Errorf("worker: list schedules of tenant %q: %w", sc.Tenant, err)
	}
	c.observe(l.Now)
	out := make([]*Info, len(l.Schedules))
	for i, s := range l.Schedules {
		out[i] = c.info(s, n)
	}
	return out, nil
}

// GetScoped returns one schedule of the scope with its next n fire times.
// broker.ErrScheduleNotFound if absent or outside the scope.
func (c *Cron) GetScoped(ctx context.Context, sc Scope, name string, n int) (*Info, error) {
	s, err := c.store.ScheduleGet(ctx, name)
	if err == nil {
		err = sc.Check(s)
	}
	if err != nil {
		return nil, fmt.Errorf("worker: get schedule %q: %w", name, err)
	}
	return c.info(s, n), nil
}

// RemoveIf is Remove with a guard called with the stored schedule right
// before the compare-and-set delete; an error it returns is returned as is
// and nothing is removed.
func (c *Cron) RemoveIf(ctx context.Context, name string, check func(cur *broker.Schedule) error) error {
	if err := c.store.ScheduleDeleteIf(ctx, name, check); err != nil {
		return fmt.Errorf("worker: remove schedule %q: %w", name, err)
	}
	return nil
}

// SetPausedIf pauses (paused true) or resumes a schedule as Pause and
// Resume do, with a guard called with the stored schedule before it is
// changed; an error it returns is returned as is and nothing changes.
func (c *Cron) SetPausedIf(ctx context.Context, name string, paused bool, check func(cur *broker.Schedule) error) (*Info, error) {
	what := "resume"
	if paused {
		what = "pause"
	}
	if err := c.store.SchedulePauseIf(ctx, name, paused, check); err != nil {
		return nil, fmt.Errorf("worker: %s schedule %q: %w", what, name, err)
	}
	s, err := c.store.ScheduleGet(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("worker: %s schedule %q: %w", what, name, err)
	}
	return c.info(s, 5), nil
}

// TriggerIf is Trigger with a guard called with the stored schedule before
// its job is enqueued; the job is enqueued from the very schedule check
// approved.
func (c *Cron) TriggerIf(ctx context.Context, name string, check func(cur *broker.Schedule) error) (*broker.Job, error) {
	s, err := c.store.ScheduleGet(ctx, name)
	if err == nil && check != nil {
		err = check(s)
	}
	if err != nil {
		return nil, fmt.Errorf("worker: trigger schedule %q: %w", name, err)
	}
	p, err := c.jobOf(s, "cron:"+name+":manual:"+uuid.Must(uuid.NewV7()).String())
	if err != nil {
		return nil, fmt.Errorf("worker: trigger schedule %q: %w", name, err)
	}
	p.Headers = withHeaders(p.Headers, map[string]string{"schedule": name, "schedule-trigger": "manual"})
	j, err := c.b.JobInsert(ctx, &p)
	if err != nil {
		return nil, fmt.Errorf("worker: trigger schedule %q: %w", name, err)
	}
	return j, nil
}

// ReconcileResult reports what Reconcile did.
type ReconcileResult struct {
	// Upserted names the schedules the configuration declares.
	Upserted []string
	// Released names schedules an earlier start declared from the same file
	// that it no longer declares: they are kept, no longer managed by
	// config, so the admin API may change or delete them.
	Released []string
}

// Reconcile makes the stored schedules agree with the ones a
// configuration file declares: each entry is stored as managed by config
// (ManagedBy "config", ConfigFile file), replacing a schedule of the same
// name whoever made it (the file wins), and a schedule an earlier start
// stored from the same file but no longer declared is released, not
// removed (other processes of a fleet may still run the old file; an
// operator deletes it through the API). Schedules made through the API or
// in code, and those of other files, are left alone. Call it at start,
// before Run.
func (c *Cron) Reconcile(ctx context.Context, file string, entries []Entry) (*ReconcileResult, error) {
	res := &ReconcileResult{}
	declared := map[string]bool{}
	for _, e := range entries {
		e.ManagedBy, e.ConfigFile = broker.ManagedByConfig, file
		if _, err := c.Upsert(ctx, e); err != nil {
			return res, err
		}
		declared[e.Name] = true
		res.Upserted = append(res.Upserted, e.Name)
	}
	l, err := c.store.ScheduleList(ctx)
	if err != nil {
		return res, fmt.Errorf("worker: reconcile schedules of %q: %w", file, err)
	}
	for _, s := range l.Schedules {
		if s.ManagedBy != broker.ManagedByConfig || s.ConfigFile != file || declared[s.Name] {
			continue
		}
		e := EntryOf(s)
		e.ManagedBy, e.ConfigFile = "", ""
		if _, err := c.Upsert(ctx, e); err != nil {
			return res, fmt.Errorf("worker: release schedule %q from %q: %w", s.Name, file, err)
		}
		res.Released = append(res.Released, s.Name)
	}
	return res, nil
}

// EntryOf returns the Entry a stored schedule was made from.
func EntryOf(s *broker.Schedule) Entry {
	j := s.Job
	return Entry{Name: s.Name, Spec: s.Spec, TimeZone: s.TimeZone, CatchUp: CatchUp(s.CatchUp), CatchUpWindow: s.CatchUpWindow,
		ManagedBy: s.ManagedBy, ConfigFile: s.ConfigFile,
		Job: JobTemplate{Queue: j.Queue, Type: j.Type, Data: j.Data, Priority: j.Priority, MaxAttempts: j.MaxAttempts,
			TenantID: j.TenantID, CompanyID: j.CompanyID, Headers: j.Headers, UniqueKey: j.UniqueKey, Timeout: j.Timeout, TTL: j.TTL}}
}
