package worker_test

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/internal/cputime"
	"github.com/aibos/worker/internal/testbroker"
)

// BenchmarkManagerProcess measures end-to-end processing through the
// Manager: 50,000 pending jobs, a no-op processor, concurrency 10 (fetch,
// run, batched completion), on each broker, with prefetch off
// (worker.PrefetchOff), the default adaptive prefetch (0) and Prefetch 10.
// It reports jobs/s and cpu-µs/job, this process's CPU per job while the
// Manager runs: on SQLite that is the whole store's, the figure to compare
// on a loaded machine, where jobs/s follows the other work; on Redis it
// leaves out the server's.
func BenchmarkManagerProcess(b *testing.B) {
	for _, e := range testbroker.Engines {
		for _, prefetch := range []int{worker.PrefetchOff, 0, 10} {
			b.Run(fmt.Sprintf("%s/prefetch=%d", e.Name, prefetch), func(b *testing.B) {
				benchManagerProcess(b, e, 10, prefetch)
			})
		}
	}
}

// BenchmarkManagerProcessC50 is BenchmarkManagerProcess at concurrency 50
// with default settings, bench/'s "b process c50" row: there the worker's
// CPU per job and the slots left idle waiting on the broker bound the
// throughput rather than the round trips.
func BenchmarkManagerProcessC50(b *testing.B) {
	for _, e := range testbroker.Engines {
		b.Run(e.Name, func(b *testing.B) { benchManagerProcess(b, e, 50, 0) })
	}
}

// timeManager runs m, with the benchmark timer on, until finished is
// closed, and returns how long that took; it fails after five minutes,
// saying how many of the jobs done counts were completed, and shuts m down.
func timeManager(b *testing.B, m *worker.Manager, finished <-chan struct{}, done *atomic.Int64, jobs int) time.Duration {
	b.StartTimer()
	start := time.Now()
	if err := m.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	select {
	case <-finished:
	case <-time.After(5 * time.Minute):
		b.Fatalf("only %d of %d jobs completed", done.Load(), jobs)
	}
	took := time.Since(start)
	b.StopTimer()
	if err := m.Shutdown(context.Background()); err != nil {
		b.Fatal(err)
	}
	return took
}

func benchManagerProcess(b *testing.B, e testbroker.Engine, concurrency, prefetch int) {
	const jobs = 50000
	{
		{
			var total, cpu time.Duration
			var allocs uint64 // in this process, the broker's client included
			for range b.N {
				b.StopTimer()
				br := e.Open(b)
				c, err := worker.NewClient(br, worker.ClientConfig{})
				if err != nil {
					b.Fatal(err)
				}
				specs := make([]worker.JobSpec, 1000)
				for i := range specs {
					specs[i] = worker.JobSpec{Type: "noop"}
				}
				for range jobs / 1000 {
					if _, err := c.AddMany(context.Background(), "bench", specs); err != nil {
						b.Fatal(err)
					}
				}
				var done atomic.Int64
				finished := make(chan struct{})
				cfg := worker.ManagerConfig{
					Queues:      []worker.QueueConfig{{Name: "bench"}},
					Concurrency: concurrency,
					Prefetch:    prefetch,
					Logger:      discardLogger,
					OnEvent: func(ev worker.Event) {
						if ev.Kind == worker.EventCompleted && done.Add(1) == jobs {
							close(finished)
						}
					},
				}
				m, err := worker.NewManager(br, cfg)
				if err != nil {
					b.Fatal(err)
				}
				_ = m.HandleFunc("noop", func(context.Context, *worker.Job) error { return nil })
				var ms0, ms1 runtime.MemStats
				runtime.ReadMemStats(&ms0)
				cpu0, _ := cputime.Process()
				total += timeManager(b, m, finished, &done, jobs)
				cpu1, _ := cputime.Process()
				runtime.ReadMemStats(&ms1)
				cpu += cpu1 - cpu0
				allocs += ms1.Mallocs - ms0.Mallocs
				_ = br.Close()
			}
			b.ReportMetric(float64(jobs*b.N)/total.Seconds(), "jobs/s")
			b.ReportMetric(float64(cpu)/float64(time.Microsecond)/float64(jobs*b.N), "cpu-µs/job")
			b.ReportMetric(float64(allocs)/float64(jobs*b.N), "allocs/job")
		}
	}
}

// BenchmarkClientAdd measures one Add per call (the producer path of a
// request handler) on each broker, with the Client's default Timeout and
// with none (Timeout -1).
func BenchmarkClientAdd(b *testing.B) {
	for _, e := range testbroker.Engines {
		for _, tc := range []struct {
			name    string
			timeout time.Duration
		}{{"default-timeout", 0}, {"no-timeout", -1}} {
			b.Run(e.Name+"/"+tc.name, func(b *testing.B) {
				c, err := worker.NewClient(e.Open(b), worker.ClientConfig{Timeout: tc.timeout})
				if err != nil {
					b.Fatal(err)
				}
				ctx := context.Background()
				b.ResetTimer()
				for range b.N {
					if _, err := c.Add(ctx, "bench", worker.JobSpec{Type: "noop"}); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
