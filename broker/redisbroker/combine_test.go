package redisbroker_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/broker/redisbroker"
)

// insertAll runs add(g) on n goroutines at once and returns their errors.
func insertAll(n int, add func(g int) error) []error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for g := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs[g] = add(g)
		}()
	}
	close(start)
	wg.Wait()
	return errs
}

func TestConcurrentInsertsAreCombined(t *testing.T) {
	t.Parallel()
	b := newBroker(t)
	ctx := context.Background()
	const goroutines, each = 32, 40
	errs := insertAll(goroutines, func(g int) error {
		for i := range each {
			id := fmt.Sprintf("g%02d-%02d", g, i)
			j, err := b.JobInsert(ctx, job("q", id, func(p *broker.JobInsertParams) {
				p.Data = []byte(fmt.Sprintf(`{"g":%d,"i":%d}`, g, i))
				p.TenantID = fmt.Sprintf("t%d", g)
			}))
			if err != nil {
				return err
			}
			if j.ID != id || j.State != broker.StatePending || j.TenantID != fmt.Sprintf("t%d", g) ||
				string(j.Data) != fmt.Sprintf(`{"g":%d,"i":%d}`, g, i) {
				return fmt.Errorf("insert %s returned %+v", id, j)
			}
		}
		return nil
	})
	for g, err := range errs {
		if err != nil {
			t.Fatalf("goroutine %d: %v", g, err)
		}
	}
	st, err := b.QueueStats(ctx, &broker.QueueStatsParams{Queue: "q"})
	if err != nil {
		t.Fatal(err)
	}
	if st.Pending != goroutines*each {
		t.Fatalf("pending = %d, want %d", st.Pending, goroutines*each)
	}
	// Each stored job reads back as added.
	for g := range goroutines {
		id := fmt.Sprintf("g%02d-%02d", g, each-1)
		j, err := b.JobGet(ctx, &broker.JobGetParams{Queue: "q", ID: id})
		if err != nil {
			t.Fatal(err)
		}
		if string(j.Data) != fmt.Sprintf(`{"g":%d,"i":%d}`, g, each-1) || j.TenantID != fmt.Sprintf("t%d", g) {
			t.Fatalf("job %s reads back as %+v", id, j)
		}
	}
	calls := redisbroker.InsertCalls(b)
	t.Logf("%d jobs in %d script calls", goroutines*each, calls)
	if calls >= goroutines*each {
		t.Fatalf("%d script calls for %d concurrent inserts: none were combined", calls, goroutines*each)
	}
}

// In a combined call each job keeps its own outcome: a rejected job fails
// its caller alone.
func TestCombinedInsertsKeepTheirOwnOutcome(t *testing.T) {
	t.Parallel()
	b := newBroker(t)
	ctx := context.Background()
	const n = 32
	for round := range 5 {
		q := fmt.Sprintf("own-%d", round)
		// Every goroutine adds the same id, then a job with the same unique
		// key, then a job of its own: one wins each race, the others get
		// the duplicate error, and every job of its own is stored.
		errID, errKey := make([]error, n), make([]error, n)
		errs := insertAll(n, func(g int) error {
			_, errID[g] = b.JobInsert(ctx, job(q, "same-id"))
			_, errKey[g] = b.JobInsert(ctx, job(q, fmt.Sprintf("key-%d", g), func(p *broker.JobInsertParams) { p.UniqueKey = "k" }))
			_, err := b.JobInsert(ctx, job(q, fmt.Sprintf("own-%d", g)))
			return err
		})
		idWins, keyWins := 0, 0
		for g := range n {
			if errs[g] != nil {
				t.Fatalf("round %d, goroutine %d: own job: %v", round, g, errs[g])
			}
			var dup *broker.DuplicateError
			switch {
			case errID[g] == nil:
				idWins++
			case !errors.As(errID[g], &dup) || dup.ExistingID != "same-id" || dup.UniqueKey != "":
				t.Fatalf("round %d, goroutine %d: same id: %v", round, g, errID[g])
			}
			switch {
			case errKey[g] == nil:
				keyWins++
			case !errors.As(errKey[g], &dup) || dup.UniqueKey != "k" || dup.ExistingID == fmt.Sprintf("key-%d", g):
				t.Fatalf("round %d, goroutine %d: same unique key: %v", round, g, errKey[g])
			}
		}
		if idWins != 1 || keyWins != 1 {
			t.Fatalf("round %d: %d inserts of one id and %d of one unique key succeeded, want 1 each", round, idWins, keyWins)
		}
		st, err := b.QueueStats(ctx, &broker.QueueStatsParams{Queue: q})
		if err != nil {
			t.Fatal(err)
		}
		if st.Pending != 1+1+n {
			t.Fatalf("round %d: pending = %d, want 1 + 1 + %d own jobs", round, st.Pending, n)
		}
	}
}

func TestCombinedInsertsRespectMaxQueueLength(t *testing.T) {
	t.Parallel()
	b := newBroker(t)
	ctx := context.Background()
	const n, limit = 48, 10
	errs := insertAll(n, func(g int) error {
		_, err := b.JobInsert(ctx, job("full", fmt.Sprintf("j%d", g), func(p *broker.JobInsertParams) { p.MaxQueueLength = limit }))
		return err
	})
	stored := 0
	for g, err := range errs {
		switch {
		case err == nil:
			stored++
		case errors.Is(err, broker.ErrQueueFull):
		default:
			t.Fatalf("goroutine %d: %v", g, err)
		}
	}
	if stored != limit {
		t.Fatalf("%d jobs stored under a limit of %d", stored, limit)
	}
	st, err := b.QueueStats(ctx, &broker.QueueStatsParams{Queue: "full"})
	if err != nil {
		t.Fatal(err)
	}
	if st.Pending != limit {
		t.Fatalf("pending = %d, want %d", st.Pending, limit)
	}
}
