package faults

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/broker/redisbroker"
)

// runOutage returns the scenario "Redis unreachable" through the fault
// proxy in mode ("refuse" or "drop").
func runOutage(mode string) func(ctx context.Context, t testing.TB, full bool, tab *Table) error {
	return func(ctx context.Context, t testing.TB, full bool, tab *Table) error {
		const workers, conc, producers = 3, 10, 4
		phase, outage := 2*time.Second, 5*time.Second
		if full {
			phase, outage = 5*time.Second, 30*time.Second
		}
		how := map[string]string{"refuse": "refuses connections (every open one closed, nothing listening)",
			"drop": "silently drops every byte both ways on open and new connections"}[mode]
		tab.Setup = fmt.Sprintf("%d workers × %d concurrency and %d producers (a job every 20 ms each, each add bounded by %s) reach "+
			"Redis through a TCP fault proxy. After %s of load the proxy %s for %s, then forwards again; %s more load, then the queue drains.",
			workers, conc, producers, callBound, phase, how, outage, phase)
		e := NewEnv(t, Options{Concurrency: conc, LeaseMS: 5000})
		px, err := NewProxy(e.Redis.Addr)
		if err != nil {
			return err
		}
		defer px.Close()
		e.RedisAddr = px.Addr
		rdb := redis.NewClient(&redis.Options{Addr: px.Addr, DB: redisDB, ContextTimeoutEnabled: true}) // as redisbroker.New asks
		defer rdb.Close()
		b, err := redisbroker.New(rdb, redisbroker.Config{})
		if err != nil {
			return err
		}
		defer b.Close()
		client, err := worker.NewClient(b, worker.ClientConfig{DefaultMaxAttempts: 25})
		if err != nil {
			return err
		}
		var procs []*Proc
		for slot := 1; slot <= workers; slot++ {
			p, err := e.StartWorker(ctx, slot)
			if err != nil {
				return err
			}
			procs = append(procs, p)
		}
		prod := produceWith(e, client, producers, 20*time.Millisecond, 50, 200)
		defer prod.Stop()
		if err := sleepCtx(ctx, phase); err != nil {
			return err
		}
		base := maxRSS(procs)
		ackedBefore := len(e.Acked())
		cut := time.Now()
		if mode == "refuse" {
			px.Refuse()
		} else {
			px.Drop()
		}
		unready := make([]time.Duration, len(procs))
		peak := base
		_ = until(ctx, 250*time.Millisecond, func() bool {
			for i, p := range procs {
				if unready[i] == 0 {
					if ok, err := p.Ready(ctx); err == nil && !ok {
						unready[i] = time.Since(cut)
					}
				}
			}
			peak = max(peak, maxRSS(procs))
			return time.Since(cut) >= outage
		})
		ackedDuring := len(e.Acked()) - ackedBefore
		if err := px.Pass(); err != nil {
			return err
		}
		restored := time.Now()
		readyAgain := make([]time.Duration, len(procs))
		_ = until(ctx, 100*time.Millisecond, func() bool {
			all := true
			for i, p := range procs {
				if readyAgain[i] == 0 {
					if ok, err := p.Ready(ctx); err == nil && ok {
						readyAgain[i] = time.Since(restored)
					}
				}
				all = all && readyAgain[i] != 0
			}
			return all || time.Since(restored) > 30*time.Second
		})
		if err := sleepCtx(ctx, phase); err != nil {
			return err
		}
		prod.Stop()
		c, drainErr, err := e.drainStopCount(ctx)
		if err != nil {
			return err
		}
		stored, err := prod.storedAnyway(context.WithoutCancel(ctx), c)
		if err != nil {
			return err
		}
		failedDuring := 0
		for _, at := range prod.errAt {
			if !at.Before(cut) && at.Before(restored) {
				failedDuring++
			}
		}
		tab.add("enqueues acknowledged during the outage", ackedDuring)
		tab.add("enqueues that returned an error during the outage", failedDuring)
		tab.add("failed enqueues stored or run anyway (the error came after the write)", stored)
		tab.promise("failed enqueues that overran their bound by more than 1 s", prod.slow, "0", prod.slow == 0)
		tab.promise("silent losses (acknowledged, never done)", c.Lost, "0", c.Lost == 0)
		never, worst := 0, time.Duration(0)
		for _, d := range unready {
			if d == 0 {
				never++
			}
			worst = max(worst, d)
		}
		tab.promise("workers that never went unready during the outage", never, "0", never == 0)
		tab.add("slowest worker to go unready", worst.Round(time.Millisecond))
		never, worst = 0, 0
		for _, d := range readyAgain {
			if d == 0 {
				never++
			}
			worst = max(worst, d)
		}
		tab.promise("workers not ready again within 30 s of the restore", never, "0", never == 0)
		tab.add("slowest worker to be ready again", worst.Round(time.Millisecond))
		resume := firstStartAfter(c.Runs, restored)
		tab.promise("work resumed after the restore (first job started)", resume.Round(time.Millisecond), "yes, within 30 s", resume >= 0 && resume < 30*time.Second)
		growth := peak - base
		tab.promise("worker memory (largest RSS) before → peak during the outage",
			fmt.Sprintf("%.0f → %.0f MiB", float64(base)/(1<<20), float64(peak)/(1<<20)), "bounded: growth under 64 MiB", growth < 64<<20)
		c.Lost = 0 // reported above as silent losses
		tab.addCount(c, false)
		return drainErr
	}
}

// maxRSS returns the largest resident memory among procs.
func maxRSS(procs []*Proc) int64 {
	var m int64
	for _, p := range procs {
		if r, err := p.RSS(); err == nil {
			m = max(m, r)
		}
	}
	return m
}
