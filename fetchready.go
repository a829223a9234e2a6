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
// leases fewer jobs than asked (it is drained) or finds it paused. Queues
// are numbered as the Manager's queues (Manager.queues). Used by the
// fetcher's goroutine only.
//
// A queue a wake named is also woken until its next fetch: the fetcher
// gives it the next turn among the queues of its priority (see
// Manager.pickQueue), once per wake, so that a job added to one of a
// thousand busy queues does not wait for the Manager's round over all of
// them. At most every other fetch that leases jobs goes to a woken queue,
// so the others keep half of the turns or more when wakes come faster
// than fetches. The wakes are collected while the fetcher is busy too, at
// most every collectEvery.
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
// Manager polls the broker, and wakes, once per maxSweepGap PollIntervals
// however many queues it serves.
type readySet struct {
	w         broker.ReadyWaiter
	names     []string
	index     map[string]int // queue name to number
	ready     []bool
	nReady    int
	woken     []int             // queues woken since their last fetch, in the order their wakes came
	isWoken   []bool            // whether a queue is in woken
	hot       map[int]time.Time // queues that leased jobs, and when last
	sweep     int               // the queue the next sweep adds
	sweepGap  int               // timeouts between sweeps: 1 up to maxSweepGap
	idle      int               // timeouts since the last sweep
	collected time.Time         // when collect last asked the broker
}

const (
	// hotFor is how long after it last leased jobs a queue is polled at
	// every idle timeout: a queue held back by a tenant's rate limit is
	// served again as soon as the limit allows.
	hotFor = time.Second
	// maxSweepGap bounds the idle timeouts between two sweeps.
	maxSweepGap = 8
)

// collectEvery bounds how long wakes wait in the broker while the fetcher
// is busy: a job added to a queue that is not the next in turn is taken
// within it. Each collect still compares the queue names with the list
// the broker kept from the last call (about 5 µs for a thousand), so a
// busy Manager does not collect before every fetch.
const collectEvery = time.Millisecond

func newReadySet(b broker.Broker, names []string) *readySet {
	w, ok := b.(broker.ReadyWaiter)
	if !ok {
		return nil
	}
	s := &readySet{w: w, names: names, index: make(map[string]int, len(names)),
		ready: make([]bool, len(names)), isWoken: make([]bool, len(names)), hot: map[int]time.Time{}, sweepGap: 1}
	for i, q := range names {
		s.index[q] = i
	}
	s.addAll() // the first fetch tries every queue
	return s
}

// prime takes the wakes kept since before the Manager started (jobs added
// meanwhile; on Redis the confirmations of its wake channels) as ready,
// not woken: the first fetches try every queue anyway, and a thousand
// queues woken at once would put a job added just after behind them all.
// Start calls it before it returns, so that the wake of a job added after
// is not taken for one of those.
//
// When the broker can list the queues holding pending jobs (a
// broker.PendingLister), only those are ready: the first fetches go to
// them instead of to every queue in turn, which on a thousand queues held
// a job added in the Manager's first second up to the end of that round.
// The list is read after the wake channels are subscribed, so a job is
// either in it or wakes its queue; a queue whose scheduled job is due
// comes from the due times read here, which the next collect reads again.
func (s *readySet) prime(ctx context.Context) {
	if s == nil {
		return
	}
	// Twice: a call that finds queues woken returns them at once, and the
	// next reads the queues' due times (a thousand script calls on Redis,
	// which should not hold up the first fetches).
	for range 2 {
		if _, err := s.w.JobWaitReady(ctx, s.names, 0); err != nil {
			break // the idle wait reports it
		}
	}
	s.collected = time.Now()
	// With one queue the list would cost the round trip that the one
	// fetch it saves costs.
	if l, ok := s.w.(broker.PendingLister); ok && len(s.names) > 1 {
		if qs, err := l.QueuesPending(ctx, s.names); err == nil {
			clear(s.ready)
			s.nReady = 0
			for _, q := range qs {
				if i, ok := s.index[q]; ok {
					s.mark(i)
				}
			}
		}
	}
}

func (s *readySet) addAll() {
	for i := range s.ready {
		s.mark(i)
	}
}

func (s *readySet) mark(i int) {
	if !s.ready[i] {
		s.ready[i] = true
		s.nReady++
	}
}

// woke adds the queues a wake named, and makes them woken.
func (s *readySet) woke(qs []string) {
	for _, q := range qs {
		i, ok := s.index[q]
		if !ok {
			continue
		}
		s.mark(i)
		if !s.isWoken[i] {
			s.isWoken[i] = true
			s.woken = append(s.woken, i)
		}
	}
}

// collect takes the wakes that came since the last wait, without waiting:
// when the set has run empty, or collectEvery after the last collect. It
// returns the queues added.
func (s *readySet) collect(ctx context.Context) []string {
	if s == nil || s.nReady > 0 && time.Since(s.collected) < collectEvery {
		return nil
	}
	s.collected = time.Now()
	qs, err := s.w.JobWaitReady(ctx, s.names, 0)
	if err != nil {
		return nil // the idle wait reports it, and falls back
	}
	s.woke(qs)
	return qs
}

// wait waits up to timeout for a wake and adds the queues it names; at
// the timeout it adds the hot queues and, when due, the next queue in turn
// (see timedOut). While no queue is hot, one wait stands for the timeouts
// up to the next sweep: those in between would add nothing, and each
// would wake an idle Manager (two goroutines and a thread or two) for
// naught, up to ten times a second. On an error it adds every queue, as a
// Manager without the capability polls them all. It returns the queues a
// wake named, and the error.
func (s *readySet) wait(ctx context.Context, timeout time.Duration) ([]string, error) {
	n := 1
	if s.coolHot() == 0 {
		n = max(s.sweepGap-s.idle, 1)
	}
	qs, err := s.w.JobWaitReady(ctx, s.names, time.Duration(n)*timeout)
	switch {
	case err != nil && ctx.Err() == nil:
		s.addAll()
		return nil, err
	case err != nil:
		return nil, err
	case len(qs) == 0:
		s.timedOut(n)
		return nil, nil
	}
	s.sweepGap = 1
	s.woke(qs)
	return qs, nil
}

// coolHot drops the queues that leased jobs longer than hotFor ago from
// the hot ones, and returns how many are left.
func (s *readySet) coolHot() int {
	for i, at := range s.hot {
		if time.Since(at) >= hotFor {
			delete(s.hot, i)
		}
	}
	return len(s.hot)
}

// timedOut adds the hot queues, and the next queue in turn when a sweep
// is due, after a wait that stood for n timeouts.
func (s *readySet) timedOut(n int) {
	s.coolHot()
	for i := range s.hot {
		s.mark(i)
	}
	if s.idle += n; s.idle < s.sweepGap {
		return
	}
	s.mark(s.sweep % len(s.names))
	s.sweep++
	s.idle = 0
	s.sweepGap = min(2*s.sweepGap, maxSweepGap)
}

// has reports whether queue i may have work; every queue may when the
// broker cannot tell.
func (s *readySet) has(i int) bool { return s == nil || s.ready[i] }

// firstWoken returns the queue woken first among those ok accepts, or -1.
func (s *readySet) firstWoken(ok func(i int) bool) int {
	if s == nil {
		return -1
	}
	for _, i := range s.woken {
		if ok(i) {
			return i
		}
	}
	return -1
}

// fetched records a fetch from queue i that asked for asked jobs and got
// got (or found it paused: got 0, asked 1): the queue had its turn for
// the wakes so far.
func (s *readySet) fetched(i, asked, got int) {
	if s == nil {
		return
	}
	if got > 0 {
		s.hot[i] = time.Now()
		s.sweepGap = 1
	}
	if got < asked && s.ready[i] {
		s.ready[i] = false
		s.nReady--
	}
	if s.isWoken[i] {
		s.isWoken[i] = false
		for k, w := range s.woken {
			if w == i {
				s.woken = append(s.woken[:k], s.woken[k+1:]...)
				break
			}
		}
	}
}
