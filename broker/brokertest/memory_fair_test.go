package brokertest_test

import (
	"context"
	"maps"
	"time"

	"github.com/aibos/worker/broker"
)

var _ broker.FairBroker = (*memBroker)(nil)

// memFair is the reference broker's fair scheduling state (see broker's
// fair.go for the model).
type memFair struct {
	policy map[string]*broker.FairPolicy // by queue
	v      map[fairKey]int64             // tag of the last job fetched, per queue and priority
	next   map[fairKey]int64             // next tag, per queue, priority and tenant
	tat    map[string]int64              // GCRA state per queue and limit (see rateKey)
	paused map[[2]string]bool            // queue, tenant
}

type fairKey struct {
	queue    string
	priority int
	tenant   string
}

func newMemFair() memFair {
	return memFair{policy: map[string]*broker.FairPolicy{}, v: map[fairKey]int64{}, next: map[fairKey]int64{}, tat: map[string]int64{},
		paused: map[[2]string]bool{}}
}

func (b *memBroker) QueueFairSet(ctx context.Context, p *broker.FairPolicy) error {
	if err := p.Validate(); err != nil {
		return err
	}
	if err := b.lock(); err != nil {
		return err
	}
	defer b.mu.Unlock()
	c := *p
	c.Tenants, c.TypeRates = maps.Clone(p.Tenants), maps.Clone(p.TypeRates)
	b.fair.policy[p.Queue] = &c
	return nil
}

func (b *memBroker) QueueFairGet(ctx context.Context, queue string) (*broker.FairPolicy, error) {
	if err := broker.ValidateQueueName(queue); err != nil {
		return nil, err
	}
	if err := b.lock(); err != nil {
		return nil, err
	}
	defer b.mu.Unlock()
	c := b.policyOf(queue)
	c.Tenants, c.TypeRates = maps.Clone(c.Tenants), maps.Clone(c.TypeRates)
	return &c, nil
}

func (b *memBroker) QueueTenantPause(ctx context.Context, queue, tenant string, paused bool) error {
	if err := broker.ValidateTenantPause(queue, tenant); err != nil {
		return err
	}
	if err := b.lock(); err != nil {
		return err
	}
	defer b.mu.Unlock()
	if paused {
		b.fair.paused[[2]string{queue, tenant}] = true
	} else {
		delete(b.fair.paused, [2]string{queue, tenant})
	}
	return nil
}

// policyOf returns a copy of the queue's policy (the zero one if none).
func (b *memBroker) policyOf(queue string) broker.FairPolicy {
	if p := b.fair.policy[queue]; p != nil {
		return *p
	}
	return broker.FairPolicy{Queue: queue}
}

func (b *memBroker) isFair(queue string) bool {
	p := b.fair.policy[queue]
	return b.faults.fairAlways || p != nil && p.Fair
}

// stamp gives a job that just became pending its fair tag.
func (b *memBroker) stamp(j *memJob) {
	if !b.isFair(j.Queue) {
		return
	}
	p := b.policyOf(j.Queue)
	w := p.WeightOf(j.TenantID)
	if b.faults.fairIgnoresWeight {
		w = 1
	}
	k := fairKey{j.Queue, j.Priority, j.TenantID}
	j.tag = b.fair.next[k]
	if !b.faults.fairNoClock {
		j.tag = max(j.tag, b.fair.v[fairKey{j.Queue, j.Priority, ""}])
	}
	b.fair.next[k] = j.tag + broker.FairStep(w)
}

// served records the tags of the jobs a fetch leased, and restarts the
// tags of a queue left with no pending job.
func (b *memBroker) served(queue string, picked []*memJob) {
	if !b.isFair(queue) {
		return
	}
	for _, j := range picked {
		k := fairKey{queue, j.Priority, ""}
		b.fair.v[k] = max(b.fair.v[k], j.tag)
	}
	for _, j := range b.jobs {
		if j.Queue == queue && j.State == broker.StatePending && !containsJob(picked, j) {
			return
		}
	}
	for k := range b.fair.v {
		if k.queue == queue {
			delete(b.fair.v, k)
		}
	}
	for k := range b.fair.next {
		if k.queue == queue {
			delete(b.fair.next, k)
		}
	}
}

func containsJob(js []*memJob, j *memJob) bool {
	for _, x := range js {
		if x == j {
			return true
		}
	}
	return false
}

// memSlots counts, during one fetch, the slots each capped tenant has left,
// and applies the rate limits.
type memSlots struct {
	b      *memBroker
	queue  string
	now    int64 // unix µs
	policy broker.FairPolicy
	left   map[string]int
	off    bool
}

// slots returns the queue's free slots per tenant, from its active jobs.
func (b *memBroker) slots(queue string, now time.Time) *memSlots {
	s := &memSlots{b: b, queue: queue, now: now.UnixMicro(), policy: b.policyOf(queue), left: map[string]int{}, off: b.faults.capIgnored}
	for _, j := range b.jobs {
		if j.Queue == queue && (j.State == broker.StateActive || j.leakedSlot) {
			s.left[j.TenantID]--
		}
	}
	return s
}

// take reports whether job j may start now: its tenant has a slot left and
// every rate limit that applies lets it; if so it takes the slot and the
// limits' turns.
func (s *memSlots) take(j *memJob) bool {
	if s.b.fair.paused[[2]string{s.queue, j.TenantID}] && !s.b.faults.tenantPauseIgnored {
		return false
	}
	c := s.policy.CapOf(j.TenantID)
	capped := !s.off && c > 0
	if capped && c+s.left[j.TenantID] <= 0 {
		return false
	}
	type turn struct {
		key string
		tat int64
	}
	var turns []turn
	for key, r := range map[string]broker.Rate{"t:" + j.TenantID: s.policy.RateOf(j.TenantID), "y:" + j.Type: s.policy.TypeRates[j.Type]} {
		if r.IsZero() || s.b.faults.rateIgnored {
			continue
		}
		k := s.queue + "\x00" + key
		ok, tat := r.Admit(s.b.fair.tat[k], s.now)
		if !ok {
			return false
		}
		turns = append(turns, turn{k, tat})
	}
	for _, t := range turns {
		s.b.fair.tat[t.key] = t.tat
	}
	if capped {
		s.left[j.TenantID]--
	}
	return true
}
