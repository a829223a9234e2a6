package worker_test

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"testing"
	"time"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/broker/redisbroker"
	"github.com/aibos/worker/internal/redistest"
)

// A busy Manager of one queue of short jobs stops hearing the queue's
// wakes while it drains a backlog in full batches (on Redis each urgent
// insert reached every such Manager process, fifty of them, and helped
// none), and hears them again once the backlog is drained: a job added
// then starts at once, although the Manager polls once an hour.
func TestBusyManagerMutesWakesWhileDraining(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rc, prefix := redistest.Client(t), redistest.Prefix(t)
	b, err := redisbroker.New(rc, redisbroker.Config{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	c := newClient(t, b)
	const backlog = 20000
	addShort(t, c, backlog)
	var done atomic.Int64
	started := make(chan string, 1)
	m := newManager(t, b, worker.ManagerConfig{Concurrency: 10, PollInterval: time.Hour, MaintainInterval: time.Hour, Logger: discardLogger})
	_ = m.HandleFunc("short", func(context.Context, *worker.Job) error {
		done.Add(1)
		return nil
	})
	_ = m.HandleFunc("after", func(_ context.Context, j *worker.Job) error {
		started <- j.ID
		return nil
	})
	channel := prefix + ":{default}:wake"
	subscribers := func() int64 {
		n, err := rc.PubSubNumSub(ctx, channel).Result()
		if err != nil {
			t.Fatal(err)
		}
		return n[channel]
	}
	startManager(t, m)
	waitFor(t, time.Minute, "the busy Manager to mute its queue's wakes", func() bool {
		if done.Load() >= backlog {
			t.Fatalf("the backlog of %d jobs drained before the Manager muted its queue's wakes", backlog)
		}
		return subscribers() == 0
	})
	waitFor(t, 2*time.Minute, "the backlog to drain", func() bool { return done.Load() >= backlog })
	waitFor(t, 10*time.Second, "the drained queue's wakes to be heard again", func() bool { return subscribers() == 1 })
	j := add(t, c, "default", worker.JobSpec{Type: "after", Data: json.RawMessage(`{}`)})
	if got := receive(t, started, "a job added after the drain did not start"); got != j.ID {
		t.Fatalf("started %s, want %s", got, j.ID)
	}
}
