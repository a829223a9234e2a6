package worker

// QueueWeights returns the weights a Manager configured with queues polls
// them by (weighted scheduling), after its defaults, or its config error.
func QueueWeights(queues []QueueConfig) ([]int, error) {
	cfg := ManagerConfig{Queues: queues, WorkerID: "weights"}
	if err := cfg.withDefaults(); err != nil {
		return nil, err
	}
	return queueWeights(cfg.Queues), nil
}

// RefillAt is refillAt: the free slots worth a fetch for a busy Manager.
func RefillAt(slots, batch int, soon int64) int { return refillAt(slots, batch, soon) }

// LeasedAhead returns how many of queue's jobs the Manager holds leased
// ahead, waiting for a run slot by tenant (see queueSlot.yields).
func (m *Manager) LeasedAhead(queue string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, q := range m.queues {
		if q.cfg.Name == queue {
			for _, jobs := range q.ahead {
				n += len(jobs)
			}
		}
	}
	return n
}

// WatchFor is watchFor: how long a busy Manager's watcher of wakes waits
// for one.
const WatchFor = watchFor
