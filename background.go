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
	return acknowledger.New(m.b, max(256, 2*m.cfg.Concurrency))
}

// newHeartbeater extends the leases of every leased job, running or
// waiting for a slot. A job whose lease was lost has its context cancelled
// with ErrLeaseLost.
func (m *Manager) newHeartbeater() *heartbeat.Heartbeater {
	return heartbeat.New(heartbeat.Config{
		Broker:        m.b,
		Interval:      m.cfg.HeartbeatInterval,
		LeaseDuration: m.cfg.LeaseDuration,
		Logger:        m.log,
		Leases: func() []heartbeat.Lease {
			m.mu.Lock()
			defer m.mu.Unlock()
			ls := make([]heartbeat.Lease, 0, len(m.inflight))
			for r := range m.inflight {
				ls = append(ls, heartbeat.Lease{Params: r.lease(), Lost: func(err error) {
					m.jobLog(r.job).Warn("lease lost; cancelling job", "err", err)
					r.cancel(broker.ErrLeaseLost)
				}})
			}
			return ls
		},
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
