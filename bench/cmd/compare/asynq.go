package main

import (
	"context"
	"encoding/json"
	"time"

	"github.com/hibiken/asynq"
)

// asynqSystem runs asynq v0.26 with its default settings except the
// server's concurrency.
type asynqSystem struct {
	srv *redisServer
}

func (a *asynqSystem) name() string { return "asynq" }

func (a *asynqSystem) opt() asynq.RedisClientOpt { return asynq.RedisClientOpt{Addr: a.srv.addr} }

func (a *asynqSystem) enqueue(ctx context.Context, n, g int) (time.Duration, error) {
	c := asynq.NewClient(a.opt())
	defer c.Close()
	start := time.Now()
	err := split(n, g, func(int) error {
		_, err := c.EnqueueContext(ctx, asynq.NewTask("bench", payload))
		return err
	})
	return time.Since(start), err
}

// bulk: asynq has no batch enqueue.
func (a *asynqSystem) bulk(context.Context, int, int) (time.Duration, error) {
	return 0, errUnsupported
}

// fill enqueues from 32 goroutines, asynq's fastest way.
func (a *asynqSystem) fill(ctx context.Context, n int) error {
	_, err := a.enqueue(ctx, n, 32)
	return err
}

func (a *asynqSystem) server(conc int, h func(*asynq.Task)) *asynq.Server {
	srv := asynq.NewServer(a.opt(), asynq.Config{Concurrency: conc, LogLevel: asynq.FatalLevel})
	mux := asynq.NewServeMux()
	mux.HandleFunc("bench", func(_ context.Context, t *asynq.Task) error { h(t); return nil })
	_ = srv.Start(mux)
	return srv
}

func (a *asynqSystem) process(ctx context.Context, n, conc int) (time.Duration, error) {
	cnt := newCounter(n)
	start := time.Now()
	srv := a.server(conc, func(*asynq.Task) { cnt.inc() })
	defer srv.Shutdown()
	if err := cnt.wait(2 * time.Minute); err != nil {
		return 0, err
	}
	insp := asynq.NewInspector(a.opt())
	defer insp.Close()
	err := waitUntil(time.Minute, func() (bool, error) {
		q, err := insp.GetQueueInfo("default")
		return err == nil && q.Pending == 0 && q.Active == 0, err
	})
	return time.Since(start), err
}

func (a *asynqSystem) timed(ctx context.Context, total int, seconds float64, conc int, delay time.Duration) ([]float64, error) {
	rec := newLagRecorder(total)
	srv := a.server(conc, func(t *asynq.Task) {
		var p stampPayload
		if json.Unmarshal(t.Payload(), &p) == nil {
			rec.add(p.Due)
		}
	})
	defer srv.Shutdown()
	c := asynq.NewClient(a.opt())
	defer c.Close()
	time.Sleep(500 * time.Millisecond)
	err := pace(total, seconds, func(int) error {
		t := nowMs()
		b, _ := json.Marshal(stampPayload{Invoice: "INV-0001", Amount: 1250, Due: t + float64(delay)/1e6})
		var opts []asynq.Option
		if delay > 0 {
			opts = append(opts, asynq.ProcessIn(delay))
		}
		_, err := c.EnqueueContext(ctx, asynq.NewTask("bench", b), opts...)
		return err
	})
	if err != nil {
		return nil, err
	}
	return rec.wait(30 * time.Second)
}

func (a *asynqSystem) latency(ctx context.Context, rate int, seconds float64, conc int) ([]float64, error) {
	return a.timed(ctx, int(float64(rate)*seconds), seconds, conc, 0)
}

func (a *asynqSystem) delayed(ctx context.Context, n int, seconds float64, delay time.Duration) ([]float64, error) {
	return a.timed(ctx, n, seconds, 10, delay)
}
