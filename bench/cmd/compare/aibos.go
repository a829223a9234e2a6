package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/broker/redisbroker"
	"github.com/aibos/worker/broker/sqlitebroker"
)

const aibosQueue = "default"

// aibos runs aibos-worker on a broker opened per workload: Redis, or a
// fresh SQLite file for the embedded-store column.
type aibos struct {
	label string
	open  func() (broker.Broker, func(), error)
}

func (a *aibos) name() string { return a.label }

// newAibosRedis is aibos-worker on the bench's redis-server.
func newAibosRedis(srv *redisServer) *aibos {
	return &aibos{label: "aibos", open: func() (broker.Broker, func(), error) {
		b, err := redisbroker.Open(srv.url, redisbroker.Config{})
		if err != nil {
			return nil, nil, err
		}
		return b, func() { _ = b.Close() }, nil
	}}
}

// sqliteSystem is aibos-worker on a fresh embedded store per workload.
func sqliteSystem() (*aibos, func(), error) {
	dir, err := os.MkdirTemp("", "aibos-bench-")
	if err != nil {
		return nil, nil, err
	}
	i := 0
	return &aibos{label: "sqlite", open: func() (broker.Broker, func(), error) {
		i++
		path := filepath.Join(dir, fmt.Sprintf("bench-%d.db", i))
		b, err := sqlitebroker.Open(path, sqlitebroker.Config{})
		if err != nil {
			return nil, nil, err
		}
		return b, func() { _ = b.Close(); _ = os.Remove(path); _ = os.Remove(path + "-wal"); _ = os.Remove(path + "-shm") }, nil
	}}, func() { _ = os.RemoveAll(dir) }, nil
}

// measureSQLite runs workloads a-c on the embedded store.
func measureSQLite(ctx context.Context, cfg *config, res results) error {
	s, cleanup, err := sqliteSystem()
	if err != nil {
		return err
	}
	defer cleanup()
	set := func(metric string, v float64) {
		res.set("sqlite", metric, v)
		if cfg.verbose {
			fmt.Fprintf(os.Stderr, "%-7s %-28s %12.2f\n", "sqlite", metric, v)
		}
	}
	for _, g := range []int{1, 32} {
		d, err := s.enqueue(ctx, cfg.n, g)
		if err != nil {
			return fmt.Errorf("enqueue from %d: %w", g, err)
		}
		set(fmt.Sprintf("a enqueue x%d jobs/s", g), float64(cfg.n)/d.Seconds())
	}
	d, err := s.bulk(ctx, cfg.n, 1000)
	if err != nil {
		return fmt.Errorf("bulk: %w", err)
	}
	set("a enqueue bulk jobs/s", float64(cfg.n)/d.Seconds())
	for _, conc := range []int{10, 50} {
		if err := s.fill(ctx, cfg.n); err != nil {
			return err
		}
		d, err := s.process(ctx, cfg.n, conc)
		if err != nil {
			return fmt.Errorf("process at %d: %w", conc, err)
		}
		set(fmt.Sprintf("b process c%d jobs/s", conc), float64(cfg.n)/d.Seconds())
	}
	lags, err := s.latency(ctx, 1000, cfg.latencyS, 10)
	if err != nil {
		return fmt.Errorf("latency: %w", err)
	}
	set("c latency p50 ms", percentile(lags, 50))
	set("c latency p95 ms", percentile(lags, 95))
	set("c latency p99 ms", percentile(lags, 99))
	return nil
}

// The store of fill and process must be the same: fill keeps it open.
var filled struct {
	b     broker.Broker
	close func()
}

func (a *aibos) client() (*worker.Client, broker.Broker, func(), error) {
	b, closeB, err := a.open()
	if err != nil {
		return nil, nil, nil, fmt.Errorf("open broker: %w", err)
	}
	c, err := worker.NewClient(b, worker.ClientConfig{})
	if err != nil {
		closeB()
		return nil, nil, nil, err
	}
	return c, b, closeB, nil
}

func (a *aibos) enqueue(ctx context.Context, n, g int) (time.Duration, error) {
	c, _, closeB, err := a.client()
	if err != nil {
		return 0, err
	}
	defer closeB()
	start := time.Now()
	err = split(n, g, func(int) error {
		_, err := c.Add(ctx, aibosQueue, worker.JobSpec{Type: "bench", Data: json.RawMessage(payload)})
		return err
	})
	return time.Since(start), err
}

func (a *aibos) bulk(ctx context.Context, n, batch int) (time.Duration, error) {
	c, _, closeB, err := a.client()
	if err != nil {
		return 0, err
	}
	defer closeB()
	start := time.Now()
	err = addBulk(ctx, c, n, batch)
	return time.Since(start), err
}

func addBulk(ctx context.Context, c *worker.Client, n, batch int) error {
	specs := make([]worker.JobSpec, 0, batch)
	for i := 0; i < n; i++ {
		specs = append(specs, worker.JobSpec{Type: "bench", Data: json.RawMessage(payload)})
		if len(specs) == batch || i == n-1 {
			if _, err := c.AddMany(ctx, aibosQueue, specs); err != nil {
				return err
			}
			specs = specs[:0]
		}
	}
	return nil
}

func (a *aibos) fill(ctx context.Context, n int) error {
	c, b, closeB, err := a.client()
	if err != nil {
		return err
	}
	if err := addBulk(ctx, c, n, 1000); err != nil {
		closeB()
		return err
	}
	filled.b, filled.close = b, closeB
	return nil
}

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// startManager runs a Manager with default settings but concurrency.
func startManager(ctx context.Context, b broker.Broker, conc int, h func(*worker.Job)) (*worker.Manager, error) {
	m, err := worker.NewManager(b, worker.ManagerConfig{Concurrency: conc, Logger: quietLogger()})
	if err != nil {
		return nil, err
	}
	if err := m.HandleFunc("bench", func(_ context.Context, j *worker.Job) error { h(j); return nil }); err != nil {
		return nil, err
	}
	return m, m.Start(ctx)
}

func (a *aibos) process(ctx context.Context, n, conc int) (time.Duration, error) {
	b, closeB := filled.b, filled.close
	if b == nil {
		return 0, fmt.Errorf("process without fill")
	}
	filled.b = nil
	defer closeB()
	cnt := newCounter(n)
	start := time.Now()
	m, err := startManager(ctx, b, conc, func(*worker.Job) { cnt.inc() })
	if err != nil {
		return 0, err
	}
	defer func() { _ = m.Shutdown(ctx) }()
	if err := cnt.wait(2 * time.Minute); err != nil {
		return 0, err
	}
	err = waitUntil(time.Minute, func() (bool, error) {
		st, err := b.QueueStats(ctx, &broker.QueueStatsParams{Queue: aibosQueue})
		return err == nil && st.Pending == 0 && st.Active == 0, err
	})
	return time.Since(start), err
}

func (a *aibos) timed(ctx context.Context, total int, seconds float64, conc int, delay time.Duration) ([]float64, error) {
	c, b, closeB, err := a.client()
	if err != nil {
		return nil, err
	}
	defer closeB()
	rec := newLagRecorder(total)
	m, err := startManager(ctx, b, conc, func(j *worker.Job) {
		var p stampPayload
		if json.Unmarshal(j.Data, &p) == nil {
			rec.add(p.Due)
		}
	})
	if err != nil {
		return nil, err
	}
	defer func() { _ = m.Shutdown(ctx) }()
	time.Sleep(500 * time.Millisecond) // let the worker go idle first
	err = pace(total, seconds, func(int) error {
		t := nowMs()
		p := stampPayload{Invoice: "INV-0001", Amount: 1250, Due: t + float64(delay)/1e6}
		_, err := c.Add(ctx, aibosQueue, worker.JobSpec{Type: "bench", Data: p, Delay: delay})
		return err
	})
	if err != nil {
		return nil, err
	}
	return rec.wait(30 * time.Second)
}

func (a *aibos) latency(ctx context.Context, rate int, seconds float64, conc int) ([]float64, error) {
	return a.timed(ctx, int(float64(rate)*seconds), seconds, conc, 0)
}

func (a *aibos) delayed(ctx context.Context, n int, seconds float64, delay time.Duration) ([]float64, error) {
	return a.timed(ctx, n, seconds, 10, delay)
}
