// Package wake is the bookkeeping behind broker.Waiter, shared by the
// brokers: who waits on which queue, wakes that arrived while nobody waited,
// and when each queue's earliest scheduled job falls due. A broker feeds it
// with Notify (on insert, or from Redis pub/sub) and answers Refresh
// queries; Hub.Wait does the rest.
package wake

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"
)

// ErrClosed is returned by Wait once the hub is closed.
var ErrClosed = errors.New("wake hub closed")

// RefreshFunc reports, for each queue, how long until its earliest
// scheduled job is due by the broker's clock: <= 0 when one is due now; a
// queue with none scheduled, or paused, is absent from the map.
type RefreshFunc func(ctx context.Context, queues []string) (map[string]time.Duration, error)

// Hub tracks waiters and queue due times. The zero value is not usable;
// call New.
type Hub struct {
	refresh RefreshFunc
	now     func() time.Time

	mu      sync.Mutex
	queues  map[string]*queueState
	lists   []*queueList           // the lists waited on lately, the latest first; see list
	kept    map[string]*queueState // the queues whose signalled is set
	waiters map[*waiter]struct{}
	closed  chan struct{}
	isClose bool
}

type queueState struct {
	signalled bool      // a wake arrived while no waiter took it
	due       time.Time // earliest known scheduled due time; zero: none known
	refreshAt time.Time // ask the broker again at or after this; zero: now
	known     bool      // refreshAt is meaningful
}

// queueList is a list of queues waited on, with each one's state looked
// up once: a Manager waits on the same thousand queues at every wait and
// collect, and a map lookup per queue each time cost it more than the
// rest of the wait (about 40 µs a time for a thousand).
type queueList struct {
	names  []string
	states []*queueState
	index  map[string]int // name to position
	// checkAt is when a state of the list may next need reading from the
	// broker (see WaitReady); zero: at once. Notify, NotifyAll and
	// refreshDue bring it forward (settle).
	checkAt time.Time
}

// maxLists bounds the lists the hub remembers: one per Manager (or
// other caller) waiting on the broker, each with its own queues.
const maxLists = 8

type waiter struct {
	list  *queueList
	wake  chan struct{}   // work may be there: return
	rearm chan struct{}   // a due time moved earlier: recompute the timer
	ready map[string]bool // the queues whose wake reached this waiter; h.mu
}

// New returns a Hub that asks refresh for due times.
func New(refresh RefreshFunc) *Hub {
	return &Hub{refresh: refresh, now: time.Now, queues: map[string]*queueState{}, kept: map[string]*queueState{},
		waiters: map[*waiter]struct{}{}, closed: make(chan struct{})}
}

func (h *Hub) state(q string) *queueState {
	s := h.queues[q]
	if s == nil {
		s = &queueState{}
		h.queues[q] = s
	}
	return s
}

// settle brings the checkAt of the lists with queue forward to at (zero:
// at once); h.mu is held.
func (h *Hub) settle(queue string, at time.Time) {
	for _, l := range h.lists {
		if _, ok := l.index[queue]; ok && (at.IsZero() || at.Before(l.checkAt)) {
			l.checkAt = at
		}
	}
}

// list returns the queueList of queues, the one kept from an earlier call
// with the same names if there is one; h.mu is held. Comparing the names
// is cheap when they are the same strings as last time (the pointers
// match), and a queue's state is never removed, so those kept stay valid.
func (h *Hub) list(queues []string) *queueList {
	for i, l := range h.lists {
		if slices.Equal(l.names, queues) {
			copy(h.lists[1:i+1], h.lists[:i])
			h.lists[0] = l
			return l
		}
	}
	l := &queueList{names: slices.Clone(queues), states: make([]*queueState, len(queues)), index: make(map[string]int, len(queues))}
	for i, q := range queues {
		l.states[i] = h.state(q)
		l.index[q] = i
	}
	// l.checkAt is zero: its states are read at once.
	if len(h.lists) < maxLists {
		h.lists = append(h.lists, nil)
	}
	copy(h.lists[1:], h.lists)
	h.lists[0] = l
	return l
}

// Notify tells the hub that queue got work due after delay (<= 0: now).
// Waiters of the queue wake at once, or are re-armed for the due time; with
// no waiter, a wake is kept for the next Wait on the queue.
func (h *Hub) Notify(queue string, delay time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.state(queue)
	if delay > 0 {
		due := h.now().Add(delay)
		if s.due.IsZero() || due.Before(s.due) {
			s.due = due
		}
		if s.known && due.Before(s.refreshAt) {
			s.refreshAt = due
			h.settle(queue, due)
		}
		h.signal(queue, func(w *waiter) chan struct{} { return w.rearm }, nil)
		return
	}
	h.signal(queue, func(w *waiter) chan struct{} { return w.wake }, s)
}

// NotifyAll wakes every waiter, as after a lost connection: wakes may have
// been missed.
func (h *Hub) NotifyAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for q, s := range h.queues {
		s.known = false
		h.signal(q, func(w *waiter) chan struct{} { return w.wake }, s)
	}
	for _, l := range h.lists {
		l.checkAt = time.Time{}
	}
}

// signal pokes the waiters of queue; if none waits and keep is set, the
// wake is kept for the next one. Called with h.mu held.
func (h *Hub) signal(queue string, ch func(*waiter) chan struct{}, keep *queueState) {
	found := false
	for w := range h.waiters {
		if _, ok := w.list.index[queue]; ok {
			found = true
			if keep != nil {
				w.ready[queue] = true
			}
			select {
			case ch(w) <- struct{}{}:
			default:
			}
		}
	}
	if !found && keep != nil {
		keep.signalled = true
		h.kept[queue] = keep
	}
}

// Stale tells the hub that queue's wakes went unheard for a while (its
// broker stopped listening): due times notified meanwhile are missing, so
// the next wait on queue reads them from the broker again.
func (h *Hub) Stale(queue string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.state(queue).known = false
	h.settle(queue, time.Time{})
}

// Wait blocks until work may be in one of queues, the earliest due time of
// their scheduled jobs, timeout, ctx's end or Close.
func (h *Hub) Wait(ctx context.Context, queues []string, timeout time.Duration) error {
	_, err := h.WaitReady(ctx, queues, timeout)
	return err
}

// WaitReady is Wait that also returns the queues that woke it: those
// notified since the last Wait that took their wake, and those whose
// earliest scheduled job is due. It returns none when only timeout (or
// ctx, or Close) ended the wait. With timeout 0 it does not block beyond
// reading stale due times: it collects the wakes kept meanwhile.
func (h *Hub) WaitReady(ctx context.Context, queues []string, timeout time.Duration) (ready []string, err error) {
	w := &waiter{wake: make(chan struct{}, 1), rearm: make(chan struct{}, 1), ready: map[string]bool{}}
	h.mu.Lock()
	if h.isClose {
		h.mu.Unlock()
		return nil, ErrClosed
	}
	w.list = h.list(queues)
	// Only the kept wakes and, when a due time may have come, the states
	// are looked at: a busy Manager collects wakes every millisecond.
	for q, s := range h.kept {
		if _, ok := w.list.index[q]; ok {
			s.signalled = false
			delete(h.kept, q)
			w.ready[q] = true
		}
	}
	var stale []string
	now := h.now()
	if !now.Before(w.list.checkAt) {
		next := time.Time{}
		for i, s := range w.list.states {
			switch {
			case !s.known || !now.Before(s.refreshAt):
				stale = append(stale, w.list.names[i])
			case next.IsZero() || s.refreshAt.Before(next):
				next = s.refreshAt
			}
		}
		if len(stale) == 0 {
			w.list.checkAt = next
		}
	}
	if len(w.ready) > 0 {
		h.mu.Unlock()
		return w.names(), nil
	}
	h.waiters[w] = struct{}{}
	h.mu.Unlock()
	defer func() {
		// A wake that reached w as it returned for another reason is
		// returned all the same, or it would be lost.
		h.mu.Lock()
		delete(h.waiters, w)
		ready = append(ready, w.names()...)
		h.mu.Unlock()
		if err != nil {
			ready = nil
		}
	}()
	if len(stale) > 0 {
		due, err := h.refreshDue(ctx, stale)
		if err != nil || len(due) > 0 {
			return due, err
		}
	}
	if timeout <= 0 {
		return nil, nil
	}
	end := time.NewTimer(timeout)
	defer end.Stop()
	for {
		var dueTimer <-chan time.Time
		if d, ok := h.earliest(w.list); ok {
			t := time.NewTimer(max(time.Until(d), 0))
			defer t.Stop()
			dueTimer = t.C
		}
		select {
		case <-w.wake:
			return nil, nil
		case <-dueTimer:
			return h.dueBy(w.list, h.now()), nil
		case <-end.C:
			return nil, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-h.closed:
			return nil, ErrClosed
		case <-w.rearm:
		}
	}
}

// names returns the queues that woke w, in w's order; h.mu is held.
func (w *waiter) names() []string {
	if len(w.ready) == 0 {
		return nil
	}
	out := make([]string, 0, len(w.ready))
	for q := range w.ready {
		out = append(out, q)
	}
	slices.SortFunc(out, func(a, b string) int { return w.list.index[a] - w.list.index[b] })
	clear(w.ready)
	return out
}

// dueBy returns the queues of l whose earliest scheduled job is due at t,
// or whose due time must be read again (see earliest).
func (h *Hub) dueBy(l *queueList, t time.Time) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for i, s := range l.states {
		if (!s.due.IsZero() && !t.Before(s.due)) || (s.known && !t.Before(s.refreshAt)) {
			out = append(out, l.names[i])
		}
	}
	return out
}

// refreshDue asks the broker for the due times of queues and records them.
// It returns the queues with a job due now. Brokers report no due time for
// a paused queue, so its due jobs are not spun on.
func (h *Hub) refreshDue(ctx context.Context, queues []string) ([]string, error) {
	delays, err := h.refresh(ctx, queues)
	if err != nil {
		return nil, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.now()
	var dueNow []string
	for _, q := range queues {
		s := h.state(q)
		s.known = true
		// A due time notified while the broker was being read may be newer
		// than what was read: keep it if it is still ahead.
		kept := time.Time{}
		if s.due.After(now) {
			kept = s.due
		}
		d, ok := delays[q]
		switch {
		case ok && d <= 0:
			// Ask again soon, not at once: the caller fetches first.
			s.due, s.refreshAt = time.Time{}, now.Add(time.Millisecond)
			h.settle(q, s.refreshAt)
			dueNow = append(dueNow, q)
			continue
		case ok:
			s.due = now.Add(d)
		default:
			s.due = time.Time{}
		}
		if !kept.IsZero() && (s.due.IsZero() || kept.Before(s.due)) {
			s.due = kept
		}
		s.refreshAt = s.due
		if s.due.IsZero() {
			s.refreshAt = now.Add(100 * 365 * 24 * time.Hour)
		}
		h.settle(q, s.refreshAt)
	}
	return dueNow, nil
}

// earliest returns the earliest instant over l's queues at which a job
// falls due or the broker must be asked again (after a due-now answer).
func (h *Hub) earliest(l *queueList) (time.Time, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var best time.Time
	consider := func(t time.Time) {
		if !t.IsZero() && (best.IsZero() || t.Before(best)) {
			best = t
		}
	}
	for _, s := range l.states {
		consider(s.due)
		if s.known {
			consider(s.refreshAt)
		}
	}
	return best, !best.IsZero()
}

// Close wakes every waiter with ErrClosed; later Waits fail too.
func (h *Hub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.isClose {
		h.isClose = true
		close(h.closed)
	}
}
