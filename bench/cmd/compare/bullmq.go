package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"time"
)

// bullmqSystem drives BullMQ through node/bullmq.js, one process per
// workload, with BullMQ's defaults except the worker's concurrency.
type bullmqSystem struct {
	cfg *config
	srv *redisServer
}

func (b *bullmqSystem) name() string { return "bullmq" }

type bullmqResult struct {
	Seconds float64   `json:"seconds"`
	LagsMs  []float64 `json:"lags_ms"`
	Missing int       `json:"missing"`
}

func (b *bullmqSystem) run(ctx context.Context, workload string, args map[string]any) (*bullmqResult, error) {
	host, port, _ := net.SplitHostPort(b.srv.addr)
	args["host"] = host
	args["port"], _ = strconv.Atoi(port)
	raw, _ := json.Marshal(args)
	cmd := exec.CommandContext(ctx, "node", "bullmq.js", workload, string(raw))
	cmd.Dir, cmd.Stderr = b.cfg.nodeDir, os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("node bullmq.js %s: %w", workload, err)
	}
	var r bullmqResult
	if err := json.Unmarshal(bytes.TrimSpace(out), &r); err != nil {
		return nil, fmt.Errorf("read bullmq.js %s output: %w", workload, err)
	}
	if r.Missing > 0 {
		return nil, fmt.Errorf("bullmq %s: %d jobs never started", workload, r.Missing)
	}
	return &r, nil
}

func secs(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

func (b *bullmqSystem) enqueue(ctx context.Context, n, g int) (time.Duration, error) {
	r, err := b.run(ctx, "enqueue", map[string]any{"n": n, "conc": g})
	if err != nil {
		return 0, err
	}
	return secs(r.Seconds), nil
}

func (b *bullmqSystem) bulk(ctx context.Context, n, batch int) (time.Duration, error) {
	r, err := b.run(ctx, "bulk", map[string]any{"n": n, "batch": batch})
	if err != nil {
		return 0, err
	}
	return secs(r.Seconds), nil
}

func (b *bullmqSystem) fill(ctx context.Context, n int) error {
	_, err := b.bulk(ctx, n, 1000)
	return err
}

func (b *bullmqSystem) process(ctx context.Context, n, conc int) (time.Duration, error) {
	r, err := b.run(ctx, "process", map[string]any{"n": n, "conc": conc})
	if err != nil {
		return 0, err
	}
	return secs(r.Seconds), nil
}

func (b *bullmqSystem) latency(ctx context.Context, rate int, seconds float64, conc int) ([]float64, error) {
	r, err := b.run(ctx, "latency", map[string]any{"rate": rate, "seconds": seconds, "conc": conc})
	if err != nil {
		return nil, err
	}
	return r.LagsMs, nil
}

func (b *bullmqSystem) delayed(ctx context.Context, n int, seconds float64, delay time.Duration) ([]float64, error) {
	r, err := b.run(ctx, "delayed", map[string]any{"n": n, "seconds": seconds, "delay": delay.Milliseconds(), "conc": 10})
	if err != nil {
		return nil, err
	}
	return r.LagsMs, nil
}
