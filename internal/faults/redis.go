package faults

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/internal/faults/oracle"
)

// producer enqueues fault.work jobs one at a time with ids of its own, so
// that an enqueue that failed can still be looked for in the broker.
type producer struct {
	e      *Env
	client *worker.Client // the client it adds with
	stop   chan struct{}
	once   sync.Once
	wg     sync.WaitGroup
	mu     sync.Mutex
	failed []string // ids whose enqueue returned an error
	slow   int      // failed enqueues that took longer than their bound
	errAt  []time.Time
}

// produce starts n goroutines each adding one job every period with
// e.Client until stopped; each Add is bounded by callBound.
func produce(e *Env, n int, period time.Duration, lo, hi int) *producer {
	return produceWith(e, e.Client, n, period, lo, hi)
}

// produceWith is produce adding with client.
func produceWith(e *Env, client *worker.Client, n int, period time.Duration, lo, hi int) *producer {
	p := &producer{e: e, client: client, stop: make(chan struct{})}
	for g := range n {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			tick := time.NewTicker(period)
			defer tick.Stop()
			for i := 0; ; i++ {
				select {
				case <-p.stop:
					return
				case <-tick.C:
				}
				spec := WorkSpec(lo + rand.IntN(hi-lo+1))
				spec.ID = fmt.Sprintf("p%d-%d-%d", g, i, rand.Int64())
				ctx, cancel := context.WithTimeout(context.Background(), callBound)
				begin := time.Now()
				err := e.addWith(ctx, p.client, []worker.JobSpec{spec})
				cancel()
				if err != nil {
					p.mu.Lock()
					p.failed = append(p.failed, spec.ID)
					p.errAt = append(p.errAt, begin)
					if time.Since(begin) > callBound+time.Second {
						p.slow++
					}
					p.mu.Unlock()
				}
			}
		}()
	}
	return p
}

// callBound bounds each enqueue of the producer.
const callBound = time.Second

// Stop stops the producer and waits for it; a second call does nothing.
func (p *producer) Stop() {
	p.once.Do(func() { close(p.stop) })
	p.wg.Wait()
}

// storedAnyway counts the failed enqueues whose job is in the broker or
// has run: an error does not always mean nothing was written (the Client's
// doc says so); it must never mean a half-written job.
func (p *producer) storedAnyway(ctx context.Context, c *Count) (int, error) {
	ran := map[string]bool{}
	for _, l := range c.Runs {
		ran[l.Job] = true
	}
	n := 0
	for _, id := range p.failed {
		_, err := p.e.Client.Get(ctx, Queue, id)
		switch {
		case err == nil || ran[id]:
			n++
		case !errors.Is(err, broker.ErrNotFound):
			return 0, fmt.Errorf("look up failed enqueue %s: %w", id, err)
		}
	}
	return n, nil
}

// firstStartAfter returns how long after at a run first started, or -1.
func firstStartAfter(runs []oracle.Line, at time.Time) time.Duration {
	best := time.Duration(-1)
	for _, l := range runs {
		if l.Kind == "start" && l.Start >= at.UnixNano() {
			if d := time.Duration(l.Start - at.UnixNano()); best < 0 || d < best {
				best = d
			}
		}
	}
	return best
}

// runRedisKill returns the scenario "Redis SIGKILL and restart" with
// appendfsync fsync: Redis is killed under load and restarted on its data
// directory.
func runRedisKill(fsync string) func(ctx context.Context, t testing.TB, full bool, tab *Table) error {
	return func(ctx context.Context, t testing.TB, full bool, tab *Table) error {
		rounds, phase, down := 1, 2*time.Second, time.Second
		if full {
			rounds, phase, down = 3, 6*time.Second, 2*time.Second
		}
		const workers, conc, producers = 3, 10, 4
		period := 20 * time.Millisecond // 4 producers: 200 enqueues/s
		tab.Setup = fmt.Sprintf("redis-server with appendonly yes, appendfsync %s. %d workers × %d concurrency; %d producers add "+
			"one job (50–200 ms) every %s each, each add bounded by %s. %d round(s): %s of load, Redis SIGKILLed, down %s, "+
			"restarted on its data, %s of load; then the queue drains.", fsync, workers, conc, producers, period, callBound,
			rounds, phase, down, phase)
		e := NewEnv(t, Options{Concurrency: conc, LeaseMS: 2000, RedisArgs: []string{"--appendonly", "yes", "--appendfsync", fsync}})
		for slot := 1; slot <= workers; slot++ {
			if _, err := e.StartWorker(ctx, slot); err != nil {
				return err
			}
		}
		prod := produce(e, producers, period, 50, 200)
		var resumes []time.Duration
		var restarts []time.Time
		for range rounds {
			if err := sleepCtx(ctx, phase); err != nil {
				prod.Stop()
				return err
			}
			e.Redis.Kill()
			if err := sleepCtx(ctx, down); err != nil {
				prod.Stop()
				return err
			}
			e.Redis = e.Redis.Restart(t)
			restarts = append(restarts, time.Now())
		}
		err := sleepCtx(ctx, phase)
		prod.Stop()
		if err != nil {
			return err
		}
		c, drainErr, err := e.drainStopCount(ctx)
		if err != nil {
			return err
		}
		for _, at := range restarts {
			resumes = append(resumes, firstStartAfter(c.Runs, at))
		}
		stored, err := prod.storedAnyway(context.WithoutCancel(ctx), c)
		if err != nil {
			return err
		}
		tab.add("Redis kills", rounds)
		if fsync == "always" {
			tab.promise("acknowledged enqueues lost", c.Lost, "0 with appendfsync always", c.Lost == 0)
		} else {
			tab.add("acknowledged enqueues lost (everysec may lose the last second)", c.Lost)
		}
		tab.add("enqueues that returned an error", len(prod.failed))
		tab.add("of those, stored or run anyway (the error came after the write)", stored)
		tab.promise("failed enqueues that overran their bound by more than 1 s", prod.slow, "0", prod.slow == 0)
		missing := 0
		for _, d := range resumes {
			if d < 0 {
				missing++
			}
		}
		tab.promise("restarts after which no job ever started", missing, "0", missing == 0)
		tab.add("time to resume (first job started after the restart), max", quantile(resumes, 1).Round(time.Millisecond))
		c.Lost = 0 // reported above, against the promise of this mode
		tab.addCount(c, false)
		if fsync == "everysec" {
			tab.Notes = append(tab.Notes, "A SIGKILL of redis-server alone keeps what it wrote to the kernel: "+
				"appendfsync everysec loses its last second only when the machine itself fails (power, kernel), "+
				"which this suite does not simulate. So 0 lost here says nothing about a machine crash.")
		}
		return drainErr
	}
}

// runRedisEmpty: Redis without persistence is killed under load and
// restarted empty; every worker must notice, go unready, log it loudly and
// count it in its metrics within 10 s, and carry on with new work.
func runRedisEmpty(ctx context.Context, t testing.TB, full bool, tab *Table) error {
	const workers, conc, producers, within = 3, 10, 4, 10 * time.Second
	phase := 2 * time.Second
	if full {
		phase = 6 * time.Second
	}
	tab.Setup = fmt.Sprintf("redis-server without persistence; %d workers × %d concurrency; %d producers add a job every 20 ms each. "+
		"After %s Redis is SIGKILLed and restarted empty at once; the harness polls each worker's /readyz, its log and "+
		"aibos_worker_broker_data_loss_total, then loads %s more.", workers, conc, producers, phase, phase)
	e := NewEnv(t, Options{Concurrency: conc, LeaseMS: 2000})
	var procs []*Proc
	for slot := 1; slot <= workers; slot++ {
		p, err := e.StartWorker(ctx, slot)
		if err != nil {
			return err
		}
		procs = append(procs, p)
	}
	prod := produce(e, producers, 20*time.Millisecond, 50, 200)
	defer prod.Stop()
	if err := sleepCtx(ctx, phase); err != nil {
		return err
	}
	e.Redis.Kill()
	restart := time.Now() // detection can come before Restart returns
	e.Redis = e.Redis.Restart(t)
	type seen struct{ unready, logged, metric time.Duration }
	got := make([]seen, len(procs))
	wctx, cancel := context.WithTimeout(ctx, within+2*time.Second)
	defer cancel()
	_ = until(wctx, 100*time.Millisecond, func() bool {
		all := true
		for i, p := range procs {
			s := &got[i]
			if s.unready == 0 {
				if ok, err := p.Ready(wctx); err == nil && !ok {
					s.unready = time.Since(restart)
				}
			}
			if s.logged == 0 && !p.LossLogged().IsZero() {
				s.logged = p.LossLogged().Sub(restart)
			}
			if s.metric == 0 {
				if v, err := p.Metric(wctx, "aibos_worker_broker_data_loss_total"); err == nil && v > 0 {
					s.metric = time.Since(restart)
				}
			}
			all = all && s.unready != 0 && s.logged != 0 && s.metric != 0
		}
		return all
	})
	if err := sleepCtx(ctx, phase); err != nil {
		return err
	}
	prod.Stop()
	c, drainErr, err := e.drainStopCount(ctx)
	if err != nil {
		return err
	}
	worst := func(f func(seen) time.Duration) (time.Duration, int) {
		var m time.Duration
		never := 0
		for _, s := range got {
			d := f(s)
			if d == 0 {
				never++
			}
			m = max(m, d)
		}
		return m, never
	}
	for _, x := range []struct {
		name string
		f    func(seen) time.Duration
	}{
		{"unready (/readyz 503)", func(s seen) time.Duration { return s.unready }},
		{"loud log line (DATA LOSS DETECTED)", func(s seen) time.Duration { return s.logged }},
		{"data-loss metric above 0", func(s seen) time.Duration { return s.metric }},
	} {
		m, never := worst(x.f)
		tab.promise("workers that never showed: "+x.name, never, fmt.Sprintf("0 of %d within %s", workers, within), never == 0)
		tab.promise("slowest worker to show: "+x.name, m.Round(time.Millisecond), "within "+within.String(), never == 0 && m <= within)
	}
	after := 0
	for _, l := range c.Runs {
		if l.Kind == "end" && l.Err == "" && l.End > restart.UnixNano() {
			after++
		}
	}
	tab.promise("jobs completed after the restart", after, "above 0 (work carries on)", after > 0)
	tab.add("acknowledged enqueues lost with the data (no persistence: expected)", c.Lost)
	c.Lost = 0
	tab.addCount(c, false)
	return drainErr
}

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
