package series

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/aibos/worker"
	"github.com/aibos/worker/broker"
)

// QueuesScope is the scope of the list of queues that have series: a
// document (kind "series-queue", key the queue's name) per queue.
const QueuesScope = "_series"

const (
	kind        = "series"
	kindQueue   = "series-queue"
	indexMinute = "minute"
	indexAll    = "all"
	maxRetries  = 1000
	pruneBatch  = 100
)

// Config configures a Recorder.
type Config struct {
	// FlushInterval is how often Run adds the recorded counts to the store.
	// Defaults to 10s.
	FlushInterval time.Duration
	// Retention is how long minutes are kept in the store. Defaults to 24h.
	Retention time.Duration
	// Logger receives flush errors. Defaults to slog.Default().
	Logger *slog.Logger
}

type key struct {
	queue  string
	minute int64 // Unix seconds of the minute's start
}

// Recorder records a Manager's events per queue and minute and adds them
// to the store. Its methods are safe for concurrent use; many processes'
// Recorders may flush into one store at once.
type Recorder struct {
	c       broker.Committer
	cfg     Config
	mu      sync.Mutex
	pending map[key]*Minute
	known   map[string]bool // queues listed in QueuesScope; touched by Flush only
	swept   time.Time       // the last prune of every queue; touched by Flush only
	flushMu sync.Mutex      // one Flush at a time, for known and swept
}

// NewRecorder returns a Recorder that stores into b. It fails if b does not
// implement broker.Committer.
func NewRecorder(b broker.Broker, cfg Config) (*Recorder, error) {
	c, ok := b.(broker.Committer)
	if !ok {
		return nil, fmt.Errorf("series recorder: broker %T does not implement broker.Committer", b)
	}
	if cfg.FlushInterval <= 0 {
		cfg.FlushInterval = 10 * time.Second
	}
	if cfg.Retention <= 0 {
		cfg.Retention = 24 * time.Hour
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Recorder{c: c, cfg: cfg, pending: map[key]*Minute{}, known: map[string]bool{}}, nil
}

// Observe records one Manager event: pass it as ManagerConfig.OnEvent, or
// call it from the OnEvent func that also feeds the metrics. Started,
// completed, retrying and dead events count; it never blocks on the store.
func (r *Recorder) Observe(e worker.Event) {
	if e.Job == nil {
		return
	}
	switch e.Kind {
	case worker.EventStarted, worker.EventCompleted, worker.EventRetrying, worker.EventDead:
	default:
		return
	}
	at := e.Time
	if at.IsZero() {
		at = time.Now()
	}
	k := key{queue: e.Job.Queue, minute: at.Truncate(time.Minute).Unix()}
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.pending[k]
	if m == nil {
		m = &Minute{}
		r.pending[k] = m
	}
	switch e.Kind {
	case worker.EventStarted:
		m.start(e.Job.TenantID, 1)
		return
	case worker.EventCompleted:
		m.Completed++
	default:
		m.Failed++
		if e.Kind == worker.EventDead {
			m.Dead++
		}
	}
	m.Latency.Add(e.Duration)
}

// Flush adds what was recorded since the last flush to the stored minutes,
// each with a compare-and-set retried on conflict, so that concurrent
// flushes of other processes are merged, never overwritten. What it could
// not store is kept for the next flush. It also removes stored minutes older
// than the retention, a batch at a time, in the queues it flushed.
func (r *Recorder) Flush(ctx context.Context) error {
	r.flushMu.Lock()
	defer r.flushMu.Unlock()
	r.mu.Lock()
	batch := r.pending
	r.pending = map[key]*Minute{}
	r.mu.Unlock()
	var errs []error
	queues := map[string]bool{}
	for k, m := range batch {
		if err := r.add(ctx, k, m); err != nil {
			errs = append(errs, err)
			r.keep(k, m)
			continue
		}
		queues[k.queue] = true
	}
	for q := range queues {
		if err := r.list(ctx, q); err != nil {
			errs = append(errs, err)
		}
	}
	// The queues flushed now are pruned at once; the others (a queue whose
	// workers stopped) on a sweep of every queue, first and then every
	// 1/24 of the retention.
	if time.Since(r.swept) > r.cfg.Retention/24 {
		all, err := listQueues(ctx, r.c)
		if err != nil {
			errs = append(errs, err)
		}
		for _, q := range all {
			queues[q] = true
		}
		if err == nil {
			r.swept = time.Now()
		}
	}
	for q := range queues {
		if err := r.prune(ctx, q); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// list adds queue to the list of queues with series, once per Recorder.
func (r *Recorder) list(ctx context.Context, queue string) error {
	if r.known[queue] {
		return nil
	}
	_, err := r.c.Commit(ctx, &broker.CommitParams{Scope: QueuesScope, Docs: []*broker.DocWrite{{
		Kind: kindQueue, Key: queue, Body: json.RawMessage(`{}`), Index: []broker.IndexEntry{{Name: indexAll}}}}})
	if err != nil && !errors.Is(err, broker.ErrConflict) { // a conflict: another process listed it
		return fmt.Errorf("list queue %q as having series: %w", queue, err)
	}
	r.known[queue] = true
	return nil
}

// Queues names the queues that have series, sorted.
func Queues(ctx context.Context, b broker.Broker) ([]string, error) {
	c, ok := b.(broker.Committer)
	if !ok {
		return nil, fmt.Errorf("list the queues with series: broker %T does not implement broker.Committer", b)
	}
	return listQueues(ctx, c)
}

func listQueues(ctx context.Context, c broker.Committer) ([]string, error) {
	var out []string
	for offset := 0; ; {
		l, err := c.DocList(ctx, &broker.DocListParams{Scope: QueuesScope, Kind: kindQueue, Index: indexAll, Offset: offset, Limit: 1000})
		if err != nil {
			return nil, fmt.Errorf("list the queues with series: %w", err)
		}
		for _, d := range l.Docs {
			out = append(out, d.Key)
		}
		offset += len(l.Docs)
		if len(l.Docs) == 0 || offset >= l.Total {
			return out, nil
		}
	}
}

// keep puts m back to be flushed again.
func (r *Recorder) keep(k key, m *Minute) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if cur := r.pending[k]; cur != nil {
		cur.merge(m)
		return
	}
	r.pending[k] = m
}

func (r *Recorder) add(ctx context.Context, k key, delta *Minute) error {
	docKey := strconv.FormatInt(k.minute, 10)
	for range maxRetries {
		sum := &Minute{Start: time.Unix(k.minute, 0).UTC()}
		var version int64
		d, err := r.c.DocGet(ctx, k.queue, kind, docKey)
		switch {
		case err == nil:
			if err := json.Unmarshal(d.Body, sum); err != nil {
				return fmt.Errorf("add to the series of queue %q at %s: decode: %w", k.queue, sum.Start.Format(time.RFC3339), err)
			}
			version = d.Version
		case !errors.Is(err, broker.ErrDocNotFound):
			return fmt.Errorf("add to the series of queue %q: read minute %s: %w", k.queue, sum.Start.Format(time.RFC3339), err)
		}
		sum.merge(delta)
		body, err := json.Marshal(sum)
		if err != nil {
			return fmt.Errorf("add to the series of queue %q: encode: %w", k.queue, err)
		}
		_, err = r.c.Commit(ctx, &broker.CommitParams{Scope: k.queue, Docs: []*broker.DocWrite{{
			Kind: kind, Key: docKey, Version: version, Body: body,
			Index: []broker.IndexEntry{{Name: indexMinute, Score: k.minute}},
		}}})
		if errors.Is(err, broker.ErrConflict) {
			continue
		}
		if err != nil {
			return fmt.Errorf("add to the series of queue %q at %s: %w", k.queue, sum.Start.Format(time.RFC3339), err)
		}
		return nil
	}
	return fmt.Errorf("add to the series of queue %q: still conflicting after %d attempts: %w", k.queue, maxRetries, broker.ErrConflict)
}

// prune removes up to a batch of queue's minutes older than the retention.
// A minute another process changes meanwhile is left for a later prune.
func (r *Recorder) prune(ctx context.Context, queue string) error {
	now, err := r.c.Now(ctx)
	if err != nil {
		return fmt.Errorf("prune the series of queue %q: read the broker clock: %w", queue, err)
	}
	cutoff := now.Add(-r.cfg.Retention).Unix()
	l, err := r.c.DocList(ctx, &broker.DocListParams{Scope: queue, Kind: kind, Index: indexMinute, Min: 1, Max: cutoff, Limit: pruneBatch})
	if err != nil {
		return fmt.Errorf("prune the series of queue %q: %w", queue, err)
	}
	for _, d := range l.Docs {
		_, err := r.c.Commit(ctx, &broker.CommitParams{Scope: queue, Docs: []*broker.DocWrite{{Kind: kind, Key: d.Key, Version: d.Version, Delete: true}}})
		if err != nil && !errors.Is(err, broker.ErrConflict) {
			return fmt.Errorf("prune the series of queue %q: %w", queue, err)
		}
	}
	return nil
}

// Run flushes every FlushInterval until ctx is done, then flushes once more
// (bounded by 5 seconds) so that a stopping process keeps its last counts.
// Flush errors are logged; the counts stay for the next flush.
func (r *Recorder) Run(ctx context.Context) error {
	t := time.NewTicker(r.cfg.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			if err := r.Flush(ctx); err != nil && ctx.Err() == nil {
				r.cfg.Logger.Warn("series: flush failed; keeping the counts for the next flush", "error", err)
			}
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if err := r.Flush(fctx); err != nil {
				r.cfg.Logger.Warn("series: last flush failed; counts lost", "error", err)
			}
			return nil
		}
	}
}

// StartRates returns, for each tenant whose jobs of queue started within
// window before now, how many started per second on average; "" stands for
// jobs of no tenant. The window is widened to whole minutes at its start
// (the series' resolution), and what processes recorded but did not yet
// flush (Config.FlushInterval) is not in it.
func StartRates(ctx context.Context, b broker.Broker, queue string, window time.Duration, now time.Time) (map[string]float64, error) {
	if window < time.Minute {
		return nil, fmt.Errorf("start rates of queue %q: window %v is under the series' minute", queue, window)
	}
	from := now.Add(-window).Truncate(time.Minute)
	ms, err := Read(ctx, b, ReadParams{Queue: queue, From: from, To: now})
	if err != nil {
		return nil, err
	}
	secs := now.Sub(from).Seconds()
	out := map[string]float64{}
	for _, m := range ms {
		for tenant, n := range m.Started {
			out[tenant] += float64(n) / secs
		}
	}
	return out, nil
}

// ReadParams selects a range of one queue's minutes.
type ReadParams struct {
	Queue    string
	From, To time.Time // inclusive bounds on a minute's start
}

// Read returns the stored minutes of p.Queue that start within
// [p.From, p.To], oldest first; minutes with nothing recorded are absent.
func Read(ctx context.Context, b broker.Broker, p ReadParams) ([]*Minute, error) {
	c, ok := b.(broker.Committer)
	if !ok {
		return nil, fmt.Errorf("read series: broker %T does not implement broker.Committer", b)
	}
	lo, hi := p.From.Truncate(time.Minute).Unix(), p.To.Unix()
	if p.From.IsZero() || p.To.IsZero() || hi < lo {
		return nil, fmt.Errorf("read the series of queue %q: want from <= to, both set (from %v, to %v)", p.Queue, p.From, p.To)
	}
	var out []*Minute
	for offset := 0; ; {
		l, err := c.DocList(ctx, &broker.DocListParams{Scope: p.Queue, Kind: kind, Index: indexMinute, Min: lo, Max: hi, Offset: offset, Limit: 1000})
		if err != nil {
			return nil, fmt.Errorf("read the series of queue %q: %w", p.Queue, err)
		}
		for _, d := range l.Docs {
			m := &Minute{}
			if err := json.Unmarshal(d.Body, m); err != nil {
				return nil, fmt.Errorf("read the series of queue %q: decode minute %s: %w", p.Queue, d.Key, err)
			}
			out = append(out, m)
		}
		offset += len(l.Docs)
		if len(l.Docs) == 0 || offset >= l.Total {
			return out, nil
		}
	}
}
