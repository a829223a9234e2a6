package redisbroker_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/broker/brokertest"
)

// The benchmarks run against the redistest server over loopback, so they
// measure script cost plus one round trip per call.

func benchJob(i int) *broker.JobInsertParams {
	return &broker.JobInsertParams{
		ID: fmt.Sprintf("job-%d", i), Queue: "bench", Type: "invoice.processing", MaxAttempts: 3,
		TenantID: "tenant-1", Data: []byte(`{"invoice":"INV-0001","amount":1250}`),
	}
}

func BenchmarkJobInsert(b *testing.B) {
	br, client, _ := newBrokerKeys(b)
	ctx := context.Background()
	i, cpu := 0, redisCPU(b, client)
	for b.Loop() {
		if _, err := br.JobInsert(ctx, benchJob(i)); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(float64(i)/b.Elapsed().Seconds(), "jobs/s")
	reportRedisCPU(b, client, cpu, i)
}

func BenchmarkJobInsertMany(b *testing.B) {
	const batch = 1000
	br, client, _ := newBrokerKeys(b)
	ctx := context.Background()
	ps := make([]*broker.JobInsertParams, batch)
	n, cpu := 0, redisCPU(b, client)
	for b.Loop() {
		for i := range ps {
			ps[i] = benchJob(n)
			n++
		}
		if _, err := br.JobInsertMany(ctx, ps); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "jobs/s")
	reportRedisCPU(b, client, cpu, n)
}

// redisCPU returns the CPU time the Redis server has used so far (INFO cpu:
// used_cpu_user + used_cpu_sys). The test server is this package's own, so
// on a loaded machine the delta over a benchmark is still this benchmark's
// Redis cost, unlike wall-clock throughput.
func redisCPU(b *testing.B, client *redis.Client) time.Duration {
	b.Helper()
	info, err := client.Info(context.Background(), "cpu").Result()
	if err != nil {
		b.Fatalf("redis INFO cpu: %v", err)
	}
	var sec float64
	for _, line := range strings.Split(info, "\r\n") {
		k, v, _ := strings.Cut(line, ":")
		if k == "used_cpu_user" || k == "used_cpu_sys" {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				b.Fatalf("redis INFO cpu: %s: %v", line, err)
			}
			sec += f
		}
	}
	return time.Duration(sec * float64(time.Second))
}

// BenchmarkFetchComplete leases batches of 32 and acknowledges each batch in
// one JobComplete call. One op is one job. redis-µs/job is the Redis
// server's CPU per job (fetch and completion), the figure to compare on a
// loaded machine.
func BenchmarkFetchComplete(b *testing.B) {
	br, client, _ := newBrokerKeys(b)
	benchFetchComplete(b, br, client, 1, 0)
}

// BenchmarkFetchCompleteRetained is BenchmarkFetchComplete with the
// Manager's default count rule for completed jobs (10,000), which
// completion applies as it goes, and with jobs of no tenant and of one:
// the Redis CPU per job that bench/'s "e redis cpu" rows measure, without
// the Manager.
func BenchmarkFetchCompleteRetained(b *testing.B) {
	for _, tenants := range []int{0, 1} {
		b.Run(fmt.Sprintf("tenants=%d", tenants), func(b *testing.B) {
			br, client, _ := newBrokerKeys(b)
			benchFetchComplete(b, br, client, tenants, 10000)
		})
	}
}

// BenchmarkFetchCompleteAhead is BenchmarkFetchCompleteRetained with two
// batches leased ahead of the one acknowledged, as a Manager at
// concurrency 50 keeps jobs running and prefetched: the queue's active set
// and lease hash hold about a hundred jobs, where Redis's listpack encoding
// of small sets (lib.lua PIN) would make each lease scan them.
func BenchmarkFetchCompleteAhead(b *testing.B) {
	for _, tenants := range []int{0, 1} {
		b.Run(fmt.Sprintf("tenants=%d", tenants), func(b *testing.B) {
			br, client, _ := newBrokerKeys(b)
			benchFetchCompleteBatch(b, br, client, tenants, 10000, 32, 2)
		})
	}
}

// BenchmarkFairFetchComplete is BenchmarkFetchComplete with the jobs spread
// over 100 tenants, on a plain queue and on a fair one, and on a fair queue
// with every job of one tenant (BenchmarkFetchComplete is its plain twin):
// the Redis CPU per job of a pair is what fairness costs the server. The
// batch=5 rows fetch as a busy Manager at concurrency 10 does (about half
// its slots per fetch) and complete under its default count rule. The
// jobs are added one tenant after another in turn, so a fair queue's
// turns (lib.lua fair_tag) hold jobs of many tenants and a fetch batch
// as many tenants as jobs: this is the worst case. bench/'s phase g adds
// each tenant's jobs together, and there a turn's jobs lie together: over
// 10,000 jobs a fair queue of 100 tenants cost Redis 169k instructions per
// job with one-job turns and 127k with turns of broker.FairQuantum, against
// 123k with fairness off (callgrind).
func BenchmarkFairFetchComplete(b *testing.B) {
	for _, v := range []struct {
		fair           bool
		tenants, batch int
		keep           int // completed jobs kept (0: no count rule)
	}{{false, 100, 32, 0}, {true, 1, 32, 0}, {true, 100, 32, 0}, {false, 1, 5, 10000}, {true, 1, 5, 10000}, {true, 100, 5, 10000}} {
		name := fmt.Sprintf("fair=%v/tenants=%d", v.fair, v.tenants)
		if v.batch != 32 {
			name += fmt.Sprintf("/batch=%d/keep=%d", v.batch, v.keep)
		}
		b.Run(name, func(b *testing.B) {
			br, client, _ := newBrokerKeys(b)
			if err := br.QueueFairSet(context.Background(), &broker.FairPolicy{Queue: "bench", Fair: v.fair}); err != nil {
				b.Fatal(err)
			}
			benchFetchCompleteBatch(b, br, client, v.tenants, v.keep, v.batch, 0)
		})
	}
}

// benchFetchComplete runs the fetch and completion loop over b.N jobs
// spread over tenants (0: jobs of no tenant), 32 per fetch, completing with
// the count rule keep (0: none).
func benchFetchComplete(b *testing.B, br broker.Broker, client *redis.Client, tenants, keep int) {
	benchFetchCompleteBatch(b, br, client, tenants, keep, 32, 0)
}

// benchFetchCompleteBatch is benchFetchComplete fetching up to fetchBatch
// jobs at a time, with ahead batches leased before the one it acknowledges.
func benchFetchCompleteBatch(b *testing.B, br broker.Broker, client *redis.Client, tenants, keep, fetchBatch, ahead int) {
	ctx := context.Background()
	b.StopTimer()
	ps := make([]*broker.JobInsertParams, 0, 1000)
	for i := 0; i < b.N; i++ {
		j := benchJob(i)
		j.TenantID = ""
		if tenants > 0 {
			j.TenantID = fmt.Sprintf("tenant-%d", i%tenants)
		}
		ps = append(ps, j)
		if len(ps) == cap(ps) || i == b.N-1 {
			if _, err := br.JobInsertMany(ctx, ps); err != nil {
				b.Fatal(err)
			}
			ps = ps[:0]
		}
	}
	b.StartTimer()
	start, cpu := time.Now(), redisCPU(b, client)
	fetched, done := 0, 0
	var leased [][]*broker.Job
	for done < b.N {
		for fetched < b.N && len(leased) <= ahead {
			jobs, err := br.JobFetch(ctx, &broker.JobFetchParams{Queue: "bench", Limit: fetchBatch, LeaseDuration: time.Minute, WorkerID: "bench"})
			if err != nil {
				b.Fatal(err)
			}
			if len(jobs) == 0 {
				b.Fatalf("queue ran dry after %d of %d jobs", fetched, b.N)
			}
			leased = append(leased, jobs)
			fetched += len(jobs)
		}
		jobs := leased[0]
		leased = leased[1:]
		acks := make([]*broker.JobCompleteParams, len(jobs))
		for i, j := range jobs {
			acks[i] = &broker.JobCompleteParams{JobLeaseParams: broker.JobLeaseParams{Queue: j.Queue, ID: j.ID, Token: j.LeaseToken}, CompletedMaxCount: keep}
		}
		errs, err := br.JobComplete(ctx, acks)
		if err != nil {
			b.Fatal(err)
		}
		for _, e := range errs {
			if e != nil {
				b.Fatal(e)
			}
		}
		done += len(jobs)
	}
	b.ReportMetric(float64(done)/time.Since(start).Seconds(), "jobs/s")
	reportRedisCPU(b, client, cpu, done)
}

// reportRedisCPU reports the Redis CPU used since since (redisCPU) per job
// as redis-µs/job.
func reportRedisCPU(b *testing.B, client *redis.Client, since time.Duration, jobs int) {
	b.ReportMetric(float64(redisCPU(b, client)-since)/float64(time.Microsecond)/float64(jobs), "redis-µs/job")
}

// BenchmarkCollectManyQueues is what a busy Manager serving 1,000 queues
// pays at each collect of wakes (JobWaitReady with timeout 0).
func BenchmarkCollectManyQueues(b *testing.B) {
	brokertest.BenchCollect(b, newBroker(b), 1000)
}
