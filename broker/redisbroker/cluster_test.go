package redisbroker_test

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/broker/brokertest"
	"github.com/aibos/worker/broker/redisbroker"
	"github.com/aibos/worker/internal/redistest"
)

// TestCluster starts one Redis Cluster of three masters (no replicas: the
// cases need no failover) and runs the cluster cases on it.
func TestCluster(t *testing.T) {
	c := redistest.StartCluster(t, 3, 0)
	client := c.Client(t)
	t.Run("Conformance", func(t *testing.T) { testConformanceCluster(t, client) })
	t.Run("QueuesOnThreeMasters", func(t *testing.T) { testQueuesOnThreeMasters(t, c, client) })
	t.Run("OpenURL", func(t *testing.T) {
		testOpenURL(t, c.URL())
		_, err := broker.Open(t.Context(), c.URL()+"/3")
		if err == nil || !strings.Contains(err.Error(), "only database 0") {
			t.Errorf("open a cluster url naming database 3: %v, want an error saying only database 0", err)
		}
	})
}

// testConformanceCluster runs the conformance suite through a ClusterClient
// on the cluster's three masters. Cluster mode makes Redis reject any
// script or transaction whose keys span slots (CROSSSLOT), and a command
// sent to a master that does not own the key's slot is redirected (MOVED),
// so this proves the hash tags of keys.go, the per-queue pipelines and the
// code that reads across queues. Afterwards it checks that the suite's
// queues really were spread over all three masters.
func testConformanceCluster(t *testing.T, client *redis.ClusterClient) {
	var mu sync.Mutex
	n := 0
	t.Run("suite", func(t *testing.T) {
		brokertest.Run(t, func(t *testing.T) broker.Broker {
			mu.Lock()
			n++
			prefix := "cluster:" + strconv.Itoa(n)
			mu.Unlock()
			b, err := redisbroker.New(client, redisbroker.Config{Prefix: prefix})
			if err != nil {
				t.Fatalf("new broker: %v", err)
			}
			t.Cleanup(func() { _ = b.Close() })
			return b
		})
	})
	tags := tagsPerMaster(t, client, "cluster:*")
	if len(tags) != 3 {
		t.Fatalf("the suite's keys are on %d masters, want all 3: %v", len(tags), tags)
	}
	for m, ts := range tags {
		if len(ts) < 3 {
			t.Errorf("master %s holds the keys of %d queues only: %v", m, len(ts), ts)
		}
	}
}

// tagsPerMaster returns, for each master holding keys that match pattern,
// the hash tags ({...}) of those keys.
func tagsPerMaster(t *testing.T, client *redis.ClusterClient, pattern string) map[string]map[string]bool {
	t.Helper()
	var mu sync.Mutex
	out := map[string]map[string]bool{}
	err := client.ForEachMaster(context.Background(), func(ctx context.Context, m *redis.Client) error {
		it := m.Scan(ctx, 0, pattern, 1000).Iterator()
		for it.Next(ctx) {
			k := it.Val()
			i, j := strings.IndexByte(k, '{'), strings.IndexByte(k, '}')
			if i < 0 || j < i {
				continue
			}
			mu.Lock()
			if out[m.Options().Addr] == nil {
				out[m.Options().Addr] = map[string]bool{}
			}
			out[m.Options().Addr][k[i:j+1]] = true
			mu.Unlock()
		}
		return it.Err()
	})
	if err != nil {
		t.Fatalf("scan the masters: %v", err)
	}
	return out
}

// testQueuesOnThreeMasters takes three queues whose slots are on
// three different masters and checks the calls that span queues: one
// JobComplete and one JobLeaseExtend over leases of all three, QueueList,
// and a JobWait on all three woken by an insert into each.
func testQueuesOnThreeMasters(t *testing.T, c *redistest.Cluster, client *redis.ClusterClient) {
	prefix := redistest.Prefix(t)
	var queues []string
	seen := map[string]bool{}
	for i := 0; len(queues) < 3 && i < 1000; i++ {
		q := "q" + strconv.Itoa(i)
		if m := c.MasterOf(t, prefix+":{"+q+"}:pending"); !seen[m] {
			seen[m] = true
			queues = append(queues, q)
		}
	}
	if len(queues) != 3 {
		t.Fatalf("found queues on %d masters only", len(queues))
	}
	b, err := redisbroker.New(client, redisbroker.Config{Prefix: prefix})
	if err != nil {
		t.Fatalf("new broker: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	ctx := t.Context()

	var leases []*broker.JobLeaseParams
	for _, q := range queues {
		if _, err := b.JobInsert(ctx, &broker.JobInsertParams{Queue: q, Type: "t", ID: q + "-1", MaxAttempts: 1}); err != nil {
			t.Fatalf("insert into %s: %v", q, err)
		}
		jobs, err := b.JobFetch(ctx, &broker.JobFetchParams{Queue: q, Limit: 10, LeaseDuration: time.Minute, WorkerID: "w"})
		if err != nil || len(jobs) != 1 {
			t.Fatalf("fetch from %s: %d jobs, %v; want 1", q, len(jobs), err)
		}
		leases = append(leases, &broker.JobLeaseParams{Queue: q, ID: jobs[0].ID, Token: jobs[0].LeaseToken})
	}
	errs, err := b.JobLeaseExtend(ctx, leases, time.Minute)
	if err != nil {
		t.Fatalf("extend leases on three masters: %v", err)
	}
	for i, e := range errs {
		if e != nil {
			t.Errorf("extend lease of %s: %v", leases[i].ID, e)
		}
	}
	var done []*broker.JobCompleteParams
	for _, l := range leases {
		done = append(done, &broker.JobCompleteParams{JobLeaseParams: *l})
	}
	if errs, err = b.JobComplete(ctx, done); err != nil {
		t.Fatalf("complete jobs on three masters: %v", err)
	}
	for i, e := range errs {
		if e != nil {
			t.Errorf("complete %s: %v", done[i].ID, e)
		}
	}
	for _, q := range queues {
		st, err := b.QueueStats(ctx, &broker.QueueStatsParams{Queue: q})
		if err != nil || st.Completed != 1 {
			t.Fatalf("stats of %s: %+v, %v; want 1 completed", q, st, err)
		}
	}
	listed, err := b.QueueList(ctx)
	if err != nil || strings.Join(listed, ",") != strings.Join(queues, ",") {
		t.Fatalf("QueueList = %v, %v; want %v", listed, err, queues)
	}

	// Each queue's wake is published on its own master; the one waiting
	// connection must hear all of them.
	other, err := redisbroker.New(client, redisbroker.Config{Prefix: prefix})
	if err != nil {
		t.Fatalf("new broker: %v", err)
	}
	t.Cleanup(func() { _ = other.Close() })
	for _, q := range queues {
		// An empty queue first: the wait returns on its timeout or on the
		// subscription's confirmation, never early with work.
		_ = b.JobWait(ctx, queues, 50*time.Millisecond)
		woke := make(chan error, 1)
		go func() { woke <- b.JobWait(ctx, queues, time.Minute) }()
		if _, err := other.JobInsert(ctx, &broker.JobInsertParams{Queue: q, Type: "t", ID: q + "-2", MaxAttempts: 1}); err != nil {
			t.Fatalf("insert into %s: %v", q, err)
		}
		select {
		case err := <-woke:
			if err != nil {
				t.Fatalf("wait woken by %s: %v", q, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("an insert into %s did not wake JobWait within 10s", q)
		}
		jobs, err := b.JobFetch(ctx, &broker.JobFetchParams{Queue: q, Limit: 10, LeaseDuration: time.Minute, WorkerID: "w"})
		if err != nil || len(jobs) != 1 {
			t.Fatalf("fetch from %s after the wake: %d jobs, %v; want 1", q, len(jobs), err)
		}
	}
}
