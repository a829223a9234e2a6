package sqlitebroker_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/broker/brokertest"
	"github.com/aibos/worker/broker/sqlitebroker"
	"github.com/aibos/worker/internal/cputime"
)

// openB opens a store in a fresh temporary directory for a benchmark.
func openB(b *testing.B) *sqlitebroker.Broker {
	b.Helper()
	br, err := sqlitebroker.Open(filepath.Join(b.TempDir(), "jobs.db"), sqlitebroker.Config{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { br.Close() })
	return br
}

// BenchmarkJobInsert enqueues one job per call, each durable on return.
func BenchmarkJobInsert(b *testing.B) {
	br := openB(b)
	ctx := context.Background()
	i := 0
	start := time.Now()
	cpu, _ := cputime.Process()
	for b.Loop() {
		if _, err := br.JobInsert(ctx, newJob("bench", fmt.Sprint(i))); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(float64(i)/time.Since(start).Seconds(), "jobs/s")
	reportCPU(b, cpu, i)
}

// reportCPU reports the process's CPU used since since (cputime.Process)
// per job as cpu-µs/job.
func reportCPU(b *testing.B, since time.Duration, jobs int) {
	now, _ := cputime.Process()
	b.ReportMetric(float64(now-since)/float64(time.Microsecond)/float64(jobs), "cpu-µs/job")
}

// BenchmarkJobInsertMany enqueues batches of 1000 jobs, one transaction
// each. cpu-µs/job is the process's CPU per job, the figure to compare on
// a loaded machine.
func BenchmarkJobInsertMany(b *testing.B) { benchInsertMany(b, false) }

// benchInsertMany runs BenchmarkJobInsertMany, into a fair queue with fair
// (the jobs of one tenant, as bench/'s phase g adds them).
func benchInsertMany(b *testing.B, fair bool) {
	const batch = 1000
	br := openB(b)
	ctx := context.Background()
	if err := br.QueueFairSet(ctx, &broker.FairPolicy{Queue: "bench", Fair: fair}); err != nil {
		b.Fatal(err)
	}
	n := 0
	var elapsed, cpu time.Duration
	for b.Loop() {
		b.StopTimer()
		ps := make([]*broker.JobInsertParams, batch)
		for i := range ps {
			ps[i] = newJob("bench", fmt.Sprint(n+i))
			if fair {
				ps[i].TenantID = "t-000"
			}
		}
		b.StartTimer()
		start := time.Now()
		cpu0, _ := cputime.Process()
		if _, err := br.JobInsertMany(ctx, ps); err != nil {
			b.Fatal(err)
		}
		cpu1, _ := cputime.Process()
		cpu += cpu1 - cpu0
		elapsed += time.Since(start)
		n += batch
	}
	b.ReportMetric(float64(n)/elapsed.Seconds(), "jobs/s")
	b.ReportMetric(float64(cpu)/float64(time.Microsecond)/float64(n), "cpu-µs/job")
}

// BenchmarkFetchComplete processes 50,000 pending jobs end to end: 10
// goroutines each fetch up to 64 jobs (or 5, about what a Manager of
// concurrency 10 fetches with Prefetch 0), run a no-op processor on each
// and acknowledge the batch in one JobComplete call. cpu-µs/job is the
// process's CPU per job (the store runs in process), the figure to compare
// on a loaded machine.
func BenchmarkFetchComplete(b *testing.B) {
	for _, limit := range []int{64, 5} {
		b.Run(fmt.Sprintf("batch=%d", limit), func(b *testing.B) { benchFetchComplete(b, limit) })
	}
}

func benchFetchComplete(b *testing.B, fetchLimit int) {
	const (
		jobs        = 50_000
		concurrency = 10
	)
	ctx := context.Background()
	var total int
	var elapsed, cpu time.Duration
	for b.Loop() {
		b.StopTimer()
		br := openB(b)
		addBacklog(b, br, 0, jobs)
		b.StartTimer()
		start := time.Now()
		cpu0, _ := cputime.Process()
		var wg sync.WaitGroup
		done := make([]int, concurrency)
		for w := range concurrency {
			wg.Go(func() {
				for {
					got, err := br.JobFetch(ctx, &broker.JobFetchParams{Queue: "bench", Limit: fetchLimit, LeaseDuration: time.Minute})
					if err != nil {
						b.Error(err)
						return
					}
					if len(got) == 0 {
						return
					}
					for range got { // the no-op processor
					}
					errs, err := br.JobComplete(ctx, completions(got))
					if err != nil {
						b.Error(err)
						return
					}
					for _, e := range errs {
						if e != nil {
							b.Error(e)
							return
						}
					}
					done[w] += len(got)
				}
			})
		}
		wg.Wait()
		elapsed += time.Since(start)
		cpu1, _ := cputime.Process()
		cpu += cpu1 - cpu0
		b.StopTimer()
		n := 0
		for _, d := range done {
			n += d
		}
		if n != jobs {
			b.Fatalf("processed %d jobs, want %d", n, jobs)
		}
		total += n
		br.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(total)/elapsed.Seconds(), "jobs/s")
	b.ReportMetric(float64(cpu)/float64(time.Microsecond)/float64(total), "cpu-µs/job")
}

// BenchmarkFetchCompleteBacklog is BenchmarkFetchComplete (batches of 5)
// with pending=P jobs left in the queue besides the 20,000 processed per
// iteration: the cost per job as the store grows (issue 24's pending
// curve). reads/job counts the read system calls per job (Linux only):
// pages SQLite's cache missed and read again from the OS's.
func BenchmarkFetchCompleteBacklog(b *testing.B) {
	for _, pending := range []int{1_000, 1_000_000} {
		b.Run(fmt.Sprintf("pending=%d", pending), func(b *testing.B) { benchBacklog(b, pending) })
	}
}

func benchBacklog(b *testing.B, pending int) {
	const (
		jobs        = 20_000
		concurrency = 10
	)
	ctx := context.Background()
	br := openB(b)
	addBacklog(b, br, 0, pending)
	added := pending
	var total int
	var elapsed, cpu time.Duration
	var reads int64
	for b.Loop() {
		b.StopTimer()
		addBacklog(b, br, added, jobs)
		added += jobs
		b.StartTimer()
		start := time.Now()
		cpu0, _ := cputime.Process()
		r0 := readCalls()
		var wg sync.WaitGroup
		var mu sync.Mutex
		left := jobs
		for range concurrency {
			wg.Go(func() {
				for {
					mu.Lock()
					n := min(5, left)
					left -= n
					mu.Unlock()
					if n == 0 {
						return
					}
					got, err := br.JobFetch(ctx, &broker.JobFetchParams{Queue: "bench", Limit: n, LeaseDuration: time.Minute})
					if err != nil || len(got) != n {
						b.Errorf("fetch %d jobs: got %d, %v", n, len(got), err)
						return
					}
					if _, err := br.JobComplete(ctx, completions(got)); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		elapsed += time.Since(start)
		cpu1, _ := cputime.Process()
		cpu += cpu1 - cpu0
		reads += readCalls() - r0
		total += jobs
	}
	b.ReportMetric(float64(total)/elapsed.Seconds(), "jobs/s")
	b.ReportMetric(float64(cpu)/float64(time.Microsecond)/float64(total), "cpu-µs/job")
	if readCalls() >= 0 {
		b.ReportMetric(float64(reads)/float64(total), "reads/job")
	}
}

// addBacklog adds n jobs to queue "bench", 1,000 per JobInsertMany, with
// the ids first, first+1, ...
func addBacklog(b *testing.B, br *sqlitebroker.Broker, first, n int) {
	b.Helper()
	for k := 0; k < n; k += 1000 {
		ps := make([]*broker.JobInsertParams, min(1000, n-k))
		for i := range ps {
			ps[i] = newJob("bench", fmt.Sprint(first+k+i))
		}
		if _, err := br.JobInsertMany(context.Background(), ps); err != nil {
			b.Fatal(err)
		}
	}
}

// readCalls returns the read system calls this process made so far
// (syscr in /proc/self/io), or -1 where that file is not available.
func readCalls() int64 {
	raw, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return -1
	}
	for line := range strings.SplitSeq(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "syscr: "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return -1
			}
			return n
		}
	}
	return -1
}

// BenchmarkCollectManyQueues is what a busy Manager serving 1,000 queues
// pays at each collect of wakes (JobWaitReady with timeout 0).
func BenchmarkCollectManyQueues(b *testing.B) {
	brokertest.BenchCollect(b, openB(b), 1000)
}

// BenchmarkQueueMaintain maintains an empty queue, as at a Manager's
// first round over a thousand idle queues and then every round for each
// busy one with nothing to recover, promote, expire or remove: the fixed
// cost of a call, on the one write connection.
func BenchmarkQueueMaintain(b *testing.B) {
	br := openB(b)
	ctx := context.Background()
	p := &broker.QueueMaintainParams{Queue: "q", CompletedMaxAge: 24 * time.Hour, CompletedMaxCount: 10000}
	for b.Loop() {
		if _, err := br.QueueMaintain(ctx, p); err != nil {
			b.Fatal(err)
		}
	}
}
