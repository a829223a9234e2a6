package redisbroker_test

import (
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/broker/redisbroker"
	"github.com/aibos/worker/internal/redistest"
)

// durableWrites are the calls DurableReplicas covers, each writing one job
// named id into queue q.
var durableWrites = map[string]func(b *redisbroker.Broker, t *testing.T, q, id string) error{
	"JobInsert": func(b *redisbroker.Broker, t *testing.T, q, id string) error {
		_, err := b.JobInsert(t.Context(), &broker.JobInsertParams{Queue: q, Type: "t", ID: id, MaxAttempts: 1})
		return err
	},
	"JobInsertMany": func(b *redisbroker.Broker, t *testing.T, q, id string) error {
		_, err := b.JobInsertMany(t.Context(), []*broker.JobInsertParams{{Queue: q, Type: "t", ID: id, MaxAttempts: 1}})
		return err
	},
	"Commit": func(b *redisbroker.Broker, t *testing.T, q, id string) error {
		_, err := b.Commit(t.Context(), &broker.CommitParams{Scope: q,
			Insert: []*broker.CommitInsert{{Job: &broker.JobInsertParams{Queue: q, Type: "t", ID: id, MaxAttempts: 1}}}})
		return err
	},
}

// TestDurableNoReplica: with DurableReplicas 1 on a server that has no
// replica, every covered write returns ErrNotReplicated, never success,
// and the job it wrote is on the server all the same (as the error says).
func TestDurableNoReplica(t *testing.T) {
	client := redistest.Client(t)
	b, err := redisbroker.New(client, redisbroker.Config{Prefix: redistest.Prefix(t), DurableReplicas: 1, DurableTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatalf("new broker: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	for name, write := range durableWrites {
		err := write(b, t, "durable", name)
		if !errors.Is(err, redisbroker.ErrNotReplicated) {
			t.Errorf("%s with no replica: %v, want ErrNotReplicated", name, err)
			continue
		}
		t.Logf("%s: %v", name, err)
		if _, err := b.JobGet(t.Context(), &broker.JobGetParams{Queue: "durable", ID: name}); err != nil {
			t.Errorf("%s: the job is not on the master after ErrNotReplicated: %v", name, err)
		}
	}
	for _, bad := range []redisbroker.Config{{DurableReplicas: -1}, {DurableTimeout: -time.Second}} {
		if _, err := redisbroker.New(client, bad); err == nil {
			t.Errorf("New with %+v: no error", bad)
		}
	}
}

// testDurableWithReplica: through Sentinel, with the replica attached,
// every covered write succeeds and its job is on the replica when it
// returns (read from the replica itself).
func testDurableWithReplica(t *testing.T, s *redistest.Sentinel) {
	prefix := redistest.Prefix(t)
	b, err := redisbroker.Open(s.URL(), redisbroker.Config{Prefix: prefix, DurableReplicas: 1})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	replica := redis.NewClient(&redis.Options{Addr: s.Replica.Addr})
	t.Cleanup(func() { _ = replica.Close() })
	for name, write := range durableWrites {
		if err := write(b, t, "durable", name); err != nil {
			t.Fatalf("%s with a replica: %v", name, err)
		}
		// The job's body is a field of the queue's body hash (doc.go).
		ok, err := replica.HExists(t.Context(), prefix+":{durable}:b", name).Result()
		if err != nil || !ok {
			t.Errorf("%s returned, but the replica does not hold the job: %v, %v", name, ok, err)
		}
	}
}
