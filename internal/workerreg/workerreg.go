// Package workerreg is the registry of connected worker processes: each
// Manager's process writes a heartbeat document into the broker's store
// every few seconds (id, host, pid, version, queues, concurrency, busy
// slots, utilisation, start and last-seen times), and readers list them,
// marking as gone those not seen for three of their intervals.
//
// Times are the broker's clock, so a worker whose own clock is off is
// neither shown as gone nor kept alive by it. A worker is one document
// (kind "worker", key its id) in the scope Scope, listed in the index
// "seen" scored by its last-seen time in milliseconds; every heartbeat
// removes a batch of entries gone for longer than the removal age.
package workerreg

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/aibos/worker"
	"github.com/aibos/worker/broker"
)

// Scope is the broker scope of the registry's documents.
const Scope = "_workers"

const (
	kind       = "worker"
	indexSeen  = "seen"
	pruneBatch = 100
	// GoneAfter is how many missed heartbeat intervals make a worker gone.
	GoneAfter = 3
)

// Worker is one worker process as its last heartbeat described it.
type Worker struct {
	ID          string   `json:"id"`
	Host        string   `json:"host"`
	PID         int      `json:"pid"`
	Version     string   `json:"version"`
	Queues      []string `json:"queues"`
	Concurrency int      `json:"concurrency"`
	// Busy is how many jobs ran at the last heartbeat.
	Busy int `json:"busy"`
	// Utilisation is Busy / Concurrency at the last heartbeat, 0..1.
	Utilisation float64 `json:"utilisation"`
	// Stuck is how many processors ran on past their context's end at the
	// last heartbeat (worker.Manager.Stuck): each still holds a slot.
	Stuck int `json:"stuck"`
	// IntervalMs is the worker's heartbeat interval.
	IntervalMs int64     `json:"intervalMs"`
	Started    time.Time `json:"started"`
	LastSeen   time.Time `json:"lastSeen"`
	// Gone is set by List: the worker missed GoneAfter heartbeats.
	Gone bool `json:"gone"`
}

// Config configures a Heartbeater.
type Config struct {
	// Interval is how often the heartbeat is written. Defaults to 5s.
	Interval time.Duration
	// RemoveAfter is how long after its last heartbeat a gone worker stays
	// listed (as gone) before a heartbeat of another worker removes it.
	// Defaults to 1h.
	RemoveAfter time.Duration
	// Version is the program's version, shown in the list.
	Version string
	// Host names the machine. Defaults to os.Hostname().
	Host string
	// Logger receives heartbeat errors. Defaults to slog.Default().
	Logger *slog.Logger
}

// Heartbeater writes one Manager's heartbeats.
type Heartbeater struct {
	c       broker.Committer
	m       *worker.Manager
	cfg     Config
	version int64 // of our document; touched by one goroutine at a time
	started time.Time

	cancel context.CancelFunc
	done   chan struct{}
	stop   sync.Once
}

// Start writes m's first heartbeat into b, returning its error, and then
// one every cfg.Interval until Stop or until ctx is done. It fails if b
// does not implement broker.Committer.
func Start(ctx context.Context, b broker.Broker, m *worker.Manager, cfg Config) (*Heartbeater, error) {
	c, ok := b.(broker.Committer)
	if !ok {
		return nil, fmt.Errorf("worker registry: broker %T does not implement broker.Committer", b)
	}
	if m == nil {
		return nil, errors.New("worker registry: manager is nil")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 5 * time.Second
	}
	if cfg.RemoveAfter <= 0 {
		cfg.RemoveAfter = time.Hour
	}
	if cfg.Host == "" {
		cfg.Host, _ = os.Hostname()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	h := &Heartbeater{c: c, m: m, cfg: cfg, done: make(chan struct{})}
	if err := h.beat(ctx); err != nil {
		return nil, err
	}
	ctx, h.cancel = context.WithCancel(ctx)
	go h.run(ctx)
	return h, nil
}

// Stop stops the heartbeats and removes the worker from the registry (a
// worker that stops cleanly is not shown as gone). It waits for a running
// heartbeat to finish and bounds the removal by ctx. Safe to call more
// than once.
func (h *Heartbeater) Stop(ctx context.Context) error {
	var err error
	h.stop.Do(func() {
		h.cancel()
		<-h.done
		_, err = h.c.Commit(ctx, &broker.CommitParams{Scope: Scope, Docs: []*broker.DocWrite{{
			Kind: kind, Key: h.m.ID(), Version: h.version, Delete: true}}})
		if errors.Is(err, broker.ErrConflict) {
			err = nil // another worker removed or took the entry meanwhile
		}
		if err != nil {
			err = fmt.Errorf("remove worker %q from the registry: %w", h.m.ID(), err)
		}
	})
	return err
}

func (h *Heartbeater) run(ctx context.Context) {
	defer close(h.done)
	t := time.NewTicker(h.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := h.beat(ctx); err != nil && ctx.Err() == nil {
				h.cfg.Logger.Warn("worker registry: heartbeat failed", "worker_id", h.m.ID(), "error", err)
			}
		}
	}
}

// beat writes the heartbeat and removes a batch of long-gone workers.
func (h *Heartbeater) beat(ctx context.Context) error {
	now, err := h.c.Now(ctx)
	if err != nil {
		return fmt.Errorf("heartbeat of worker %q: read the broker clock: %w", h.m.ID(), err)
	}
	now = now.UTC()
	if h.started.IsZero() {
		h.started = now
	}
	w := h.describe(now)
	body, err := json.Marshal(w)
	if err != nil {
		return fmt.Errorf("heartbeat of worker %q: encode: %w", w.ID, err)
	}
	for range 2 {
		res, err := h.c.Commit(ctx, &broker.CommitParams{Scope: Scope, Docs: []*broker.DocWrite{{
			Kind: kind, Key: w.ID, Version: h.version, Body: body,
			Index: []broker.IndexEntry{{Name: indexSeen, Score: now.UnixMilli()}},
		}}})
		if err == nil {
			h.version = res.Versions[0]
			return h.prune(ctx, now)
		}
		if !errors.Is(err, broker.ErrConflict) {
			return fmt.Errorf("heartbeat of worker %q: %w", w.ID, err)
		}
		// Our entry was removed (we looked gone for long) or is not at the
		// version we wrote: take it over at its current version.
		h.version = 0
		if d, err := h.c.DocGet(ctx, Scope, kind, w.ID); err == nil {
			h.version = d.Version
		}
	}
	return fmt.Errorf("heartbeat of worker %q: the entry keeps changing: %w", w.ID, broker.ErrConflict)
}

func (h *Heartbeater) describe(now time.Time) *Worker {
	cfg := h.m.Config()
	queues := make([]string, 0, len(cfg.Queues))
	for _, q := range cfg.Queues {
		queues = append(queues, q.Name)
	}
	conc, busy := h.m.Concurrency(), h.m.Busy()
	util := 0.0
	if conc > 0 {
		util = min(1, float64(busy)/float64(conc))
	}
	return &Worker{ID: h.m.ID(), Host: h.cfg.Host, PID: os.Getpid(), Version: h.cfg.Version, Queues: queues,
		Concurrency: conc, Busy: busy, Utilisation: util, Stuck: h.m.Stuck(), IntervalMs: h.cfg.Interval.Milliseconds(),
		Started: h.started, LastSeen: now}
}

func (h *Heartbeater) prune(ctx context.Context, now time.Time) error {
	l, err := h.c.DocList(ctx, &broker.DocListParams{Scope: Scope, Kind: kind, Index: indexSeen,
		Min: 1, Max: now.Add(-h.cfg.RemoveAfter).UnixMilli(), Limit: pruneBatch})
	if err != nil {
		return fmt.Errorf("remove gone workers: %w", err)
	}
	for _, d := range l.Docs {
		// An entry is removed only once it is gone by its own interval too:
		// a worker that beats rarely is not removed by one that prunes early.
		var w Worker
		if json.Unmarshal(d.Body, &w) == nil && !gone(&w, now) {
			continue
		}
		_, err := h.c.Commit(ctx, &broker.CommitParams{Scope: Scope, Docs: []*broker.DocWrite{{Kind: kind, Key: d.Key, Version: d.Version, Delete: true}}})
		if err != nil && !errors.Is(err, broker.ErrConflict) {
			return fmt.Errorf("remove gone worker %q: %w", d.Key, err)
		}
	}
	return nil
}

// gone reports whether w missed GoneAfter of its heartbeats by now.
func gone(w *Worker, now time.Time) bool {
	return now.Sub(w.LastSeen) > time.Duration(GoneAfter*w.IntervalMs)*time.Millisecond
}

// List returns every registered worker, most recently seen first, with
// Gone set for those not seen for GoneAfter of their intervals by the
// broker's clock.
func List(ctx context.Context, b broker.Broker) ([]*Worker, error) {
	c, ok := b.(broker.Committer)
	if !ok {
		return nil, fmt.Errorf("list workers: broker %T does not implement broker.Committer", b)
	}
	var out []*Worker
	for offset := 0; ; {
		l, err := c.DocList(ctx, &broker.DocListParams{Scope: Scope, Kind: kind, Index: indexSeen, Desc: true, Offset: offset, Limit: 1000})
		if err != nil {
			return nil, fmt.Errorf("list workers: %w", err)
		}
		for _, d := range l.Docs {
			var w Worker
			if err := json.Unmarshal(d.Body, &w); err != nil {
				return nil, fmt.Errorf("list workers: decode %q: %w", d.Key, err)
			}
			w.Gone = gone(&w, l.Now)
			out = append(out, &w)
		}
		offset += len(l.Docs)
		if len(l.Docs) == 0 || offset >= l.Total {
			return out, nil
		}
	}
}
