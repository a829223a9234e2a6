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
