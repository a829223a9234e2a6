package worker

import (
	"context"
	"slices"
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
// Wakes cover inserts, retries, hand-backs, recovered leases, resumed
// queues and due scheduled jobs. For anything else (a lost wake, a
// tenant's rate limit passing) the set also takes, at idle PollIntervals,
// the queues that leased jobs within the last hotFor, and one queue in
// turn (the sweep): at every timeout at first, then at every second,
// fourth, up to maxSweepGap-th while nothing comes, and at every one again
// after the next wake or lease. So a job nothing announced is fetched
// within PollInterval if its queue leased jobs a moment ago, and within
// len(queues) × maxSweepGap × PollInterval in any case, while an idle
// Manager polls the broker once per maxSweepGap PollIntervals however
// many queues it serves.
type readySet struct {
	w         broker.ReadyWaiter
	names     []string
	ready     map[string]bool
	hot       map[string]time.Time // queues that leased jobs, and when last
	sweep     int                  // the queue the next sweep adds
	sweepGap  int                  // timeouts between sweeps: 1 up to maxSweepGap
	idle      int                  // timeouts since the last sweep
	collected time.Time            // when collect last asked the broker
}

const (
	// hotFor is how long after it last leased jobs a queue is polled at
	// every idle timeout: a queue held back by a tenant's rate limit is
	// served again as soon as the limit allows.
	hotFor = time.Second
	// maxSweepGap bounds the idle timeouts between two sweeps.
	maxSweepGap = 8
)

// collectEvery bounds how long wakes wait in the broker while the ready
// set still has queues: a wake for a more urgent queue is taken within it.
const collectEvery = 10 * time.Millisecond

func newReadySet(b broker.Broker, names []string) *readySet {
	w, ok := b.(broker.ReadyWaiter)
	if !ok {
		return nil
	}
	s := &readySet{w: w, names: names, ready: make(map[string]bool, len(names)), hot: map[string]time.Time{}, sweepGap: 1}
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
	if s == nil || len(s.ready) > 0 && time.Since(s.collected) < collectEvery {
		return nil
	}
	s.collected = time.Now()
	qs, err := s.w.JobWaitReady(ctx, s.names, 0)
	if err != nil {
		return nil // the idle wait reports it, and falls back
	}
	s.add(qs)
	return qs
}

// wait waits up to timeout for a wake and adds the queues it names; at
// the timeout it adds the hot queues and, when due, the next queue in turn
// (see timedOut). On an error it adds every queue, as a Manager without
// the capability polls them all. It returns the queues a wake named, and
// the error.
func (s *readySet) wait(ctx context.Context, timeout time.Duration) ([]string, error) {
	qs, err := s.w.JobWaitReady(ctx, s.names, timeout)
	switch {
	case err != nil && ctx.Err() == nil:
		s.addAll()
		return nil, err
	case err != nil:
		return nil, err
	case len(qs) == 0:
		s.timedOut()
		return nil, nil
	}
	s.sweepGap = 1
	s.add(qs)
	return qs, nil
}

// timedOut adds the hot queues, and the next queue in turn when a sweep
// is due.
func (s *readySet) timedOut() {
	for q, at := range s.hot {
		if time.Since(at) < hotFor {
			s.ready[q] = true
		} else {
			delete(s.hot, q)
		}
	}
	if s.idle++; s.idle < s.sweepGap {
		return
	}
	s.ready[s.names[s.sweep%len(s.names)]] = true
	s.sweep++
	s.idle = 0
	s.sweepGap = min(2*s.sweepGap, maxSweepGap)
}

// named returns a filter for queueOrder that keeps the queues of qs.
func named(qs []string) func(string) bool {
	return func(q string) bool { return slices.Contains(qs, q) }
}

// has reports whether q may have work; every queue may when the broker
// cannot tell.
func (s *readySet) has(q string) bool { return s == nil || s.ready[q] }

// fetched records a fetch from q that asked for asked jobs and got got
// (or found q paused: got 0, asked 1).
func (s *readySet) fetched(q string, asked, got int) {
	if s == nil {
		return
	}
	if got > 0 {
		s.hot[q] = time.Now()
		s.sweepGap = 1
	}
	if got < asked {
		delete(s.ready, q)
	}
}
