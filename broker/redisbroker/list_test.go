package redisbroker_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/aibos/worker/broker"
)

// A filtered listing over more jobs than one script call scans (2,000)
// pages correctly across the calls: every matching job exactly once, in
// fetch order, with NextOffset -1 only at the end.
func TestFilteredListSpansScanSlices(t *testing.T) {
	t.Parallel()
	b := newBroker(t)
	ctx := context.Background()
	const total = 5000
	var want []string
	for start := 0; start < total; start += 1000 {
		ps := make([]*broker.JobInsertParams, 1000)
		for i := range ps {
			n := start + i
			tenant := "a"
			if n%5 == 0 { // sparse matches: 1 in 5
				tenant = "b"
				want = append(want, fmt.Sprintf("job-%05d", n))
			}
			ps[i] = &broker.JobInsertParams{ID: fmt.Sprintf("job-%05d", n), Queue: "list", Type: "t", MaxAttempts: 1, TenantID: tenant}
		}
		if _, err := b.JobInsertMany(ctx, ps); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	offset, pages := 0, 0
	for offset >= 0 {
		page, err := b.JobList(ctx, &broker.JobListParams{Queue: "list", State: broker.StatePending, TenantID: "b", Offset: offset, Limit: 300})
		if err != nil {
			t.Fatal(err)
		}
		for _, j := range page.Jobs {
			if j.TenantID != "b" {
				t.Fatalf("job %s of tenant %q in a listing of tenant b", j.ID, j.TenantID)
			}
			got = append(got, j.ID)
		}
		if page.NextOffset >= 0 && page.NextOffset != offset+len(page.Jobs) {
			t.Fatalf("page at %d: %d jobs, next offset %d", offset, len(page.Jobs), page.NextOffset)
		}
		offset = page.NextOffset
		pages++
	}
	if len(got) != len(want) {
		t.Fatalf("listed %d jobs of tenant b over %d pages, want %d", len(got), pages, len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("job %d of the listing is %s, want %s", i, got[i], want[i])
		}
	}
}
