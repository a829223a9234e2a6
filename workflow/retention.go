package workflow

import (
	"context"
	"fmt"
	"sync"
	"time"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/broker"
)

// maintainBatch is how many runs one WorkflowRunMaintain call examines per
// rule; a pass repeats calls while they remove a full batch.
const maintainBatch = 1000

// maxBatchesPerPass bounds one pass, so that a huge backlog is worked off
// over several intervals rather than in one long burst.
const maxBatchesPerPass = 100

// retention lets Close stop the engine's retention loops early.
type retention struct {
	mu     sync.Mutex
	closed bool
	stop   chan struct{} // closed by Close
}

// Maintain applies the retention rules once: it removes, whole, the
// engine's finished runs (succeeded, failed or cancelled) that finished
// longer than FinishedMaxAge ago or are not among the FinishedMaxCount that
// finished last, and returns how many it removed. A removed run's
// idempotency key may start a new run. Running runs are never removed, nor
// finished runs whose compensation or hook has not finished yet. An
// attached engine calls it every RetentionInterval; call it yourself to
// apply retention without a Manager. Safe to call from many processes at
// once.
func (e *Engine) Maintain(ctx context.Context) (int, error) {
	p := &broker.WorkflowRunMaintainParams{
		Queue:            e.cfg.Queue,
		FinishedMaxAge:   max(e.cfg.FinishedMaxAge, 0),
		FinishedMaxCount: max(e.cfg.FinishedMaxCount, 0),
		Limit:            maintainBatch,
	}
	if p.FinishedMaxAge == 0 && p.FinishedMaxCount == 0 {
		return 0, nil
	}
	total := 0
	for range maxBatchesPerPass {
		n, err := e.store.WorkflowRunMaintain(ctx, p)
		total += n
		if err != nil {
			return total, fmt.Errorf("workflow: remove finished runs of queue %q: %w", e.cfg.Queue, err)
		}
		if n < maintainBatch {
			break
		}
	}
	return total, nil
}

// startRetention runs a retention loop for as long as m runs (see
// worker.Manager.Go), unless the engine is closed or there is nothing to
// apply.
func (e *Engine) startRetention(m *worker.Manager) {
	r := &e.ret
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed || e.cfg.RetentionInterval < 0 || (e.cfg.FinishedMaxAge < 0 && e.cfg.FinishedMaxCount < 0) {
		return
	}
	m.Go(e.retentionLoop)
}

// retentionLoop calls Maintain every RetentionInterval until ctx ends
// (its Manager shuts down) or the engine is closed.
func (e *Engine) retentionLoop(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	t := time.NewTicker(e.cfg.RetentionInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-e.ret.stop:
			return
		case <-t.C:
		}
		n, err := e.Maintain(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			e.cfg.Logger.Error("apply workflow run retention", "queue", e.cfg.Queue, "removed", n, "err", err)
		case n > 0:
			e.cfg.Logger.Debug("removed finished workflow runs", "queue", e.cfg.Queue, "removed", n)
		}
	}
}

// Close stops the engine's background retention; the loops return at
// once, and each Manager's Shutdown waits for its loop. Runs and their jobs
// are not affected. The loops end with their Managers anyway, so Close is
// only needed to stop retention while Managers run. Close is idempotent;
// after it, Attach registers processors but starts no retention.
func (e *Engine) Close() error {
	r := &e.ret
	r.mu.Lock()
	if !r.closed {
		r.closed = true
		close(r.stop)
	}
	r.mu.Unlock()
	return nil
}
