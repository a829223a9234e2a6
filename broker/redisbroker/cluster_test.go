package redisbroker_test

import (
	"context"
	"errors"
	"fmt"
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

// TestCluster starts one Redis Cluster of three masters with a replica
// each and runs the cluster cases on it, the master kill last.
func TestCluster(t *testing.T) {
	c := redistest.StartCluster(t, 3, 1)
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
	t.Run("DurableAfterFailover", func(t *testing.T) { testClusterDurableAfterFailover(t, c) })
	t.Run("MasterKilled", func(t *testing.T) { testClusterMasterKilled(t, c) })
}

// testClusterMasterKilled enqueues into a queue, with DurableReplicas 1 and
// without, kills the queue's master and checks that a broker opened from a
// redis+cluster:// URL resumes on the promoted replica: plain enqueues are
// acknowledged again, durable ones are refused (the shard has no replica
// left), and every durable enqueue acknowledged before the kill is fetched.
func testClusterMasterKilled(t *testing.T, c *redistest.Cluster) {
	const before = 100
	ctx := t.Context()
	prefix := redistest.Prefix(t)
	plain, err := broker.Open(ctx, c.URL()+"?prefix="+prefix)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { _ = plain.Close() })
	durable, err := redisbroker.Open(c.URL(), redisbroker.Config{Prefix: prefix, DurableReplicas: 1})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { _ = durable.Close() })
	insert := func(b broker.Broker, id string) error {
		ictx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		_, err := b.JobInsert(ictx, &broker.JobInsertParams{Queue: "killed", Type: "t", ID: id, MaxAttempts: 1})
		return err
	}
	for i := range before {
		if err := insert(durable, "before-"+strconv.Itoa(i)); err != nil {
			t.Fatalf("durable insert %d before the kill: %v", i, err)
		}
	}
	m := c.MasterOf(t, prefix+":{killed}:pending")
	c.KillNode(t, m)
	// resume inserts through b until done says the answer is the one
	// expected; each client notices the new master on its own.
	try := 0
	resume := func(name string, b broker.Broker, done func(error) bool) error {
		start := time.Now()
		for {
			try++
			err := insert(b, "after-"+strconv.Itoa(try))
			if done(err) {
				t.Logf("master %s killed: %s inserts answered %v %v after its replica took over", m, name, err, time.Since(start))
				return err
			}
			if time.Since(start) > 20*time.Second {
				return fmt.Errorf("after 20s still: %w", err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if err := resume("plain", plain, func(err error) bool { return err == nil }); err != nil {
		t.Fatalf("plain insert after %s was killed and replaced: %v", m, err)
	}
	notReplicated := func(err error) bool { return errors.Is(err, redisbroker.ErrNotReplicated) }
	if err := resume("durable", durable, notReplicated); !notReplicated(err) {
		t.Errorf("durable insert with the shard's replica gone: %v, want ErrNotReplicated", err)
	}
	got := map[string]bool{}
	for {
		jobs, err := durable.JobFetch(ctx, &broker.JobFetchParams{Queue: "killed", Limit: 1000, LeaseDuration: time.Minute, WorkerID: "w"})
		if err != nil {
			t.Fatalf("fetch after the kill: %v", err)
		}
		if len(jobs) == 0 {
			break
		}
		for _, j := range jobs {
			got[j.ID] = true
		}
	}
	lost := 0
	for i := range before {
		if !got["before-"+strconv.Itoa(i)] {
			lost++
		}
	}
	if lost > 0 {
		t.Errorf("%d of %d durable enqueues acknowledged before the kill are gone", lost, before)
	}
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

// testClusterDurableAfterFailover: a durable enqueue right after a planned
// failover of its queue's master (the old master now a replica of the new
// one, the client's slot map not yet reloaded) is acknowledged and on the
// new master, not refused with the MOVED redirect.
func testClusterDurableAfterFailover(t *testing.T, c *redistest.Cluster) {
	ctx := t.Context()
	prefix := redistest.Prefix(t)
	b, err := redisbroker.Open(c.URL(), redisbroker.Config{Prefix: prefix, DurableReplicas: 1})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	for _, id := range []string{"before", "after"} {
		if id == "after" {
			c.Failover(t, c.MasterOf(t, prefix+":{moved}:pending"))
		}
		if _, err := b.JobInsert(ctx, &broker.JobInsertParams{Queue: "moved", Type: "t", ID: id, MaxAttempts: 1}); err != nil {
			t.Fatalf("durable insert %s the failover: %v", id, err)
		}
	}
	st, err := b.QueueStats(ctx, &broker.QueueStatsParams{Queue: "moved"})
	if err != nil || st.Pending != 2 {
		t.Fatalf("stats after the failover: %+v, %v; want 2 pending", st, err)
	}
}
