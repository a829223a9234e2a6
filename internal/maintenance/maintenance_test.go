package maintenance_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/internal/maintenance"
	"github.com/aibos/worker/internal/redistest"
	"github.com/aibos/worker/internal/testbroker"
	"github.com/aibos/worker/internal/testwait"
)

func TestMain(m *testing.M) { os.Exit(redistest.Main(m)) }

// countingBroker counts QueueMaintain calls per queue.
type countingBroker struct {
	broker.Broker
	mu    sync.Mutex
	calls map[string]int
}

func (b *countingBroker) QueueMaintain(ctx context.Context, p *broker.QueueMaintainParams) (*broker.QueueMaintainResult, error) {
	b.mu.Lock()
	b.calls[p.Queue]++
	b.mu.Unlock()
	return b.Broker.QueueMaintain(ctx, p)
}

func (b *countingBroker) count(q string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.calls[q]
}

// An idle queue is left alone until Touch names it, while a queue with an
// active job is maintained every round: its expired lease is recovered.
func TestIdleQueuesWaitForATouch(t *testing.T) {
	testbroker.Each(t, func(t *testing.T, b broker.Broker) {
		cb := &countingBroker{Broker: b, calls: map[string]int{}}
		ctx := context.Background()
		insert := func(q, id string) {
			t.Helper()
			if _, err := b.JobInsert(ctx, &broker.JobInsertParams{ID: id, Queue: q, Type: "t", MaxAttempts: 2}); err != nil {
				t.Fatal(err)
			}
		}
		// busy holds a job whose lease expires at once: only a maintained
		// queue gets it back.
		insert("busy", "b1")
		if jobs, err := b.JobFetch(ctx, &broker.JobFetchParams{Queue: "busy", Limit: 1, LeaseDuration: time.Millisecond, WorkerID: "w"}); err != nil || len(jobs) != 1 {
			t.Fatalf("fetch: %v, %v", jobs, err)
		}
		queues := []string{"busy", "idle1", "touched", "idle2"}
		m := maintenance.New(maintenance.Config{Broker: cb, Queues: queues, Interval: 5 * time.Millisecond,
			LeaseTTL: time.Minute, Holder: "h", IdleInterval: time.Hour, TouchDelay: 20 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		m.Start()
		defer m.Stop()
		testwait.For(t, 10*time.Second, "every queue maintained once", func() bool {
			for _, q := range queues {
				if cb.count(q) == 0 {
					return false
				}
			}
			return true
		})
		testwait.For(t, 10*time.Second, "the expired lease recovered", func() bool {
			j, err := b.JobGet(ctx, &broker.JobGetParams{Queue: "busy", ID: "b1"})
			return err == nil && j.State == broker.StatePending
		})
		insert("touched", "t1")
		m.Touch("touched")
		testwait.For(t, 10*time.Second, "the touched queue maintained again", func() bool { return cb.count("touched") >= 2 })
		for _, q := range []string{"idle1", "idle2"} {
			if n := cb.count(q); n != 1 {
				t.Errorf("idle queue %s maintained %d times in rounds that maintained the touched queue twice, want once", q, n)
			}
		}
		if n := cb.count("busy"); n < 3 {
			t.Errorf("the queue with a pending job was maintained %d times, want one per round", n)
		}
	})
}

// leaderCounter counts LeaderAcquire calls and QueueMaintain calls.
type leaderCounter struct {
	*countingBroker
	leaders  broker.LeaderStore
	acquires atomic.Int64
}

func (b *leaderCounter) LeaderAcquire(ctx context.Context, p *broker.LeaderParams) (bool, error) {
	b.acquires.Add(1)
	return b.leaders.LeaderAcquire(ctx, p)
}

func (b *leaderCounter) LeaderRelease(ctx context.Context, p *broker.LeaderParams) error {
	return b.leaders.LeaderRelease(ctx, p)
}

// A leader extends its lease once half of it has run, not at every
// round: each extension is a broker call (a write transaction on SQLite)
// per queue, and the lease left still covers the rounds in between.
func TestLeaderExtendsAtHalfLease(t *testing.T) {
	testbroker.Each(t, func(t *testing.T, b broker.Broker) {
		ctx := context.Background()
		// A job due in an hour keeps the queue busy, so every round
		// maintains it.
		if _, err := b.JobInsert(ctx, &broker.JobInsertParams{ID: "later", Queue: "busy", Type: "t", MaxAttempts: 1, Delay: time.Hour}); err != nil {
			t.Fatal(err)
		}
		lc := &leaderCounter{countingBroker: &countingBroker{Broker: b, calls: map[string]int{}}, leaders: b.(broker.LeaderStore)}
		const ttl = 400 * time.Millisecond
		m := maintenance.New(maintenance.Config{Broker: lc, Queues: []string{"busy"}, Interval: 5 * time.Millisecond,
			LeaseTTL: ttl, Holder: "h", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		start := time.Now()
		m.Start()
		testwait.For(t, 30*time.Second, "the queue maintained in 100 rounds", func() bool { return lc.count("busy") >= 100 })
		m.Stop()
		elapsed := time.Since(start)
		acquires, maintains := lc.acquires.Load(), lc.count("busy")
		// One call at the start, then one per half lease at most.
		if most := 1 + int64(elapsed/(ttl/2)); acquires > most {
			t.Fatalf("%d lease calls for %d rounds over %v with a %v lease, want at most %d (one per half lease)",
				acquires, maintains, elapsed.Round(time.Millisecond), ttl, most)
		}
		if acquires < 1 {
			t.Fatal("the queue was maintained without a lease call")
		}
	})
}
