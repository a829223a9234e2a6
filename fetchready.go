package worker

import (
	"context"
	"time"

	"github.com/aibos/worker/broker"
)

// readySet is what the fetcher knows about which of its queues may have
// work, when the broker can say which queues woke it (a
// broker.ReadyWaiter): fetches go to those queues only, so that a Manager
// serving many queues pays no round trip per empty queue, busy or idle.
// A queue joins the set when a wake names it and leaves it when a fetch
// leases fewer jobs than asked (it is drained) or finds it paused. Used
// by the fetcher's goroutine only.
//
// Wakes cover inserts, retries, hand-backs, recovered leases and due
// scheduled jobs; for anything else (a lost wake, a queue resumed, a
// tenant's rate limit passing) the set also takes one queue in turn at
// each idle PollInterval, so such a job is fetched within
// len(queues) × PollInterval.
type readySet struct {
	w       broker.ReadyWaiter
	names   []string
	ready   map[string]bool
	sweep   int       // the queue the next idle timeout adds
	drained time.Time // when the set last ran empty; see collect
}

// collectEvery bounds how long wakes wait in the broker while the ready
// set still has queues: a wake for a more urgent queue is taken within it.
const collectEvery = 10 * time.Millisecond

func newReadySet(b broker.Broker, names []string) *readySet {
	w, ok := b.(broker.ReadyWaiter)
	if !ok {
		return nil
	}
	s := &readySet{w: w, names: names, ready: make(map[string]bool, len(names))}
	s.addAll() // the first fetch tries every queue
	return s
}

func (s *readySet) addAll() {
	for _, q := range s.names {
		s.ready[q] = true
	}
}

func (s *readySet) add(qs []string) {
	for _, q := range qs {
		s.ready[q] = true
	}
}

// collect takes the wakes that came since the last wait, without waiting:
// when the set has run empty, or collectEvery after the last collect. It
// returns the queues added.
func (s *readySet) collect(ctx context.Context) []string {
	if len(s.ready) > 0 && time.Since(s.drained) < collectEvery {
		return nil
	}
	s.drained = time.Now()
	qs, err := s.w.JobWaitReady(ctx, s.names, 0)
	if err != nil {
		return nil // the idle wait reports it, and falls back
	}
	s.add(qs)
	return qs
}

// wait waits up to timeout for a wake and adds the queues it names; at
// the timeout it adds the next queue in turn (the safety net). On an error
// it adds every queue, as a Manager without the capability polls them all.
// It returns the queues added and the error.
func (s *readySet) wait(ctx context.Context, timeout time.Duration) ([]string, error) {
	qs, err := s.w.JobWaitReady(ctx, s.names, timeout)
	switch {
	case err != nil && ctx.Err() == nil:
		s.addAll()
		return s.names, err
	case err != nil:
		return nil, err
	case len(qs) == 0:
		qs = []string{s.names[s.sweep%len(s.names)]}
		s.sweep++
	}
	s.add(qs)
	return qs, nil
}

// has reports whether q may have work; every queue may when the broker
// cannot tell.
func (s *readySet) has(q string) bool { return s == nil || s.ready[q] }

// fetched records a fetch from q that asked for asked jobs and got got
// (or found q paused: got 0, asked 1).
func (s *readySet) fetched(q string, asked, got int) {
	if s != nil && got < asked {
		delete(s.ready, q)
	}
}
