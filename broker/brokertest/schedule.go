package brokertest

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/internal/schedstore"
)

// The schedule cases run package schedule's rules (internal/schedstore) on
// the broker's broker.Committer. A broker without it skips them.

// scheduleStore returns the schedule store on the case's broker or skips.
func (s *bundle) scheduleStore() *schedstore.Store {
	s.t.Helper()
	ss, err := schedstore.New(s.b)
	if err != nil {
		s.t.Skip(err)
	}
	return ss
}

// upsertSchedule stores a schedule on queue q and returns it as stored.
func (s *bundle) upsertSchedule(ss *schedstore.Store, name, q string, opts ...func(*broker.Schedule)) *broker.Schedule {
	s.t.Helper()
	sc := &broker.Schedule{Name: name, Spec: "@every 1s", TimeZone: "Europe/Berlin",
		Job: broker.JobInsertParams{Queue: q, Type: "brokertest.cron", Data: json.RawMessage(`{"report":"daily"}`),
			MaxAttempts: 2, Priority: 5, TenantID: "t1", Headers: map[string]string{"origin": "cron"}}}
	for _, o := range opts {
		o(sc)
	}
	got, err := ss.ScheduleUpsert(s.ctx, sc)
	if err != nil {
		s.t.Fatalf("ScheduleUpsert(%s): %v", name, err)
	}
	if got.Name != name || got.Spec != sc.Spec || got.Job.Queue != q || got.Version < 1 || got.Since.IsZero() || got.CreatedAt.IsZero() {
		s.t.Fatalf("ScheduleUpsert(%s) returned %+v", name, got)
	}
	return got
}

// tickJob is the job params of a tick, as package schedule builds them.
func tickJob(sc *broker.Schedule, id string) *broker.JobInsertParams {
	p := sc.Job
	p.ID = id
	return &p
}

// claimTick claims a tick and fails the case on error.
func (s *bundle) claimTick(ss *schedstore.Store, sc *broker.Schedule, tick time.Time, id string) *broker.ScheduleClaimResult {
	s.t.Helper()
	r, err := ss.ScheduleClaim(s.ctx, &broker.ScheduleClaimParams{Name: sc.Name, Version: sc.Version, Tick: tick, Job: tickJob(sc, id)})
	if err != nil {
		s.t.Fatalf("ScheduleClaim(%s, %v): %v", sc.Name, tick, err)
	}
	return r
}

// dueTick returns a tick after the schedule's Since that the broker's clock
// has passed.
func (s *bundle) dueTick(sc *broker.Schedule) time.Time {
	s.t.Helper()
	tick := sc.Since.Add(5 * time.Millisecond).Truncate(time.Millisecond)
	s.waitPast(tick)
	return tick
}

// testScheduleClaimOnce: many concurrent claims of one tick insert one job,
// even when each claimer proposes a different job id.
func testScheduleClaimOnce(s *bundle) {
	ss := s.scheduleStore()
	q := "cron-once"
	sc := s.upsertSchedule(ss, "report", q)
	tick := s.dueTick(sc)

	const claimers = 8
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		won  []*broker.ScheduleClaimResult
		lost = map[broker.ClaimStatus]int{}
	)
	for i := range claimers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := ss.ScheduleClaim(s.ctx, &broker.ScheduleClaimParams{Name: sc.Name, Version: sc.Version, Tick: tick,
				Job: tickJob(sc, fmt.Sprintf("cron:report:%d:claimer-%d", tick.UnixMilli(), i))})
			if err != nil {
				s.t.Errorf("ScheduleClaim by claimer %d: %v", i, err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if r.Status == broker.ClaimOK {
				won = append(won, r)
			} else {
				lost[r.Status]++
			}
		}()
	}
	wg.Wait()
	if s.t.Failed() {
		s.t.FailNow()
	}
	if len(won) != 1 || lost[broker.ClaimTaken] != claimers-1 {
		s.t.Fatalf("%d concurrent claims of one tick: %d succeeded, refusals %v; want exactly 1 and %d taken", claimers, len(won), lost, claimers-1)
	}
	s.wantCounts(q, counts{broker.StatePending: 1})
	j := s.get(q, won[0].Job.ID)
	if !j.RunAt.Equal(tick) || j.Type != "brokertest.cron" || j.TenantID != "t1" || j.Priority != 5 || j.Headers["origin"] != "cron" || !jsonEqual(j.Data, sc.Job.Data) {
		s.t.Fatalf("the tick's job is %+v; want RunAt = tick %v and the template's fields", *j, tick)
	}
	if !won[0].LastTick.Equal(tick) {
		s.t.Fatalf("claim result LastTick %v, want the tick %v", won[0].LastTick, tick)
	}
	if got, err := ss.ScheduleGet(s.ctx, sc.Name); err != nil || !got.LastTick.Equal(tick) {
		s.t.Fatalf("ScheduleGet after the claim: LastTick %v, err %v; want %v", got, err, tick)
	}
	// An earlier tick (still after Since) is refused once a later one is claimed.
	if r := s.claimTick(ss, sc, tick.Add(-time.Millisecond), "cron:report:earlier"); r.Status != broker.ClaimTaken && r.Status != broker.ClaimTooOld {
		s.t.Fatalf("claim of a tick before the last claimed one: %s, want taken", r.Status)
	}
	s.wantCounts(q, counts{broker.StatePending: 1})
	// The job is an ordinary job: a worker fetches it.
	f := s.fetchOne(q, longLease)
	if f.ID != won[0].Job.ID {
		s.t.Fatalf("fetched %s, want the tick's job %s", f.ID, won[0].Job.ID)
	}
}

// testScheduleClaimRefusals: a tick after the broker's now, at or before
// Since, of a paused schedule or of an older version is refused and writes
// nothing.
func testScheduleClaimRefusals(s *bundle) {
	ss := s.scheduleStore()
	q := "cron-refuse"
	sc := s.upsertSchedule(ss, "refuse", q)
	now := s.now()
	future := now.Add(time.Hour)
	r := s.claimTick(ss, sc, future, "cron:refuse:future")
	if r.Status != broker.ClaimEarly || r.Job != nil || !r.LastTick.IsZero() {
		s.t.Fatalf("claim of a tick an hour ahead of the broker clock: %+v; want early, no job, no last tick", *r)
	}
	if r.Now.Before(now) || r.Now.After(future) {
		s.t.Fatalf("claim result Now %v, want the broker clock (about %v)", r.Now, now)
	}
	if r := s.claimTick(ss, sc, sc.Since, "cron:refuse:since"); r.Status != broker.ClaimTooOld {
		s.t.Fatalf("claim of the tick at Since: %s, want too_old (only ticks after a change run)", r.Status)
	}
	tick := s.dueTick(sc)
	if err := ss.SchedulePause(s.ctx, sc.Name, true); err != nil {
		s.t.Fatalf("SchedulePause: %v", err)
	}
	if r := s.claimTick(ss, sc, tick, "cron:refuse:paused"); r.Status != broker.ClaimPaused {
		s.t.Fatalf("claim on a paused schedule: %s, want paused", r.Status)
	}
	if err := ss.SchedulePause(s.ctx, sc.Name, false); err != nil {
		s.t.Fatalf("SchedulePause(false): %v", err)
	}
	// An upsert that keeps spec, zone and queue keeps Since but bumps Version.
	sc2 := s.upsertSchedule(ss, "refuse", q, func(x *broker.Schedule) { x.Job.Priority = 9 })
	if sc2.Version <= sc.Version || !sc2.Since.Equal(sc.Since) {
		s.t.Fatalf("re-upsert with the same timing: version %d → %d, since %v → %v; want a higher version and the same since", sc.Version, sc2.Version, sc.Since, sc2.Since)
	}
	if r := s.claimTick(ss, sc, tick, "cron:refuse:stale"); r.Status != broker.ClaimChanged {
		s.t.Fatalf("claim with an old version: %s, want changed", r.Status)
	}
	s.wantCounts(q, counts{})
	if r := s.claimTick(ss, sc2, tick, "cron:refuse:ok"); r.Status != broker.ClaimOK {
		s.t.Fatalf("claim with the current version: %s, want ok", r.Status)
	}
	if j := s.get(q, "cron:refuse:ok"); j.Priority != 9 {
		s.t.Fatalf("tick job priority %d, want the new template's 9", j.Priority)
	}
	// A changed spec resets Since: nothing before the change is claimed.
	sc3 := s.upsertSchedule(ss, "refuse", q, func(x *broker.Schedule) { x.Spec = "@every 2s" })
	if !sc3.Since.After(sc.Since) {
		s.t.Fatalf("upsert with a new spec kept Since %v; want it moved to the broker's now", sc3.Since)
	}
	_, err := ss.ScheduleClaim(s.ctx, &broker.ScheduleClaimParams{Name: "absent", Tick: tick, Job: tickJob(sc, "x")})
	wantErr(s.t, "ScheduleClaim of an unknown schedule", err, broker.ErrScheduleNotFound)
	_, err = ss.ScheduleClaim(s.ctx, &broker.ScheduleClaimParams{Name: sc.Name, Tick: tick, Job: &broker.JobInsertParams{ID: "x", Queue: q}})
	wantErr(s.t, "ScheduleClaim with a job without a type", err, broker.ErrInvalidJob)
}

// testScheduleUniqueOverlap: a template with a unique key skips a tick
// while the previous tick's job is unfinished; the tick is still consumed.
func testScheduleUniqueOverlap(s *bundle) {
	ss := s.scheduleStore()
	q := "cron-unique"
	sc := s.upsertSchedule(ss, "nooverlap", q, func(x *broker.Schedule) { x.Job.UniqueKey = "cron:nooverlap" })
	t1 := s.dueTick(sc)
	if r := s.claimTick(ss, sc, t1, "cron:nooverlap:1"); r.Status != broker.ClaimOK {
		s.t.Fatalf("first tick: %s, want ok", r.Status)
	}
	t2 := t1.Add(time.Millisecond)
	s.waitPast(t2)
	r := s.claimTick(ss, sc, t2, "cron:nooverlap:2")
	if r.Status != broker.ClaimUniqueHeld || r.Job != nil || !r.LastTick.Equal(t2) {
		s.t.Fatalf("second tick while the first job is pending: %+v; want unique_held, no job, last tick %v", *r, t2)
	}
	s.wantCounts(q, counts{broker.StatePending: 1})
}

// testScheduleCRUD: upsert, get, list, pause and delete.
func testScheduleCRUD(s *bundle) {
	ss := s.scheduleStore()
	for _, n := range []string{"b-sched", "a-sched", "c-sched"} {
		s.upsertSchedule(ss, n, "cron-crud")
	}
	moved := s.upsertSchedule(ss, "c-sched", "cron-crud-other")
	if moved.Job.Queue != "cron-crud-other" {
		s.t.Fatalf("moved schedule is on queue %q", moved.Job.Queue)
	}
	l, err := ss.ScheduleList(s.ctx)
	if err != nil {
		s.t.Fatalf("ScheduleList: %v", err)
	}
	var names []string
	for _, sc := range l.Schedules {
		names = append(names, sc.Name)
	}
	wantIDs(s.t, "ScheduleList names", names, []string{"a-sched", "b-sched", "c-sched"})
	if l.Now.IsZero() || l.Schedules[2].Job.Queue != "cron-crud-other" || l.Schedules[0].TimeZone != "Europe/Berlin" {
		s.t.Fatalf("ScheduleList: now %v, schedules %+v", l.Now, l.Schedules)
	}
	if err := ss.SchedulePause(s.ctx, "a-sched", true); err != nil {
		s.t.Fatalf("SchedulePause: %v", err)
	}
	if got, err := ss.ScheduleGet(s.ctx, "a-sched"); err != nil || !got.Paused {
		s.t.Fatalf("ScheduleGet of a paused schedule: %+v, %v; want paused", got, err)
	}
	// Upsert keeps the paused flag.
	if got := s.upsertSchedule(ss, "a-sched", "cron-crud"); !got.Paused {
		s.t.Fatalf("upsert cleared the paused flag")
	}
	if err := ss.ScheduleDelete(s.ctx, "b-sched"); err != nil {
		s.t.Fatalf("ScheduleDelete: %v", err)
	}
	_, err = ss.ScheduleGet(s.ctx, "b-sched")
	wantErr(s.t, "ScheduleGet of a deleted schedule", err, broker.ErrScheduleNotFound)
	wantErr(s.t, "ScheduleDelete of a deleted schedule", ss.ScheduleDelete(s.ctx, "b-sched"), broker.ErrScheduleNotFound)
	wantErr(s.t, "SchedulePause of an unknown schedule", ss.SchedulePause(s.ctx, "nope", true), broker.ErrScheduleNotFound)
	_, err = ss.ScheduleUpsert(s.ctx, &broker.Schedule{Name: "bad{name}", Spec: "@daily", Job: broker.JobInsertParams{Queue: "q", Type: "t", MaxAttempts: 1}})
	wantErr(s.t, "ScheduleUpsert with a brace in the name", err, broker.ErrInvalidJob)
	_, err = ss.ScheduleUpsert(s.ctx, &broker.Schedule{Name: "nojob", Spec: "@daily", Job: broker.JobInsertParams{Queue: "q", MaxAttempts: 1}})
	var ie *broker.InvalidError
	if !errors.As(err, &ie) || ie.Field != "job.type" {
		s.t.Fatalf("ScheduleUpsert without a job type: %v; want an *InvalidError on job.type", err)
	}
	// A queue named like the store's registry scope holds schedules like
	// any other.
	s.upsertSchedule(ss, "d-sched", schedstore.RegistryScope)
	if got, err := ss.ScheduleGet(s.ctx, "d-sched"); err != nil || got.Job.Queue != schedstore.RegistryScope {
		s.t.Fatalf("ScheduleGet of a schedule on queue %q: %+v, %v", schedstore.RegistryScope, got, err)
	}
	if l, err = ss.ScheduleList(s.ctx); err != nil {
		s.t.Fatalf("ScheduleList: %v", err)
	}
	names = nil
	for _, sc := range l.Schedules {
		names = append(names, sc.Name)
	}
	wantIDs(s.t, "ScheduleList names", names, []string{"a-sched", "c-sched", "d-sched"})
}

// testJobReschedule: a scheduled job moves to a new due time atomically.
func testJobReschedule(s *bundle) {
	c := s.committer()
	reschedule := func(id string, at time.Time) (*broker.Job, error) {
		if _, err := c.Commit(s.ctx, &broker.CommitParams{Scope: "reschedule", Reschedule: []*broker.JobReschedule{{ID: id, RunAt: at}}}); err != nil {
			return nil, err
		}
		return s.b.JobGet(s.ctx, &broker.JobGetParams{Queue: "reschedule", ID: id})
	}
	q := "reschedule"
	j := s.insert(q, withDelay(time.Hour), withTTL(time.Minute))
	now := s.now()
	later, err := reschedule(j.ID, now.Add(2*time.Hour))
	if err != nil {
		s.t.Fatalf("reschedule to later: %v", err)
	}
	if later.State != broker.StateScheduled || later.RunAt.Sub(now) < 2*time.Hour-time.Second || later.ExpiresAt.Sub(later.RunAt) != time.Minute {
		s.t.Fatalf("rescheduled job: state %s RunAt %v ExpiresAt %v; want scheduled two hours on, TTL kept", later.State, later.RunAt, later.ExpiresAt)
	}
	s.fetchNone(q, "the job is due in two hours")
	if _, err := reschedule(j.ID, now); err != nil {
		s.t.Fatalf("reschedule to now: %v", err)
	}
	f := s.fetchOne(q, longLease)
	if f.ID != j.ID {
		s.t.Fatalf("fetched %s, want the rescheduled job %s", f.ID, j.ID)
	}
	_, err = reschedule(j.ID, now)
	wantErr(s.t, "reschedule an active job", err, broker.ErrWrongState)
	_, err = reschedule("absent", now)
	wantErr(s.t, "reschedule an unknown job", err, broker.ErrNotFound)
	// A job due now with no options is rescheduled like any other.
	plain := s.insert(q)
	if got, err := reschedule(plain.ID, now.Add(time.Hour)); err != nil || got.State != broker.StateScheduled {
		s.t.Fatalf("reschedule a plain pending job: %+v, %v; want scheduled", got, err)
	}
}
