package main

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/broker/redisbroker"
	"github.com/aibos/worker/broker/sqlitebroker"
)

// floodTrace records what phase g's flood needs to split a B–E job's wait
// into its two parts, add → leased by the Manager and leased → handler
// start, and to compute what an ideal scheduler would have done with the
// same run slots (idealWaits): when each B–E job was leased, and when each
// handler, of any tenant, returned (a run slot freed). The Manager's
// broker is wrapped (traced) so that the library's hot path carries no
// counter: the timestamps are taken in the bench, as JobFetch returns and
// as the handler ends, into slices and a map sized up front.
type floodTrace struct {
	mu     sync.Mutex
	leased map[string]time.Time // B–E jobs: when JobFetch returned them, by id
	freed  []time.Time          // when each handler returned
}

// newFloodTrace returns a trace sized for a flood of window with slots run
// slots: 4 B–E jobs every 10 ms, and the slots freeing about every
// floodJob each.
func newFloodTrace(slots int, window time.Duration) *floodTrace {
	ticks := int(window/(10*time.Millisecond)) + 1
	return &floodTrace{
		leased: make(map[string]time.Time, 4*ticks),
		freed:  make([]time.Time, 0, slots*int(window/floodJob)*5/4+64),
	}
}

// fetched records that what a JobFetch returned was leased now, and
// returns it.
func (t *floodTrace) fetched(jobs []*broker.Job, err error) ([]*broker.Job, error) {
	now := time.Now()
	t.mu.Lock()
	for _, j := range jobs {
		if j.TenantID != floodTenant {
			t.leased[j.ID] = now
		}
	}
	t.mu.Unlock()
	return jobs, err
}

// slotFreed records that a handler returned now.
func (t *floodTrace) slotFreed() {
	now := time.Now()
	t.mu.Lock()
	t.freed = append(t.freed, now)
	t.mu.Unlock()
}

// leasedAt returns when the B–E job id was leased.
func (t *floodTrace) leasedAt(id string) (time.Time, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	at, ok := t.leased[id]
	return at, ok
}

// freedSince returns the slot-free moments, as offsets from t0, sorted.
func (t *floodTrace) freedSince(t0 time.Time) []time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	d := make([]time.Duration, len(t.freed))
	for i, at := range t.freed {
		d[i] = at.Sub(t0)
	}
	slices.Sort(d)
	return d
}

// traced returns b with its JobFetch recorded in t. It wraps the concrete
// brokers the bench opens, embedding them, so that every optional
// interface the Manager looks for (wakes, mutes, fairness) stays.
func (t *floodTrace) traced(b broker.Broker) (broker.Broker, error) {
	switch b := b.(type) {
	case *redisbroker.Broker:
		return &tracedRedis{b, t}, nil
	case *sqlitebroker.Broker:
		return &tracedSQLite{b, t}, nil
	}
	return nil, fmt.Errorf("trace the fetches of a %T: not a broker the bench opens", b)
}

// tracedRedis and tracedSQLite are the brokers traced returns.
type tracedRedis struct {
	*redisbroker.Broker
	t *floodTrace
}

type tracedSQLite struct {
	*sqlitebroker.Broker
	t *floodTrace
}

func (b *tracedRedis) JobFetch(ctx context.Context, p *broker.JobFetchParams) ([]*broker.Job, error) {
	return b.t.fetched(b.Broker.JobFetch(ctx, p))
}

func (b *tracedSQLite) JobFetch(ctx context.Context, p *broker.JobFetchParams) ([]*broker.Job, error) {
	return b.t.fetched(b.Broker.JobFetch(ctx, p))
}

// idealWaits returns each job's wait under an ideal scheduler of the same
// run slots: one with no fetch latency that gives every slot-free moment
// (freed, sorted) to the oldest job waiting. Job i is added at added[i]
// and exists in the broker from durable[i] (when its Add returned) on; its
// wait runs from added[i], as the measured wait does, to the first
// slot-free moment at or after durable[i] that no older job took, and is
// limit when none is left. All times are offsets from one instant.
//
// With jobs of equal length, a slot given to a B–E job instead of to one
// of A's frees at the moment A's would have: the slot-free moments of the
// run measured are those of the ideal schedule. With spread lengths they
// are an approximation.
func idealWaits(added, durable, freed []time.Duration, limit time.Duration) []time.Duration {
	order := make([]int, len(added))
	for i := range order {
		order[i] = i
	}
	// Jobs are served oldest first; a job that is older but not yet
	// durable lets a younger durable one go (it cannot be leased yet).
	slices.SortStableFunc(order, func(a, b int) int { return int(added[a] - added[b]) })
	waits := make([]time.Duration, len(added))
	taken := make([]bool, len(freed))
	for _, i := range order {
		waits[i] = limit
		k, _ := slices.BinarySearch(freed, durable[i])
		for k < len(freed) && taken[k] {
			k++
		}
		if k < len(freed) {
			taken[k] = true
			waits[i] = min(freed[k]-added[i], limit)
		}
	}
	return waits
}
