package worker

import (
	"context"
	"sync"
	"time"
)

// A processor's run context ends at its timeout, when its lease is lost,
// or at a hard shutdown; AbandonGrace after the first of these, a
// processor that has not returned has its attempt ended without it
// (Manager.abandon). The Manager knows each of these moments itself, so it
// arms the watchdog from them rather than with a context.AfterFunc per job:
// that, with the context and map it adds, was about a tenth of the bytes
// the worker allocated per job. Timeouts, the common case, are watched by
// a watchList; lease loss and shutdown arm a timer for the job
// (Manager.armWatchdog).

// watchList abandons, each at its time, the processors that run on past
// their timeout and AbandonGrace. It holds the jobs of one timeout, so
// their times come in the order they start: a job joins at the tail and
// leaves from anywhere when its processor returns, and one timer, set for
// the head, serves them all. It is reset only when it fires (a head that
// left meanwhile makes it fire early and re-arm), not per job.
type watchList struct {
	m     *Manager
	after time.Duration // the timeout plus AbandonGrace

	mu         sync.Mutex
	head, tail *running
	timer      *time.Timer
	armed      bool // the timer is set and has not fired
}

// add watches r, whose processor starts now under the list's timeout.
func (l *watchList) add(r *running) {
	l.mu.Lock()
	defer l.mu.Unlock()
	// Taken under the lock, so the times along the list never go back.
	r.watchAt = time.Now().Add(l.after)
	r.watchPrev, r.watchNext, r.watched = l.tail, nil, true
	if l.tail != nil {
		l.tail.watchNext = r
	} else {
		l.head = r
	}
	l.tail = r
	switch {
	case l.timer == nil:
		l.timer, l.armed = time.AfterFunc(l.after, l.fire), true
	case !l.armed:
		l.timer.Reset(l.after)
		l.armed = true
	}
}

// remove stops watching r, once its processor returned.
func (l *watchList) remove(r *running) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !r.watched {
		return
	}
	l.unlink(r)
}

// unlink takes r out of the list; l.mu is held.
func (l *watchList) unlink(r *running) {
	if r.watchPrev != nil {
		r.watchPrev.watchNext = r.watchNext
	} else {
		l.head = r.watchNext
	}
	if r.watchNext != nil {
		r.watchNext.watchPrev = r.watchPrev
	} else {
		l.tail = r.watchPrev
	}
	r.watchPrev, r.watchNext, r.watched = nil, nil, false
}

// fire abandons the processors whose time has come and sets the timer for
// the next one.
func (l *watchList) fire() {
	var due []*running
	l.mu.Lock()
	now := time.Now()
	for l.head != nil && !l.head.watchAt.After(now) {
		r := l.head
		l.unlink(r)
		due = append(due, r)
	}
	l.armed = l.head != nil
	if l.armed {
		l.timer.Reset(l.head.watchAt.Sub(now))
	}
	l.mu.Unlock()
	for _, r := range due {
		r.armed.Store(true)
		l.m.abandon(r)
	}
}

// stop stops the timer, at shutdown, once no processor runs.
func (l *watchList) stop() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.timer != nil {
		l.timer.Stop()
		l.armed = false
	}
}

// startWatch sets r up for its watchdog as its processor starts under
// runCtx, a child of jobCtx that ends after timeout; endWatch ends the
// watch once the processor returned.
func (m *Manager) startWatch(jobCtx, runCtx context.Context, r *running, timeout time.Duration) {
	r.jobCtx, r.runCtx, r.began = jobCtx, runCtx, time.Now()
	r.proc.Store(true)
	if timeout == m.cfg.Timeout {
		m.exec.watch.add(r)
	} else {
		// A timeout of the job's own: rarer, a timer of its own.
		r.ownWatch = time.AfterFunc(timeout+m.cfg.AbandonGrace, func() {
			r.armed.Store(true)
			m.abandon(r)
		})
	}
	// Lease loss and shutdown arm the watchdog of started processors
	// only: one that came before this start is seen here.
	if jobCtx.Err() != nil {
		m.armWatchdog(r)
	}
}

// endWatch stops watching r's processor, which returned.
func (m *Manager) endWatch(r *running) {
	if r.ownWatch != nil {
		r.ownWatch.Stop()
		return
	}
	m.exec.watch.remove(r)
}

// armWatchdog abandons r's processor AbandonGrace from now unless it
// returns first, once its context was cancelled (a lost lease, a hard
// shutdown). It does nothing for a job whose processor has not started
// (startWatch arms it then) or whose watchdog was armed already.
func (m *Manager) armWatchdog(r *running) {
	if !r.proc.Load() || !r.armed.CompareAndSwap(false, true) {
		return
	}
	r.watchdog.Store(time.AfterFunc(m.cfg.AbandonGrace, func() { m.abandon(r) }))
}

// abandon ends r's attempt without its processor, which ran on
// AbandonGrace past its context's end: it fails with abandonedError,
// reported from the job's context as a return would be, and the
// processor counts as stuck until it returns. It does nothing if the
// attempt was reported already.
func (m *Manager) abandon(r *running) {
	if !r.reported.CompareAndSwap(false, true) {
		return
	}
	r.abandoned.Store(true)
	m.stuck.Add(1)
	err := &abandonedError{grace: m.cfg.AbandonGrace, cause: context.Cause(r.runCtx)}
	m.jobLog(r.job).Error("processor ignores its context; attempt ended without it, its run slot stays taken until it returns",
		"err", err)
	m.finish(r.jobCtx, r, err, time.Since(r.began))
}
