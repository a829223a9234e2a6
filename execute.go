package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"runtime/debug"
	"time"

	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/internal/acknowledger"
)

// start runs one leased job in its own goroutine.
func (m *Manager) start(q *queueSlot, job *Job) {
	ctx, cancel := context.WithCancelCause(m.jobBase)
	r := &running{job: job, cancel: cancel, m: m}
	// With Prefetch, jobs of a queue take run slots in fetch order: each
	// waits for the one fetched before it to have its slot. Without, a
	// slot is always free and no job waits.
	var prev, turn chan struct{}
	m.mu.Lock()
	m.inflight[r] = struct{}{}
	if m.cfg.Prefetch > 0 {
		turn = make(chan struct{})
		prev, q.lastTurn = q.lastTurn, turn
	}
	m.mu.Unlock()
	m.jobs.Add(1)
	go func() {
		defer m.jobs.Done()
		defer m.done(q, r)
		ok := m.acquireRun(q, prev)
		if turn != nil {
			close(turn)
		}
		if !ok {
			m.handBackUnstarted(r)
			return
		}
		defer m.releaseRun(q)
		m.execute(ctx, r)
	}()
}

// acquireRun waits for its turn (prev closed) and for a run slot of the
// queue and of the Manager (only prefetched jobs ever wait). It gives up when fetching stops: a job that
// has not started by then is handed back rather than started.
func (m *Manager) acquireRun(q *queueSlot, prev <-chan struct{}) bool {
	if prev != nil {
		select {
		case <-prev:
		case <-m.stopFetch:
			return false
		}
	}
	select {
	case q.runSem <- struct{}{}:
	case <-m.stopFetch:
		return false
	}
	select {
	case m.runSem <- struct{}{}:
	case <-m.stopFetch:
		<-q.runSem
		return false
	}
	m.mu.Lock()
	m.running++
	m.mu.Unlock()
	return true
}

func (m *Manager) releaseRun(q *queueSlot) {
	m.mu.Lock()
	m.running--
	m.mu.Unlock()
	<-m.runSem
	<-q.runSem
}

// handBackUnstarted returns a prefetched job that never started.
func (m *Manager) handBackUnstarted(r *running) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := m.b.JobRelease(ctx, r.lease()); err != nil {
		m.jobLog(r.job).Error("hand back prefetched job", "err", err)
		return
	}
	m.emit(Event{Kind: EventHandedBack, Job: r.job})
}

func (m *Manager) done(q *queueSlot, r *running) {
	r.cancel(nil)
	m.mu.Lock()
	delete(m.inflight, r)
	m.busy--
	q.busy--
	m.mu.Unlock()
	select {
	case m.slotFreed <- struct{}{}:
	default:
	}
}

// jobTimeout is the cause of a job context's deadline. It is formatted only
// when read: a fmt.Errorf per job was 8% of the worker's CPU at 50k jobs/s.
type jobTimeout time.Duration

func (d jobTimeout) Error() string { return "job timed out after " + time.Duration(d).String() }

func (m *Manager) execute(ctx context.Context, r *running) {
	job := r.job
	timeout := job.Timeout
	if timeout <= 0 {
		timeout = m.cfg.Timeout
	}
	runCtx, cancel := context.WithTimeoutCause(ctx, timeout, jobTimeout(timeout))
	defer cancel()
	runCtx = context.WithValue(runCtx, jobCtxKey{}, r)

	m.mu.Lock()
	p := m.procs[job.Type]
	m.mu.Unlock()
	m.emit(Event{Kind: EventStarted, Job: job})
	began := time.Now()
	var err error
	if p == nil {
		err = fmt.Errorf("no processor registered for job type %q", job.Type)
	} else {
		err = callProcessor(runCtx, p, processorCopy(job))
	}
	if err != nil && runCtx.Err() != nil {
		// Say why the context ended (timeout, lease lost, cancel,
		// shutdown) rather than a bare "context canceled".
		if cause := context.Cause(runCtx); cause != nil && !errors.Is(err, cause) {
			err = fmt.Errorf("%w (%v)", err, cause)
		}
	}
	m.finish(ctx, r, err, time.Since(began))
}

// processorCopy returns the job as a processor gets it: its own copy, so
// that nothing it changes (ID, Queue, LeaseToken, Headers...) reaches the
// Manager's record, from which the job is acknowledged, logged and
// reported. Data's bytes are shared, not copied (payloads can be large):
// the Manager never reads them after the processor starts.
func processorCopy(job *Job) *Job {
	c := *job
	c.Headers = maps.Clone(job.Headers)
	return &c
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
	job := r.job
	cause := context.Cause(jobCtx)
	if errors.Is(cause, broker.ErrLeaseLost) {
		// The job was recovered by another worker or cancelled; whatever
		// we report would be rejected.
		m.jobLog(job).Warn("job lease lost; result discarded", "processor_err", err)
		m.emit(Event{Kind: EventLeaseLost, Job: job, Err: err, Duration: took})
		return
	}
	if err == nil {
		r.mu.Lock()
		result := r.result
		r.mu.Unlock()
		p := &broker.JobCompleteParams{JobLeaseParams: *r.lease(), Result: result}
		if r.getFinisher() == nil {
			// Queue the completion and free the slot at once: the
			// acknowledger writes it in its next batch and reports the
			// outcome (see completed). Shutdown flushes the queue before it
			// returns.
			m.acker.Add(acknowledger.Request{Params: p, Done: func(err error) { m.completed(job, took, err) }})
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
	if dec != nil && dec.Class != "" {
		log = log.With("error_type", dec.Class)
	}
	state, failErr := m.fail(ctx, r, fp)
	if failErr != nil {
		log.Error("record failed attempt", "err", failErr, "job_err", err)
		if errors.Is(failErr, broker.ErrLeaseLost) {
			m.emit(Event{Kind: EventLeaseLost, Job: job, Err: err, Duration: took})
		}
		return
	}
	ev := Event{Kind: EventDead, Job: job, Err: err, Duration: took}
	if state == broker.StateDead {
		log.Error("job failed; no attempts left", "err", err)
	} else {
		log.Warn("job failed; will retry", "err", err, "retry_in", fp.RetryDelay)
		ev.Kind, ev.RetryDelay = EventRetrying, fp.RetryDelay
	}
	if dec != nil {
		ev.ErrorType = dec.Class
	}
	m.emit(ev)
	m.notify(ctx, log, job, err, dec, state)
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
