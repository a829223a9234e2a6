package worker

import (
	"context"
	"time"

	"github.com/aibos/worker/broker"
)

// wakeMutes mutes the wakes of the queues a busy Manager fetches from
// anyway, when the broker can (a broker.WakeMuter). On Redis every urgent
// insert (one placed before the queue's head) is published to every
// Manager process of the queue: fifty busy Managers of short jobs, each
// fetching again within a millisecond or two, were woken for each probe
// of the managers curve, and none fetched sooner for it (fetchWoken skips
// a queue of short jobs). A queue is muted after muteAfter fetches in a
// row leased all they asked for, its jobs short (fetchesWhenWoken false),
// and unmuted at the first fetch that leases fewer, fails, or finds its
// jobs turned long: drained, it needs the wake of the next insert, and
// the broker's confirmation of the new subscription wakes it once, so a
// job added while muted is fetched then. Only a queue alone at its
// priority among the Manager's queues is muted: among several, a wake
// gives its queue the next turn (pickQueue). Used by the fetcher's
// goroutine only.
//
// Mutes are the broker's, shared by the Managers of one process that
// share a Broker: another Manager of the queue, idle, hears of an insert
// when this one's next fetch finds the queue drained and unmutes it.
type wakeMutes struct {
	m     *Manager
	w     broker.WakeMuter
	solo  []bool // the queue is the only one of its priority
	full  []int  // the fetches in a row that leased full batches of short jobs
	muted []bool
	n     int // queues muted
}

// muteAfter is how many fetches in a row must lease full batches before a
// queue is muted: a lightly loaded Manager, whose fetches drain the
// queue now and then, does not flip per job between muted and not.
const muteAfter = 4

// newWakeMutes returns the fetcher's wakeMutes, nil if m's broker cannot
// mute wakes.
func newWakeMutes(m *Manager) *wakeMutes {
	w, ok := m.b.(broker.WakeMuter)
	if !ok {
		return nil
	}
	n := len(m.queues)
	s := &wakeMutes{m: m, w: w, solo: make([]bool, n), full: make([]int, n), muted: make([]bool, n)}
	perPriority := map[int]int{}
	for _, q := range m.queues {
		perPriority[q.cfg.Priority]++
	}
	for i, q := range m.queues {
		s.solo[i] = perPriority[q.cfg.Priority] == 1
	}
	return s
}

// fetchesWhenWoken reports whether a wake of q makes the Manager fetch
// while every slot is busy (fetchWoken): its jobs are long enough, or
// Prefetch is set. m.mu is held.
func (m *Manager) fetchesWhenWoken(q *queueSlot) bool {
	return q.slotTime >= refillEvery || m.cfg.Prefetch > 0
}

// fetched records a fetch from queue i: full says it leased all it asked
// for, of a queue whose jobs are known to be short.
func (s *wakeMutes) fetched(i int, full bool) {
	if s == nil {
		return
	}
	if !full || !s.solo[i] {
		s.full[i] = 0
		if s.muted[i] {
			s.set(i, false)
		}
		return
	}
	if s.full[i]++; s.full[i] >= muteAfter && !s.muted[i] {
		s.set(i, true)
	}
}

// all reports whether every queue is muted: a watcher of wakes while the
// slots are busy (busyWatch) would hear none.
func (s *wakeMutes) all() bool { return s != nil && s.n == len(s.muted) }

// unmuteAll unmutes every queue muted; the fetcher calls it as it stops.
func (s *wakeMutes) unmuteAll() {
	if s == nil {
		return
	}
	for i, on := range s.muted {
		if on {
			s.set(i, false)
		}
	}
}

// set mutes or unmutes queue i. The broker counts the change even when it
// cannot reach the store, so the fetcher does too.
func (s *wakeMutes) set(i int, mute bool) {
	name := s.m.queues[i].cfg.Name
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.w.JobWaitMute(ctx, name, mute); err != nil {
		s.m.log.Warn("mute or unmute wakes", "queue", name, "mute", mute, "err", err)
	}
	s.muted[i] = mute
	if mute {
		s.n++
	} else {
		s.n--
	}
}
