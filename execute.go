package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/internal/acknowledger"
	"github.com/aibos/worker/internal/heartbeat"
)

// executor runs the jobs the fetcher leased, each in its own goroutine,
// within the run slots of its queue and of the Manager, and has the Manager
// report each outcome (finish). With Prefetch, leased jobs wait here for a
// slot in fetch order; one that has not started when fetching stops is
// handed back. The Manager starts one per Start; its jobs' counts (and the
// Manager's slot counts) are guarded by the Manager's mutex.
type executor struct {
	m *Manager
	// stopped is closed when fetching stops: jobs still waiting for a
	// slot give up.
	stopped  <-chan struct{}
	base     context.Context // parent of every job context
	hardStop context.CancelCauseFunc
	jobs     sync.WaitGroup

	inflight map[*running]struct{} // leased jobs, running or waiting; m.mu
	running  int                   // jobs whose processor is running; m.mu
	waiting  int                   // leased jobs that have not had their run slot yet; m.mu
	// slotWake, when not nil, is closed when a run slot may have freed up
	// (a job ended or the concurrency rose), waking the jobs waiting in
	// acquireRun; m.mu. Slots are counts under m.mu rather than channel
	// tokens so that SetConcurrency can change the limit while jobs run.
	slotWake chan struct{}

	// Each job runs in a goroutine of its own, but goroutines are reused
	// (spawn): a goroutine per job, started afresh with a small stack that
	// a processor's call depth then grows, was over a tenth of the worker's
	// CPU at 70k jobs/s. idle hands a job to a goroutine waiting for one;
	// idleN counts those, up to idleMax (setIdleMax); quit, closed by
	// closeIdle, ends them.
	idle    chan *running
	idleN   atomic.Int64
	idleMax atomic.Int64
	quit    chan struct{}
	loops   sync.WaitGroup

	watch *watchList // the processors running under the Manager's Timeout
}

// newExecutor returns an executor whose job contexts descend from ctx's
// values but not its cancellation: only stopHard ends them early.
func newExecutor(m *Manager, ctx context.Context, stopped <-chan struct{}) *executor {
	e := &executor{m: m, stopped: stopped, inflight: map[*running]struct{}{},
		watch: &watchList{m: m, after: m.cfg.Timeout + m.cfg.AbandonGrace},
		idle:  make(chan *running), quit: make(chan struct{})}
	e.setIdleMax(m.concurrency)
	e.base, e.hardStop = context.WithCancelCause(context.WithoutCancel(ctx))
	return e
}

// setIdleMax bounds the goroutines kept waiting for a job by the most
// jobs leased at once in the usual case: concurrency run slots plus a
// batch leased ahead.
func (e *executor) setIdleMax(concurrency int) {
	e.idleMax.Store(int64(concurrency + e.m.cfg.FetchBatch))
}

// run runs one leased job of q in its own goroutine. The caller has
// counted it in m.busy and q.busy; run uncounts it when the job is done.
func (e *executor) run(q *queueSlot, job *Job) {
	m := e.m
	ctx, cancel := context.WithCancelCause(e.base)
	r := &running{job: job, cancel: cancel, m: m, deleteOnComplete: q.cfg.DeleteOnComplete}
	// With prefetch (adaptive or fixed), a tenant's jobs take run slots in
	// fetch order: each waits for the tenant's job fetched before it to
	// have its slot. Tenants do not queue behind each other (yields): a
	// tenant's job fetched after another tenant's leased-ahead batch, as a
	// fair queue serves them, starts at the next free slot. With
	// PrefetchOff a slot is always free and no job waits.
	var prev, turn chan struct{}
	tn := job.TenantID
	m.mu.Lock()
	e.inflight[r] = struct{}{}
	if e.waiting == 0 && e.running < m.concurrency && q.running < q.limit(m.concurrency) {
		// A slot is free and no job waits for one: the job takes it now,
		// as acquireRun would, and starts at once, rather than after the
		// tenant's job leased before it has its slot: with short jobs
		// that chain of wakes, one per job, held a batch's jobs back
		// while slots were free (on a loaded machine, about one job
		// running at each fetch with 57 leased, at concurrency 50). Not
		// while a job waits: one woken for a freed slot would lose it to
		// the fetcher, and the queues' weights with it.
		e.running++
		q.slotTaken(tn)
		r.slotHeld = true
	} else {
		e.waiting++
		if m.cfg.Prefetch != PrefetchOff {
			if q.lastTurn == nil {
				q.lastTurn, q.ahead = map[string]chan struct{}{}, map[string][]*Job{}
			}
			turn = make(chan struct{})
			prev, q.lastTurn[tn] = q.lastTurn[tn], turn
			q.ahead[tn] = append(q.ahead[tn], job)
		}
	}
	m.mu.Unlock()
	if m.cfg.Prefetch == 0 && !r.slotHeld {
		r.waitUntil = time.Now().Add(prefetchWaitMax)
	}
	r.q, r.jobCtx, r.prev, r.turn = q, ctx, prev, turn
	e.jobs.Add(1)
	e.spawn(r)
}

// runJob runs r, leased by run: it waits for a run slot, then runs the
// processor and reports the outcome, or hands the job back if it never
// got a slot.
func (e *executor) runJob(r *running) {
	defer e.jobs.Done()
	m, q, job, turn := e.m, r.q, r.job, r.turn
	var began time.Time // when the job had its run slot; zero: never
	defer func() { e.done(q, r, began) }()
	ok := r.slotHeld || e.acquireRun(q, job, r.prev, turn != nil, r.waitUntil)
	if !r.slotHeld && turn == nil {
		m.mu.Lock()
		e.waiting--
		m.mu.Unlock()
	}
	if turn != nil {
		tn := job.TenantID
		m.mu.Lock()
		e.waiting--
		q.notAhead(job)
		if q.lastTurn[tn] == turn {
			delete(q.lastTurn, tn)
		}
		if len(q.ahead) > 0 {
			// The tenants that yielded to this job may go now.
			e.wakeWaiters()
		}
		m.mu.Unlock()
		close(turn)
	}
	if !ok {
		e.handBackUnstarted(r)
		return
	}
	began = time.Now()
	e.execute(r.jobCtx, r)
}

// spawn runs r (runJob) in a goroutine: one that ran an earlier job and
// waits for another, or a new one.
func (e *executor) spawn(r *running) {
	select {
	case e.idle <- r:
	default:
		e.loops.Add(1)
		go e.loop(r)
	}
}

// loop runs r, then the jobs spawn hands it, until closeIdle, or until
// idleMax goroutines wait already (SetConcurrency lowered the limit, or a
// burst of fixed prefetch ended).
func (e *executor) loop(r *running) {
	defer e.loops.Done()
	for {
		e.runJob(r)
		if e.idleN.Add(1) > e.idleMax.Load() {
			e.idleN.Add(-1)
			return
		}
		select {
		case r = <-e.idle:
			e.idleN.Add(-1)
		case <-e.quit:
			return
		}
	}
}

// closeIdle ends the goroutines waiting for a job, and waits for them
// unless processors still run (a shutdown that gave up on them).
func (e *executor) closeIdle(wait bool) {
	close(e.quit)
	if wait {
		e.loops.Wait()
		e.watch.stop()
	}
}

// acquireRun waits for its turn (prev closed) and for a run slot of the
// queue and of the Manager; a job leased ahead (ahead) also lets the jobs
// of tenants that go first take a free slot (queueSlot.yields). Only
// prefetched jobs, and jobs leased just before SetConcurrency lowered the
// limit, ever wait. It gives up when fetching stops, or at deadline unless
// that is zero and if the queue's jobs have stalled by then (stalled): a
// job that has not started is handed back rather than started.
func (e *executor) acquireRun(q *queueSlot, job *Job, prev <-chan struct{}, ahead bool, deadline time.Time) bool {
	var expired <-chan time.Time // made only when the job has to wait
	timeout := func() <-chan time.Time {
		if expired == nil && !deadline.IsZero() {
			expired = time.After(time.Until(deadline))
		}
		return expired
	}
	// giveUp decides at the deadline: give up if the queue's jobs have
	// stalled, else wait on for another prefetchWaitMax.
	giveUp := func() bool {
		if e.stalled(q) {
			return true
		}
		expired = time.After(prefetchWaitMax)
		return false
	}
	// No timer while waiting for the turn (one per job was 4% of the
	// worker's CPU): the job before this one gives up or starts within its
	// own deadline, which is no later than this job's.
	if prev != nil {
		select {
		case <-prev:
		case <-e.stopped:
			return false
		}
	}
	m := e.m
	m.mu.Lock()
	for e.running >= m.concurrency || q.running >= q.limit(m.concurrency) || ahead && q.yields(job) {
		if e.slotWake == nil {
			e.slotWake = make(chan struct{})
		}
		wake := e.slotWake
		m.mu.Unlock()
		select {
		case <-wake:
		case <-e.stopped:
			return false
		case <-timeout():
			if giveUp() {
				return false
			}
		}
		m.mu.Lock()
	}
	e.running++
	q.slotTaken(job.TenantID)
	m.mu.Unlock()
	return true
}

// yields reports whether job, its tenant's next job leased ahead, leaves
// a free run slot to another tenant's next one: a more urgent job, or one
// of equal priority whose tenant holds fewer of the queue's jobs here,
// running or leased ahead. So leased-ahead jobs start priority first and,
// among equals, the tenants in turn, rather than one tenant's whole batch
// before another tenant's job fetched a moment later. Running jobs count:
// a flooding tenant whose batch has mostly started, with one job left
// ahead, would otherwise tie with another tenant's one job, and win the
// freed slot as often as not, which put that job a round of slots later
// (issue 19's flood tail). m.mu is held.
func (q *queueSlot) yields(job *Job) bool {
	mine := q.runningBy[job.TenantID] + len(q.ahead[job.TenantID])
	for tn, jobs := range q.ahead {
		if tn == job.TenantID {
			continue
		}
		if p := jobs[0].Priority; p < job.Priority || p == job.Priority && q.runningBy[tn]+len(jobs) < mine {
			return true
		}
	}
	return false
}

// slotTaken counts a job of tenant tn that took one of q's run slots;
// m.mu is held.
func (q *queueSlot) slotTaken(tn string) {
	q.running++
	if q.runningBy == nil {
		q.runningBy = map[string]int{}
	}
	q.runningBy[tn]++
}

// slotGiven uncounts a job of tenant tn that gave its run slot up; m.mu
// is held.
func (q *queueSlot) slotGiven(tn string) {
	q.running--
	if q.runningBy[tn]--; q.runningBy[tn] <= 0 {
		delete(q.runningBy, tn)
	}
}

// notAhead removes job from the jobs leased ahead, once it has its run
// slot or gave up waiting; m.mu is held.
func (q *queueSlot) notAhead(job *Job) {
	jobs := q.ahead[job.TenantID]
	if i := slices.Index(jobs, job); i >= 0 {
		jobs = slices.Delete(jobs, i, i+1)
	}
	if len(jobs) == 0 {
		delete(q.ahead, job.TenantID)
		return
	}
	q.ahead[job.TenantID] = jobs
}

// stalled reports whether no job of q has given its run slot up for
// prefetchWaitMax: the jobs it runs have turned long, and a job waiting
// behind them goes back for an idle worker to take. Jobs that still
// finish, only slower than adaptive prefetch expected (an overloaded
// machine), are waited for: handing those back would only fetch them
// again.
func (e *executor) stalled(q *queueSlot) bool {
	e.m.mu.Lock()
	defer e.m.mu.Unlock()
	return time.Since(q.lastRelease) >= prefetchWaitMax
}

// wakeWaiters wakes the jobs waiting for a run slot; m.mu is held.
func (e *executor) wakeWaiters() {
	if e.slotWake != nil {
		close(e.slotWake)
		e.slotWake = nil
	}
}

// handBackUnstarted returns a prefetched job that never started: at
// shutdown, or when adaptive prefetch misjudged and it waited too long.
func (e *executor) handBackUnstarted(r *running) {
	r.settled.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.m.b.JobRelease(ctx, r.lease()); err != nil {
		e.m.jobLog(r.job).Error("hand back prefetched job", "err", err)
		return
	}
	e.m.emit(Event{Kind: EventHandedBack, Job: r.job})
}

// done uncounts r's job, leased from q, once it ran or was handed back,
// and frees its run slot if it had one since began (zero: it had none).
// One section under m.mu for both: a second was a lock per job more.
func (e *executor) done(q *queueSlot, r *running, began time.Time) {
	r.cancel(nil)
	m := e.m
	var now time.Time
	if !began.IsZero() {
		now = time.Now()
	}
	m.mu.Lock()
	if !began.IsZero() {
		e.running--
		q.slotGiven(r.job.TenantID)
		q.slotReleased(now.Sub(began), now)
		e.wakeWaiters()
	}
	delete(e.inflight, r)
	m.busy--
	q.busy--
	m.mu.Unlock()
	m.fetch.slotFreed()
}

// wait waits until every job is done, or ctx is. It reports whether they
// are done.
func (e *executor) wait(ctx context.Context) bool {
	done := make(chan struct{})
	go func() { e.jobs.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-ctx.Done():
		return false
	}
}

// stopHard cancels every job's context with errShutdown; their jobs are
// handed back as they return, or by their watchdogs.
func (e *executor) stopHard() {
	e.hardStop(errShutdown)
	e.m.mu.Lock()
	defer e.m.mu.Unlock()
	for r := range e.inflight {
		e.m.armWatchdog(r)
	}
}

// releaseStuck hands back jobs whose processors did not return.
func (e *executor) releaseStuck() int {
	e.m.mu.Lock()
	stuck := make([]*running, 0, len(e.inflight))
	for r := range e.inflight {
		// Claim the attempt, so that its watchdog does not report it too;
		// an attempt abandoned already was reported.
		if r.reported.CompareAndSwap(false, true) {
			if t := r.watchdog.Load(); t != nil {
				t.Stop()
			}
			stuck = append(stuck, r)
		}
	}
	e.m.mu.Unlock()
	for _, r := range stuck {
		r.settled.Store(true)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := e.m.b.JobRelease(ctx, r.lease()); err != nil {
			e.m.jobLog(r.job).Error("hand back stuck job", "err", err)
		}
		cancel()
	}
	return len(stuck)
}

// leases returns the lease of every leased job, running or waiting for a
// slot, for the heartbeat. A lost lease cancels its job with ErrLeaseLost.
func (e *executor) leases() []heartbeat.Lease {
	e.m.mu.Lock()
	defer e.m.mu.Unlock()
	ls := make([]heartbeat.Lease, 0, len(e.inflight))
	for r := range e.inflight {
		if r.abandoned.Load() { // its attempt is over: the lease is not ours
			continue
		}
		ls = append(ls, heartbeat.Lease{Params: r.lease(), Lost: func(err error) {
			if r.settled.Load() {
				if e.m.log.Enabled(context.Background(), slog.LevelDebug) {
					e.m.jobLog(r.job).Debug("lease gone after the job finished; not a lease loss", "err", err)
				}
				return
			}
			e.m.jobLog(r.job).Warn("lease lost; cancelling job", "err", err)
			r.cancel(broker.ErrLeaseLost)
			e.m.armWatchdog(r)
		}})
	}
	return ls
}

// jobTimeout is the cause of a job context's deadline. It is formatted only
// when read: a fmt.Errorf per job was 8% of the worker's CPU at 50k jobs/s.
type jobTimeout time.Duration

func (d jobTimeout) Error() string { return "job timed out after " + time.Duration(d).String() }

// execute runs the job's processor under its timeout and reports the
// outcome.
func (e *executor) execute(ctx context.Context, r *running) {
	m := e.m
	m.mu.Lock()
	p := m.procs[r.job.Type]
	m.mu.Unlock()
	if enc := m.cfg.Encryption; enc != nil {
		data, err := enc.openJSON(r.job.Data, bindingOf(r.job, fieldData))
		if err != nil {
			m.refuseUndecryptable(r, err)
			return
		}
		r.job.Data = data
	}
	m.emit(Event{Kind: EventStarted, Job: r.job})
	began := time.Now()
	err := m.runProcessor(ctx, r, p)
	if t := r.watchdog.Load(); t != nil {
		t.Stop()
	}
	if !r.reported.CompareAndSwap(false, true) {
		// The attempt was ended without the processor (its watchdog, or a
		// shutdown that handed the job back); only the slot was left.
		if r.abandoned.Load() {
			m.stuck.Add(-1)
			m.jobLog(r.job).Warn("abandoned processor returned at last; its run slot is free again",
				"ran_for", time.Since(began).Round(time.Millisecond), "processor_err", err)
		}
		return
	}
	m.finish(ctx, r, err, time.Since(began))
}

// abandonedError ends the attempt of a processor that ran on past its
// context's end and AbandonGrace.
type abandonedError struct {
	grace time.Duration
	cause error // why the context ended
}

func (e *abandonedError) Error() string {
	return fmt.Sprintf("processor did not return within %v after its context ended (%v): attempt ended without it", e.grace, e.cause)
}

func (e *abandonedError) Unwrap() error { return e.cause }

// runProcessor runs p on its own copy of r's job under the job's timeout,
// with r reachable from the context (SetResult, SetFinisher...), and
// returns p's error; a nil p fails as an unknown job type.
func (m *Manager) runProcessor(ctx context.Context, r *running, p Processor) error {
	job := r.job
	timeout := job.Timeout
	if timeout <= 0 {
		timeout = m.cfg.Timeout
	}
	runCtx, cancel := context.WithTimeoutCause(ctx, timeout, jobTimeout(timeout))
	defer cancel()
	if !r.detached {
		m.startWatch(ctx, runCtx, r, timeout)
		defer m.endWatch(r)
	}
	if p == nil {
		return fmt.Errorf("no processor registered for job type %q", job.Type)
	}
	r.ctx = jobContext{Context: runCtx, r: r}
	r.copy = processorCopy(job)
	err := callProcessor(&r.ctx, p, &r.copy)
	if err != nil && runCtx.Err() != nil {
		// Say why the context ended (timeout, lease lost, cancel,
		// shutdown) rather than a bare "context canceled".
		if cause := context.Cause(runCtx); cause != nil && !errors.Is(err, cause) {
			err = fmt.Errorf("%w (%v)", err, cause)
		}
	}
	return err
}

// processorCopy returns the job as a processor gets it: its own copy, so
// that nothing it changes (ID, Queue, LeaseToken, Headers...) reaches the
// Manager's record, from which the job is acknowledged, logged and
// reported. Data's bytes are shared, not copied (payloads can be large):
// the Manager never reads them after the processor starts. The copy is
// kept in the job's running record, one allocation fewer per job.
func processorCopy(job *Job) Job {
	c := *job
	c.Headers = maps.Clone(job.Headers)
	return c
}

// callProcessor runs p, turning a panic into an error with its stack.
func callProcessor(ctx context.Context, p Processor, job *Job) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("panic: %v\n\n%s", v, debug.Stack())
		}
	}()
	return p.Process(ctx, job)
}

// finish reports the outcome to the broker; took is how long the
// processor ran.
func (m *Manager) finish(jobCtx context.Context, r *running, err error, took time.Duration) {
	r.settled.Store(true)
	job := r.job
	cause := context.Cause(jobCtx)
	if errors.Is(cause, broker.ErrLeaseLost) {
		// The job was recovered by another worker or cancelled; whatever
		// we report would be rejected.
		m.jobLog(job).Warn("job lease lost; result discarded", "processor_err", m.loggedError(job, err))
		m.emit(Event{Kind: EventLeaseLost, Job: job, Err: err, Duration: took})
		return
	}
	var result json.RawMessage
	if err == nil {
		result, err = m.storedResult(r)
	}
	if err == nil {
		// In the running record: one allocation fewer per job.
		r.completion = broker.JobCompleteParams{JobLeaseParams: *r.lease(), Result: result,
			Delete: r.deleteOnComplete, CompletedMaxCount: max(m.cfg.CompletedMaxCount, 0)}
		p := &r.completion
		if r.getFinisher() == nil {
			// Queue the completion and free the slot at once: the
			// acknowledger writes it in its next batch and reports the
			// outcome (see completed). Shutdown flushes the queue before it
			// returns.
			r.took = took
			m.acker.Add(acknowledger.Request{Params: p, Done: r})
			return
		}
		m.completed(job, took, m.complete(r, p))
		return
	}
	// Failures are rarer: only they pay for the job's logger and a timeout.
	log := m.jobLog(job)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if errors.Is(cause, errShutdown) {
		if relErr := m.b.JobRelease(ctx, r.lease()); relErr != nil {
			log.Error("hand back job at shutdown", "err", relErr)
			return
		}
		log.Info("job handed back at shutdown")
		m.emit(Event{Kind: EventHandedBack, Job: job, Err: err, Duration: took})
		return
	}
	fp, dec := m.failParams(r, err)
	if m.cfg.Encryption.Applies(job.Queue, job.Type) {
		fp.Error = m.cfg.Encryption.sealText(fp.Error, bindingOf(job, fieldError))
	}
	if dec != nil && dec.Class != "" {
		log = log.With("error_type", dec.Class)
	}
	state, failErr := m.fail(ctx, r, fp)
	if failErr != nil {
		log.Error("record failed attempt", "err", failErr, "job_err", m.loggedError(job, err))
		if errors.Is(failErr, broker.ErrLeaseLost) {
			m.emit(Event{Kind: EventLeaseLost, Job: job, Err: err, Duration: took})
		}
		return
	}
	ev := Event{Kind: EventDead, Job: job, Err: err, Duration: took}
	if state == broker.StateDead {
		log.Error("job failed; no attempts left", "err", m.loggedError(job, err))
	} else {
		log.Warn("job failed; will retry", "err", m.loggedError(job, err), "retry_in", fp.RetryDelay)
		ev.Kind, ev.RetryDelay = EventRetrying, fp.RetryDelay
	}
	if dec != nil {
		ev.ErrorType = dec.Class
	}
	m.emit(ev)
	m.notify(ctx, log, job, err, dec, state)
}

// storedResult returns the result the processor set, sealed when the
// job is encrypted. A result that cannot be sealed fails the attempt
// (which may then run again): storing it in plain text is not an option.
func (m *Manager) storedResult(r *running) (json.RawMessage, error) {
	r.mu.Lock()
	result := r.result
	r.mu.Unlock()
	if !m.cfg.Encryption.Applies(r.job.Queue, r.job.Type) {
		return result, nil
	}
	sealed, err := m.cfg.Encryption.sealJSON(result, bindingOf(r.job, fieldResult))
	if err != nil {
		return nil, fmt.Errorf("encrypt result: %w", err)
	}
	return sealed, nil
}

// refuseUndecryptable moves a job whose data does not open to dead
// without running it: no attempt could do better. The reason is stored in
// plain text: it names the key and field, never data.
func (m *Manager) refuseUndecryptable(r *running, openErr error) {
	r.settled.Store(true)
	job := r.job
	reason := undecryptable(openErr)
	log := m.jobLog(job)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	fp := &broker.JobFailParams{JobLeaseParams: *r.lease(), Error: reason.Error(), Discard: true}
	if _, err := m.fail(ctx, r, fp); err != nil {
		log.Error("record undecryptable job", "err", err, "job_err", reason)
		return
	}
	log.Error("job data cannot be decrypted; moved to dead unprocessed", "err", openErr)
	m.emit(Event{Kind: EventDead, Job: job, Err: reason})
	if m.cfg.OnUndecryptable != nil {
		m.cfg.OnUndecryptable(ctx, job, reason)
	}
}

// completed logs and reports the outcome of a completion.
func (m *Manager) completed(job *Job, took time.Duration, ackErr error) {
	if ackErr != nil {
		m.jobLog(job).Error("complete job", "err", ackErr)
		if errors.Is(ackErr, broker.ErrLeaseLost) {
			m.emit(Event{Kind: EventLeaseLost, Job: job, Duration: took})
		}
		return
	}
	if m.log.Enabled(context.Background(), slog.LevelDebug) { // With() costs even when Debug is off
		m.jobLog(job).Debug("job completed")
	}
	m.emit(Event{Kind: EventCompleted, Job: job, Duration: took})
}
