package redisbroker_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/aibos/worker/broker"
)

// TestFairTurns pins the Redis broker's fair turns (broker.FairPolicy's
// model): backlogged tenants of a fair queue are served broker.FairQuantum
// jobs at a time, so that a fetch batch holds few tenants (lib.lua
// fair_tag), and a tenant that was idle starts its turn just before the
// turn in progress, not behind it.
func TestFairTurns(t *testing.T) {
	t.Parallel()
	b := newBroker(t)
	ctx := context.Background()
	const q, k = "turns", broker.FairQuantum
	if err := b.QueueFairSet(ctx, &broker.FairPolicy{Queue: q, Fair: true}); err != nil {
		t.Fatalf("set fair policy: %v", err)
	}
	n := 0
	insert := func(tn string, count int) {
		t.Helper()
		ps := make([]*broker.JobInsertParams, count)
		for i := range ps {
			n++ // ids in insert order: equal tags are fetched in id order
			ps[i] = job(q, fmt.Sprintf("j%04d", n), func(p *broker.JobInsertParams) { p.TenantID = tn })
		}
		if _, err := b.JobInsertMany(ctx, ps); err != nil {
			t.Fatalf("insert %d jobs of tenant %s: %v", count, tn, err)
		}
	}
	tenants := []string{"t-a", "t-b", "t-c"}
	for _, tn := range tenants {
		insert(tn, 3*k)
	}
	var want, got []string
	for range 3 {
		for _, tn := range tenants {
			want = append(want, slices.Repeat([]string{tn}, k)...)
		}
	}
	// Two rounds and three jobs of t-a's third turn, in batches of 5.
	for len(got) < 2*3*k+3 {
		for _, j := range fetch(t, b, q, min(5, 2*3*k+3-len(got)), time.Minute) {
			got = append(got, j.TenantID)
		}
	}
	if !slices.Equal(got, want[:len(got)]) {
		t.Fatalf("fetch order %v, want turns of %d jobs per tenant: %v", got, k, want[:len(got)])
	}
	// t-d, arriving in the middle of t-a's turn, goes first: its turn starts
	// just before the one in progress.
	insert("t-d", 2)
	for _, j := range fetch(t, b, q, 2+k-3, time.Minute) {
		got = append(got, j.TenantID)
	}
	want = append(append(want[:2*3*k+3:2*3*k+3], "t-d", "t-d"), slices.Repeat([]string{"t-a"}, k-3)...)
	if !slices.Equal(got, want) {
		t.Fatalf("fetch order %v, want tenant t-d, arriving in the middle of t-a's turn, served before the rest of it: %v", got, want)
	}
}
