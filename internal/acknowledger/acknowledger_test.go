package acknowledger_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/internal/acknowledger"
	"github.com/aibos/worker/internal/redistest"
	"github.com/aibos/worker/internal/testbroker"
)

func TestMain(m *testing.M) { os.Exit(redistest.Main(m)) }

// TestStopFlushesWithPerJobOutcomes: every completion queued before Stop is
// written, and each Done gets its own job's outcome: nil for a live lease,
// ErrLeaseLost for a stale token (that job is left active).
func TestStopFlushesWithPerJobOutcomes(t *testing.T) {
	testbroker.Each(t, func(t *testing.T, b broker.Broker) {
		ctx := context.Background()
		const n = 300 // more than one batch
		for i := range n {
			p := &broker.JobInsertParams{ID: fmt.Sprintf("job-%03d", i), Queue: "q", Type: "t", Data: json.RawMessage(`{}`), MaxAttempts: 1}
			if _, err := b.JobInsert(ctx, p); err != nil {
				t.Fatal(err)
			}
		}
		var jobs []*broker.Job
		for len(jobs) < n {
			got, err := b.JobFetch(ctx, &broker.JobFetchParams{Queue: "q", Limit: 100, LeaseDuration: time.Minute, WorkerID: "w"})
			if err != nil || len(got) == 0 {
				t.Fatalf("fetch: %d jobs, %v", len(got), err)
			}
			jobs = append(jobs, got...)
		}
		c, err := worker.NewClient(b, worker.ClientConfig{})
		if err != nil {
			t.Fatal(err)
		}
		a := acknowledger.New(b, 16)
		a.Start()
		outcomes := make([]error, n)
		called := make([]int, n)
		for i, j := range jobs {
			token := j.LeaseToken
			if i == 7 {
				token++ // stale
			}
			a.Add(acknowledger.Request{
				Params: &broker.JobCompleteParams{JobLeaseParams: broker.JobLeaseParams{Queue: "q", ID: j.ID, Token: token}},
				Done:   acknowledger.DoneFunc(func(err error) { outcomes[i] = err; called[i]++ }),
			})
		}
		a.Stop()
		for i, j := range jobs {
			if called[i] != 1 {
				t.Fatalf("job %d: Done called %d times, want once", i, called[i])
			}
			want := broker.StateCompleted
			if i == 7 {
				want = broker.StateActive
				if !errors.Is(outcomes[i], broker.ErrLeaseLost) {
					t.Errorf("stale completion of job %d: %v, want ErrLeaseLost", i, outcomes[i])
				}
			} else if outcomes[i] != nil {
				t.Errorf("completion of job %d: %v", i, outcomes[i])
			}
			got, err := c.Get(ctx, "q", j.ID)
			if err != nil || got.State != want {
				t.Fatalf("job %d after Stop: %v, %v; want %s", i, got, err, want)
			}
		}
	})
}
