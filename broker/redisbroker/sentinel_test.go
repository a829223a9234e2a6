package redisbroker_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/broker/redisbroker"

	"github.com/aibos/worker/internal/redistest"
)

// TestSentinel starts one Sentinel setup (a master, a replica, three
// sentinels) and runs the Sentinel cases on it, the master kill last.
func TestSentinel(t *testing.T) {
	s := redistest.StartSentinel(t)
	t.Run("OpenURL", func(t *testing.T) { testOpenURL(t, s.URL()) })
	t.Run("DurableWithReplica", func(t *testing.T) { testDurableWithReplica(t, s) })
	t.Run("Failover", func(t *testing.T) { testFailover(t, s) })
}

// testFailover enqueues through Sentinel, kills the master, waits for the
// replica's promotion, enqueues more, and fetches every job: no job whose
// enqueue was acknowledged may be missing when enqueued with
// DurableReplicas 1. While no replica is left, such an enqueue is refused
// (ErrNotReplicated); it is acknowledged again once the old master is back
// as a replica. Jobs enqueued without it are counted and reported:
// replication is asynchronous, so a write acknowledged just before the
// kill may not have reached the replica.
func testFailover(t *testing.T, s *redistest.Sentinel) {
	const before, after = 200, 100
	open := func(durable int) *redisbroker.Broker {
		b, err := redisbroker.Open(s.URL(), redisbroker.Config{Prefix: redistest.Prefix(t), DurableReplicas: durable})
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		t.Cleanup(func() { _ = b.Close() })
		return b
	}
	brokers := map[string]*redisbroker.Broker{"durable": open(1), "plain": open(0)}
	acked := map[string][]string{}
	insert := func(name, id string) error {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		_, err := brokers[name].JobInsert(ctx, &broker.JobInsertParams{Queue: "q", Type: "t", ID: id, MaxAttempts: 1})
		if err == nil {
			acked[name] = append(acked[name], id)
		}
		return err
	}
	for i := range before {
		for name := range brokers {
			if err := insert(name, fmt.Sprintf("before-%d", i)); err != nil {
				t.Fatalf("%s insert before the kill: %v", name, err)
			}
		}
	}
	took := s.KillMaster(t)
	t.Logf("replica promoted %v after the master was killed", took)
	// resume inserts into name until one is acknowledged or, with
	// refusedWith, refused with it; it returns the last error.
	try := 0
	resume := func(name string, refusedWith error) error {
		start := time.Now()
		var err error
		for deadline := start.Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			try++
			if err = insert(name, fmt.Sprintf("try-%d", try)); err == nil || refusedWith != nil && errors.Is(err, refusedWith) {
				break
			}
		}
		t.Logf("%s: inserts answered %v after %v", name, err, time.Since(start))
		return err
	}
	// With no replica left, a durable insert is refused, not acknowledged.
	if err := resume("durable", redisbroker.ErrNotReplicated); !errors.Is(err, redisbroker.ErrNotReplicated) {
		t.Fatalf("durable insert with the replica gone: %v, want ErrNotReplicated", err)
	}
	if err := resume("plain", nil); err != nil {
		t.Fatalf("plain insert after the promotion: %v", err)
	}
	s.RestartReplica(t)
	if err := resume("durable", nil); err != nil {
		t.Fatalf("durable insert once a replica is back: %v", err)
	}
	for name := range brokers {
		for i := range after {
			if err := insert(name, fmt.Sprintf("after-%d", i)); err != nil {
				t.Errorf("%s insert %d after the failover: %v", name, i, err)
			}
		}
	}
	for name, b := range brokers {
		got := map[string]bool{}
		for {
			jobs, err := b.JobFetch(t.Context(), &broker.JobFetchParams{Queue: "q", Limit: 1000, LeaseDuration: time.Minute, WorkerID: "w"})
			if err != nil {
				t.Fatalf("%s fetch after the failover: %v", name, err)
			}
			if len(jobs) == 0 {
				break
			}
			for _, j := range jobs {
				got[j.ID] = true
			}
		}
		var lost []string
		for _, id := range acked[name] {
			if !got[id] {
				lost = append(lost, id)
			}
		}
		t.Logf("%s: %d enqueues acknowledged, %d fetched after the failover, %d acknowledged lost %v",
			name, len(acked[name]), len(got), len(lost), lost)
		if name == "durable" && len(lost) > 0 {
			t.Errorf("durable: %d acknowledged enqueues lost in the failover: %v", len(lost), lost)
		}
		if len(acked[name]) != before+after+1 {
			t.Errorf("%s: %d enqueues acknowledged, want %d", name, len(acked[name]), before+after+1)
		}
	}
}
