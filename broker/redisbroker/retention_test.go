package redisbroker_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/broker/redisbroker"
)

// Completions given the queue's count rule keep the completed set within it
// after every batch, whatever the rate, and what they remove, like jobs
// deleted on completion, leaves no key, body, attempt history, unique key or ttl entry
// behind: only the kept jobs' own keys remain.
func TestCompletionKeepsCompletedWithinCount(t *testing.T) {
	t.Parallel()
	const keep = 20
	b, client, prefix := newBrokerKeys(t)
	ctx := context.Background()
	var ps []*broker.JobInsertParams
	for i := range 300 {
		ps = append(ps, job("trim", fmt.Sprintf("j%03d", i), func(p *broker.JobInsertParams) {
			if i%2 == 0 {
				p.TTL = time.Hour // a ttl index entry to remove with the job
			}
			if i%3 == 0 {
				p.UniqueKey = fmt.Sprintf("k%d", i) // released at completion
			}
			p.DeleteOnComplete = i < 100
		}))
	}
	if _, err := b.JobInsertMany(ctx, ps); err != nil {
		t.Fatal(err)
	}
	var completed []string
	final := 0
	for {
		jobs := fetch(t, b, "trim", 30, time.Minute)
		if len(jobs) == 0 {
			break
		}
		cps := make([]*broker.JobCompleteParams, len(jobs))
		for i, j := range jobs {
			cps[i] = &broker.JobCompleteParams{JobLeaseParams: broker.JobLeaseParams{Queue: "trim", ID: j.ID, Token: j.LeaseToken},
				CompletedMaxCount: keep}
			if !j.DeleteOnComplete {
				completed = append(completed, j.ID)
			}
		}
		errs, err := b.JobComplete(ctx, cps)
		if err != nil || slices.ContainsFunc(errs, func(e error) bool { return e != nil }) {
			t.Fatalf("complete: %v, %v", errs, err)
		}
		st, err := b.QueueStats(ctx, &broker.QueueStatsParams{Queue: "trim"})
		if err != nil {
			t.Fatal(err)
		}
		// Trimming waits for 100 jobs of excess (complete.lua), then
		// removes all of it.
		if st.Completed > keep+99 {
			t.Fatalf("after a completion batch given a count rule of %d, %d jobs are completed (want at most %d)", keep, st.Completed, keep+99)
		}
		final = int(st.Completed)
	}
	if len(completed) != 200 {
		t.Fatalf("%d jobs completed without DeleteOnComplete, want 200", len(completed))
	}
	if final >= len(completed) || final < keep {
		t.Fatalf("%d of %d completed jobs kept: completions never trimmed (or trimmed below the rule of %d)", final, len(completed), keep)
	}
	kept := completed[len(completed)-final:]
	res, err := b.JobList(ctx, &broker.JobListParams{Queue: "trim", State: broker.StateCompleted})
	if err != nil {
		t.Fatal(err)
	}
	var listed []string
	for _, j := range res.Jobs {
		listed = append(listed, j.ID)
	}
	slices.Sort(listed)
	if !slices.Equal(listed, kept) {
		t.Fatalf("completed jobs kept: %v, want the newest %d: %v", listed, keep, kept)
	}
	if n, err := client.HLen(ctx, redisbroker.BodyKey(prefix, "trim")).Result(); err != nil || n != int64(final) {
		t.Fatalf("body hash holds %d entries, want the %d kept jobs' (%v)", n, final, err)
	}
	ttl, err := client.ZRange(ctx, prefix+":{trim}:ttl", 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ttl {
		if !slices.Contains(kept, id) {
			t.Fatalf("ttl index still names removed job %s", id)
		}
	}
	keys, err := client.Keys(ctx, prefix+":{trim}:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		id, isJob := strings.CutPrefix(k, prefix+":{trim}:j:")
		if hid, isHist := strings.CutPrefix(k, prefix+":{trim}:h:"); isHist {
			id, isJob = hid, true // an attempt history goes with its job
		}
		if strings.Contains(k, ":u:") || isJob && !slices.Contains(kept, id) {
			t.Fatalf("key %s outlived its job", k)
		}
	}
}
