package worker_test

import (
	"context"
	"flag"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/internal/redistest"
	"github.com/aibos/worker/internal/testbroker"
)

var (
	soakFor         = flag.Duration("soak", 0, "run BenchmarkSoakRedis for this long (make soak: 5m); 0 skips it")
	soakConcurrency = flag.Int("soak.concurrency", 50, "Manager concurrency of BenchmarkSoakRedis")
)

// soakSample is one observation of BenchmarkSoakRedis.
type soakSample struct {
	at        time.Duration // since the Manager started
	completed int64         // the queue's completed jobs
	memory    int64         // Redis used_memory, bytes
	processed int64         // jobs completed so far
}

// BenchmarkSoakRedis processes no-op jobs on Redis at full speed for -soak
// (make soak: 5 minutes) with the default retention (24h, 10,000 completed
// jobs per queue, maintenance every second), sampling the queue's completed
// count and Redis used_memory every 2 s. It prints the largest completed
// count against the retention limit plus one maintenance interval's worth
// of completions, and used_memory over the last 4 minutes (mean, min, max,
// largest deviation from the mean), and fails if either leaves its bar: the
// count above limit + one interval's worth, or used_memory beyond ±5% of
// its mean. It is a benchmark, skipped unless asked for, not a timed test.
func BenchmarkSoakRedis(b *testing.B) {
	if *soakFor <= 0 {
		b.Skip("skipping: set -soak (e.g. -soak 5m, or run make soak)")
	}
	const (
		queue   = "soak"
		backlog = 4000 // pending jobs the producer keeps ahead of the Manager
		chunk   = 200  // jobs per AddMany
		window  = 4 * time.Minute
		every   = 2 * time.Second
	)
	for range b.N {
		br := testbroker.Redis(b)
		rc := redistest.Client(b)
		ctx := context.Background()
		client, err := worker.NewClient(br, worker.ClientConfig{})
		if err != nil {
			b.Fatal(err)
		}
		var processed atomic.Int64
		m, err := worker.NewManager(br, worker.ManagerConfig{
			Queues:      []worker.QueueConfig{{Name: queue}},
			Concurrency: *soakConcurrency,
			Logger:      discardLogger,
			OnEvent: func(ev worker.Event) {
				if ev.Kind == worker.EventCompleted {
					processed.Add(1)
				}
			},
		})
		if err != nil {
			b.Fatal(err)
		}
		_ = m.HandleFunc("noop", func(context.Context, *worker.Job) error { return nil })
		cfg := m.Config()

		// The producer keeps about backlog jobs pending, so the Manager
		// never waits for work and the pending set stays the same size.
		stop := make(chan struct{})
		var wg sync.WaitGroup
		var added atomic.Int64
		var produceErr atomic.Value
		specs := make([]worker.JobSpec, chunk)
		for i := range specs {
			specs[i] = worker.JobSpec{Type: "noop"}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if added.Load()-processed.Load() >= backlog {
					time.Sleep(time.Millisecond)
					continue
				}
				if _, err := client.AddMany(ctx, queue, specs); err != nil {
					produceErr.Store(err)
					return
				}
				added.Add(chunk)
			}
		}()
		for added.Load() < backlog && produceErr.Load() == nil {
			time.Sleep(time.Millisecond)
		}

		b.ResetTimer()
		start := time.Now()
		if err := m.Start(ctx); err != nil {
			b.Fatal(err)
		}
		var samples []soakSample
		tick := time.NewTicker(every)
		for time.Since(start) < *soakFor && produceErr.Load() == nil {
			<-tick.C
			st, err := client.Stats(ctx, queue)
			if err != nil {
				b.Fatal(err)
			}
			mem, err := usedMemory(rc.Info(ctx, "memory").Val())
			if err != nil {
				b.Fatal(err)
			}
			samples = append(samples, soakSample{at: time.Since(start), completed: st.Completed, memory: mem, processed: processed.Load()})
		}
		tick.Stop()
		elapsed := time.Since(start)
		close(stop)
		wg.Wait()
		if err := m.Shutdown(ctx); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err, _ := produceErr.Load().(error); err != nil {
			b.Fatalf("producer: %v", err)
		}
		reportSoak(b, cfg, samples, processed.Load(), elapsed, window)
	}
}

// reportSoak prints the soak's figures and fails b if a bar is missed.
func reportSoak(b *testing.B, cfg worker.ManagerConfig, samples []soakSample, processed int64, elapsed, window time.Duration) {
	rate := float64(processed) / elapsed.Seconds()
	perInterval := int64(math.Ceil(rate * cfg.MaintainInterval.Seconds()))
	bar := int64(cfg.CompletedMaxCount) + perInterval
	var maxCompleted int64
	var mems []float64
	for _, s := range samples {
		maxCompleted = max(maxCompleted, s.completed)
		if s.at >= elapsed-window {
			mems = append(mems, float64(s.memory))
		}
	}
	if len(mems) < 2 {
		b.Fatalf("only %d memory samples in the last %v: run for longer (-soak)", len(mems), window)
	}
	mean, lo, hi := 0.0, mems[0], mems[0]
	for _, v := range mems {
		mean += v / float64(len(mems))
		lo, hi = min(lo, v), max(hi, v)
	}
	dev := 100 * max(hi-mean, mean-lo) / mean
	var out strings.Builder
	fmt.Fprintf(&out, "soak: %v on Redis, concurrency %d, %d jobs processed, %.0f jobs/s\n", elapsed.Round(time.Second), cfg.Concurrency, processed, rate)
	fmt.Fprintf(&out, "  completed jobs: max %d; retention limit %d + one %v maintenance interval's worth %d = %d\n",
		maxCompleted, cfg.CompletedMaxCount, cfg.MaintainInterval, perInterval, bar)
	fmt.Fprintf(&out, "  used_memory over the last %v (%d samples): mean %.2f MB, min %.2f MB, max %.2f MB, max deviation from the mean %.2f%%\n",
		window, len(mems), mean/1e6, lo/1e6, hi/1e6, dev)
	fmt.Fprintf(&out, "  %-8s %-12s %-10s %s\n", "t", "processed", "completed", "used_memory")
	for i, s := range samples {
		if i < 5 || i%15 == 14 || i == len(samples)-1 {
			fmt.Fprintf(&out, "  %-8v %-12d %-10d %.2f MB\n", s.at.Round(time.Second), s.processed, s.completed, float64(s.memory)/1e6)
		}
	}
	fmt.Print(out.String())
	b.ReportMetric(rate, "jobs/s")
	b.ReportMetric(float64(maxCompleted), "max-completed")
	b.ReportMetric(dev, "mem-dev-%")
	if maxCompleted > bar {
		b.Errorf("completed jobs peaked at %d, above the retention limit + one interval's worth (%d)", maxCompleted, bar)
	}
	if dev > 5 {
		b.Errorf("used_memory deviated %.2f%% from its mean over the last %v, above 5%%", dev, window)
	}
}

// usedMemory reads used_memory from the text of INFO memory.
func usedMemory(info string) (int64, error) {
	for line := range strings.SplitSeq(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, fmt.Errorf("INFO memory has no used_memory line: %q", info)
}
