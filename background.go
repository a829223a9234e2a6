package worker

import (
	"context"
	"errors"
	"time"

	"github.com/aibos/worker/broker"
)

// heartbeatLoop extends the leases of running jobs in one batch per tick.
// A job whose lease was lost (recovered elsewhere, or cancelled) has its
// context cancelled with ErrLeaseLost.
func (m *Manager) heartbeatLoop() {
	defer m.bg.Done()
	t := time.NewTicker(m.cfg.HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-m.stopBG:
			return
		case <-t.C:
		}
		m.mu.Lock()
		rs := make([]*running, 0, len(m.inflight))
		ps := make([]*broker.JobLeaseParams, 0, len(m.inflight))
		for r := range m.inflight {
			rs = append(rs, r)
			ps = append(ps, r.lease())
		}
		m.mu.Unlock()
		if len(ps) == 0 {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), m.cfg.HeartbeatInterval)
		errs, err := m.b.JobLeaseExtend(ctx, ps, m.cfg.LeaseDuration)
		cancel()
		if err != nil {
			m.log.Error("extend leases", "jobs", len(ps), "err", err)
			continue
		}
		for i, e := range errs {
			if errors.Is(e, broker.ErrLeaseLost) || errors.Is(e, broker.ErrNotFound) {
				m.jobLog(rs[i].job).Warn("lease lost; cancelling job", "err", e)
				rs[i].cancel(broker.ErrLeaseLost)
			}
		}
	}
}

// maintainLoop runs the broker's housekeeping for every served queue:
// recovering expired leases, promoting due jobs, expiring and retention.
func (m *Manager) maintainLoop() {
	defer m.bg.Done()
	t := time.NewTicker(m.cfg.MaintainInterval)
	defer t.Stop()
	for {
		m.maintain()
		select {
		case <-m.stopBG:
			return
		case <-t.C:
		}
	}
}

func (m *Manager) maintain() {
	for _, q := range m.queues {
		p := &broker.QueueMaintainParams{
			Queue:             q.cfg.Name,
			CompletedMaxAge:   max(m.cfg.CompletedMaxAge, 0),
			CompletedMaxCount: max(m.cfg.CompletedMaxCount, 0),
			DeadMaxAge:        max(m.cfg.DeadMaxAge, 0),
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		res, err := m.b.QueueMaintain(ctx, p)
		cancel()
		if err != nil {
			m.log.Error("maintain queue", "queue", q.cfg.Name, "err", err)
			continue
		}
		if res.Recovered+res.Dead > 0 {
			m.log.Warn("recovered jobs with expired leases", "queue", q.cfg.Name, "recovered", res.Recovered, "dead", res.Dead)
		}
	}
}
