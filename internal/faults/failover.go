package faults

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// runSentinelFailover: under load, the Sentinel setup's master is
// SIGKILLed; the sentinels promote the replica and the workers and
// producers follow through the sentinels. Replication is asynchronous, so
// acknowledged enqueues the replica had not received yet are lost: the
// scenario counts them, and how long work took to resume.
func runSentinelFailover(ctx context.Context, t testing.TB, full bool, tab *Table) error {
	phase := 3 * time.Second
	if full {
		phase = 8 * time.Second
	}
	const workers, conc, producers = 3, 10, 4
	period := 20 * time.Millisecond
	tab.Setup = fmt.Sprintf("A master, a replica and three sentinels (down-after 1 s, quorum 2); %d workers × %d concurrency and %d "+
		"producers (a job of 50–200 ms every %s each, each add bounded by %s) reach the master through the sentinels. After %s "+
		"of load the master is SIGKILLed; the load goes on %s after the replica's promotion, then the queue drains.",
		workers, conc, producers, period, callBound, phase, phase)
	e := NewEnv(t, Options{Concurrency: conc, LeaseMS: 2000, Sentinel: true})
	for slot := 1; slot <= workers; slot++ {
		if _, err := e.StartWorker(ctx, slot); err != nil {
			return err
		}
	}
	prod := produce(e, producers, period, 50, 200)
	if err := sleepCtx(ctx, phase); err != nil {
		prod.Stop()
		return err
	}
	killedAt := time.Now()
	promotion := e.Sentinel.KillMaster(t)
	err := sleepCtx(ctx, phase)
	prod.Stop()
	if err != nil {
		return err
	}
	drainErr := e.WaitDrained(ctx)
	stopAll(ctx, e)
	c, err := e.Count(context.WithoutCancel(ctx))
	if err != nil {
		return err
	}
	stored, err := prod.storedAnyway(context.WithoutCancel(ctx), c)
	if err != nil {
		return err
	}
	resume := firstStartAfter(c.Runs, killedAt.Add(promotion))
	tab.add("time from the kill until a majority of sentinels named the replica master", promotion.Round(time.Millisecond))
	tab.add("acknowledged enqueues lost (asynchronous replication: the replica had not received them)", c.Lost)
	tab.add("enqueues that returned an error", len(prod.failed))
	tab.add("of those, stored or run anyway (the error came after the write)", stored)
	tab.promise("failed enqueues that overran their bound by more than 1 s", prod.slow, "0", prod.slow == 0)
	tab.promise("time to resume (first job started after the promotion)", resume.Round(time.Millisecond), "a job starts again (within 30 s)",
		resume >= 0 && resume <= 30*time.Second)
	c.Lost = 0 // reported above: no promise without REDIS_DURABLE_REPLICAS
	tab.addCount(c, false)
	tab.Notes = append(tab.Notes, "Redis replication is asynchronous: an enqueue acknowledged by the old master and not yet "+
		"sent to the replica is gone after the promotion. REDIS_DURABLE_REPLICAS=1 (WAIT before acknowledging) closes that "+
		"window for users who need it; this scenario runs without it, as most deployments do.")
	return drainErr
}
