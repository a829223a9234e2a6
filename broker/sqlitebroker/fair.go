package sqlitebroker

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/aibos/worker/broker"
)

var _ broker.FairBroker = (*Broker)(nil)

// Fair queues on this store (broker/fair.go has the model; migrations 0013
// and 0017 the tables). Jobs of a fair queue are tagged in seq order. A job
// inserted pending gets its tag as it is inserted (insertTags), unless a
// job of the queue waits for its tag: then it is written with fair_tag -1,
// like a job promoted, retried or rescheduled (sqlRetag), and tagUntagged
// tags those in seq order, at the end of the insert transaction or at the
// next fetch. A job handed back or recovered keeps its tag. A fair queue's
// fetch leases by (priority, fair_tag, seq).

// sqlRetag is the fair_tag of a job that becomes pending again other than
// by hand-back or recovery: waiting for a new tag if its queue is fair.
const sqlRetag = `fair_tag = CASE WHEN (SELECT fair FROM queues WHERE name = jobs.queue) = 1 THEN -1 ELSE fair_tag END`

// The statements of fair, capped and rate-limited fetches and of fair
// inserts, compiled once at Open (cachedQueries) like the plain ones: a
// statement compiled per call cost more than the lookup it runs, and a
// fair fetch runs several per job. Their LIMITs are "? + 0" for the reason
// lease.go gives: a fetch's size changes with the Manager's free slots.
const (
	sqlUntagged = `SELECT seq, priority, tenant_id FROM jobs
		WHERE queue = ? AND state = 'pending' AND fair_tag = -1 ORDER BY seq LIMIT ? + 0`
	sqlFairClock  = `SELECT value FROM counters WHERE name = 'fair_clock ' || ?1 || ' ' || ?2`
	sqlFairTurn   = `SELECT next, used FROM fair_tags WHERE queue = ? AND priority = ? AND tenant = ?`
	sqlFairWeight = `SELECT weight FROM fair_tenants WHERE queue = ? AND tenant = ?`
	// sqlTagJobs tags the queue's untagged jobs whose seqs lie in a range:
	// the untagged jobs that sqlUntagged listed from its first seq to its
	// last, as no other untagged job of the queue lies between them.
	sqlTagJobs = `UPDATE jobs SET fair_tag = ?1
		WHERE seq BETWEEN ?2 AND ?3 AND queue = ?4 AND state = 'pending' AND fair_tag = -1`
	sqlStoreFairTurn = `INSERT INTO fair_tags (queue, priority, tenant, next, used) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (queue, priority, tenant) DO UPDATE SET next = excluded.next, used = excluded.used`
	sqlCandidates = `SELECT seq, tenant_id, type, priority, coalesce(fair_tag, 0) FROM jobs
		WHERE queue = ? AND state = 'pending' ORDER BY priority, seq LIMIT ? + 0`
	sqlFairCandidates = `SELECT seq, tenant_id, type, priority, coalesce(fair_tag, 0) FROM jobs
		WHERE queue = ? AND state = 'pending' AND fair_tag >= 0 ORDER BY priority, fair_tag, seq LIMIT ? + 0`
	sqlTenantPaused   = `SELECT count(*) FROM tenant_paused WHERE queue = ? AND tenant = ?`
	sqlRateState      = `SELECT tat FROM rate_state WHERE queue = ? AND limit_key = ?`
	sqlStoreRateState = `INSERT INTO rate_state (queue, limit_key, tat) VALUES (?, ?, ?)
		ON CONFLICT (queue, limit_key) DO UPDATE SET tat = excluded.tat`
	sqlTenantCap = `SELECT max_active FROM fair_tenants WHERE queue = ? AND tenant = ?`
	// sqlTenantActive repeats jobs_tenant_lease's condition to count the
	// tenant's entries there (the caller never asks for tenant "").
	sqlTenantActive = `SELECT count(*) FROM jobs WHERE queue = ? AND tenant_id = ? AND tenant_id <> '' AND state = 'active'`
	// sqlLeaseSeqs leases the jobs whose seqs its last argument lists (a
	// JSON array), as sqlLease does: one statement for any number.
	sqlLeaseSeqs = `UPDATE jobs SET state = 'active', attempt = attempt + 1,
		lease_token = (SELECT MAX(value, ?) + 1 FROM counters WHERE name = 'lease_token'),
		lease_until = ?, started_at = ?, worker_id = ?
		WHERE seq IN (SELECT value FROM json_each(?))
		RETURNING ` + jobColumns
	// sqlLeaseFair leases the first jobs in fair order, as pickFair and
	// sqlLeaseSeqs would for a fair queue without caps, rate limits or
	// paused tenants, in one statement, and returns each job's tag.
	sqlLeaseFair = `UPDATE jobs SET state = 'active', attempt = attempt + 1,
		lease_token = (SELECT MAX(value, ?) + 1 FROM counters WHERE name = 'lease_token'),
		lease_until = ?, started_at = ?, worker_id = ?
		WHERE seq IN (SELECT seq FROM jobs WHERE queue = ? AND state = 'pending' AND fair_tag >= 0
			ORDER BY priority, fair_tag, seq LIMIT ? + 0)
		RETURNING ` + leasedColumns + `, fair_tag`
	sqlAnyPending = `SELECT count(*) FROM (SELECT 1 FROM jobs WHERE queue = ? AND state = 'pending' LIMIT 1)`
	// The fair clocks of a queue are the counters named 'fair_clock
	// <queue> <priority>' (migration 0017): a range of names, as a queue
	// name holds no space.
	sqlClearFairClock = `DELETE FROM counters WHERE name >= 'fair_clock ' || ?1 || ' ' AND name < 'fair_clock ' || ?1 || '!'`
	sqlClearFairTags  = `DELETE FROM fair_tags WHERE queue = ?`
	// sqlStoreFairClock leaves a clock that does not move unwritten: the
	// fetches of one turn all take jobs of the tag it already holds, and
	// an update to the same value would still write its page to the WAL.
	sqlStoreFairClock = `INSERT INTO counters (name, value) VALUES ('fair_clock ' || ?1 || ' ' || ?2, ?3)
		ON CONFLICT (name) DO UPDATE SET value = excluded.value WHERE excluded.value > value`
)

var fairQueries = []string{sqlUntagged, sqlFairClock, sqlFairTurn, sqlFairWeight, sqlTagJobs, sqlStoreFairTurn,
	sqlCandidates, sqlFairCandidates, sqlTenantPaused, sqlRateState, sqlStoreRateState, sqlTenantCap,
	sqlTenantActive, sqlLeaseSeqs, sqlLeaseFair, sqlAnyPending, sqlClearFairClock, sqlClearFairTags, sqlStoreFairClock}

// tagBudget bounds the jobs one fetch tags; the rest wait for the next.
const tagBudget = 4096

// queuePolicy is what a fetch reads of its queue.
type queuePolicy struct {
	paused, fair, capped, rated bool
	tpaused                     bool // some tenant is paused
	untagged                    bool // a pending job of the fair queue waits for its tag
	maxActive                   int
	tenantRate                  broker.Rate
}

// readQueuePolicy reads the queue's row (the zero policy if it has none).
func (b *Broker) readQueuePolicy(ctx context.Context, tx *sql.Tx, queue string) (queuePolicy, error) {
	var q queuePolicy
	row, err := b.queryRow(ctx, tx, sqlQueuePolicy, queue)
	var periodUs int64
	if err == nil {
		err = row.Scan(&q.paused, &q.fair, &q.capped, &q.maxActive, &q.rated, &q.tenantRate.Limit, &periodUs, &q.tpaused, &q.untagged)
	}
	q.tenantRate.Period = time.Duration(periodUs) * time.Microsecond
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return q, fmt.Errorf("read queue state: %w", err)
	}
	return q, nil
}

// insertTags gives the jobs one transaction inserts into a queue their
// fair_tag. In a fair queue where no job waits for its tag, a pending job
// is tagged as it is inserted (the jobs of a transaction are inserted in
// seq order), by the same rule as tagUntagged: a tag written once cost
// about half the CPU of an insert with -1 and a later UPDATE, which also
// moved the job's entry in jobs_fair and added and removed one in
// jobs_untagged. Where jobs do wait (promoted since the last fetch), the
// transaction's pending jobs get -1 and done tags them all, in seq order.
type insertTags struct {
	b       *Broker
	queue   string
	fair    bool
	direct  *tagger // tags jobs as they are inserted; nil: -1 and done tags them
	pending bool    // a job waits for its tag
	// given is the turn arg gave the job being inserted, which inserted
	// then takes (ok false: none).
	given struct {
		key  turnKey
		turn fairTurn
		ok   bool
	}
}

// fairInserts registers queue if it has no row yet and reads whether it
// is fair, for the inserts of tx. It reads only what inserts need
// (sqlInsertPolicy), and writes the queue's row only when there is none:
// reading the whole policy (sqlQueuePolicy) and an INSERT OR IGNORE in
// every insert transaction took 16 µs of CPU per one-job insert, this 6.
func (b *Broker) fairInserts(ctx context.Context, tx *sql.Tx, queue string) (*insertTags, error) {
	t := &insertTags{b: b, queue: queue}
	if _, ok := b.plain[queue]; ok {
		return t, nil
	}
	row, err := b.queryRow(ctx, tx, sqlInsertPolicy, queue)
	var untagged bool
	if err == nil {
		err = row.Scan(&t.fair, &untagged)
	}
	if errors.Is(err, sql.ErrNoRows) {
		if _, err := b.exec(ctx, tx, sqlRegisterQueue, queue); err != nil {
			return nil, fmt.Errorf("register queue: %w", err)
		}
		return t, nil // a new queue: not fair
	}
	if err != nil {
		return nil, fmt.Errorf("read queue state: %w", err)
	}
	if !t.fair {
		if b.plain != nil {
			b.batchPlain = append(b.batchPlain, queue)
		}
	} else if !untagged {
		t.direct = b.newTagger(tx, queue)
	}
	return t, nil
}

// forgetPlain drops queue from plain and batchPlain: its fairness is
// being set.
func (b *Broker) forgetPlain(queue string) {
	delete(b.plain, queue)
	b.batchPlain = slices.DeleteFunc(b.batchPlain, func(q string) bool { return q == queue })
}

// arg is the fair_tag argument of job j, inserted next. The caller calls
// inserted once the insert has succeeded: a job that was not inserted (a
// duplicate) takes no place in its tenant's turn.
func (t *insertTags) arg(ctx context.Context, j *broker.Job) (any, error) {
	t.given.ok = false
	if !t.fair || j.State != broker.StatePending {
		return nil, nil
	}
	if t.direct == nil {
		t.pending = true
		return int64(-1), nil
	}
	k := turnKey{j.Priority, j.TenantID}
	turn, err := t.direct.tag(ctx, k)
	if err != nil {
		return nil, err
	}
	t.given.key, t.given.turn, t.given.ok = k, turn, true
	return turn.tag, nil
}

// inserted records that the job arg gave a tag to was inserted.
func (t *insertTags) inserted() {
	if t.given.ok {
		t.direct.took(t.given.key, t.given.turn)
		t.given.ok = false
	}
}

// done stores the turns of the jobs tagged as inserted, and tags the
// transaction's jobs that wait for a tag.
func (t *insertTags) done(ctx context.Context, tx *sql.Tx) error {
	if t.direct != nil {
		if err := t.direct.store(ctx); err != nil {
			return err
		}
	}
	if !t.pending {
		return nil
	}
	return t.b.tagUntagged(ctx, tx, t.queue, -1)
}

// tagger hands out the tags of a fair queue's jobs in one transaction, in
// seq order, as broker/fair.go says: it reads each priority's clock and
// each tenant's turn and weight once, and store writes the turns it moved.
type tagger struct {
	b      *Broker
	tx     *sql.Tx
	queue  string
	turns  map[turnKey]fairTurn
	clock  map[int]int64
	weight map[string]int
}

// turnKey names a tenant's turn at one priority.
type turnKey struct {
	priority int
	tenant   string
}

func (b *Broker) newTagger(tx *sql.Tx, queue string) *tagger {
	return &tagger{b: b, tx: tx, queue: queue, turns: map[turnKey]fairTurn{}, clock: map[int]int64{}, weight: map[string]int{}}
}

// tag returns the turn the next job of k joins; its tag is the job's.
func (g *tagger) tag(ctx context.Context, k turnKey) (fairTurn, error) {
	if _, ok := g.weight[k.tenant]; !ok {
		w, err := g.b.scalar(ctx, g.tx, sqlFairWeight, g.queue, k.tenant)
		if err != nil {
			return fairTurn{}, fmt.Errorf("read weight of tenant %q: %w", k.tenant, err)
		}
		g.weight[k.tenant] = int(w)
	}
	if t, ok := g.turns[k]; ok {
		return t, nil
	}
	v, ok := g.clock[k.priority]
	if !ok {
		var err error
		if v, err = g.b.scalar(ctx, g.tx, sqlFairClock, g.queue, k.priority); err != nil {
			return fairTurn{}, fmt.Errorf("read fair clock: %w", err)
		}
		g.clock[k.priority] = v
	}
	t, err := g.b.readTurn(ctx, g.tx, g.queue, k.priority, k.tenant)
	if err != nil {
		return fairTurn{}, fmt.Errorf("read fair tag of tenant %q: %w", k.tenant, err)
	}
	return t.from(v), nil
}

// took records that a job of k got the tag of turn t (from tag).
func (g *tagger) took(k turnKey, t fairTurn) { g.turns[k] = t.take(g.weight[k.tenant]) }

// store writes the turns that moved.
func (g *tagger) store(ctx context.Context) error {
	for k, t := range g.turns {
		if _, err := g.b.exec(ctx, g.tx, sqlStoreFairTurn, g.queue, k.priority, k.tenant, t.tag, t.used); err != nil {
			return fmt.Errorf("store fair tag of tenant %q: %w", k.tenant, err)
		}
	}
	return nil
}

// tagUntagged tags up to limit jobs of queue waiting for a tag, in seq
// order, as broker/fair.go says.
func (b *Broker) tagUntagged(ctx context.Context, tx *sql.Tx, queue string, limit int) error {
	rows, err := b.query(ctx, tx, sqlUntagged, queue, limit)
	if err != nil {
		return fmt.Errorf("find jobs to tag: %w", err)
	}
	type job struct {
		seq int64
		key turnKey
	}
	var jobs []job
	for rows.Next() {
		var j job
		if err := rows.Scan(&j.seq, &j.key.priority, &j.key.tenant); err != nil {
			rows.Close()
			return fmt.Errorf("find jobs to tag: %w", err)
		}
		jobs = append(jobs, j)
	}
	rows.Close()
	if err := rows.Err(); err != nil || len(jobs) == 0 {
		return err
	}
	g := b.newTagger(tx, queue)
	var run tagRun
	for _, j := range jobs {
		t, err := g.tag(ctx, j.key)
		if err != nil {
			return err
		}
		if !run.extend(j.seq, t.tag) {
			if err := b.tagRun(ctx, tx, queue, run); err != nil {
				return err
			}
			run = tagRun{first: j.seq, last: j.seq, tag: t.tag}
		}
		g.took(j.key, t)
	}
	if err := b.tagRun(ctx, tx, queue, run); err != nil {
		return err
	}
	return g.store(ctx)
}

// tagRun is a run of jobs that tagUntagged gives one tag: consecutive in
// the seq order of the queue's untagged jobs, first to last (a zero run
// holds no job).
type tagRun struct {
	first, last, tag int64
}

// extend adds the job seq, the next untagged job after the run, to the run
// if it gets the run's tag, and reports whether it did.
func (r *tagRun) extend(seq, tag int64) bool {
	if r.first == 0 || tag != r.tag {
		return false
	}
	r.last = seq
	return true
}

// tagRun tags the jobs of run with one UPDATE (sqlTagJobs): a bulk insert
// of one tenant's jobs is a run per turn, so a fair insert of 1,000 jobs
// runs about 32 UPDATEs instead of 1,000.
func (b *Broker) tagRun(ctx context.Context, tx *sql.Tx, queue string, run tagRun) error {
	if run.first == 0 {
		return nil
	}
	if _, err := b.exec(ctx, tx, sqlTagJobs, run.tag, run.first, run.last, queue); err != nil {
		return fmt.Errorf("tag jobs: %w", err)
	}
	return nil
}

// fairTurn is a tenant's turn at one priority of a fair queue: the tag its
// jobs get and how many of them have it (used < broker.FairQuantum).
type fairTurn struct {
	tag  int64
	used int
}

// readTurn reads the tenant's turn (the zero turn if it has none).
func (b *Broker) readTurn(ctx context.Context, tx *sql.Tx, queue string, priority int, tenant string) (fairTurn, error) {
	var t fairTurn
	row, err := b.queryRow(ctx, tx, sqlFairTurn, queue, priority, tenant)
	if err == nil {
		err = row.Scan(&t.tag, &t.used)
	}
	if errors.Is(err, sql.ErrNoRows) {
		return fairTurn{}, nil
	}
	return t, err
}

// from returns the turn a tenant's next job joins when v is the tag of the
// last job fetched at its priority: its own, unless that is behind v - 1
// (the tenant was idle), then a new turn at v - 1, just before the turn in
// progress, so a newcomer never waits out another tenant's turn. The idle
// test is against v - 1, not v: while the clock stands, a turn started at
// v - 1 stays the tenant's own, so a tenant adding jobs one at a time, each
// fetched at once, gets one turn ahead of the others, not one per job.
func (t fairTurn) from(v int64) fairTurn {
	if start := max(v-1, 0); t.tag < start {
		return fairTurn{tag: start}
	}
	return t
}

// take counts one more job of a tenant of weight w in the turn, and moves
// to the next turn when this one is full.
func (t fairTurn) take(w int) fairTurn {
	if t.used++; t.used >= broker.FairQuantum {
		return fairTurn{tag: t.tag + broker.FairStep(w)}
	}
	return t
}

// scalar reads one integer; 0 when there is no row.
func (b *Broker) scalar(ctx context.Context, tx *sql.Tx, query string, args ...any) (int64, error) {
	var n int64
	row, err := b.queryRow(ctx, tx, query, args...)
	if err == nil {
		err = row.Scan(&n)
	}
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return n, err
}

// candidate is a pending job a fair, capped or rate-limited fetch
// considers.
type candidate struct {
	seq      int64
	tenant   string
	typ      string
	priority int
	tag      int64
}

// pickFair chooses up to limit pending jobs of a fair or capped queue, in
// fetch order, skipping those whose tenant is at its cap, and returns their
// seqs in that order.
func (b *Broker) pickFair(ctx context.Context, tx *sql.Tx, queue string, q queuePolicy, limit int, nowUs int64) ([]candidate, error) {
	candidates := sqlCandidates
	if q.fair {
		if q.untagged {
			if err := b.tagUntagged(ctx, tx, queue, tagBudget); err != nil {
				return nil, err
			}
		}
		candidates = sqlFairCandidates
	}
	n := limit
	if q.capped || q.rated || q.tpaused {
		n += broker.FairSkipBudget
	}
	rows, err := b.query(ctx, tx, candidates, queue, n)
	if err != nil {
		return nil, fmt.Errorf("find jobs to lease: %w", err)
	}
	var all []candidate
	for rows.Next() {
		var c candidate
		if err := rows.Scan(&c.seq, &c.tenant, &c.typ, &c.priority, &c.tag); err != nil {
			rows.Close()
			return nil, fmt.Errorf("find jobs to lease: %w", err)
		}
		all = append(all, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("find jobs to lease: %w", err)
	}
	room := map[string]int64{}
	held := map[string]bool{} // paused tenants (true) and not paused ones
	rl := &rateLimits{b: b, tx: tx, queue: queue, def: q.tenantRate, now: nowUs, rates: map[string]broker.Rate{}, tats: map[string]int64{}}
	var picked []candidate
	for _, c := range all {
		if len(picked) == limit {
			break
		}
		if q.tpaused && c.tenant != "" {
			h, ok := held[c.tenant]
			if !ok {
				n, err := b.scalar(ctx, tx, sqlTenantPaused, queue, c.tenant)
				if err != nil {
					return nil, fmt.Errorf("read whether tenant %q is paused: %w", c.tenant, err)
				}
				h = n > 0
				held[c.tenant] = h
			}
			if h {
				continue
			}
		}
		capped := q.capped && c.tenant != ""
		left, ok := room[c.tenant]
		if capped && !ok {
			if left, err = b.tenantRoom(ctx, tx, queue, c.tenant, q.maxActive); err != nil {
				return nil, err
			}
			room[c.tenant] = left
		}
		if capped && left <= 0 {
			continue
		}
		if q.rated {
			ok, err := rl.admit(ctx, c)
			if err != nil {
				return nil, err
			}
			if !ok {
				continue
			}
		}
		if capped {
			room[c.tenant] = left - 1
		}
		picked = append(picked, c)
	}
	if err := rl.store(ctx); err != nil {
		return nil, err
	}
	return picked, nil
}

// rateLimits applies a queue's rate limits during one fetch.
type rateLimits struct {
	b     *Broker
	tx    *sql.Tx
	queue string
	def   broker.Rate // the default tenant rate
	now   int64       // unix µs
	rates map[string]broker.Rate
	tats  map[string]int64 // as this fetch changed them
}

// admit reports whether c may start under every limit that applies to it,
// and if so takes their turns.
func (r *rateLimits) admit(ctx context.Context, c candidate) (bool, error) {
	var keys []string
	if c.tenant != "" {
		keys = append(keys, "t:"+c.tenant)
	}
	keys = append(keys, "y:"+c.typ)
	next := make([]int64, len(keys))
	for i, k := range keys {
		rate, err := r.rate(ctx, k)
		if err != nil {
			return false, err
		}
		if rate.IsZero() {
			next[i] = -1
			continue
		}
		tat, ok := r.tats[k]
		if !ok {
			if tat, err = r.b.scalar(ctx, r.tx, sqlRateState, r.queue, k); err != nil {
				return false, fmt.Errorf("read rate state %s: %w", k, err)
			}
		}
		if ok, next[i] = rate.Admit(tat, r.now); !ok {
			return false, nil
		}
	}
	for i, k := range keys {
		if next[i] >= 0 {
			r.tats[k] = next[i]
		}
	}
	return true, nil
}

// rate returns the limit named by key ('t:<tenant>' or 'y:<type>').
func (r *rateLimits) rate(ctx context.Context, key string) (broker.Rate, error) {
	if rate, ok := r.rates[key]; ok {
		return rate, nil
	}
	kind, name := key[:1], key[2:]
	q := `SELECT rate_limit, rate_period_us FROM fair_tenants WHERE queue = ? AND tenant = ?`
	if kind == "y" {
		q = `SELECT rate_limit, rate_period_us FROM fair_types WHERE queue = ? AND type = ?`
	}
	var rate broker.Rate
	var us int64
	err := r.tx.QueryRowContext(ctx, q, r.queue, name).Scan(&rate.Limit, &us)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return rate, fmt.Errorf("read rate limit %s: %w", key, err)
	}
	rate.Period = time.Duration(us) * time.Microsecond
	if kind == "t" && rate.IsZero() {
		rate = r.def
	}
	r.rates[key] = rate
	return rate, nil
}

// store writes the turns this fetch took.
func (r *rateLimits) store(ctx context.Context) error {
	for k, tat := range r.tats {
		if _, err := r.b.exec(ctx, r.tx, sqlStoreRateState, r.queue, k, tat); err != nil {
			return fmt.Errorf("store rate state %s: %w", k, err)
		}
	}
	return nil
}

// tenantRoom returns how many more jobs of tenant may be active in queue
// (a large number when it has no cap).
func (b *Broker) tenantRoom(ctx context.Context, tx *sql.Tx, queue, tenant string, def int) (int64, error) {
	limit, err := b.scalar(ctx, tx, sqlTenantCap, queue, tenant)
	if err != nil {
		return 0, fmt.Errorf("read cap of tenant %q: %w", tenant, err)
	}
	if limit == 0 {
		limit = int64(def)
	}
	if limit == 0 {
		return 1 << 62, nil
	}
	active, err := b.scalar(ctx, tx, sqlTenantActive, queue, tenant)
	if err != nil {
		return 0, fmt.Errorf("count active jobs of tenant %q: %w", tenant, err)
	}
	return limit - active, nil
}

// leaseSeqs leases the jobs with the given seqs, as sqlLease does.
func (b *Broker) leaseSeqs(ctx context.Context, tx *sql.Tx, picked []candidate, floor, until, now int64, worker string) (*sql.Rows, error) {
	seqs := make([]byte, 0, 8*len(picked)+2)
	seqs = append(seqs, '[')
	for i, c := range picked {
		if i > 0 {
			seqs = append(seqs, ',')
		}
		seqs = strconv.AppendInt(seqs, c.seq, 10)
	}
	seqs = append(seqs, ']')
	return b.query(ctx, tx, sqlLeaseSeqs, floor, until, now, worker, string(seqs))
}

// leaseFair leases up to limit jobs of a fair queue that has no caps, rate
// limits or paused tenants, where pickFair would choose the first limit
// jobs in fair order: one UPDATE instead of a read of the candidates and an
// UPDATE of their seqs, the fair fetch's largest cost beside the lease
// itself. It returns the jobs chosen, in fetch order, and records them as
// served once leased, so a fetch that takes the last pending jobs restarts
// the tags (as broker/fair.go says, and the Redis broker does).
func (b *Broker) leaseFair(ctx context.Context, tx *sql.Tx, l *lease, untagged bool, limit int, floor int64) ([]*broker.Job, error) {
	if untagged {
		if err := b.tagUntagged(ctx, tx, l.queue, tagBudget); err != nil {
			return nil, err
		}
	}
	rows, err := b.query(ctx, tx, sqlLeaseFair, floor, l.until, l.started, l.worker, l.queue, limit)
	if err != nil {
		return nil, fmt.Errorf("lease jobs: %w", err)
	}
	defer rows.Close()
	type leasedJob struct {
		c   candidate
		job *broker.Job
	}
	var got []leasedJob
	var r rowScan
	for rows.Next() {
		var tag int64
		j, seq, err := r.leased(tagScanner{rows, &tag}, l)
		if err != nil {
			return nil, fmt.Errorf("read leased job: %w", err)
		}
		got = append(got, leasedJob{candidate{seq: seq, tenant: j.TenantID, typ: j.Type, priority: j.Priority, tag: tag}, j})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read leased job: %w", err)
	}
	rows.Close()
	// RETURNING has no defined order: restore the fetch order.
	slices.SortFunc(got, func(x, y leasedJob) int {
		return cmp.Or(cmp.Compare(x.c.priority, y.c.priority), cmp.Compare(x.c.tag, y.c.tag), cmp.Compare(x.c.seq, y.c.seq))
	})
	picked := make([]candidate, len(got))
	jobs := make([]*broker.Job, len(got))
	for i, g := range got {
		picked[i], jobs[i] = g.c, g.job
	}
	return jobs, b.served(ctx, tx, l.queue, picked, limit)
}

// tagScanner scans a row of leasedColumns followed by a tag.
type tagScanner struct {
	rows *sql.Rows
	tag  *int64
}

func (s tagScanner) Scan(dest ...any) error { return s.rows.Scan(append(dest, s.tag)...) }

// served records the highest tag fetched per priority, or restarts the
// queue's tags when it has no pending job left.
func (b *Broker) served(ctx context.Context, tx *sql.Tx, queue string, picked []candidate, limit int) error {
	if len(picked) < limit {
		left, err := b.scalar(ctx, tx, sqlAnyPending, queue)
		if err != nil {
			return fmt.Errorf("look for pending jobs: %w", err)
		}
		if left == 0 {
			if _, err := b.exec(ctx, tx, sqlClearFairClock, queue); err != nil {
				return fmt.Errorf("restart fair tags: %w", err)
			}
			if _, err := b.exec(ctx, tx, sqlClearFairTags, queue); err != nil {
				return fmt.Errorf("restart fair tags: %w", err)
			}
			return nil
		}
	}
	top := map[int]int64{}
	for _, c := range picked {
		top[c.priority] = max(top[c.priority], c.tag)
	}
	for p, v := range top {
		if _, err := b.exec(ctx, tx, sqlStoreFairClock, queue, p, v); err != nil {
			return fmt.Errorf("store fair clock: %w", err)
		}
	}
	return nil
}

// QueueFairSet stores the queue's policy in one transaction; see
// broker.FairBroker. Turning fairness on gives the queue's pending and
// active jobs tag 0, so they keep their turn before the jobs tagged after.
func (b *Broker) QueueFairSet(ctx context.Context, p *broker.FairPolicy) error {
	if err := b.checkOpen("set fair policy"); err != nil {
		return err
	}
	if err := p.Validate(); err != nil {
		return err
	}
	op := fmt.Sprintf("set fair policy of queue %q", p.Queue)
	err := b.inTx(ctx, func(ctx context.Context, tx *sql.Tx, now int64) error {
		b.forgetPlain(p.Queue)
		if _, err := tx.ExecContext(ctx, `INSERT INTO queues (name, fair, max_active, capped, rated, rate_limit, rate_period_us)
			VALUES (?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (name) DO UPDATE SET fair = excluded.fair, max_active = excluded.max_active, capped = excluded.capped,
				rated = excluded.rated, rate_limit = excluded.rate_limit, rate_period_us = excluded.rate_period_us`,
			p.Queue, p.Fair, p.MaxActive, p.Capped(), p.Rated(), p.TenantRate.Limit, p.TenantRate.Period.Microseconds()); err != nil {
			return err
		}
		for _, t := range []string{"fair_tenants", "fair_types"} {
			if _, err := tx.ExecContext(ctx, `DELETE FROM `+t+` WHERE queue = ?`, p.Queue); err != nil {
				return err
			}
		}
		for tn, s := range p.Tenants {
			if _, err := tx.ExecContext(ctx, `INSERT INTO fair_tenants (queue, tenant, weight, max_active, rate_limit, rate_period_us)
				VALUES (?, ?, ?, ?, ?, ?)`, p.Queue, tn, max(s.Weight, 1), s.MaxActive, s.Rate.Limit, s.Rate.Period.Microseconds()); err != nil {
				return err
			}
		}
		for typ, r := range p.TypeRates {
			if _, err := tx.ExecContext(ctx, `INSERT INTO fair_types (queue, type, rate_limit, rate_period_us) VALUES (?, ?, ?, ?)`,
				p.Queue, typ, r.Limit, r.Period.Microseconds()); err != nil {
				return err
			}
		}
		if p.Fair {
			if _, err := tx.ExecContext(ctx, `UPDATE jobs SET fair_tag = 0
				WHERE queue = ? AND state IN ('pending', 'active') AND fair_tag IS NULL`, p.Queue); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return b.fail(op, err)
	}
	return nil
}

// QueueFairGet reads the queue's policy; see broker.FairBroker.
func (b *Broker) QueueFairGet(ctx context.Context, queue string) (*broker.FairPolicy, error) {
	op := fmt.Sprintf("get fair policy of queue %q", queue)
	if err := b.checkOpen(op); err != nil {
		return nil, err
	}
	if err := broker.ValidateQueueName(queue); err != nil {
		return nil, fmt.Errorf("get fair policy: %w: %v", broker.ErrInvalidJob, err)
	}
	p := &broker.FairPolicy{Queue: queue}
	var us int64
	err := b.read.QueryRowContext(ctx, `SELECT fair, max_active, rate_limit, rate_period_us FROM queues WHERE name = ?`, queue).
		Scan(&p.Fair, &p.MaxActive, &p.TenantRate.Limit, &us)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, b.fail(op, err)
	}
	p.TenantRate.Period = time.Duration(us) * time.Microsecond
	rows, err := b.read.QueryContext(ctx, `SELECT tenant, weight, max_active, rate_limit, rate_period_us FROM fair_tenants WHERE queue = ?`, queue)
	if err != nil {
		return nil, b.fail(op, err)
	}
	defer rows.Close()
	for rows.Next() {
		var tn string
		var s broker.TenantShare
		if err := rows.Scan(&tn, &s.Weight, &s.MaxActive, &s.Rate.Limit, &us); err != nil {
			return nil, b.fail(op, err)
		}
		s.Rate.Period = time.Duration(us) * time.Microsecond
		if p.Tenants == nil {
			p.Tenants = map[string]broker.TenantShare{}
		}
		p.Tenants[tn] = s
	}
	if err := rows.Err(); err != nil {
		return nil, b.fail(op, err)
	}
	rows.Close()
	trows, err := b.read.QueryContext(ctx, `SELECT type, rate_limit, rate_period_us FROM fair_types WHERE queue = ?`, queue)
	if err != nil {
		return nil, b.fail(op, err)
	}
	defer trows.Close()
	for trows.Next() {
		var typ string
		var r broker.Rate
		if err := trows.Scan(&typ, &r.Limit, &us); err != nil {
			return nil, b.fail(op, err)
		}
		r.Period = time.Duration(us) * time.Microsecond
		if p.TypeRates == nil {
			p.TypeRates = map[string]broker.Rate{}
		}
		p.TypeRates[typ] = r
	}
	if err := trows.Err(); err != nil {
		return nil, b.fail(op, err)
	}
	return p, nil
}

// rateStats reports the queue's rate limits for QueueStats, read in tx.
func (b *Broker) rateStats(ctx context.Context, tx *sql.Tx, queue, scope string) ([]broker.RateStat, error) {
	var rated bool
	err := tx.QueryRowContext(ctx, `SELECT rated FROM queues WHERE name = ?`, queue).Scan(&rated)
	if errors.Is(err, sql.ErrNoRows) || err == nil && !rated {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read rate limits: %w", err)
	}
	p, err := b.QueueFairGet(ctx, queue)
	if err != nil {
		return nil, err
	}
	return broker.RateStats(p, scope, func(key string) (int64, error) {
		var tat int64
		err := tx.QueryRowContext(ctx, `SELECT tat FROM rate_state WHERE queue = ? AND limit_key = ?`, queue, key).Scan(&tat)
		if errors.Is(err, sql.ErrNoRows) {
			return 0, nil
		}
		return tat, err
	}, b.opts.Now().UnixMicro())
}

// QueueTenantPause pauses or resumes one tenant of a queue; see
// broker.FairBroker.
func (b *Broker) QueueTenantPause(ctx context.Context, queue, tenant string, paused bool) error {
	op := fmt.Sprintf("pause tenant %q of queue %q", tenant, queue)
	if !paused {
		op = fmt.Sprintf("resume tenant %q of queue %q", tenant, queue)
	}
	if err := b.checkOpen(op); err != nil {
		return err
	}
	if err := broker.ValidateTenantPause(queue, tenant); err != nil {
		return err
	}
	err := b.inTx(ctx, func(ctx context.Context, tx *sql.Tx, now int64) error {
		if _, err := b.exec(ctx, tx, sqlRegisterQueue, queue); err != nil {
			return err
		}
		q := `DELETE FROM tenant_paused WHERE queue = ? AND tenant = ?`
		if paused {
			q = `INSERT OR IGNORE INTO tenant_paused (queue, tenant) VALUES (?, ?)`
		}
		_, err := tx.ExecContext(ctx, q, queue, tenant)
		return err
	})
	if err != nil {
		return b.fail(op, err)
	}
	if !paused {
		b.waker().Notify(queue, 0) // its jobs may be fetched again
	}
	return nil
}
