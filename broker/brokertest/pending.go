package brokertest

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/aibos/worker/broker"
)

// testQueuesPending: a broker.PendingLister names, in the order asked,
// exactly the queues that hold a pending job: not one whose only job is
// scheduled for later, leased or finished, nor one it never saw; and it
// refuses an invalid queue name. A broker without the capability skips it.
func testQueuesPending(s *bundle) {
	l, ok := s.b.(broker.PendingLister)
	if !ok {
		s.t.Skipf("%T is not a broker.PendingLister", s.b)
	}
	const (
		pending   = "plist-pending"
		paused    = "plist-paused"
		scheduled = "plist-scheduled"
		leased    = "plist-leased"
		done      = "plist-done"
		never     = "plist-never"
	)
	s.insert(pending)
	s.insert(pending)
	s.insert(paused)
	if err := s.b.QueuePause(s.ctx, paused); err != nil {
		s.t.Fatalf("QueuePause: %v", err)
	}
	s.insert(scheduled, withDelay(longLease))
	s.insert(leased)
	s.fetchOne(leased, longLease)
	s.insert(done)
	s.complete(s.fetchOne(done, longLease), nil)

	ask := []string{never, done, pending, leased, scheduled, paused}
	got, err := l.QueuesPending(s.ctx, ask)
	if err != nil {
		s.t.Fatalf("QueuesPending: %v", err)
	}
	// A paused queue may be named or not; the rest must be exact.
	got = slices.DeleteFunc(got, func(q string) bool { return q == paused })
	if want := []string{pending}; !slices.Equal(got, want) {
		s.t.Fatalf("QueuesPending(%v) = %v, want %v (and maybe %s)", ask, got, want, paused)
	}
	s.insert(never)
	got, err = l.QueuesPending(s.ctx, []string{never, done, pending})
	if err != nil {
		s.t.Fatalf("QueuesPending: %v", err)
	}
	if want := []string{never, pending}; !slices.Equal(got, want) {
		s.t.Fatalf("QueuesPending after a job was added to %s = %v, want %v in the order asked", never, got, want)
	}
	if got, err := l.QueuesPending(s.ctx, nil); err != nil || len(got) != 0 {
		s.t.Fatalf("QueuesPending(no queues) = %v, %v; want none and no error", got, err)
	}
	_, err = l.QueuesPending(s.ctx, []string{pending, ""})
	wantErr(s.t, "QueuesPending with an empty queue name", err, broker.ErrInvalidJob)
}

// BenchCollect measures what a busy worker serving n queues pays at each
// collect of wakes (JobWaitReady with timeout 0, the same list each time),
// after the calls that subscribe and read due times. Each broker's
// BenchmarkCollectManyQueues calls it.
func BenchCollect(b *testing.B, w broker.ReadyWaiter, n int) {
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("q%04d", i)
	}
	ctx := context.Background()
	for range 2 { // on Redis the confirmations of the subscriptions, then due times
		if _, err := w.JobWaitReady(ctx, names, 0); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := w.JobWaitReady(ctx, names, 0); err != nil {
			b.Fatal(err)
		}
	}
}
