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

// retention is the engine's background retention loop.
type retention struct {
	mu       sync.Mutex
	managers []*worker.Manager // attached since the loop started
	running  bool
	closed   bool
	stop     chan struct{} // closed by Close
	wg       sync.WaitGroup
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

// startRetention starts the retention loop unless it runs, the engine is
// closed, or there is nothing to apply.
func (e *Engine) startRetention(m *worker.Manager) {
	r := &e.ret
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed || e.cfg.RetentionInterval < 0 || (e.cfg.FinishedMaxAge < 0 && e.cfg.FinishedMaxCount < 0) {
		return
	}
	r.managers = append(r.managers, m)
	if r.running {
		return
	}
	r.running = true
	r.wg.Add(1)
	go e.retentionLoop()
}

// drainCheckEvery is how often the retention loop looks whether its
// Managers are shutting down. The Manager has no shutdown hook to wait on;
// checking a flag this often is cheap and lets the loop end soon after the
// Managers do, even when Close is never called.
const drainCheckEvery = 50 * time.Millisecond

// retentionLoop calls Maintain every RetentionInterval until Close, or
// until every attached Manager is shutting down.
func (e *Engine) retentionLoop() {
	defer e.ret.wg.Done()
	t := time.NewTicker(e.cfg.RetentionInterval)
	defer t.Stop()
	drain := time.NewTicker(min(drainCheckEvery, e.cfg.RetentionInterval))
	defer drain.Stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-e.ret.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-drain.C:
			if e.managersGone() {
				return
			}
			continue
		case <-t.C:
		}
		if e.managersGone() {
			return
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

// managersGone reports whether every attached Manager is shutting down;
// if so the loop is marked stopped, so a later Attach starts a new one.
func (e *Engine) managersGone() bool {
	r := &e.ret
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range r.managers {
		if !m.Draining() {
			return false
		}
	}
	r.managers, r.running = nil, false
	return true
}

// Close stops the engine's background retention and waits for it to
// return. Runs and their jobs are not affected. Close is idempotent; after
// it, Attach registers processors but starts no retention.
func (e *Engine) Close() error {
	r := &e.ret
	r.mu.Lock()
	if !r.closed {
		r.closed = true
		close(r.stop)
	}
	r.mu.Unlock()
	r.wg.Wait()
	return nil
}
