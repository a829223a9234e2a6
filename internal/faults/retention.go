package faults

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/internal/faults/oracle"
)

// runRetention: a million no-op jobs flow through a few workers with the
// service's retention (completed jobs: the newest 10,000); Redis memory
// after the first fifth, drained, must match memory at the end, drained,
// and a SCAN must find no key of a job the broker no longer lists.
func runRetention(ctx context.Context, t testing.TB, full bool, tab *Table) error {
	const workers, conc, backlog = 4, 50, 20000
	total := 50000
	if full {
		total = 1000000
	}
	first := total / 5
	tab.Setup = fmt.Sprintf("%d workers × %d concurrency process %d jobs of a no-op type (no oracle record: the figures come from "+
		"Redis and the workers' metrics), added in batches of 1,000 while fewer than %d wait, with the service's retention "+
		"(the newest 10,000 completed jobs kept). Redis memory and keys are read with the queue drained after %d jobs and "+
		"again after all %d.", workers, conc, total, backlog, first, total)
	e := NewEnv(t, Options{Concurrency: conc, LeaseMS: 30000})
	for slot := 1; slot <= workers; slot++ {
		if _, err := e.StartWorker(ctx, slot); err != nil {
			return err
		}
	}
	begin := time.Now()
	specs := make([]worker.JobSpec, 1000)
	for i := range specs {
		specs[i] = worker.JobSpec{Type: oracle.TypeNoop}
	}
	added := 0
	// feed adds jobs while fewer than backlog wait, until upto are added.
	feed := func(upto int) error {
		for added < upto {
			st, err := e.Client.Stats(ctx, Queue)
			if err != nil {
				return err
			}
			if st.Pending >= backlog {
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(20 * time.Millisecond):
				}
				continue
			}
			n := min(len(specs), upto-added)
			if _, err := e.Client.AddMany(ctx, Queue, specs[:n]); err != nil {
				return fmt.Errorf("add jobs %d..%d: %w", added, added+n, err)
			}
			added += n
		}
		return e.WaitDrained(ctx)
	}
	if err := feed(first); err != nil {
		return err
	}
	mid, err := e.redisUse(ctx)
	if err != nil {
		return err
	}
	if err := feed(total); err != nil {
		return err
	}
	took := time.Since(begin)
	end, err := e.redisUse(ctx)
	if err != nil {
		return err
	}
	done := 0.0
	for _, p := range e.Procs() {
		v, err := p.Metric(ctx, "aibos_worker_jobs_completed_total")
		if err != nil {
			return err
		}
		done += v
	}
	stopAll(ctx, e)
	tab.add("time to process every job (adding included)", took.Round(time.Second))
	tab.add("throughput (jobs/s)", fmt.Sprintf("%.0f", float64(total)/took.Seconds()))
	tab.promise("jobs completed (the workers' aibos_worker_jobs_completed_total, summed)", int(done), strconv.Itoa(total), int(done) == total)
	tab.add(fmt.Sprintf("Redis used memory, drained after %d jobs", first), mib(mid.memory))
	tab.promise(fmt.Sprintf("Redis used memory, drained after %d jobs", total), mib(end.memory),
		"a plateau: at most 10% (and 4 MiB) above the figure after the first fifth", end.memory <= mid.memory+max(mid.memory/10, 4<<20))
	tab.add(fmt.Sprintf("per-job keys of the queue (state and history), drained after %d jobs", first), mid.jobKeys)
	tab.promise(fmt.Sprintf("per-job keys of the queue, drained after %d jobs", total), end.jobKeys,
		"the same number (retention keeps a fixed count)", end.jobKeys <= mid.jobKeys)
	tab.add(fmt.Sprintf("keys in the database (DBSIZE), drained after %d and %d jobs", first, total), fmt.Sprintf("%d, %d", mid.keys, end.keys))
	tab.add("completed jobs kept (retention)", end.kept)
	tab.promise("orphaned keys (SCAN: a job's key whose job is in no state)", end.orphans, "0", end.orphans == 0)
	return nil
}

// redisUse is what Redis holds for the queue at one moment.
type redisUse struct {
	memory  int64 // INFO used_memory, bytes
	keys    int64 // DBSIZE of the workers' database
	jobKeys int   // the queue's per-job keys (state hashes, histories)
	kept    int64 // completed jobs stored
	orphans int   // job and history keys of jobs in no state zset
}

// redisUse reads Redis's memory, its keys and SCANs the queue's per-job
// keys for jobs no state zset lists, once the maintenance that follows
// the drain has run (completed jobs trimmed to the retention count).
func (e *Env) redisUse(ctx context.Context) (redisUse, error) {
	var u redisUse
	base := "aibos:worker:{" + Queue + "}:"
	states := []string{"scheduled", "pending", "active", "completed", "dead", "cancelled", "expired"}
	// Retention trims in maintenance rounds (1 s): wait until the count
	// stops falling before measuring.
	prev := int64(-1)
	for {
		n, err := e.RDB.ZCard(ctx, base+"completed").Result()
		if err != nil {
			return u, fmt.Errorf("count the completed jobs: %w", err)
		}
		if n == prev {
			u.kept = n
			break
		}
		prev = n
		select {
		case <-ctx.Done():
			return u, ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
	info, err := e.RDB.Info(ctx, "memory").Result()
	if err != nil {
		return u, fmt.Errorf("read Redis memory: %w", err)
	}
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "used_memory:"); ok {
			u.memory, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	if u.keys, err = e.RDB.DBSize(ctx).Result(); err != nil {
		return u, fmt.Errorf("count the keys: %w", err)
	}
	// Bodies are fields of one hash: more fields than jobs are orphans too.
	var stored int64
	for _, s := range states {
		n, err := e.RDB.ZCard(ctx, base+s).Result()
		if err != nil {
			return u, fmt.Errorf("count the %s jobs: %w", s, err)
		}
		stored += n
	}
	bodies, err := e.RDB.HLen(ctx, base+"b").Result()
	if err != nil {
		return u, fmt.Errorf("count the job bodies: %w", err)
	}
	u.orphans += int(max(0, bodies-stored))
	iter := e.RDB.Scan(ctx, 0, base+"*", 1000).Iterator()
	var batch []string
	check := func() error {
		pipe := e.RDB.Pipeline()
		cmds := make([][]*redis.FloatCmd, len(batch))
		for i, k := range batch {
			id := k[strings.LastIndexByte(k, ':')+1:]
			for _, s := range states {
				cmds[i] = append(cmds[i], pipe.ZScore(ctx, base+s, id))
			}
		}
		if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
			return fmt.Errorf("look up the scanned jobs: %w", err)
		}
		for _, cs := range cmds {
			found := false
			for _, c := range cs {
				found = found || c.Err() == nil
			}
			if !found {
				u.orphans++
			}
		}
		batch = batch[:0]
		return nil
	}
	for iter.Next(ctx) {
		k := iter.Val()
		if !strings.HasPrefix(k, base+"j:") && !strings.HasPrefix(k, base+"h:") {
			continue
		}
		u.jobKeys++
		if batch = append(batch, k); len(batch) == 500 {
			if err := check(); err != nil {
				return u, err
			}
		}
	}
	if err := iter.Err(); err != nil {
		return u, fmt.Errorf("scan the keys: %w", err)
	}
	return u, check()
}

// mib formats bytes in MiB.
func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
