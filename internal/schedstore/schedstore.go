// Package schedstore holds the rules of named schedules, written once on
// the generic atomic primitive of the broker seam (broker.Committer):
// upsert with its Since and Version rules, pause, delete, reads, and the
// atomic claim of a cron tick. Package schedule is its public face; the
// conformance suite (broker/brokertest) drives it on every broker.
//
// A schedule is one document (kind "schedule", key its name) in the scope
// of its queue, so that a claim (compare-and-set of its last tick, the
// tick's job insert and the broker-clock check) is one commit in one
// Cluster slot. A registry document (kind "schedule-queue", same key) in the
// scope RegistryScope names each schedule's queue, for lookups by name and
// listing; it is written after the schedule and removed after it, so a
// crash in between leaves at worst a schedule that is listed but gone
// (skipped) or stored but unlisted until its next upsert.
package schedstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/aibos/worker/broker"
)

// RegistryScope is the scope of the name → queue registry.
const RegistryScope = "_schedules"

const (
	kind       = "schedule"
	kindQueue  = "schedule-queue" // a registry entry: apart from kind, should a queue be named RegistryScope
	indexAll   = "all"
	maxRetries = 1000
)

// Store keeps schedules on a broker that implements broker.Committer. It
// is safe for concurrent use.
type Store struct {
	c broker.Committer
}

// New returns a Store on b. It fails if b does not implement
// broker.Committer.
func New(b broker.Broker) (*Store, error) {
	c, ok := b.(broker.Committer)
	if !ok {
		return nil, fmt.Errorf("broker %T does not implement broker.Committer", b)
	}
	return &Store{c: c}, nil
}

// stored is a schedule with the version of its document.
type stored struct {
	s       *broker.Schedule
	version int64
}

func (s *Store) get(ctx context.Context, scope, name string) (*stored, error) {
	d, err := s.c.DocGet(ctx, scope, kind, name)
	if errors.Is(err, broker.ErrDocNotFound) {
		return nil, fmt.Errorf("schedule %q: %w", name, broker.ErrScheduleNotFound)
	}
	if err != nil {
		return nil, err
	}
	var sc broker.Schedule
	if err := json.Unmarshal(d.Body, &sc); err != nil {
		return nil, fmt.Errorf("decode schedule %q: %w", name, err)
	}
	return &stored{s: &sc, version: d.Version}, nil
}

// queueOf returns the queue of the schedule named name and the version of
// its registry entry. ErrScheduleNotFound if it has none.
func (s *Store) queueOf(ctx context.Context, name string) (string, int64, error) {
	e, v, err := s.entryOf(ctx, name)
	return e.Queue, v, err
}

// entryOf returns the registry entry of the schedule named name and its
// version. ErrScheduleNotFound if it has none.
func (s *Store) entryOf(ctx context.Context, name string) (regEntry, int64, error) {
	d, err := s.c.DocGet(ctx, RegistryScope, kindQueue, name)
	if errors.Is(err, broker.ErrDocNotFound) {
		return regEntry{}, 0, fmt.Errorf("schedule %q: %w", name, broker.ErrScheduleNotFound)
	}
	if err != nil {
		return regEntry{}, 0, err
	}
	e, err := decodeEntry(d)
	return e, d.Version, err
}

func write(sc *broker.Schedule, version int64) (*broker.DocWrite, error) {
	body, err := json.Marshal(sc)
	if err != nil {
		return nil, fmt.Errorf("encode schedule %q: %w", sc.Name, err)
	}
	return &broker.DocWrite{Kind: kind, Key: sc.Name, Version: version, Body: body, Index: indexes(sc.Job.TenantID)}, nil
}

// retry runs f until it commits without a version conflict.
func retry(ctx context.Context, f func() error) error {
	var err error
	for range maxRetries {
		if err = f(); !errors.Is(err, broker.ErrConflict) || ctx.Err() != nil {
			return err
		}
	}
	return err
}

// ScheduleUpsert creates or replaces the schedule named in.Name and returns
// it as stored. CreatedAt, LastTick and Paused of an existing schedule are
// kept (Paused changes only through SchedulePause). Version grows with
// every upsert. When the schedule is new or its Spec, TimeZone or queue
// changed, Since is set to the broker's now, so ticks before the change are
// never claimed; otherwise Since is kept. A schedule that moves to another
// queue takes its created time, version and paused flag along. Returns an
// *InvalidError if in fails Validate.
func (s *Store) ScheduleUpsert(ctx context.Context, in *broker.Schedule) (*broker.Schedule, error) {
	return s.ScheduleWrite(ctx, in, nil)
}

// ScheduleWrite is ScheduleUpsert with a guard: check, when not nil, is
// called with the stored schedule (nil if there is none) right before the
// compare-and-set write, and an error it returns is returned as is with
// nothing written. A write that loses a version race calls check again on
// the newer schedule, so what check approves is what is replaced.
func (s *Store) ScheduleWrite(ctx context.Context, in *broker.Schedule, check func(cur *broker.Schedule) error) (*broker.Schedule, error) {
	if err := in.Validate(); err != nil {
		return nil, err
	}
	queue := in.Job.Queue
	reg, regVersion, err := s.entryOf(ctx, in.Name)
	if err != nil && !errors.Is(err, broker.ErrScheduleNotFound) {
		return nil, err
	}
	oldQueue := reg.Queue
	var moved *stored
	if oldQueue != "" && oldQueue != queue {
		if moved, err = s.get(ctx, oldQueue, in.Name); err != nil && !errors.Is(err, broker.ErrScheduleNotFound) {
			return nil, err
		}
	}
	var out *broker.Schedule
	err = retry(ctx, func() error {
		now, err := s.c.Now(ctx)
		if err != nil {
			return err
		}
		sc := &broker.Schedule{Name: in.Name, Spec: in.Spec, TimeZone: in.TimeZone, Job: in.Job, CatchUp: in.CatchUp,
			CatchUpWindow: in.CatchUpWindow, ManagedBy: in.ManagedBy, ConfigFile: in.ConfigFile,
			Version: 1, CreatedAt: now, UpdatedAt: now, Since: now}
		sc.Job.ID, sc.Job.Delay, sc.Job.RunAt = "", 0, time.Time{}
		var version int64
		cur, err := s.get(ctx, queue, in.Name)
		if check != nil {
			var was *broker.Schedule
			switch {
			case err == nil:
				was = cur.s
			case moved != nil:
				was = moved.s
			}
			if err == nil || errors.Is(err, broker.ErrScheduleNotFound) {
				if cerr := check(was); cerr != nil {
					return cerr
				}
			}
		}
		switch {
		case err == nil:
			version = cur.version
			old := cur.s
			sc.Version, sc.CreatedAt, sc.Paused, sc.LastTick = old.Version+1, old.CreatedAt, old.Paused, old.LastTick
			if old.Spec == sc.Spec && old.TimeZone == sc.TimeZone {
				sc.Since = old.Since
			}
		case !errors.Is(err, broker.ErrScheduleNotFound):
			return err
		case moved != nil:
			sc.Version, sc.CreatedAt, sc.Paused = moved.s.Version+1, moved.s.CreatedAt, moved.s.Paused
		}
		w, err := write(sc, version)
		if err != nil {
			return err
		}
		if _, err := s.c.Commit(ctx, &broker.CommitParams{Scope: queue, Docs: []*broker.DocWrite{w}}); err != nil {
			return err
		}
		out = sc
		return nil
	})
	if err != nil {
		return nil, err
	}
	want := regEntry{Queue: queue, Tenant: in.Job.TenantID}
	if reg != want {
		body, _ := json.Marshal(want)
		w := &broker.DocWrite{Kind: kindQueue, Key: in.Name, Version: regVersion, Body: body, Index: indexes(want.Tenant)}
		if _, err := s.c.Commit(ctx, &broker.CommitParams{Scope: RegistryScope, Docs: []*broker.DocWrite{w}}); err != nil {
			return nil, fmt.Errorf("register schedule %q: %w", in.Name, err)
		}
	}
	if moved != nil {
		del := &broker.DocWrite{Kind: kind, Key: in.Name, Version: moved.version, Delete: true}
		if _, err := s.c.Commit(ctx, &broker.CommitParams{Scope: oldQueue, Docs: []*broker.DocWrite{del}}); err != nil &&
			!errors.Is(err, broker.ErrConflict) {
			return nil, fmt.Errorf("remove schedule %q from queue %q: %w", in.Name, oldQueue, err)
		}
	}
	return out, nil
}

// ScheduleGet returns one schedule. ErrScheduleNotFound if absent.
func (s *Store) ScheduleGet(ctx context.Context, name string) (*broker.Schedule, error) {
	if err := broker.ValidateScheduleName(name); err != nil {
		return nil, fmt.Errorf("schedule %q: %w", name, broker.ErrScheduleNotFound)
	}
	q, _, err := s.queueOf(ctx, name)
	if err != nil {
		return nil, err
	}
	st, err := s.get(ctx, q, name)
	if err != nil {
		return nil, err
	}
	return st.s, nil
}

// all reads every document of kind k in scope listed in index, page by
// page.
func (s *Store) all(ctx context.Context, scope, k, index string) ([]*broker.Doc, time.Time, error) {
	var docs []*broker.Doc
	var now time.Time
	for offset := 0; ; {
		l, err := s.c.DocList(ctx, &broker.DocListParams{Scope: scope, Kind: k, Index: index, Offset: offset, Limit: broker.MaxDocList})
		if err != nil {
			return nil, now, err
		}
		docs, now = append(docs, l.Docs...), l.Now
		if len(l.Docs) < broker.MaxDocList {
			return docs, now, nil
		}
		offset += len(l.Docs)
	}
}

// ScheduleList returns every schedule, sorted by name, and the broker's
// clock when it read them.
func (s *Store) ScheduleList(ctx context.Context) (*broker.ScheduleListResult, error) {
	return s.list(ctx, indexAll)
}

// ScheduleListTenant returns the schedules whose job belongs to tenant,
// sorted by name, read through the tenant's own indexes (of the registry
// and of each queue) rather than by filtering every schedule. The empty
// tenant lists the schedules that have no tenant.
func (s *Store) ScheduleListTenant(ctx context.Context, tenant string) (*broker.ScheduleListResult, error) {
	return s.list(ctx, tenantIndex(tenant))
}

func (s *Store) list(ctx context.Context, index string) (*broker.ScheduleListResult, error) {
	reg, now, err := s.all(ctx, RegistryScope, kindQueue, index)
	if err != nil {
		return nil, err
	}
	queues := map[string]map[string]bool{} // queue → names it holds per the registry
	for _, d := range reg {
		e, err := decodeEntry(d)
		if err != nil {
			return nil, err
		}
		if queues[e.Queue] == nil {
			queues[e.Queue] = map[string]bool{}
		}
		queues[e.Queue][d.Key] = true
	}
	res := &broker.ScheduleListResult{Now: now}
	for q, names := range queues {
		docs, _, err := s.all(ctx, q, kind, index)
		if err != nil {
			return nil, err
		}
		for _, d := range docs {
			if !names[d.Key] {
				continue // moving away: listed under its new queue
			}
			var sc broker.Schedule
			if err := json.Unmarshal(d.Body, &sc); err != nil {
				return nil, fmt.Errorf("decode schedule %q: %w", d.Key, err)
			}
			res.Schedules = append(res.Schedules, &sc)
		}
	}
	sort.Slice(res.Schedules, func(i, j int) bool { return res.Schedules[i].Name < res.Schedules[j].Name })
	return res, nil
}

// ScheduleDelete removes a schedule and its claim state. Jobs it already
// enqueued stay. ErrScheduleNotFound if absent.
func (s *Store) ScheduleDelete(ctx context.Context, name string) error {
	return s.ScheduleDeleteIf(ctx, name, nil)
}

// ScheduleDeleteIf is ScheduleDelete with a guard: check, when not nil, is
// called with the stored schedule right before the compare-and-set delete,
// and an error it returns is returned as is with nothing removed.
func (s *Store) ScheduleDeleteIf(ctx context.Context, name string, check func(cur *broker.Schedule) error) error {
	q, regVersion, err := s.queueOf(ctx, name)
	if err != nil {
		return err
	}
	var refused error
	err = retry(ctx, func() error {
		st, err := s.get(ctx, q, name)
		if err != nil {
			return err
		}
		if check != nil {
			if refused = check(st.s); refused != nil {
				return refused
			}
		}
		_, err = s.c.Commit(ctx, &broker.CommitParams{Scope: q, Docs: []*broker.DocWrite{{Kind: kind, Key: name, Version: st.version, Delete: true}}})
		return err
	})
	if refused != nil || (err != nil && !errors.Is(err, broker.ErrScheduleNotFound)) {
		return err
	}
	_, rerr := s.c.Commit(ctx, &broker.CommitParams{Scope: RegistryScope,
		Docs: []*broker.DocWrite{{Kind: kindQueue, Key: name, Version: regVersion, Delete: true}}})
	if rerr != nil && !errors.Is(rerr, broker.ErrConflict) {
		return fmt.Errorf("unregister schedule %q: %w", name, rerr)
	}
	return nil
}

// SchedulePause sets or clears the schedule's Paused flag; a paused
// schedule's ticks are refused by ScheduleClaim. Idempotent.
// ErrScheduleNotFound if absent.
func (s *Store) SchedulePause(ctx context.Context, name string, paused bool) error {
	return s.SchedulePauseIf(ctx, name, paused, nil)
}

// SchedulePauseIf is SchedulePause with a guard: check, when not nil, is
// called with the stored schedule before it is changed, and an error it
// returns is returned as is with nothing changed.
func (s *Store) SchedulePauseIf(ctx context.Context, name string, paused bool, check func(cur *broker.Schedule) error) error {
	q, _, err := s.queueOf(ctx, name)
	if err != nil {
		return err
	}
	return retry(ctx, func() error {
		st, err := s.get(ctx, q, name)
		if err != nil {
			return err
		}
		if check != nil {
			if err := check(st.s); err != nil {
				return err
			}
		}
		if st.s.Paused == paused {
			return nil
		}
		st.s.Paused = paused
		w, err := write(st.s, st.version)
		if err != nil {
			return err
		}
		_, err = s.c.Commit(ctx, &broker.CommitParams{Scope: q, Docs: []*broker.DocWrite{w}})
		return err
	})
}

// ScheduleClaim claims one tick of a schedule and, in the same commit,
// inserts the tick's job (p.Job, with RunAt = p.Tick). The claim succeeds
// only if the schedule exists, is not paused, still has p.Version, p.Tick
// is after both Since and LastTick, and p.Tick is not after the broker's
// now (the commit's NotBefore). On success LastTick becomes p.Tick. When
// the job cannot be inserted because its unique key is held or its queue is
// full, the tick is still consumed (Status says which) and no job is
// written. Only errors that leave nothing changed are returned as errors:
// ErrScheduleNotFound, *InvalidError, ErrClosed, or a storage failure.
func (s *Store) ScheduleClaim(ctx context.Context, p *broker.ScheduleClaimParams) (*broker.ScheduleClaimResult, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	tick := p.Tick.Truncate(time.Millisecond)
	for range maxRetries {
		st, err := s.get(ctx, p.Job.Queue, p.Name)
		if err != nil {
			return nil, err
		}
		sc := st.s
		refuse := func(status broker.ClaimStatus) (*broker.ScheduleClaimResult, error) {
			now, err := s.c.Now(ctx)
			if err != nil {
				return nil, err
			}
			return &broker.ScheduleClaimResult{Status: status, LastTick: sc.LastTick, Now: now}, nil
		}
		switch {
		case sc.Paused:
			return refuse(broker.ClaimPaused)
		case p.Version != 0 && p.Version != sc.Version:
			return refuse(broker.ClaimChanged)
		case !tick.After(sc.Since):
			return refuse(broker.ClaimTooOld)
		case !tick.After(sc.LastTick):
			return refuse(broker.ClaimTaken)
		}
		prev := sc.LastTick
		sc.LastTick = tick
		w, err := write(sc, st.version)
		if err != nil {
			return nil, err
		}
		job := *p.Job
		job.RunAt, job.Delay = tick, 0
		res, err := s.c.Commit(ctx, &broker.CommitParams{Scope: p.Job.Queue, NotBefore: tick, Docs: []*broker.DocWrite{w},
			Insert: []*broker.CommitInsert{{Job: &job, IfAbsent: true, Optional: true}}})
		var early *broker.TooEarlyError
		switch {
		case errors.As(err, &early):
			return &broker.ScheduleClaimResult{Status: broker.ClaimEarly, LastTick: prev, Now: early.Now}, nil
		case errors.Is(err, broker.ErrConflict):
			continue // claimed, paused or changed meanwhile: judge again
		case err != nil:
			return nil, err
		}
		out := &broker.ScheduleClaimResult{Status: broker.ClaimOK, Job: res.Jobs[0], LastTick: tick, Now: res.Now}
		var dup *broker.DuplicateError
		switch skipped := res.Skipped[0]; {
		case skipped == nil:
		case errors.As(skipped, &dup) && dup.UniqueKey != "":
			out.Status = broker.ClaimUniqueHeld
		case errors.Is(skipped, broker.ErrQueueFull):
			out.Status = broker.ClaimQueueFull
		default:
			out.Status = broker.ClaimTaken // the deterministic job id is the second guard
		}
		return out, nil
	}
	return nil, fmt.Errorf("claim tick %v of schedule %q: lost %d version races in a row: %w", p.Tick, p.Name, maxRetries, broker.ErrConflict)
}

// TemplateID is the job id a schedule's job template is sealed under
// (package schedule; key rotation): no job has it, tick jobs' ids being
// the schedule's TickJobID, so a template's ciphertext opens neither as a
// job's data nor under another schedule's name.
func TemplateID(name string) string { return "schedule-template:" + name }

// ScheduleRewrite changes the stored schedule named name in place with f,
// which reports whether it changed it, and writes it back only if it is
// still the version read (a tick claimed or an upsert meanwhile re-reads
// it and calls f again): nothing but what f changes is written, and
// Version and UpdatedAt are kept, since the definition did not change.
// It reports whether it wrote. ErrScheduleNotFound if absent.
func (s *Store) ScheduleRewrite(ctx context.Context, name string, f func(sc *broker.Schedule) (bool, error)) (bool, error) {
	wrote := false
	err := retry(ctx, func() error {
		q, _, err := s.queueOf(ctx, name)
		if err != nil {
			return err
		}
		cur, err := s.get(ctx, q, name)
		if err != nil {
			return err
		}
		changed, err := f(cur.s)
		if err != nil || !changed {
			return err
		}
		w, err := write(cur.s, cur.version)
		if err != nil {
			return err
		}
		if _, err := s.c.Commit(ctx, &broker.CommitParams{Scope: q, Docs: []*broker.DocWrite{w}}); err != nil {
			return err
		}
		wrote = true
		return nil
	})
	return wrote, err
}
