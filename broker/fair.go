package broker

import (
	"context"
	"fmt"
	"sort"
	"time"
)

// FairScale is the tag distance between two jobs of a weight-1 tenant;
// a weight-w tenant's jobs are ceil(FairScale/w) apart. It is MaxWeight so
// that every weight gets a distinct, whole step.
const FairScale = MaxWeight

// Fairness bounds.
const (
	// MaxWeight is the largest tenant weight (as in package tenant).
	MaxWeight = 1000
	// MaxFairTenants bounds the tenants a FairPolicy names.
	MaxFairTenants = 100_000
	// FairSkipBudget bounds how many capped tenants' jobs one JobFetch
	// looks past.
	FairSkipBudget = 1000
	// FairQuantum bounds a tenant's turn: the consecutive jobs of one
	// tenant that a broker may give one tag (see FairPolicy's model). It
	// is about the jobs one page of the SQLite store's jobs table holds
	// (35 small jobs a 4 KiB page), so that a turn there writes each page
	// of the tenant's rows and index entries about once: a Manager of
	// concurrency 10 serving 100 tenants in turn wrote 7.0 KiB per job
	// with turns of 8, 5.7 of 16, 4.5 of 32, 4.0 of 64; 3.3 fairness off.
	FairQuantum = 32
)

// FairBroker is implemented by brokers that schedule a queue's tenants
// fairly and cap them (both brokers of this module do). Package worker
// checks for it when a queue asks for fairness and fails clearly without
// it.
type FairBroker interface {
	// QueueFairSet stores the queue's tenant policy, replacing the one
	// stored before, in one atomic step; every later fetch, on every
	// worker, applies it. Turning Fair on tags jobs that become pending from
	// then on; jobs pending before keep their place. Safe for concurrent
	// use; it returns an error wrapping ErrInvalidJob if p fails Validate
	// (nothing is stored), and ErrClosed after Close.
	QueueFairSet(ctx context.Context, p *FairPolicy) error

	// QueueFairGet returns the queue's stored policy: the zero policy
	// (fair off, no caps) for a queue that never had one. Safe for
	// concurrent use; ErrInvalidJob for an invalid queue name.
	QueueFairGet(ctx context.Context, queue string) (*FairPolicy, error)

	// QueueTenantPause stops (paused true) or lets again (false) JobFetch
	// lease the queue's jobs of one tenant; the tenant's jobs wait pending
	// at their place while the other tenants' are fetched (as for a cap,
	// within FairSkipBudget), inserts still succeed, and QueueStats scoped
	// to the tenant reports TenantPaused. It is kept apart from the
	// policy: QueueFairSet leaves it as it is. Idempotent and safe for
	// concurrent use; ErrInvalidJob for an invalid queue name or an empty
	// or invalid tenant id.
	QueueTenantPause(ctx context.Context, queue, tenant string, paused bool) error
}

// ValidateTenantPause checks QueueTenantPause's arguments.
func ValidateTenantPause(queue, tenant string) error {
	if err := ValidateQueueName(queue); err != nil {
		return fmt.Errorf("%w: pause tenant: %v", ErrInvalidJob, err)
	}
	if err := checkText("tenant id", tenant, MaxKeyLen, true); err != nil {
		return fmt.Errorf("%w: pause tenant in queue %q: %v", ErrInvalidJob, queue, err)
	}
	return nil
}

// FairPolicy is how one queue shares its workers between its tenants:
// fair order within a priority, per-tenant caps and rate limits.
//
// The model, the same on every broker (start-time fair queueing, as in
// network schedulers, applied per priority):
//
//   - Priority first: a job of priority p is never fetched while a job of a
//     more urgent priority (lower number) of the queue is pending and not
//     held back by its tenant's cap or a rate limit. Fairness only orders
//     jobs of one priority.
//   - Within a priority, each pending job carries a tag. When a job of
//     tenant t with weight w becomes pending, its tag is max(V, F), where V
//     is the tag of the last job fetched at that priority and F is t's next
//     tag at that priority; then F = tag + ceil(FairScale / w). JobFetch
//     takes the lowest tags first, so backlogged tenants are served in turn,
//     w jobs of a weight-w tenant for each job of a weight-1 tenant, and a
//     tenant that was idle starts at V: it cannot bank turns while idle, and
//     a tenant that floods the queue waits behind nobody but also makes
//     nobody wait behind its backlog. Jobs with no tenant are the tenant ""
//     for this purpose. Equal tags are served in insert order (the Redis
//     broker: in id order).
//   - A turn may be longer than one job: a broker may give up to
//     FairQuantum consecutive jobs of a tenant the same tag before F moves
//     on, so a weight-w tenant has w turns for each turn of a weight-1
//     tenant. Both brokers do. On SQLite a store's rows lie in insert
//     order, so serving 100 tenants one job each wrote a page of the table
//     (and of each tenant-ordered index) per job, at the lease and again at
//     the completion; a turn of FairQuantum keeps a tenant's jobs of a fetch
//     on one page of each. On Redis a fetch batch of one-job turns held as
//     many tenants as jobs, and each tenant's index was written once per
//     job rather than once per turn. A tenant that was idle starts a turn
//     just before V (at V - 1), ahead of the turn in progress, so that a
//     long turn never makes a newcomer wait.
//   - A job handed back (JobRelease) or recovered after its lease expired
//     keeps its tag, so it goes back to its place, as without fairness. A
//     job that becomes pending again after a failed attempt, or by JobRetry,
//     is tagged anew.
//   - When the queue has no pending job left, the tags restart from zero,
//     so they stay small; on the Redis broker a tag that would pass the
//     range of the queue's place numbers (2^40) is held at its top: order
//     among such jobs falls back to ids, and priorities are never crossed.
//   - A cap: JobFetch never leases a job of tenant t while t already has
//     MaxActive jobs of the queue active (over every worker: the count is
//     the broker's). Such jobs stay pending, at their place, and later jobs
//     are fetched instead; a fetch looks past at most FairSkipBudget of them.
//     A slot is taken by the lease and freed by whatever ends it: completion,
//     failure, hand-back, cancel, delete, or lease-expiry recovery, so a
//     killed worker frees its slots when its leases expire. Jobs with no
//     tenant are never capped.
//   - A rate limit (per tenant, per job type, or both) holds jobs back the
//     same way: JobFetch leases a job only if every limit that applies to
//     it lets one more start now, by GCRA on the broker's clock (Rate has
//     the guarantee). Jobs over a limit stay pending, at their place: they
//     are neither failed nor leased, and count against the same
//     FairSkipBudget.
//
// Weights and caps are stored in the broker per queue (QueueFairSet), so
// every worker applies the same ones; a change applies to jobs tagged after
// it.
type FairPolicy struct {
	Queue string `json:"queue"`
	// Fair serves the tenants of one priority in turn, by weight (see the
	// model below); off, jobs of one priority are served FIFO.
	Fair bool `json:"fair"`
	// MaxActive caps the active jobs of every tenant that Tenants does not
	// give a cap of its own; 0 means no cap. It applies with Fair off too.
	MaxActive int `json:"maxActive,omitempty"`
	// TenantRate limits how fast the jobs of each tenant that Tenants does
	// not give a rate of its own start; the zero Rate means no limit. Jobs
	// with no tenant are not limited by it.
	TenantRate Rate `json:"tenantRate,omitzero"`
	// TypeRates limit how fast the jobs of a type start, whatever their
	// tenant, by job type.
	TypeRates map[string]Rate `json:"typeRates,omitempty"`
	// Tenants gives tenants their own weight, cap and rate; the others have
	// weight 1, MaxActive and TenantRate.
	Tenants map[string]TenantShare `json:"tenants,omitempty"`
}

// Rate is a rate limit: at most Limit jobs start per Period, and no more
// than Limit at once. It is enforced by GCRA on the broker's clock, with an
// emission interval T = Period/Limit and a burst of Limit: in any span of
// broker time of length W, at most Limit + W/T jobs start (W a multiple of
// T), so over a long span the rate is Limit per Period. The zero Rate means
// no limit.
type Rate struct {
	Limit  int           `json:"limit"`
	Period time.Duration `json:"period"`
}

// IsZero reports whether r sets no limit.
func (r Rate) IsZero() bool { return r.Limit == 0 && r.Period == 0 }

// Rate bounds.
const (
	MinRatePeriod = time.Millisecond
	MaxRatePeriod = 24 * time.Hour
	MaxRateLimit  = 1_000_000
)

// Validate checks a non-zero rate: Limit in 1..MaxRateLimit, Period in
// MinRatePeriod..MaxRatePeriod.
func (r Rate) Validate() error {
	if r.IsZero() {
		return nil
	}
	if r.Limit < 1 || r.Limit > MaxRateLimit {
		return fmt.Errorf("rate limit %d is outside 1..%d", r.Limit, MaxRateLimit)
	}
	if r.Period < MinRatePeriod || r.Period > MaxRatePeriod {
		return fmt.Errorf("rate period %v is outside %v..%v", r.Period, MinRatePeriod, MaxRatePeriod)
	}
	return nil
}

// RateOf returns tenant's rate under p (the zero Rate: none). Jobs with no
// tenant have none.
func (p *FairPolicy) RateOf(tenant string) Rate {
	if tenant == "" {
		return Rate{}
	}
	if s, ok := p.Tenants[tenant]; ok && !s.Rate.IsZero() {
		return s.Rate
	}
	return p.TenantRate
}

// Rated reports whether p limits any rate.
func (p *FairPolicy) Rated() bool {
	if !p.TenantRate.IsZero() || len(p.TypeRates) > 0 {
		return true
	}
	for _, s := range p.Tenants {
		if !s.Rate.IsZero() {
			return true
		}
	}
	return false
}

// TenantShare is one tenant's share of a queue.
type TenantShare struct {
	// Weight is the tenant's share in fair scheduling, 1..MaxWeight; 0
	// means 1.
	Weight int `json:"weight,omitempty"`
	// MaxActive caps the tenant's active jobs in the queue; 0 means the
	// policy's MaxActive.
	MaxActive int `json:"maxActive,omitempty"`
	// Rate limits how fast the tenant's jobs start; the zero Rate means
	// the policy's TenantRate.
	Rate Rate `json:"rate,omitzero"`
}

// WeightOf returns tenant's weight under p: its own, else 1.
func (p *FairPolicy) WeightOf(tenant string) int {
	if s, ok := p.Tenants[tenant]; ok && s.Weight > 0 {
		return s.Weight
	}
	return 1
}

// CapOf returns tenant's cap under p (0: none). Jobs with no tenant are
// never capped.
func (p *FairPolicy) CapOf(tenant string) int {
	if tenant == "" {
		return 0
	}
	if s, ok := p.Tenants[tenant]; ok && s.MaxActive > 0 {
		return s.MaxActive
	}
	return p.MaxActive
}

// Capped reports whether p caps any tenant.
func (p *FairPolicy) Capped() bool {
	if p.MaxActive > 0 {
		return true
	}
	for _, s := range p.Tenants {
		if s.MaxActive > 0 {
			return true
		}
	}
	return false
}

// FairStep returns the tag distance between two jobs of a tenant of
// weight w (ceil(FairScale/w); weights below 1 count as 1).
func FairStep(w int) int64 {
	w = max(w, 1)
	return int64((FairScale + w - 1) / w)
}

// Validate checks p and returns an error wrapping ErrInvalidJob naming the
// first bad field.
func (p *FairPolicy) Validate() error {
	if p == nil {
		return fmt.Errorf("%w: fair policy is nil", ErrInvalidJob)
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: queue %q: %s", ErrInvalidJob, p.Queue, fmt.Sprintf(format, args...))
	}
	if err := ValidateQueueName(p.Queue); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidJob, err)
	}
	if p.MaxActive < 0 {
		return bad("max active %d is negative", p.MaxActive)
	}
	if err := p.TenantRate.Validate(); err != nil {
		return bad("tenant rate: %v", err)
	}
	if len(p.TypeRates) > MaxFairTenants {
		return bad("%d job type rates, the limit is %d", len(p.TypeRates), MaxFairTenants)
	}
	for typ, r := range p.TypeRates {
		if err := checkText("job type", typ, MaxTypeLen, true); err != nil {
			return bad("%v", err)
		}
		if r.IsZero() {
			return bad("rate of job type %q is zero (leave the type out for no limit)", typ)
		}
		if err := r.Validate(); err != nil {
			return bad("job type %q: %v", typ, err)
		}
	}
	if len(p.Tenants) > MaxFairTenants {
		return bad("%d tenants, the limit is %d", len(p.Tenants), MaxFairTenants)
	}
	for tn, s := range p.Tenants {
		if err := checkText("tenant id", tn, MaxKeyLen, false); err != nil {
			return bad("%v", err)
		}
		if s.Weight < 0 || s.Weight > MaxWeight {
			return bad("weight %d of tenant %q is outside 1..%d (0 means 1)", s.Weight, tn, MaxWeight)
		}
		if s.MaxActive < 0 {
			return bad("max active %d of tenant %q is negative", s.MaxActive, tn)
		}
		if err := s.Rate.Validate(); err != nil {
			return bad("tenant %q: %v", tn, err)
		}
	}
	return nil
}

// Admit decides one job start under r by GCRA: tat is the limit's stored
// theoretical arrival time and now the broker's clock, both in unix
// microseconds (tat 0: never used). It reports whether the job may start
// and, if so, the tat to store. Brokers apply it (or its Lua twin) in the
// transaction that leases the job.
func (r Rate) Admit(tat, now int64) (bool, int64) {
	t := float64(r.Period.Microseconds()) / float64(r.Limit)
	next := max(tat, now)
	if float64(next-now) > float64(r.Period.Microseconds())-t {
		return false, tat
	}
	return true, next + int64(t+0.5)
}

// Available returns how many jobs r lets start at once at broker time now
// (unix µs), given its stored tat: Limit when it is unused, 0 while it is
// exhausted.
func (r Rate) Available(tat, now int64) int {
	if r.IsZero() {
		return 0
	}
	t := float64(r.Period.Microseconds()) / float64(r.Limit)
	used := float64(max(tat, now) - now)
	n := int((float64(r.Period.Microseconds()) - used) / t)
	return min(max(n, 0), r.Limit)
}

// RateStat is one rate limit of a queue and its state, as QueueStats
// reports it.
type RateStat struct {
	// Tenant names the tenant whose jobs the limit holds, or Type the job
	// type.
	Tenant string `json:"tenant,omitempty"`
	Type   string `json:"type,omitempty"`
	Rate   Rate   `json:"rate"`
	// Available is how many jobs the limit lets start at once now, up to
	// Rate.Limit.
	Available int `json:"available"`
}

// RateStats lists the rate limits of p that QueueStats reports: with a
// tenant scope, the tenant's own (or default) rate and every job type's;
// unscoped, every tenant's own and every job type's (the default tenant
// rate is in the policy). tat reads a limit's stored state ("t:<tenant>",
// "y:<type>"; 0 for none); now is the broker's clock in unix µs. Sorted
// by tenant, then type.
func RateStats(p *FairPolicy, scope string, tat func(key string) (int64, error), now int64) ([]RateStat, error) {
	var out []RateStat
	add := func(tenant, typ, key string, r Rate) error {
		if r.IsZero() {
			return nil
		}
		t, err := tat(key)
		if err != nil {
			return fmt.Errorf("read rate limit %s: %w", key, err)
		}
		out = append(out, RateStat{Tenant: tenant, Type: typ, Rate: r, Available: r.Available(t, now)})
		return nil
	}
	if scope != "" {
		if err := add(scope, "", "t:"+scope, p.RateOf(scope)); err != nil {
			return nil, err
		}
	} else {
		for tn, s := range p.Tenants {
			if err := add(tn, "", "t:"+tn, s.Rate); err != nil {
				return nil, err
			}
		}
	}
	for typ, r := range p.TypeRates {
		if err := add("", typ, "y:"+typ, r); err != nil {
			return nil, err
		}
	}
	sort.Slice(out, func(i, k int) bool {
		if out[i].Tenant != out[k].Tenant {
			return out[i].Tenant < out[k].Tenant
		}
		return out[i].Type < out[k].Type
	})
	return out, nil
}
