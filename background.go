package worker

import (
	"time"

	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/internal/acknowledger"
	"github.com/aibos/worker/internal/heartbeat"
	"github.com/aibos/worker/internal/maintenance"
)

// The Manager's background components, each started by Start and stopped
// by Shutdown: the acknowledger batches completions, the heartbeater keeps
// running jobs' leases alive, the maintainer does queue housekeeping on one
// elected Manager per queue.

func (m *Manager) newAcknowledger() *acknowledger.Acknowledger {
	return acknowledger.New(m.b, max(256, 2*m.concurrency))
}

// newHeartbeater extends the leases of the executor's jobs.
func (m *Manager) newHeartbeater() *heartbeat.Heartbeater {
	return heartbeat.New(heartbeat.Config{
		Broker:        m.b,
		Interval:      m.cfg.HeartbeatInterval,
		LeaseDuration: m.cfg.LeaseDuration,
		Logger:        m.log,
		Leases:        m.exec.leases,
	})
}

func (m *Manager) newMaintainer() *maintenance.Maintainer {
	return maintenance.New(maintenance.Config{
		Broker:   m.b,
		Queues:   m.queueNames(),
		Interval: m.cfg.MaintainInterval,
		LeaseTTL: m.cfg.MaintainLease,
		Holder:   m.cfg.WorkerID,
		Retention: broker.QueueMaintainParams{
			CompletedMaxAge:   max(m.cfg.CompletedMaxAge, 0),
			CompletedMaxCount: max(m.cfg.CompletedMaxCount, 0),
			DeadMaxAge:        max(m.cfg.DeadMaxAge, 0),
			// Twice the lease: jobs that died beside a crashing one start
			// apart from it by far more than a fetch round; the lease is
			// already the time a crash takes to show.
			CrashSpread: 2 * m.cfg.LeaseDuration,
		},
		MaxCrashes:   m.maxCrashes(),
		Logger:       m.log,
		IdleInterval: max(m.cfg.MaintainInterval, idleMaintainInterval),
		TouchDelay:   m.cfg.LeaseDuration,
	})
}

// idleMaintainInterval is how often a queue with no pending, scheduled or
// active job is maintained while no job comes into it: only retention has
// work there. Every Manager serving the queue hears of a job that comes in
// (a wake) and maintains it from its next round.
const idleMaintainInterval = 5 * time.Minute

// maxCrashes returns each queue's quarantine rule, its own or the
// Manager's; queues with the rule off are absent.
func (m *Manager) maxCrashes() map[string]int {
	rules := map[string]int{}
	for _, q := range m.queues {
		n := q.cfg.MaxCrashes
		if n == 0 {
			n = m.cfg.MaxCrashes
		}
		if n > 0 {
			rules[q.cfg.Name] = n
		}
	}
	return rules
}
