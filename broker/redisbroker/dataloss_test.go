package redisbroker_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/broker/redisbroker"
	"github.com/aibos/worker/health"
	"github.com/aibos/worker/internal/logtest"
	"github.com/aibos/worker/internal/redistest"
	"github.com/aibos/worker/metrics"
)

// lossMsg is the message of the broker's data-loss log line.
const lossMsg = "redisbroker: DATA LOSS DETECTED: jobs acknowledged earlier may be gone or may run again; " +
	"see the redisbroker package documentation for what to do"

// lossBroker is a broker on its own client to addr, logging into a buffer,
// that checks for data loss with every insert and fetch.
func lossBroker(t *testing.T, addr string) (*redisbroker.Broker, *logtest.Counter) {
	t.Helper()
	client := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { _ = client.Close() })
	logger, logs := logtest.NewLogger()
	b, err := redisbroker.New(client, redisbroker.Config{Prefix: "loss",
		Logger: logger, DataLossCheckInterval: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b, logs
}

// leaseAll fetches the n jobs of q and returns their leases by id.
func leaseAll(t *testing.T, b broker.Broker, q string, n int) map[string]broker.JobLeaseParams {
	t.Helper()
	jobs := fetch(t, b, q, n, time.Minute)
	if len(jobs) != n {
		t.Fatalf("fetched %d jobs, want %d", len(jobs), n)
	}
	leases := map[string]broker.JobLeaseParams{}
	for _, j := range jobs {
		leases[j.ID] = leaseOf(j)
	}
	return leases
}

// completeAll completes the leases and returns one error per lease.
func completeAll(t *testing.T, b broker.Broker, leases map[string]broker.JobLeaseParams) []error {
	t.Helper()
	var ps []*broker.JobCompleteParams
	for _, l := range leases {
		ps = append(ps, &broker.JobCompleteParams{JobLeaseParams: l})
	}
	errs, err := b.JobComplete(context.Background(), ps)
	if err != nil {
		t.Fatalf("complete: %v", err)
	}
	return errs
}

// Redis is restored from a snapshot taken before worker A leased ten jobs,
// and worker B leases them again: every completion of A's (stale) is
// rejected, every one of B's (current) accepted, and A notices the
// rollback on its next fetch: unready, one loud log line, the metric; B
// notices too once A has replaced the queue's epoch.
func TestRollbackFencedAndDetected(t *testing.T) {
	srv := redistest.StartWith(t, redistest.Options{Dir: t.TempDir()})
	a, aLogs := lossBroker(t, srv.Addr)
	for i := range 10 {
		mustInsert(t, a, job("q", fmt.Sprintf("j%d", i)))
	}
	srv.Save(t)
	stale := leaseAll(t, a, "q", 10)
	srv.Kill()
	srv = srv.Restart(t) // from the snapshot: A's leases never happened

	b, bLogs := lossBroker(t, srv.Addr)
	current := leaseAll(t, b, "q", 10)
	if !slices.Equal(sortedKeys(current), sortedKeys(stale)) {
		t.Fatalf("B leased %v, want A's jobs %v", sortedKeys(current), sortedKeys(stale))
	}
	for i, err := range completeAll(t, a, stale) {
		if !errors.Is(err, broker.ErrLeaseLost) {
			t.Errorf("stale completion %d by A: %v, want lease lost", i, err)
		}
	}
	for i, err := range completeAll(t, b, current) {
		if err != nil {
			t.Errorf("current completion %d by B: %v, want accepted", i, err)
		}
	}

	if got := a.DataLoss(); got.Count != 0 {
		t.Fatalf("A reported data loss before using the queue again: %+v", got)
	}
	fetch(t, a, "q", 1, time.Minute)
	loss := a.DataLoss()
	if loss.Count != 1 || loss.Queue != "q" || !strings.HasPrefix(loss.Reason, "rolled back") {
		t.Fatalf("A's data loss after the rollback: %+v, want 1 rollback of queue q", loss)
	}
	if n := aLogs.Count(lossMsg); n != 1 {
		t.Fatalf("A logged %d data-loss lines, want 1", n)
	}
	wantUnready(t, a, "rolled back")
	wantLossMetric(t, a, 1)
	fetch(t, a, "q", 1, time.Minute)
	if got := a.DataLoss().Count; got != 1 {
		t.Fatalf("A counted %d data losses after one more fetch, want still 1", got)
	}

	fetch(t, b, "q", 1, time.Minute)
	if loss := b.DataLoss(); loss.Count != 1 || !strings.HasPrefix(loss.Reason, "replaced") {
		t.Fatalf("B's data loss after A replaced the epoch: %+v, want 1 replacement", loss)
	}
	if n := bLogs.Count(lossMsg); n != 1 {
		t.Fatalf("B logged %d data-loss lines, want 1", n)
	}
}

// Redis restarts empty under a client and a worker: both notice on their
// next call, the client lists its queue again after new adds, and the
// health check is unready with the reason.
func TestEmptiedDetected(t *testing.T) {
	srv := redistest.StartWith(t, redistest.Options{})
	client, logs := lossBroker(t, srv.Addr)
	worker, _ := lossBroker(t, srv.Addr)
	ctx := context.Background()
	mustInsert(t, client, job("q", "before"))
	fetch(t, worker, "q", 1, time.Minute)
	wantReady(t, client)
	srv.Kill()
	srv.Restart(t) // empty: no persistence

	mustInsert(t, client, job("q", "after"))
	if loss := client.DataLoss(); loss.Count != 1 || !strings.HasPrefix(loss.Reason, "emptied") {
		t.Fatalf("client's data loss after Redis restarted empty: %+v, want 1 emptied queue", loss)
	}
	if n := logs.Count(lossMsg); n != 1 {
		t.Fatalf("client logged %d data-loss lines, want 1", n)
	}
	queues, err := client.QueueList(ctx)
	if err != nil || !slices.Equal(queues, []string{"q"}) {
		t.Fatalf("queues after the restart and a new add: %v, %v; want [q]", queues, err)
	}
	wantUnready(t, client, "emptied")
	wantLossMetric(t, client, 1)

	if got := fetch(t, worker, "q", 1, time.Minute); len(got) != 1 || got[0].ID != "after" {
		t.Fatalf("worker fetched %v after the restart, want the job added after it", got)
	}
	if loss := worker.DataLoss(); loss.Count != 1 || !strings.HasPrefix(loss.Reason, "emptied") {
		t.Fatalf("worker's data loss after Redis restarted empty: %+v, want 1 emptied queue", loss)
	}
}

func wantReady(t *testing.T, b broker.Broker) {
	t.Helper()
	if rep := health.New(health.Ping(b)).Check(context.Background()); rep.Status != health.Healthy {
		t.Fatalf("health before any loss: %+v, want healthy", rep)
	}
}

func wantUnready(t *testing.T, b broker.Broker, reason string) {
	t.Helper()
	rep := health.New(health.Ping(b)).Check(context.Background())
	if rep.Status != health.Unhealthy || !strings.Contains(rep.Checks[0].Error, reason) {
		t.Fatalf("health after data loss: %+v, want unhealthy naming %q", rep, reason)
	}
}

func wantLossMetric(t *testing.T, b broker.Broker, want float64) {
	t.Helper()
	wm := metrics.New(metrics.Config{Broker: b, Queues: []string{"q"}})
	reg := prometheus.NewRegistry()
	reg.MustRegister(wm)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "aibos_worker_broker_data_loss_total" {
			if v := mf.GetMetric()[0].GetCounter().GetValue(); v != want {
				t.Fatalf("aibos_worker_broker_data_loss_total = %v, want %v", v, want)
			}
			return
		}
	}
	t.Fatal("no aibos_worker_broker_data_loss_total metric")
}

func sortedKeys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func TestNegativeDataLossCheckInterval(t *testing.T) {
	_, err := redisbroker.New(redistest.Client(t), redisbroker.Config{DataLossCheckInterval: -time.Second})
	if err == nil || !strings.Contains(err.Error(), "data loss check interval") {
		t.Fatalf("New with a negative check interval: %v, want an error naming it", err)
	}
}
