package worker_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/broker/redisbroker"
	"github.com/aibos/worker/broker/sqlitebroker"
	"github.com/aibos/worker/internal/cputime"
	"github.com/aibos/worker/internal/redistest"
)

// The many-queues benchmarks show what one Manager serving many queues
// costs (issue 24's curves): idle, the Redis commands it sends per second
// and the process CPU per second; busy, the enqueue-to-start latency and
// the throughput with jobs spread over the queues. Each Redis run gets a
// private redis-server, so the server's command count is the Manager's.

// manyQueueCounts are the queue counts of the curves.
var manyQueueCounts = []int{1, 10, 100, 1000}

// countHook counts the commands a go-redis client sends (each command of a
// pipeline once), to tell what the Manager sends apart from the commands
// its scripts run inside Redis, which the server counts too.
type countHook struct{ n atomic.Int64 }

func (h *countHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *countHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmd)
	}
}

func (h *countHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.n.Add(int64(len(cmds)))
		return next(ctx, cmds)
	}
}

// manyQueuesEngine opens a broker for the many-queues benchmarks and says
// how to read the commands it has sent and the server has processed (nil
// for the embedded store).
type manyQueuesEngine struct {
	name string
	open func(b *testing.B) (broker.Broker, func() (sent, processed int64))
}

var manyQueuesEngines = []manyQueuesEngine{
	{"redis", func(b *testing.B) (broker.Broker, func() (int64, int64)) {
		srv := redistest.Start(b)
		opt, err := redis.ParseURL(srv.URL())
		if err != nil {
			b.Fatal(err)
		}
		client := redis.NewClient(opt)
		b.Cleanup(func() { _ = client.Close() })
		hook := &countHook{}
		client.AddHook(hook)
		br, err := redisbroker.New(client, redisbroker.Config{})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = br.Close() })
		admin := redis.NewClient(opt) // its INFO calls are counted by the server: subtracted
		b.Cleanup(func() { _ = admin.Close() })
		var infos int64
		return br, func() (int64, int64) {
			infos++
			info, err := admin.InfoMap(context.Background(), "stats").Result()
			if err != nil {
				b.Fatal(err)
			}
			n, err := strconv.ParseInt(info["Stats"]["total_commands_processed"], 10, 64)
			if err != nil {
				b.Fatalf("read total_commands_processed: %v", err)
			}
			return hook.n.Load(), n - infos
		}
	}},
	{"sqlite", func(b *testing.B) (broker.Broker, func() (int64, int64)) {
		br, err := sqlitebroker.Open(filepath.Join(b.TempDir(), "worker.db"), sqlitebroker.Config{})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = br.Close() })
		return br, nil
	}},
}

func queueConfigs(n int) []worker.QueueConfig {
	qs := make([]worker.QueueConfig, n)
	for i := range qs {
		qs[i] = worker.QueueConfig{Name: fmt.Sprintf("q%04d", i)}
	}
	return qs
}

// BenchmarkManyQueuesIdle measures a Manager with default settings serving
// 1 to 1,000 empty queues: on Redis the commands it sends per second
// (sent/s) and the commands the server processes for it (redis-cmds/s,
// script internals included), and the process CPU per second (cpu-ms/s).
// Each iteration is a 5 s window after a 3 s warm-up (the first
// maintenance and wait rounds).
func BenchmarkManyQueuesIdle(b *testing.B) {
	for _, e := range manyQueuesEngines {
		for _, n := range manyQueueCounts {
			b.Run(fmt.Sprintf("%s/queues=%d", e.name, n), func(b *testing.B) {
				br, counts := e.open(b)
				m, err := worker.NewManager(br, worker.ManagerConfig{Queues: queueConfigs(n), Logger: discardLogger})
				if err != nil {
					b.Fatal(err)
				}
				startManager(b, m)
				time.Sleep(3 * time.Second) // warm-up, not an assertion
				const window = 5 * time.Second
				var sent, processed int64
				cpu0, cpuOK := cputime.Process()
				b.ResetTimer()
				for range b.N {
					var s0, p0 int64
					if counts != nil {
						s0, p0 = counts()
					}
					time.Sleep(window)
					if counts != nil {
						s1, p1 := counts()
						sent, processed = sent+s1-s0, processed+p1-p0
					}
				}
				b.StopTimer()
				secs := float64(b.N) * window.Seconds()
				if cpu1, ok := cputime.Process(); ok && cpuOK {
					b.ReportMetric(float64((cpu1-cpu0).Milliseconds())/secs, "cpu-ms/s")
				}
				if counts != nil {
					b.ReportMetric(float64(sent)/secs, "sent/s")
					b.ReportMetric(float64(processed)/secs, "redis-cmds/s")
				}
				b.ReportMetric(0, "ns/op")
			})
		}
	}
}

// BenchmarkManyQueuesBusy measures a Manager with default settings
// (concurrency 10) serving 1 to 1,000 queues while jobs arrive at a steady
// 500/s spread round-robin over them, 2,000 jobs per iteration after a
// 10 s warm-up: the enqueue-to-start latency (p50, p99) and the jobs
// started per second.
func BenchmarkManyQueuesBusy(b *testing.B) {
	for _, e := range manyQueuesEngines {
		for _, n := range manyQueueCounts {
			b.Run(fmt.Sprintf("%s/queues=%d", e.name, n), func(b *testing.B) {
				br, _ := e.open(b)
				benchManyQueuesBusy(b, br, n)
			})
		}
	}
}

func benchManyQueuesBusy(b *testing.B, br broker.Broker, n int) {
	const (
		perIter = 2000
		rate    = 500 // jobs per second
	)
	qs := queueConfigs(n)
	m, err := worker.NewManager(br, worker.ManagerConfig{Queues: qs, Concurrency: 10, Logger: discardLogger})
	if err != nil {
		b.Fatal(err)
	}
	var (
		mu       sync.Mutex
		lat      []time.Duration
		started  = make(chan struct{}, perIter)
		enqueued = func(j *worker.Job) time.Time {
			ns, _ := strconv.ParseInt(j.Headers["t"], 10, 64)
			return time.Unix(0, ns)
		}
	)
	if err := m.HandleFunc("busy", func(_ context.Context, j *worker.Job) error {
		d := time.Since(enqueued(j))
		mu.Lock()
		lat = append(lat, d)
		mu.Unlock()
		started <- struct{}{}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	startManager(b, m)
	c, err := worker.NewClient(br, worker.ClientConfig{})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	// Warm-up, not an assertion: the Manager's first rounds look into
	// every queue once, to fetch and to maintain (jobs and leases may wait
	// there from before it started), 2,000 write transactions on the
	// embedded store for 1,000 queues; measured is the steady state after.
	time.Sleep(10 * time.Second)
	var took time.Duration
	b.ResetTimer()
	for i := range b.N {
		begin := time.Now()
		tick := time.NewTicker(time.Second / rate)
		for k := range perIter {
			<-tick.C
			q := qs[(i*perIter+k)%n].Name
			if _, err := c.Add(ctx, q, worker.JobSpec{Type: "busy",
				Headers: map[string]string{"t": strconv.FormatInt(time.Now().UnixNano(), 10)}}); err != nil {
				b.Fatal(err)
			}
		}
		tick.Stop()
		for range perIter {
			select {
			case <-started:
			case <-time.After(time.Minute):
				b.Fatal("jobs did not start within a minute")
			}
		}
		took += time.Since(begin)
	}
	b.StopTimer()
	mu.Lock()
	defer mu.Unlock()
	slices.Sort(lat)
	pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(float64(b.N*perIter)/took.Seconds(), "jobs/s")
}
