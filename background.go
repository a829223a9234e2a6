package worker

import (
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
		},
		Logger: m.log,
	})
}
