// Package maintenance runs a Manager's queue housekeeping: the broker's
// QueueMaintain (lease recovery, promotion of due jobs, TTL expiry,
// retention) for every queue the Manager serves, on a timer.
//
// When the broker is a broker.LeaderStore, each queue is maintained by one
// Manager at a time: before maintaining a queue a Maintainer acquires a
// lease named "maintain.<queue>", or extends it once half of it has run,
// and skips the queue while another Manager holds it. A Manager that dies
// stops extending; its lease expires after LeaseTTL and the next
// Maintainer to ask takes over, so jobs whose leases expired are still
// recovered. On Stop the leases held are released, so a
// graceful shutdown hands maintenance over at once. Without the capability
// every Maintainer maintains every queue (QueueMaintain is safe to run
// concurrently, only wasteful).
//
// A queue the broker reports idle (no pending, scheduled or active job) is
// left alone, lease and all, for IdleInterval, or until Touch says jobs
// came into it: a Manager serving a thousand quiet queues then costs the
// broker a few calls per second, not two per queue per Interval.
package maintenance

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/aibos/worker/broker"
)

// Config configures a Maintainer.
type Config struct {
	// Broker is maintained. Required.
	Broker broker.Broker
	// Queues to maintain. Required.
	Queues []string
	// Interval between rounds. Required.
	Interval time.Duration
	// LeaseTTL is how long leadership of a queue lasts without renewal.
	// It must exceed Interval: the leader renews at the first round after
	// half of it has run.
	LeaseTTL time.Duration
	// Holder names this Maintainer in leases (the Manager's worker id).
	Holder string
	// Retention is passed to QueueMaintain, with Queue set per queue.
	Retention broker.QueueMaintainParams
	// MaxCrashes is each queue's quarantine rule
	// (QueueMaintainParams.MaxCrashes); a queue absent has it off.
	MaxCrashes map[string]int
	// Logger receives errors and leadership changes.
	Logger *slog.Logger
	// OpTimeout bounds each broker call. Defaults to 10s.
	OpTimeout time.Duration
	// IdleInterval is how long a queue the broker reported idle is left
	// alone unless Touch names it. Its only work there is retention, and
	// jobs that come in without a Touch (see Touch) wait for their lease
	// recovery up to this long. Defaults to Interval (no skipping).
	IdleInterval time.Duration
	// TouchDelay is how soon after a Touch an idle queue is maintained: the
	// lease duration, since no lease taken on the jobs that came in can
	// expire before it (a queue found busy then is maintained every
	// Interval again). A Manager whose thousand queues each take a job now
	// and then thus maintains each about once per lease, not per Interval.
	TouchDelay time.Duration
}

// Maintainer runs QueueMaintain on its queues every Interval, and again at
// once while the broker reports more to do. Start it once, then Stop it
// once.
type Maintainer struct {
	cfg     Config
	leaders broker.LeaderStore // nil: the broker cannot elect
	leading map[string]bool    // queues whose lease this Maintainer holds; loop only
	// renewed holds, per queue led, when the call that last took or
	// extended its lease started: the lease runs at least LeaseTTL from
	// then (see elected); loop only.
	renewed map[string]time.Time
	idle    map[string]time.Time // idle queues: when to maintain them again; loop only
	// idledLeading holds the idle queues this Maintainer led when they
	// went idle; loop only.
	idledLeading map[string]bool
	stop         chan struct{}
	done         chan struct{}

	mu      sync.Mutex
	touched map[string]time.Time // queues Touch named since the last round, and when first
}

// New returns a Maintainer for cfg.
func New(cfg Config) *Maintainer {
	if cfg.OpTimeout <= 0 {
		cfg.OpTimeout = 10 * time.Second
	}
	if cfg.IdleInterval < cfg.Interval {
		cfg.IdleInterval = cfg.Interval
	}
	m := &Maintainer{cfg: cfg, leading: map[string]bool{}, renewed: map[string]time.Time{}, idle: map[string]time.Time{}, idledLeading: map[string]bool{}, touched: map[string]time.Time{},
		stop: make(chan struct{}), done: make(chan struct{})}
	m.leaders, _ = cfg.Broker.(broker.LeaderStore)
	return m
}

// Touch tells the Maintainer that jobs came into queues (a wake, a fetch),
// so that an idle one among them is maintained again from the next round
// on. The Manager's fetcher calls it; it never blocks for long. Safe for
// concurrent use, and on a nil Maintainer, which does nothing.
func (m *Maintainer) Touch(queues ...string) {
	if m == nil || len(queues) == 0 {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, q := range queues {
		if _, ok := m.touched[q]; !ok {
			m.touched[q] = time.Now()
		}
	}
}

// due returns the queues to maintain in this round: all but the idle
// ones whose time has not come. A touch brings an idle queue's time
// forward to TouchDelay after it.
func (m *Maintainer) due(now time.Time) []string {
	m.mu.Lock()
	touched := m.touched
	m.touched = map[string]time.Time{}
	m.mu.Unlock()
	qs := make([]string, 0, len(m.cfg.Queues))
	for _, q := range m.cfg.Queues {
		until, ok := m.idle[q]
		if at, hit := touched[q]; ok && hit && at.Add(m.cfg.TouchDelay).Before(until) {
			until = at.Add(m.cfg.TouchDelay)
			m.idle[q] = until
		}
		if ok && now.Before(until) {
			continue
		}
		delete(m.idle, q)
		qs = append(qs, q)
	}
	return qs
}

// LeaseName is the name of the lease that elects the maintainer of queue.
func LeaseName(queue string) string { return "maintain." + queue }

// Start runs the first round at once, then one every Interval, in the
// background.
func (m *Maintainer) Start() {
	go m.run()
}

// Stop ends the loop, waits for a running round to finish, and releases
// the leases held, so that another Manager takes over without waiting for
// them to expire.
func (m *Maintainer) Stop() {
	close(m.stop)
	<-m.done
	if m.leaders == nil {
		return
	}
	// One deadline for all: a broker that is down must not hold a
	// shutdown for a timeout per queue.
	ctx, cancel := context.WithTimeout(context.Background(), m.cfg.OpTimeout)
	defer cancel()
	for q, held := range m.leading {
		if !held {
			continue
		}
		if err := m.leaders.LeaderRelease(ctx, m.lease(q)); err != nil {
			m.cfg.Logger.Warn("release maintenance lease; another worker takes over when it expires", "queue", q, "err", err)
		}
	}
}

func (m *Maintainer) run() {
	defer close(m.done)
	t := time.NewTicker(m.cfg.Interval)
	defer t.Stop()
	for {
		m.round()
		select {
		case <-m.stop:
			return
		case <-t.C:
		}
	}
}

// round maintains each queue this Maintainer is elected for, then at once
// again, in turn, those whose broker call reported More, until none has
// more: each call does bounded work, and removal must keep pace with any
// completion rate, not Limit jobs per Interval. A queue is re-elected
// before each further call, so a long round keeps its lease alive.
func (m *Maintainer) round() {
	qs := m.due(time.Now())
	for first := true; len(qs) > 0; first = false {
		var more []string
		for _, q := range qs {
			if (first || !m.stopping()) && m.elected(q) && m.maintain(q) {
				more = append(more, q)
			}
		}
		if m.stopping() {
			return
		}
		qs = more
	}
}

// stopping reports whether Stop was called.
func (m *Maintainer) stopping() bool {
	select {
	case <-m.stop:
		return true
	default:
		return false
	}
}

func (m *Maintainer) lease(queue string) *broker.LeaderParams {
	return &broker.LeaderParams{Name: LeaseName(queue), Holder: m.cfg.Holder, TTL: m.cfg.LeaseTTL}
}

// elected acquires or extends the queue's lease and reports whether this
// Maintainer should maintain the queue now. A broker error counts as not
// elected: the lease may have passed to someone else meanwhile.
//
// A lease this Maintainer took or extended less than half of LeaseTTL ago
// is not extended again: it still runs for half of LeaseTTL or more, and
// nobody else can take it meanwhile. With the default lease of five
// Intervals a leader so asks once every three rounds, not at each: for a
// Manager leading a thousand busy queues, about 670 broker calls (on
// SQLite, write transactions) a second fewer. Failover is unchanged: a
// leader that dies stops extending, and its lease ends at most LeaseTTL
// after its last extension.
func (m *Maintainer) elected(queue string) bool {
	if m.leaders == nil {
		return true
	}
	start := time.Now()
	if m.leading[queue] && start.Sub(m.renewed[queue]) < m.cfg.LeaseTTL/2 {
		return true
	}
	ctx, cancel := context.WithTimeout(context.Background(), m.cfg.OpTimeout)
	held, err := m.leaders.LeaderAcquire(ctx, m.lease(queue))
	cancel()
	if err != nil {
		m.cfg.Logger.Error("acquire maintenance lease", "queue", queue, "err", err)
		held = false
	}
	if held {
		m.renewed[queue] = start
	} else {
		delete(m.renewed, queue)
	}
	switch {
	case held && !m.leading[queue] && m.idledLeading[queue]:
		// Back from idle: not news.
	case held && !m.leading[queue]:
		m.cfg.Logger.Info("maintaining queue for all workers", "queue", queue)
	case !held && m.leading[queue]:
		m.cfg.Logger.Info("another worker maintains queue now", "queue", queue)
	}
	m.leading[queue] = held
	delete(m.idledLeading, queue)
	return held
}

// maintain runs one QueueMaintain call for queue and reports whether the
// broker has more to do there.
func (m *Maintainer) maintain(queue string) bool {
	p := m.cfg.Retention
	p.Queue, p.MaxCrashes = queue, m.cfg.MaxCrashes[queue]
	ctx, cancel := context.WithTimeout(context.Background(), m.cfg.OpTimeout)
	res, err := m.cfg.Broker.QueueMaintain(ctx, &p)
	cancel()
	if err != nil {
		m.cfg.Logger.Error("maintain queue", "queue", queue, "err", err)
		return false
	}
	if res.Idle && m.cfg.IdleInterval > m.cfg.Interval {
		// Its lease is left to expire: another Maintainer that sees jobs
		// come in takes it, and this one, touched, asks for it again.
		m.idle[queue] = time.Now().Add(m.cfg.IdleInterval)
		if m.leading[queue] {
			m.idledLeading[queue] = true
		}
		delete(m.leading, queue)
		delete(m.renewed, queue)
	}
	if res.Recovered+res.Dead > 0 {
		m.cfg.Logger.Warn("recovered jobs with expired leases", "queue", queue, "recovered", res.Recovered, "dead", res.Dead)
	}
	if res.Quarantined > 0 {
		m.cfg.Logger.Error("quarantined jobs whose worker died under them again and again (dead; retry them once fixed)",
			"queue", queue, "quarantined", res.Quarantined, "max_crashes", p.MaxCrashes)
	}
	return res.More
}
