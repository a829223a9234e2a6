package worker

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/aibos/worker/broker"
)

// fetcher leases jobs while the Manager has free slots and hands each to
// the executor. It leases what can start now, plus what its slots will
// start within moments (Manager.prefetch), so a busy Manager never holds
// jobs another worker could run sooner; and, while every slot is busy, a
// job whose insert woke its queue (busyWatch). The Manager starts one per
// Start and stops it first thing in Shutdown.
type fetcher struct {
	m        *Manager
	stopped  chan struct{} // closed by stop
	done     chan struct{} // closed when run returns
	freed    chan struct{} // signalled when a job finishes
	errDelay time.Duration // backoff while the broker fails
	ready    *readySet     // nil when the broker cannot say which queues woke
	tried    []bool        // the queues fetchOnce tried since their last wake, by number; see pickQueue
	wokeLast bool          // the last jobs leased came from a woken queue ahead of its turn
	// While every slot is busy, a watcher waits for wakes (see
	// busyWatch): watched carries what its JobWaitReady returned, and
	// watching says one is out. Used by the fetcher's goroutine only.
	watched   chan []string
	watching  bool
	watchDone time.Time  // when the last watcher returned
	mutes     *wakeMutes // nil when the broker cannot mute wakes
}

func newFetcher(m *Manager) *fetcher {
	return &fetcher{m: m, stopped: make(chan struct{}), done: make(chan struct{}), freed: make(chan struct{}, 1),
		ready: newReadySet(m.b, m.queueNames()), tried: make([]bool, len(m.queues)), watched: make(chan []string, 1),
		mutes: newWakeMutes(m)}
}

// start fetches in the background until stop.
func (f *fetcher) start() { go f.run() }

// stop stops fetching and waits until a fetch in flight has handed its
// jobs to the executor. Jobs waiting there for a slot give up (see
// executor.acquireRun).
func (f *fetcher) stop() {
	close(f.stopped)
	<-f.done
}

// slotFreed tells the fetcher a job finished; it never blocks.
func (f *fetcher) slotFreed() {
	select {
	case f.freed <- struct{}{}:
	default:
	}
}

func (f *fetcher) run() {
	defer close(f.done)
	m := f.m
	// waitCtx ends when fetching stops, cutting a JobWait short.
	waitCtx, cancelWait := context.WithCancel(context.Background())
	defer func() {
		cancelWait()
		f.endWatch()
		f.mutes.unmuteAll()
	}()
	go func() {
		select {
		case <-f.stopped:
			cancelWait()
		case <-waitCtx.Done():
		}
	}()
	var holdUntil time.Time // while waiting for slots to free up; see freeSlots
	for {
		select {
		case <-f.stopped:
			return
		default:
		}
		free, refill := f.freeSlots()
		if free <= 0 {
			if !f.waitSlot(waitCtx) {
				return
			}
			continue
		}
		if free < refill {
			// Nearly every slot is busy: wait a moment for more to free
			// up, so the next fetch leases a batch rather than a job or
			// two. Each fetch costs a round trip and a script call; under
			// load this halves them and more.
			if holdUntil.IsZero() {
				holdUntil = time.Now().Add(refillHold)
			}
			if d := time.Until(holdUntil); d > 0 {
				f.busyWatch(waitCtx)
				t := time.NewTimer(d)
				select {
				case <-f.freed:
					t.Stop()
					continue
				case qs := <-f.watched:
					t.Stop()
					f.fetchWoken(qs)
					continue
				case <-t.C:
				case <-f.stopped:
					t.Stop()
					return
				}
			}
			if free, _ = f.freeSlots(); free <= 0 {
				continue // SetConcurrency lowered the limit meanwhile
			}
		}
		holdUntil = time.Time{}
		got, err := f.fetchOnce(waitCtx, free)
		if err == errTurnHeld {
			// The queue whose turn it is leases nothing ahead now: wait
			// for a run slot, as when none is free.
			if !f.waitSlot(waitCtx) {
				return
			}
			continue
		}
		wait := time.Duration(0)
		switch {
		case err != nil:
			// The broker is unreachable: back off up to 5 s so a down
			// Redis is not hammered, and retry.
			f.errDelay = min(max(2*f.errDelay, 50*time.Millisecond), 5*time.Second)
			wait = f.errDelay
		case !got:
			f.errDelay = 0
			if f.idleWait(waitCtx) {
				continue
			}
			wait = m.cfg.PollInterval
		default:
			f.errDelay = 0
		}
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-f.stopped:
				t.Stop()
				return
			}
		}
	}
}

// waitSlot waits, while every slot the Manager may fill is taken, for one
// to free, leasing a woken queue's job meanwhile (fetchWoken). It reports
// false once fetching stops.
func (f *fetcher) waitSlot(ctx context.Context) bool {
	f.busyWatch(ctx)
	select {
	case <-f.freed:
	case qs := <-f.watched:
		f.fetchWoken(qs)
	case <-f.stopped:
		return false
	}
	return true
}

// idleWait sleeps until the broker signals work, when it can (a
// broker.Waiter), at most PollInterval. It reports false when the broker
// cannot wait, and the caller polls.
func (f *fetcher) idleWait(ctx context.Context) bool {
	m := f.m
	if f.watching {
		// The watcher took the wakes since it began; it returns within
		// watchFor, at once for a wake.
		select {
		case qs := <-f.watched:
			if f.tookWatch(qs) {
				return true
			}
		case <-ctx.Done():
			return true
		}
	}
	if f.ready != nil {
		woken, err := f.ready.wait(ctx, m.cfg.PollInterval)
		if err != nil && ctx.Err() == nil {
			m.log.Warn("wait for jobs; polling instead", "err", err)
			return false
		}
		m.maint.Touch(woken...)
		return true
	}
	w, ok := m.b.(broker.Waiter)
	if !ok {
		return false
	}
	err := w.JobWait(ctx, m.queueNames(), m.cfg.PollInterval)
	if err != nil && ctx.Err() == nil {
		m.log.Warn("wait for jobs; polling instead", "err", err)
		return false
	}
	return true
}

// watchFor bounds a busy wait's watcher (busyWatch): long enough that a
// busy Manager starts few of them, short enough that the idle wait, which
// takes its place, does not wait long for it.
const watchFor = 10 * time.Millisecond

// wokenFetch is how many jobs a Manager whose slots are all busy leases
// from a queue a wake named (fetchWoken): the job whose insert woke it,
// and one more in case two inserts came as one wake.
const wokenFetch = 2

// busyWatch starts a watcher for wakes unless one is out, when the broker
// can say which queues woke (a broker.ReadyWaiter): while every slot is
// busy the fetcher waits for one to free, and a job added meanwhile that
// goes ahead of what was leased (another tenant's in a fair queue, a more
// urgent one) would wait for that fetch, then behind the jobs the free
// slots went to. With 2 ms jobs run in step on 10 slots, two rounds: most
// of issue 19's flood p99. Woken, the fetcher leases it at once
// (fetchWoken), to start at the next free slot.
//
// A watcher's start costs a pass over the queue names (as a collect), so
// one starts at most every microsecond per queue served after the last
// returned: at once for one queue, a millisecond apart for a thousand.
// Wakes that come between two are kept for the next. A watcher asked for
// sooner is out at once and waits the rest out before it listens.
// Skipped, it left the fetcher deaf until a slot freed: after a watcher
// that heard nothing, or a wake that leased nothing, the fetcher asks for
// the next within a microsecond, and then not again before a slot frees.
// With slots freeing together, 2 ms apart, a job whose wake went unheard
// waited for the next round's fetch and started a round later (issue
// 19's flood tail). None starts while every queue is muted (wakeMutes):
// it would hear nothing.
func (f *fetcher) busyWatch(ctx context.Context) {
	if f.ready == nil || f.watching || f.mutes.all() {
		return
	}
	f.watching = true
	rest := time.Duration(len(f.ready.names))*time.Microsecond - time.Since(f.watchDone)
	go func() {
		if rest > 0 {
			t := time.NewTimer(rest)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
			}
		}
		qs, _ := f.ready.w.JobWaitReady(ctx, f.ready.names, watchFor)
		f.watched <- qs
	}()
}

// tookWatch records the wakes a watcher returned, which ended it, and
// reports whether there were any.
func (f *fetcher) tookWatch(qs []string) bool {
	f.watching, f.watchDone = false, time.Now()
	if len(qs) == 0 {
		return false
	}
	f.ready.woke(qs)
	f.m.maint.Touch(qs...)
	return true
}

// endWatch waits for the watcher, if one is out; waitCtx has ended.
func (f *fetcher) endWatch() {
	if f.watching {
		<-f.watched
		f.watching = false
	}
}

// fetchWoken leases up to wokenFetch jobs from each queue a watcher's
// wakes named, beyond what the Manager leases ahead, up to a round of its
// slots more (B-E's four inserts in a row, each leased with a job of A's,
// fill most of a round of 10), but only from a queue whose jobs are short
// enough to lease ahead at all (Manager.prefetch): they wait for a slot
// about a round longer than those leased ahead, and a queue of long jobs
// never holds one another worker could start now. Nor, with adaptive prefetch, from a queue whose jobs are
// shorter than refillEvery: its slots free often enough that the next
// fetch comes soon, and a wake per insert must not turn its batches into
// fetches of two.
func (f *fetcher) fetchWoken(qs []string) {
	if !f.tookWatch(qs) {
		return
	}
	m := f.m
	for _, name := range qs {
		i, ok := f.ready.index[name]
		if !ok {
			continue
		}
		q := m.queues[i]
		m.mu.Lock()
		ahead := m.prefetch(q, time.Now())
		n := min(wokenFetch, 2*q.limit(m.concurrency)+ahead-q.busy, 2*m.concurrency+ahead-m.busy)
		long := m.fetchesWhenWoken(q)
		m.mu.Unlock()
		if ahead <= 0 || !long || n <= 0 {
			continue
		}
		if _, err := f.fetchQueue(i, n); err != nil {
			m.log.Error("fetch jobs", "queue", q.cfg.Name, "err", err)
		}
	}
}

func (m *Manager) queueNames() []string {
	names := make([]string, len(m.queues))
	for i, q := range m.queues {
		names[i] = q.cfg.Name
	}
	return names
}

// PrefetchOff, as ManagerConfig.Prefetch, turns prefetching off: the
// Manager leases only jobs that can start at once.
const PrefetchOff = -1

// prefetchHorizon bounds how long a job that adaptive prefetch leased
// ahead is expected to wait for a run slot: about one fetch round trip on
// a loaded machine, so a worker's slots never wait for a fetch while it
// has jobs to run, and far below what a job waiting on another, idle
// worker would notice.
const prefetchHorizon = 2 * time.Millisecond

// prefetchWaitMax bounds how long a job adaptive prefetch leased waits for
// a run slot while no job of its queue finishes, before it is handed back
// for any worker to take: the estimate that leased it ahead judged past
// jobs, and the jobs running now may be far longer (a queue's short jobs
// followed by long ones).
const prefetchWaitMax = 50 * time.Millisecond

// prefetch returns how many of q's jobs may wait for a run slot beyond
// its limit now; m.mu is held. Adaptive (Prefetch 0), it is what the
// queue's slots are expected to start within prefetchHorizon, given how
// long its jobs have held a slot lately.
func (m *Manager) prefetch(q *queueSlot, now time.Time) int {
	switch {
	case m.cfg.Prefetch != 0:
		return max(m.cfg.Prefetch, 0)
	case q.draining || q.slotTime <= 0:
		return 0
	case q.running > 0 && now.Sub(q.lastRelease) > prefetchHorizon:
		// Every job running has held its slot past the horizon: the
		// queue's jobs have turned long, whatever the average says.
		return 0
	}
	// A fair queue leases ahead as much: jobs of another tenant fetched
	// after them do not wait for them (queueSlot.yields).
	limit := q.limit(m.concurrency)
	return int(min(int64(m.cfg.FetchBatch), int64(limit)*int64(prefetchHorizon)/int64(q.slotTime)))
}

// slotReleased records that one of q's jobs held its run slot for d; m.mu
// is held.
func (q *queueSlot) slotReleased(d time.Duration, now time.Time) {
	d = max(d, 1)
	if q.slotTime == 0 {
		q.slotTime = d
	} else {
		q.slotTime += (d - q.slotTime) / 8
	}
	q.lastRelease = now
}

// errTurnHeld is fetchOnce's answer when the queue whose turn it is may
// lease nothing more ahead and every run slot is taken: the fetcher waits
// for a slot instead of leasing another queue's job ahead of the turn.
var errTurnHeld = errors.New("worker: turn held for a queue at its lease-ahead limit")

// refillHold bounds how long a busy Manager waits for free slots to add
// up before it fetches for the few it has.
const refillHold = 2 * time.Millisecond

// refillEvery bounds how long a busy Manager lets free slots add up before
// it fetches, when its jobs are long enough that half a batch takes longer
// than that to free. A job enqueued meanwhile (another tenant's, which a
// fair queue hands out next; a more urgent one) and not leased at its wake
// (fetchWoken) waits that long for the fetch that leases it, however far
// ahead the Manager leased: with 2 ms jobs and 10 slots, half a batch took
// about 2 ms to free.
const refillEvery = 500 * time.Microsecond

// freeSlots returns how many jobs the Manager may lease now, which is
// negative while SetConcurrency's lower limit is not yet reached, and
// refill, the number of free slots worth a fetch without waiting
// (refillAt).
func (f *fetcher) freeSlots() (free, refill int) {
	m := f.m
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	ahead := 0
	soon := int64(-1) // run slots expected to free within refillEvery
	for _, q := range m.queues {
		ahead = max(ahead, m.prefetch(q, now))
		if q.slotTime > 0 {
			soon = max(soon, 0) + int64(q.limit(m.concurrency))*int64(refillEvery)/int64(q.slotTime)
		}
	}
	free = m.concurrency + ahead - m.busy
	return free, refillAt(m.concurrency+ahead, m.cfg.FetchBatch, soon)
}

// refillAt returns the free slots worth a fetch for a Manager that may
// lease up to slots jobs, batch per fetch: half a full batch (a quarter
// gave 3.5 jobs per fetch and 7k jobs/s on SQLite at concurrency 10; half
// gives 5 and 10-11k), but no more than the soon slots its jobs are
// expected to free within refillEvery (negative: not known yet), and at
// least 1.
func refillAt(slots, batch int, soon int64) int {
	n := int64(min(slots, batch) / 2)
	if soon >= 0 {
		n = min(n, soon)
	}
	return int(max(n, 1))
}

// fetchOnce fetches from the queues in the order pickQueue gives and
// starts the jobs of the first queue that has some. It reports whether it
// started any.
func (f *fetcher) fetchOnce(ctx context.Context, free int) (bool, error) {
	m := f.m
	var lastErr error
	clear(f.tried)
	// After jobs from a woken queue ahead of its turn, one queue is
	// picked by turn alone (see readySet).
	preferWoken := !f.wokeLast
	for ; ; preferWoken = true {
		// Wakes that came meanwhile are taken first (see readySet): a
		// round over many queues, busy or not known (at start), must not
		// hold them up.
		if woke := f.ready.collect(ctx); len(woke) > 0 {
			m.maint.Touch(woke...)
			f.retry(woke)
		}
		select {
		case qs := <-f.watched:
			if f.tookWatch(qs) {
				f.retry(qs)
			}
		default:
		}
		i, viaWake := m.pickQueue(f.ready, f.tried, preferWoken)
		if i < 0 {
			return false, lastErr
		}
		f.tried[i] = true
		q := m.queues[i]
		now := time.Now()
		m.mu.Lock()
		n := min(free, q.limit(m.concurrency)+m.prefetch(q, now)-q.busy, m.cfg.FetchBatch)
		runFree := m.busy < m.concurrency
		m.mu.Unlock()
		if n <= 0 {
			if !runFree {
				// Only leasing ahead is left, and the turn is q's: another
				// queue's job leased ahead would run before q's next one
				// and take q's share of the turns (its lease-ahead depends
				// on how long its own jobs ran lately). A free run slot,
				// by contrast, goes to whoever has work.
				return false, errTurnHeld
			}
			continue
		}
		got, err := f.fetchQueue(i, n)
		if err != nil {
			m.log.Error("fetch jobs", "queue", q.cfg.Name, "err", err)
			lastErr = err
			continue
		}
		if got == 0 {
			continue
		}
		f.wokeLast = viaWake
		return true, nil
	}
}

// retry makes the queues a wake named untried again in this fetch: the
// wake may announce a job added after their fetch ran, and once taken
// here it wakes no later wait, so that job would wait for the next wake
// or poll (issue 19's bimodal no-flood p99: the next insert, 10 ms
// later). The same holds for a round over many queues: when the broker
// cannot list the queues holding jobs (broker.PendingLister), the first
// round after Start tries every queue, a fetch each, and a job added to
// one of a thousand queues early in it waited for the rest (on SQLite
// about half a second on a loaded machine). Each wake costs at most one
// more fetch.
func (f *fetcher) retry(qs []string) {
	if f.ready == nil {
		return
	}
	for _, q := range qs {
		if i, ok := f.ready.index[q]; ok {
			f.tried[i] = false
		}
	}
}

// fetchQueue leases up to n jobs from queue i (in m.queues) and hands them
// to the executor. It returns how many it leased: none from a paused
// queue.
func (f *fetcher) fetchQueue(i, n int) (int, error) {
	m := f.m
	q := m.queues[i]
	// Not cancelled by shutdown: a fetch cut short after the broker
	// leased jobs would strand them until their leases expire.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	jobs, err := m.b.JobFetch(ctx, &broker.JobFetchParams{
		Queue: q.cfg.Name, Limit: n, LeaseDuration: m.cfg.LeaseDuration, WorkerID: m.cfg.WorkerID,
	})
	cancel()
	if errors.Is(err, broker.ErrQueuePaused) {
		f.ready.fetched(i, 1, 0)
		f.mutes.fetched(i, false)
		return 0, nil
	}
	if err != nil {
		f.mutes.fetched(i, false)
		return 0, err
	}
	f.ready.fetched(i, n, len(jobs))
	m.mu.Lock()
	q.draining = len(jobs) < n
	m.busy += len(jobs)
	q.busy += len(jobs)
	mutable := len(jobs) == n && !m.fetchesWhenWoken(q) && q.slotTime > 0
	m.mu.Unlock()
	f.mutes.fetched(i, mutable)
	if len(jobs) == 0 {
		return 0, nil
	}
	m.maint.Touch(q.cfg.Name)
	for _, j := range jobs {
		m.exec.run(q, j)
	}
	return len(jobs), nil
}

// queueWeights returns the weight of each queue under weighted scheduling:
// max + 1 - priority, where max is the largest priority among qs (whose
// priorities are defaulted and in range). The most urgent queue (the
// lowest number) gets the largest weight and the least urgent weight 1;
// equal priorities get equal weights.
func queueWeights(qs []QueueConfig) []int {
	top := 0
	for _, q := range qs {
		top = max(top, q.Priority)
	}
	w := make([]int, len(qs))
	for i, q := range qs {
		w[i] = top + 1 - q.Priority
	}
	return w
}

// pickQueue returns the number (in m.queues) of the queue to fetch from
// next, among those that may have work (ready) and were not tried in this
// fetch, or -1 if none is left. Strict, it is the most urgent (priority 1
// first; the first configured among equals); weighted, a random pick in
// which each queue's chance is proportional to its weight, so less urgent
// queues are served too but less often. Among the queues of the priority
// picked, a woken one (see readySet) goes first, the one woken first: a
// job added to one of many busy queues waits for a fetch, not for a round
// over all of them, while each priority keeps its share of the turns;
// only with preferWoken, and it reports whether a woken queue took the
// turn so. One pass over the queues: a Manager serving a thousand picks
// often.
func (m *Manager) pickQueue(ready *readySet, tried []bool, preferWoken bool) (int, bool) {
	pick, total := -1, 0
	for i, q := range m.queues {
		switch {
		case tried[i] || !ready.has(i):
		case m.cfg.StrictPriority:
			if pick < 0 || q.cfg.Priority < m.queues[pick].cfg.Priority {
				pick = i
			}
		default:
			// Weighted reservoir sampling: queue i replaces the pick
			// with probability weight / (the weights seen so far).
			total += q.weight
			if rand.IntN(total) < q.weight {
				pick = i
			}
		}
	}
	if pick < 0 {
		return -1, false
	}
	if !preferWoken {
		return pick, false
	}
	p := m.queues[pick].cfg.Priority
	w := ready.firstWoken(func(i int) bool { return !tried[i] && m.queues[i].cfg.Priority == p })
	if w < 0 || w == pick {
		return pick, false
	}
	return w, true
}
