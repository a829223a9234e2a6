package faults

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/broker/redisbroker"
	"github.com/aibos/worker/internal/faults/oracle"
	"github.com/aibos/worker/internal/redistest"
)

// Queue is the queue every scenario works on.
const Queue = "faults"

// redisDB is the service's default REDIS_DB, which the harness reads too.
const redisDB = 2

// Options shape a scenario's Env.
type Options struct {
	// RedisArgs are extra redis-server arguments (persistence).
	RedisArgs []string
	// Concurrency is each worker's WORKER_CONCURRENCY.
	Concurrency int
	// LeaseMS is each worker's lease (FAULTS_LEASE_MS).
	LeaseMS int
	// DrainMS is each worker's WORKER_DRAIN_TIMEOUT.
	DrainMS int
	// Env is extra environment for every worker.
	Env []string
	// ConfigExtra is appended to the workers' config file (schedules).
	ConfigExtra string
	// Sentinel runs Redis as a master, a replica and three sentinels
	// (redistest.StartSentinel) instead of one server; the workers and the
	// harness reach the master through the sentinels.
	Sentinel bool
	// Cluster runs Redis as a Cluster of three masters, each with a
	// replica (redistest.StartCluster), reached through all its nodes.
	Cluster bool
}

// Env is one scenario's world: a private redis-server, the oracle's
// directory, the worker processes, and the record of acknowledged
// enqueues. Every process it starts is killed by pid when the test ends.
type Env struct {
	T     testing.TB
	Dir   string
	Redis *redistest.Server
	// Sentinel is the Sentinel setup of Options.Sentinel; Redis is then
	// its master at the start.
	Sentinel *redistest.Sentinel
	// Cluster is the Cluster of Options.Cluster; Redis is then nil.
	Cluster *redistest.Cluster
	Client  *worker.Client
	RDB     redis.UniversalClient
	opts    Options
	// RedisAddr is the address workers are given; a scenario with a fault
	// proxy points it at the proxy before starting workers.
	RedisAddr string

	mu    sync.Mutex
	procs []*Proc
	inc   map[int]int          // incarnations per worker slot
	acked map[string]time.Time // job id -> when its enqueue was acknowledged
}

// NewEnv starts the redis-server and prepares the oracle.
func NewEnv(t testing.TB, o Options) *Env {
	t.Helper()
	if o.Concurrency == 0 {
		o.Concurrency = 10
	}
	if o.LeaseMS == 0 {
		o.LeaseMS = 2000
	}
	if o.DrainMS == 0 {
		o.DrainMS = 1000
	}
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "redis"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := oracle.CreateEffects(dir); err != nil {
		t.Fatal(err)
	}
	cfg := "queues:\n  - {name: " + Queue + ", priority: 1}\n" + o.ConfigExtra
	if err := os.WriteFile(filepath.Join(dir, "faults.yaml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	e := &Env{T: t, Dir: dir, opts: o, inc: map[int]int{}, acked: map[string]time.Time{}}
	switch {
	case o.Cluster:
		e.Cluster = redistest.StartCluster(t, 3, 1)
		e.RDB = redis.NewClusterClient(&redis.ClusterOptions{Addrs: e.Cluster.Addrs(), ContextTimeoutEnabled: true})
	case o.Sentinel:
		e.Sentinel = redistest.StartSentinel(t)
		e.Redis = e.Sentinel.Master
		e.RDB = redis.NewFailoverClient(&redis.FailoverOptions{MasterName: redistest.SentinelMaster,
			SentinelAddrs: e.Sentinel.Addrs(), DB: redisDB, ContextTimeoutEnabled: true})
	default:
		e.Redis = redistest.StartWith(t, redistest.Options{Dir: filepath.Join(dir, "redis"), Args: o.RedisArgs})
		e.RedisAddr = e.Redis.Addr
		e.RDB = redis.NewClient(&redis.Options{Addr: e.Redis.Addr, DB: redisDB, ContextTimeoutEnabled: true})
	}
	b, err := redisbroker.New(e.RDB, redisbroker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if e.Client, err = worker.NewClient(b, worker.ClientConfig{DefaultMaxAttempts: 25}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		e.mu.Lock()
		procs := e.procs
		e.mu.Unlock()
		for _, p := range procs {
			p.Kill()
		}
		_ = b.Close()
		_ = e.RDB.Close()
		if e.Cluster != nil {
			// go-redis redials a killed node from a goroutine that sleeps
			// 1 s between tries and sees the pool closed only after it:
			// let it end before the package's leak check.
			time.Sleep(1500 * time.Millisecond)
		}
	})
	return e
}

// StartWorker starts a worker process in slot (its name is
// slot.incarnation) and waits until it listens.
func (e *Env) StartWorker(ctx context.Context, slot int, extraEnv ...string) (*Proc, error) {
	e.mu.Lock()
	e.inc[slot]++
	name := fmt.Sprintf("w%d.%d", slot, e.inc[slot])
	e.mu.Unlock()
	env := append([]string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "TMPDIR=" + os.TempDir(),
		"REDIS_URL=" + e.redisURL(),
		"WORKER_CONCURRENCY=" + strconv.Itoa(e.opts.Concurrency),
		"WORKER_HTTP_ADDR=127.0.0.1:0",
		"WORKER_DRAIN_TIMEOUT=" + strconv.Itoa(e.opts.DrainMS),
		"WORKER_API_ENABLED=false",
		"HEALTH_CHECK_INTERVAL=500",
		"WORKER_RETRY_DELAY=100",
		"FAULTS_CONFIG=" + filepath.Join(e.Dir, "faults.yaml"),
		"FAULTS_ORACLE_DIR=" + e.Dir,
		"FAULTS_WORKER=" + name,
		"FAULTS_LEASE_MS=" + strconv.Itoa(e.opts.LeaseMS),
	}, e.opts.Env...)
	p, err := startProc(workerBin, name, filepath.Join(e.Dir, "log-"+name+".jsonl"), append(env, extraEnv...))
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	e.procs = append(e.procs, p)
	e.mu.Unlock()
	if _, err := p.Addr(ctx); err != nil {
		return nil, err
	}
	return p, nil
}

// redisURL is the workers' REDIS_URL.
func (e *Env) redisURL() string {
	if e.Cluster != nil {
		return e.Cluster.URL() // database 0, the only one a Cluster has
	}
	if e.Sentinel != nil {
		return e.Sentinel.URL() + "?db=" + strconv.Itoa(redisDB)
	}
	return "redis://" + e.RedisAddr + "/" + strconv.Itoa(redisDB)
}

// Procs returns every process started so far.
func (e *Env) Procs() []*Proc {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]*Proc(nil), e.procs...)
}

// WorkSpec is a fault.work job of ms milliseconds.
func WorkSpec(ms int) worker.JobSpec {
	return worker.JobSpec{Type: oracle.TypeWork, Data: oracle.Work{MS: ms}}
}

// Add enqueues specs in one atomic batch and records them as acknowledged
// if the broker says so.
func (e *Env) Add(ctx context.Context, specs ...worker.JobSpec) error {
	return e.addWith(ctx, e.Client, specs)
}

// addWith is Add through another client (one behind the fault proxy).
func (e *Env) addWith(ctx context.Context, c *worker.Client, specs []worker.JobSpec) error {
	jobs, err := c.AddMany(ctx, Queue, specs)
	if err != nil {
		return err
	}
	now := time.Now()
	e.mu.Lock()
	for _, j := range jobs {
		e.acked[j.ID] = now
	}
	e.mu.Unlock()
	return nil
}

// Acked returns the acknowledged enqueues.
func (e *Env) Acked() map[string]time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string]time.Time, len(e.acked))
	for k, v := range e.acked {
		out[k] = v
	}
	return out
}

// WaitDrained waits until the queue has nothing pending, active or
// scheduled, polling the broker; it returns the error of ctx if it ends
// first.
func (e *Env) WaitDrained(ctx context.Context) error {
	for {
		st, err := e.Client.Stats(ctx, Queue)
		if err == nil && st.Pending+st.Active+st.Scheduled == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for the queue to drain: %w", errors.Join(ctx.Err(), err))
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// drainStopCount waits for the queue to drain (its error, if it did not,
// is drainErr: the figures are still counted), stops every worker and
// counts what happened to the jobs.
func (e *Env) drainStopCount(ctx context.Context) (c *Count, drainErr, err error) {
	drainErr = e.WaitDrained(ctx)
	stopAll(ctx, e)
	c, err = e.Count(context.WithoutCancel(ctx))
	return c, drainErr, err
}

// until polls cond every step until it holds or ctx ends.
func until(ctx context.Context, step time.Duration, cond func() bool) error {
	for !cond() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(step):
		}
	}
	return nil
}
