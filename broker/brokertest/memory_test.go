package brokertest_test

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/aibos/worker/broker"
)

// memBroker is a small in-memory broker: the reference implementation the
// suite is tested against. Each field of faults breaks one rule on purpose,
// so that TestSuiteCatchesFaults can show the matching case fails.
type memBroker struct {
	mu     sync.Mutex
	closed bool
	faults faults
	jobs   map[string]*memJob // by id: ids are unique across the broker
	seq    int64              // insert order, for FIFO among equals
	token  int64              // the last lease token handed out
	paused map[string]bool
	queues map[string]bool
	leads  map[string]memLeader
	docs   map[string]*memDoc // by docID
	fair   memFair
}

type memJob struct {
	broker.Job
	seq      int64
	attempts []broker.AttemptRecord // the history JobGet shows
	tag      int64                  // fair tag (memory_fair_test.go), set when it became pending in a fair queue
	// leakedSlot: recovered under the capLeaksOnRecovery fault, it still
	// counts against its tenant's cap.
	leakedSlot bool
}

// record appends the attempt that just ended to j's history, keeping the
// last broker.MaxAttemptHistory, unless a fault drops or keeps too many.
func (b *memBroker) record(j *memJob, o broker.AttemptOutcome, errText string, now time.Time) {
	if b.faults.historyNoCancelled && o == broker.AttemptCancelled {
		return
	}
	j.attempts = append(j.attempts, broker.AttemptRecord{Attempt: j.Attempt, WorkerID: j.WorkerID,
		StartedAt: j.StartedAt, FinishedAt: now, Outcome: o, Error: broker.ClipAttemptError(errText)})
	if n := len(j.attempts) - broker.MaxAttemptHistory; n > 0 && !b.faults.historyUntrimmed {
		j.attempts = slices.Delete(j.attempts, 0, n)
	}
}

// crashRun counts the lease expiries that end the history (all of them
// under the quarantineAnyExpiries fault).
func crashRun(h []broker.AttemptRecord, any bool) int {
	n := 0
	for i := len(h) - 1; i >= 0; i-- {
		switch {
		case h[i].Outcome == broker.AttemptLeaseExpired:
			n++
		case !any:
			return n
		}
	}
	return n
}

// faults names the rules a memBroker can be told to break.
type faults struct {
	ignorePriority      bool // fetch in insert order only
	lifo                bool // newest first among equal priorities
	ignoreDelay         bool // delayed jobs are pending at once
	noLeaseRecovery     bool // QueueMaintain leaves expired leases alone
	anyTokenAccepted    bool // lease calls check the state, not the token
	newerTokenOK        bool // lease calls accept any token >= the current one
	extendNoop          bool // JobLeaseExtend reports success but changes nothing
	nonAtomicBulk       bool // JobInsertMany writes jobs until the first bad one
	ignoreUniqueKey     bool // unique keys are not enforced
	uniqueAcrossTenants bool // unique keys are held per queue, across tenants
	fullCountsPending   bool // MaxQueueLength ignores scheduled jobs
	ignoreTTL           bool // pending jobs never expire
	ignoreRetryDelay    bool // a failed job is due again at once
	ignorePause         bool // QueuePause has no effect on JobFetch
	cancelKeepsLease    bool // cancelling an active job leaves its lease valid
	racyFetch           bool // JobFetch picks jobs, unlocks, then leases them
	releaseCounts       bool // JobRelease keeps the attempt counted
	retainOldest        bool // CompletedMaxCount keeps the oldest jobs
	closeNoop           bool // Close does nothing
	skipValidate        bool // inserts are not validated
	dropResult          bool // JobComplete does not store the result
	fetchNoPromote      bool // JobFetch leaves due scheduled jobs to QueueMaintain
	finishedOldest      bool // JobList lists finished jobs oldest first
	cursorIsOffset      bool // JobList's cursor is a position, shifted by jobs removed before it
	expiredAsDead       bool // QueueStats counts expired jobs as dead
	queueListReversed   bool // QueueList is sorted backwards
	ignoreProgress      bool // JobProgress reports success but stores nothing
	dropHeaders         bool // inserts lose their headers
	deleteActive        bool // JobDelete removes active jobs too
	ignoreFailMax       bool // JobFail ignores its MaxAttempts override
	failDropsHeaders    bool // JobFail ignores its Headers
	failReplacesHeaders bool // JobFail replaces the job's headers with its own
	commitDropsHeaders  bool // Commit's failures ignore their Headers
	leaderSteal         bool // LeaderAcquire takes a lease another holder has
	leaderExtendNoop    bool // LeaderAcquire by the holder does not move the expiry
	oldestFirstInLine   bool // OldestPendingAt is the RunAt of the next job to fetch
	commitNotAtomic     bool // Commit keeps what it applied before the part that fails
	commitAnyToken      bool // Commit completes and fails jobs whatever their lease
	casIgnoresVersion   bool // Commit writes documents at any version
	optionalAborts      bool // an Optional insert that is refused fails the commit
	optionalWrites      bool // an Optional insert whose unique key is held is written anyway
	ignoreNotBefore     bool // Commit applies before its NotBefore
	docListReversed     bool // DocList reads indexes in the wrong order
	rescheduleKeepsTTL  bool // a rescheduled job keeps its old ExpiresAt

	scopedGetIgnoresTenant    bool // JobGet ignores its tenant scope
	scopedCancelIgnoresTenant bool // JobCancel ignores its tenant scope
	scopedRetryIgnoresTenant  bool // JobRetry ignores its tenant scope
	scopedDeleteIgnoresTenant bool // JobDelete ignores its tenant scope
	scopedListLeaks           bool // a scoped JobList of a finished state lists every tenant's jobs
	scopedStatsCountAll       bool // a scoped QueueStats counts every tenant's jobs
	recentCountsFinished      bool // CompletedLastMinute counts dead jobs too
	scopeSeesUntenanted       bool // a scoped call sees jobs with no tenant
	scopeHintsExistence       bool // another tenant's job is not found with another message than an absent one

	ttlExpiresActive   bool // QueueMaintain expires active jobs past their TTL
	retryReleasesKey   bool // a job waiting to retry no longer holds its unique key
	retainCancelled    bool // the completed-jobs rules remove cancelled jobs too
	maintainNoMore     bool // QueueMaintain never reports More
	idleWithActive     bool // QueueMaintain reports a queue with only active jobs idle
	keepDeleted        bool // jobs to delete on completion are kept completed
	commitKeepsDeleted bool // as keepDeleted, for completions through Commit
	recoveredToBack    bool // recovered and handed-back jobs go to the back of the queue

	historyUntrimmed   bool // the attempt history keeps every attempt
	historyNoRecovery  bool // a recovered lease is not in the attempt history
	historyNoCancelled bool // cancelling an active job records no attempt

	quarantineIgnored     bool // QueueMaintain ignores MaxCrashes
	quarantineAnyExpiries bool // MaxCrashes counts every lease expiry, not only those in a row
	crashSpreadIgnored    bool // a job that expired twice in a row goes back to its place at once
	rewriteIgnoresOld     bool // JobRewrite writes whatever the job holds
	rewritePartial        bool // JobRewrite keeps the values it wrote before a refused one

	fairIgnoresWeight   bool // every tenant of a fair queue has weight 1
	fairCrossesPriority bool // fair tags order jobs before priorities do
	fairAlways          bool // every queue is served fairly, whatever its policy
	capIgnored          bool // tenant caps are not enforced
	capLeaksOnRecovery  bool // a job recovered after its lease expired keeps its tenant's slot
	fairNoClock         bool // a tenant's tags start from 0 however far the queue has moved on
	rateIgnored         bool // rate limits are not enforced
	tenantPauseIgnored  bool // a paused tenant's jobs are fetched anyway
}

func newMemBroker(f faults) *memBroker {
	return &memBroker{faults: f, jobs: map[string]*memJob{}, paused: map[string]bool{}, queues: map[string]bool{},
		docs: map[string]*memDoc{}, fair: newMemFair()}
}

var _ broker.Broker = (*memBroker)(nil)

// lock takes the mutex unless the broker is closed.
func (b *memBroker) lock() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return broker.ErrClosed
	}
	return nil
}

func (b *memBroker) find(queue, id string) (*memJob, error) {
	j, ok := b.jobs[id]
	if !ok || j.Queue != queue {
		return nil, fmt.Errorf("find job %s in queue %q: %w", id, queue, broker.ErrNotFound)
	}
	return j, nil
}

// inScope is broker.InScope, unless a fault breaks it.
func (b *memBroker) inScope(scope, tenant string) bool {
	if b.faults.scopeSeesUntenanted && tenant == "" {
		return true
	}
	return broker.InScope(scope, tenant)
}

// findScoped finds a job within a tenant scope; ignore skips the scope
// check (a planted fault).
func (b *memBroker) findScoped(queue, id, scope string, ignore bool) (*memJob, error) {
	j, err := b.find(queue, id)
	if err != nil {
		return nil, err
	}
	if !ignore && !b.inScope(scope, j.TenantID) {
		if b.faults.scopeHintsExistence {
			return nil, fmt.Errorf("find job %s in queue %q: another tenant's: %w", id, queue, broker.ErrNotFound)
		}
		return nil, fmt.Errorf("find job %s in queue %q: %w", id, queue, broker.ErrNotFound)
	}
	return j, nil
}

func clone(j *memJob) *broker.Job {
	c := j.Job
	return &c
}

func (b *memBroker) JobInsert(ctx context.Context, p *broker.JobInsertParams) (*broker.Job, error) {
	if !b.faults.skipValidate {
		if err := p.Validate(); err != nil {
			return nil, err
		}
	}
	jobs, err := b.insert([]*broker.JobInsertParams{p})
	if err != nil {
		return nil, err
	}
	return jobs[0], nil
}

func (b *memBroker) JobInsertMany(ctx context.Context, ps []*broker.JobInsertParams) ([]*broker.Job, error) {
	if !b.faults.skipValidate && !b.faults.nonAtomicBulk {
		if err := broker.ValidateBatch(ps); err != nil {
			return nil, err
		}
	}
	return b.insert(ps)
}

func (b *memBroker) insert(ps []*broker.JobInsertParams) ([]*broker.Job, error) {
	if err := b.lock(); err != nil {
		return nil, err
	}
	defer b.mu.Unlock()
	if !b.faults.nonAtomicBulk {
		if err := b.checkInsert(ps); err != nil {
			return nil, err
		}
	}
	var out []*broker.Job
	for i, p := range ps {
		if b.faults.nonAtomicBulk {
			if err := p.Validate(); err != nil {
				err.(*broker.InvalidError).Index = i
				return nil, err
			}
			if err := b.checkInsert(ps[i : i+1]); err != nil {
				return nil, err
			}
		}
		out = append(out, clone(b.store(p)))
	}
	return out, nil
}

// checkInsert enforces ids, unique keys and queue length for a batch.
func (b *memBroker) checkInsert(ps []*broker.JobInsertParams) error {
	ids, keys := map[string]bool{}, map[string]string{}
	for _, j := range b.jobs {
		retrying := j.State == broker.StateScheduled && j.Attempt > 0
		if j.UniqueKey != "" && !j.State.Finished() && !(b.faults.retryReleasesKey && retrying) {
			keys[b.uniqueSlot(j.Queue, j.TenantID, j.UniqueKey)] = j.ID
		}
	}
	for _, p := range ps {
		if _, ok := b.jobs[p.ID]; ok || ids[p.ID] {
			return &broker.DuplicateError{Queue: p.Queue, ExistingID: p.ID}
		}
		ids[p.ID] = true
		if p.UniqueKey == "" || b.faults.ignoreUniqueKey {
			continue
		}
		slot := b.uniqueSlot(p.Queue, p.TenantID, p.UniqueKey)
		if held, ok := keys[slot]; ok {
			return &broker.DuplicateError{Queue: p.Queue, ExistingID: held, UniqueKey: p.UniqueKey}
		}
		keys[slot] = p.ID
	}
	if n := ps[0].MaxQueueLength; n > 0 {
		var waiting int
		for _, j := range b.jobs {
			if j.Queue == ps[0].Queue && (j.State == broker.StatePending || j.State == broker.StateScheduled && !b.faults.fullCountsPending) {
				waiting++
			}
		}
		if waiting+len(ps) > n {
			return fmt.Errorf("insert into %q: %w", ps[0].Queue, broker.ErrQueueFull)
		}
	}
	return nil
}

// uniqueSlot names what a job of tenant holds in queue with key: keys are
// held per (queue, tenant, key), unless a fault holds them across tenants.
func (b *memBroker) uniqueSlot(queue, tenant, key string) string {
	if b.faults.uniqueAcrossTenants {
		tenant = ""
	}
	return queue + "\x00" + broker.UniqueSlot(tenant, key)
}

func (b *memBroker) store(p *broker.JobInsertParams) *memJob {
	now := time.Now()
	b.seq++
	j := &memJob{seq: b.seq, Job: broker.Job{
		ID: p.ID, Queue: p.Queue, Type: p.Type, Data: slices.Clone(p.Data), Priority: broker.PriorityOrDefault(p.Priority),
		MaxAttempts: p.MaxAttempts, TenantID: p.TenantID, CompanyID: p.CompanyID, Headers: maps.Clone(p.Headers),
		UniqueKey: p.UniqueKey, Timeout: p.Timeout, DeleteOnComplete: p.DeleteOnComplete,
		State: broker.StatePending, CreatedAt: now, RunAt: now,
	}}
	switch {
	case !p.RunAt.IsZero():
		if p.RunAt.After(now) {
			j.RunAt = p.RunAt
		}
	case p.Delay > 0:
		j.RunAt = now.Add(p.Delay)
	}
	if b.faults.dropHeaders {
		j.Headers = nil
	}
	if j.RunAt.After(now) && !b.faults.ignoreDelay {
		j.State = broker.StateScheduled
	}
	if p.TTL > 0 {
		j.ExpiresAt = j.RunAt.Add(p.TTL)
	}
	if j.State == broker.StatePending {
		b.stamp(j)
	}
	b.jobs[j.ID] = j
	b.queues[j.Queue] = true
	return j
}

// toBack sends a recovered or handed-back job to the back of its queue if
// the fault says so; otherwise it keeps its place.
func (b *memBroker) toBack(j *memJob) {
	if b.faults.recoveredToBack {
		b.seq++
		j.seq = b.seq
	}
}

// pendingOrder sorts a queue's pending jobs in fetch order.
func (b *memBroker) pendingOrder(queue string) []*memJob {
	var out []*memJob
	for _, j := range b.jobs {
		if j.Queue == queue && j.State == broker.StatePending {
			out = append(out, j)
		}
	}
	slices.SortFunc(out, b.fetchOrder(queue))
	return out
}

// fetchOrder compares two pending jobs of queue in fetch order.
func (b *memBroker) fetchOrder(queue string) func(x, y *memJob) int {
	fair := b.isFair(queue)
	return func(x, y *memJob) int {
		if fair && b.faults.fairCrossesPriority && x.tag != y.tag {
			return cmp.Compare(x.tag, y.tag)
		}
		if !b.faults.ignorePriority && x.Priority != y.Priority {
			return cmp.Compare(x.Priority, y.Priority)
		}
		if b.faults.lifo {
			return cmp.Compare(y.seq, x.seq)
		}
		if fair && x.tag != y.tag {
			return cmp.Compare(x.tag, y.tag)
		}
		return cmp.Compare(x.seq, y.seq)
	}
}

// promote makes a queue's due scheduled jobs pending.
func (b *memBroker) promote(queue string, now time.Time) int {
	n := 0
	for _, j := range b.jobs {
		if j.Queue == queue && j.State == broker.StateScheduled && !j.RunAt.After(now) {
			j.State = broker.StatePending
			b.stamp(j)
			n++
		}
	}
	return n
}

// expire moves a pending job past its TTL to expired.
func (b *memBroker) expire(j *memJob, now time.Time) bool {
	if b.faults.ignoreTTL || j.ExpiresAt.IsZero() || !now.After(j.ExpiresAt) {
		return false
	}
	j.State, j.FinishedAt = broker.StateExpired, now
	return true
}

func (b *memBroker) JobFetch(ctx context.Context, p *broker.JobFetchParams) ([]*broker.Job, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if err := b.lock(); err != nil {
		return nil, err
	}
	defer b.mu.Unlock()
	if b.paused[p.Queue] && !b.faults.ignorePause {
		return nil, fmt.Errorf("fetch from %q: %w", p.Queue, broker.ErrQueuePaused)
	}
	now := time.Now()
	if !b.faults.fetchNoPromote {
		b.promote(p.Queue, now)
	}
	var picked []*memJob
	slots := b.slots(p.Queue, now)
	for _, j := range b.pendingOrder(p.Queue) {
		if len(picked) == p.Limit {
			break
		}
		if !b.expire(j, now) && slots.take(j) {
			picked = append(picked, j)
		}
	}
	b.served(p.Queue, picked)
	if b.faults.racyFetch {
		b.mu.Unlock()
		time.Sleep(time.Millisecond)
		b.mu.Lock()
	}
	out := []*broker.Job{}
	for _, j := range picked {
		b.token++
		j.State, j.Attempt, j.LeaseToken = broker.StateActive, j.Attempt+1, b.token
		j.StartedAt, j.LeaseUntil, j.WorkerID = now, now.Add(p.LeaseDuration), p.WorkerID
		out = append(out, clone(j))
	}
	return out, nil
}

// leased returns the job held under lp, or ErrNotFound / ErrLeaseLost.
func (b *memBroker) leased(lp *broker.JobLeaseParams) (*memJob, error) {
	j, err := b.find(lp.Queue, lp.ID)
	if err != nil {
		return nil, err
	}
	active := j.State == broker.StateActive || b.faults.cancelKeepsLease && j.State == broker.StateCancelled
	tokenOK := j.LeaseToken == lp.Token || b.faults.anyTokenAccepted || b.faults.newerTokenOK && lp.Token >= j.LeaseToken
	if !active || !tokenOK {
		return nil, fmt.Errorf("job %s under token %d: %w", lp.ID, lp.Token, broker.ErrLeaseLost)
	}
	return j, nil
}

func (b *memBroker) JobComplete(ctx context.Context, ps []*broker.JobCompleteParams) ([]error, error) {
	if err := b.lock(); err != nil {
		return nil, err
	}
	defer b.mu.Unlock()
	errs := make([]error, len(ps))
	for i, p := range ps {
		j, err := b.leased(&p.JobLeaseParams)
		if err != nil {
			errs[i] = err
			continue
		}
		if (p.Delete || j.DeleteOnComplete) && !b.faults.keepDeleted {
			delete(b.jobs, j.ID)
			continue
		}
		j.State, j.FinishedAt = broker.StateCompleted, time.Now()
		b.record(j, broker.AttemptCompleted, "", j.FinishedAt)
		if !b.faults.dropResult {
			j.Result = slices.Clone(p.Result)
		}
	}
	return errs, nil
}

func (b *memBroker) JobFail(ctx context.Context, p *broker.JobFailParams) (broker.State, error) {
	if err := p.Validate(); err != nil {
		return "", fmt.Errorf("fail job: %w", err)
	}
	if err := b.lock(); err != nil {
		return "", err
	}
	defer b.mu.Unlock()
	j, err := b.leased(&p.JobLeaseParams)
	if err != nil {
		return "", err
	}
	now := time.Now()
	j.LastError = p.Error
	switch {
	case b.faults.failDropsHeaders:
	case b.faults.failReplacesHeaders && len(p.Headers) > 0:
		j.Headers = maps.Clone(p.Headers)
	default:
		mergeHeaders(j, p.Headers)
	}
	if p.MaxAttempts > 0 && !b.faults.ignoreFailMax {
		j.MaxAttempts = p.MaxAttempts
	}
	if !p.Discard && j.Attempt < j.MaxAttempts {
		j.State, j.RunAt = broker.StateScheduled, now.Add(p.RetryDelay)
		if b.faults.ignoreRetryDelay {
			j.State, j.RunAt = broker.StatePending, now
			b.stamp(j)
		}
		b.record(j, broker.AttemptRetryScheduled, p.Error, now)
	} else {
		j.State, j.FinishedAt = broker.StateDead, now
		b.record(j, broker.AttemptDead, p.Error, now)
	}
	return j.State, nil
}

func (b *memBroker) JobRelease(ctx context.Context, p *broker.JobLeaseParams) error {
	if err := b.lock(); err != nil {
		return err
	}
	defer b.mu.Unlock()
	j, err := b.leased(p)
	if err != nil {
		return err
	}
	j.State = broker.StatePending
	b.record(j, broker.AttemptHandedBack, "", time.Now())
	b.toBack(j)
	if !b.faults.releaseCounts {
		j.Attempt--
	}
	return nil
}

func (b *memBroker) JobLeaseExtend(ctx context.Context, ps []*broker.JobLeaseParams, d time.Duration) ([]error, error) {
	if err := b.lock(); err != nil {
		return nil, err
	}
	defer b.mu.Unlock()
	errs := make([]error, len(ps))
	for i, p := range ps {
		j, err := b.leased(p)
		if err == nil && !b.faults.extendNoop {
			j.LeaseUntil = time.Now().Add(d)
		}
		errs[i] = err
	}
	return errs, nil
}

func (b *memBroker) JobProgress(ctx context.Context, p *broker.JobLeaseParams, progress json.RawMessage) error {
	if err := b.lock(); err != nil {
		return err
	}
	defer b.mu.Unlock()
	j, err := b.leased(p)
	if err == nil && !b.faults.ignoreProgress {
		j.Progress = slices.Clone(progress)
	}
	return err
}

func (b *memBroker) JobGet(ctx context.Context, p *broker.JobGetParams) (*broker.Job, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if err := b.lock(); err != nil {
		return nil, err
	}
	defer b.mu.Unlock()
	j, err := b.findScoped(p.Queue, p.ID, p.TenantID, b.faults.scopedGetIgnoresTenant)
	if err != nil {
		return nil, err
	}
	c := clone(j)
	c.Attempts = slices.Clone(j.attempts)
	return c, nil
}

func (b *memBroker) JobList(ctx context.Context, p *broker.JobListParams) (*broker.JobListResult, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if err := b.lock(); err != nil {
		return nil, err
	}
	defer b.mu.Unlock()
	var all []*memJob
	for _, j := range b.jobs {
		if j.Queue == p.Queue && j.State == p.State {
			all = append(all, j)
		}
	}
	order := b.listOrder(p.Queue, p.State)
	slices.SortFunc(all, order)
	leak := b.faults.scopedListLeaks && p.State.Finished()
	all = slices.DeleteFunc(all, func(j *memJob) bool {
		return !leak && !b.inScope(p.TenantID, j.TenantID) || p.Type != "" && j.Type != p.Type
	})
	base := 0 // where the cursor stands, for the cursorIsOffset fault
	if p.After != "" {
		var at memCursor
		if err := json.Unmarshal([]byte(p.After), &at); err != nil {
			return nil, broker.BadCursorError(p.After)
		}
		if b.faults.cursorIsOffset {
			base = at.Offset
			all = all[min(base, len(all)):]
		} else {
			all = slices.DeleteFunc(all, func(j *memJob) bool { return order(j, at.job()) <= 0 })
		}
	}
	limit := cmp.Or(p.Limit, 100)
	res := &broker.JobListResult{NextOffset: -1}
	for i := p.Offset; i < len(all) && i < p.Offset+limit; i++ {
		res.Jobs = append(res.Jobs, clone(all[i]))
	}
	if p.Offset+limit < len(all) {
		res.NextOffset = p.Offset + limit
		last := all[p.Offset+limit-1]
		c, _ := json.Marshal(memCursor{ID: last.ID, Seq: last.seq, Tag: last.tag, Priority: last.Priority,
			RunAt: last.RunAt, LeaseUntil: last.LeaseUntil, FinishedAt: last.FinishedAt, Offset: base + p.Offset + limit})
		res.Cursor = string(c)
	}
	return res, nil
}

// memCursor is the reference broker's JobList cursor: the fields its
// orders compare, of the last job listed; and, for the cursorIsOffset
// fault, the position after it.
type memCursor struct {
	ID                            string
	Seq, Tag                      int64
	Priority                      int
	RunAt, LeaseUntil, FinishedAt time.Time
	Offset                        int
}

func (c memCursor) job() *memJob {
	return &memJob{Job: broker.Job{ID: c.ID, Priority: c.Priority, RunAt: c.RunAt, LeaseUntil: c.LeaseUntil, FinishedAt: c.FinishedAt},
		seq: c.Seq, tag: c.Tag}
}

// listOrder is the order JobList lists a queue's jobs of one state in.
func (b *memBroker) listOrder(queue string, s broker.State) func(x, y *memJob) int {
	if s == broker.StatePending {
		return b.fetchOrder(queue)
	}
	return func(x, y *memJob) int {
		switch {
		case s == broker.StateScheduled:
			return cmp.Or(x.RunAt.Compare(y.RunAt), cmp.Compare(x.seq, y.seq))
		case s == broker.StateActive:
			return cmp.Or(x.LeaseUntil.Compare(y.LeaseUntil), cmp.Compare(x.seq, y.seq))
		}
		if b.faults.finishedOldest {
			return x.FinishedAt.Compare(y.FinishedAt)
		}
		return cmp.Or(y.FinishedAt.Compare(x.FinishedAt), cmp.Compare(y.seq, x.seq))
	}
}

func (b *memBroker) JobCancel(ctx context.Context, p *broker.JobCancelParams) (*broker.Job, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if err := b.lock(); err != nil {
		return nil, err
	}
	defer b.mu.Unlock()
	queue, id := p.Queue, p.ID
	j, err := b.findScoped(queue, id, p.TenantID, b.faults.scopedCancelIgnoresTenant)
	if err != nil {
		return nil, err
	}
	if j.State.Finished() {
		return nil, fmt.Errorf("cancel job %s: %w", id, broker.ErrWrongState)
	}
	if j.State == broker.StateActive {
		b.record(j, broker.AttemptCancelled, "", time.Now())
	}
	j.State, j.FinishedAt = broker.StateCancelled, time.Now()
	return clone(j), nil
}

func (b *memBroker) JobRetry(ctx context.Context, p *broker.JobRetryParams) (*broker.Job, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if err := b.lock(); err != nil {
		return nil, err
	}
	defer b.mu.Unlock()
	queue, id := p.Queue, p.ID
	j, err := b.findScoped(queue, id, p.TenantID, b.faults.scopedRetryIgnoresTenant)
	if err != nil {
		return nil, err
	}
	if s := j.State; s != broker.StateDead && s != broker.StateCancelled && s != broker.StateExpired {
		return nil, fmt.Errorf("retry job %s (%s): %w", id, s, broker.ErrWrongState)
	}
	for _, o := range b.jobs {
		if j.UniqueKey != "" && o.UniqueKey != "" && !o.State.Finished() &&
			b.uniqueSlot(o.Queue, o.TenantID, o.UniqueKey) == b.uniqueSlot(queue, j.TenantID, j.UniqueKey) {
			return nil, &broker.DuplicateError{Queue: queue, ExistingID: o.ID, UniqueKey: j.UniqueKey}
		}
	}
	j.State, j.Attempt, j.RunAt, j.FinishedAt, j.ExpiresAt = broker.StatePending, 0, time.Now(), time.Time{}, time.Time{}
	b.stamp(j)
	return clone(j), nil
}

func (b *memBroker) JobDelete(ctx context.Context, p *broker.JobDeleteParams) error {
	if err := p.Validate(); err != nil {
		return err
	}
	if err := b.lock(); err != nil {
		return err
	}
	defer b.mu.Unlock()
	id := p.ID
	j, err := b.findScoped(p.Queue, id, p.TenantID, b.faults.scopedDeleteIgnoresTenant)
	if err != nil {
		return err
	}
	if j.State == broker.StateActive && !b.faults.deleteActive {
		return fmt.Errorf("delete job %s: %w", id, broker.ErrWrongState)
	}
	delete(b.jobs, id)
	return nil
}

func (b *memBroker) QueueStats(ctx context.Context, p *broker.QueueStatsParams) (*broker.QueueStats, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if err := b.lock(); err != nil {
		return nil, err
	}
	defer b.mu.Unlock()
	queue := p.Queue
	scope := p.TenantID
	if b.faults.scopedStatsCountAll {
		scope = ""
	}
	st := &broker.QueueStats{Queue: queue, Paused: b.paused[queue]}
	st.TenantPaused = p.TenantID != "" && b.fair.paused[[2]string{queue, p.TenantID}]
	pol := b.policyOf(queue)
	st.Rates, _ = broker.RateStats(&pol, p.TenantID, func(key string) (int64, error) {
		return b.fair.tat[queue+"\x00"+key], nil
	}, time.Now().UnixMicro())
	counters := map[broker.State]*int64{
		broker.StateScheduled: &st.Scheduled, broker.StatePending: &st.Pending, broker.StateActive: &st.Active,
		broker.StateCompleted: &st.Completed, broker.StateDead: &st.Dead, broker.StateCancelled: &st.Cancelled,
		broker.StateExpired: &st.Expired,
	}
	since, recent := time.Now().Add(-broker.RecentWindow), &st.CompletedLastMinute
	for _, j := range b.jobs {
		if j.Queue == queue && b.inScope(scope, j.TenantID) {
			st := j.State
			if st == broker.StateExpired && b.faults.expiredAsDead {
				st = broker.StateDead
			}
			*counters[st]++
			finished := st == broker.StateCompleted || b.faults.recentCountsFinished && st == broker.StateDead
			if finished && !j.FinishedAt.Before(since) {
				*recent++
			}
		}
	}
	pending := slices.DeleteFunc(b.pendingOrder(queue), func(j *memJob) bool { return !b.inScope(scope, j.TenantID) })
	for i, j := range pending {
		if b.faults.oldestFirstInLine && i > 0 {
			break
		}
		if st.OldestPendingAt.IsZero() || j.RunAt.Before(st.OldestPendingAt) {
			st.OldestPendingAt = j.RunAt
		}
	}
	return st, nil
}

func (b *memBroker) QueueList(ctx context.Context) ([]string, error) {
	if err := b.lock(); err != nil {
		return nil, err
	}
	defer b.mu.Unlock()
	names := slices.Sorted(maps.Keys(b.queues))
	if b.faults.queueListReversed {
		slices.Reverse(names)
	}
	return names, nil
}

func (b *memBroker) QueuePause(ctx context.Context, queue string) error {
	if err := b.lock(); err != nil {
		return err
	}
	defer b.mu.Unlock()
	b.paused[queue], b.queues[queue] = true, true
	return nil
}

func (b *memBroker) QueueResume(ctx context.Context, queue string) error {
	if err := b.lock(); err != nil {
		return err
	}
	defer b.mu.Unlock()
	delete(b.paused, queue)
	return nil
}

func (b *memBroker) QueueMaintain(ctx context.Context, p *broker.QueueMaintainParams) (*broker.QueueMaintainResult, error) {
	if err := broker.ValidateMaintain(p); err != nil {
		return nil, err
	}
	if err := b.lock(); err != nil {
		return nil, err
	}
	defer b.mu.Unlock()
	now := time.Now()
	r := &broker.QueueMaintainResult{Promoted: b.promote(p.Queue, now)}
	var completed, dead []*memJob
	for _, j := range b.jobs {
		if j.Queue != p.Queue {
			continue
		}
		switch j.State {
		case broker.StateActive:
			if b.faults.ttlExpiresActive && !j.ExpiresAt.IsZero() && now.After(j.ExpiresAt) {
				j.State, j.FinishedAt = broker.StateExpired, now
				r.Expired++
				continue
			}
			if b.faults.noLeaseRecovery || !now.After(j.LeaseUntil) {
				continue
			}
			if !b.faults.historyNoRecovery {
				b.record(j, broker.AttemptLeaseExpired, "lease expired", now)
			}
			if crashes := crashRun(j.attempts, b.faults.quarantineAnyExpiries); p.MaxCrashes > 0 && !b.faults.quarantineIgnored && crashes >= p.MaxCrashes {
				j.State, j.FinishedAt, j.LastError = broker.StateDead, now, broker.QuarantineReason(p.MaxCrashes)
				r.Dead++
				r.Quarantined++
			} else if j.Attempt < j.MaxAttempts && crashes >= max(1, min(2, p.MaxCrashes-1)) && p.MaxCrashes > 0 && p.CrashSpread > 0 && !b.faults.crashSpreadIgnored {
				j.State, j.RunAt = broker.StateScheduled, now.Add(rand.N(p.CrashSpread))
				r.Recovered++
			} else if j.Attempt < j.MaxAttempts {
				j.State = broker.StatePending
				b.toBack(j)
				j.leakedSlot = b.faults.capLeaksOnRecovery
				r.Recovered++
			} else {
				j.State, j.FinishedAt, j.LastError = broker.StateDead, now, "lease expired"
				r.Dead++
			}
		case broker.StatePending:
			if b.expire(j, now) {
				r.Expired++
			}
		case broker.StateCompleted:
			completed = append(completed, j)
		case broker.StateCancelled:
			if b.faults.retainCancelled {
				completed = append(completed, j)
			}
		case broker.StateDead:
			dead = append(dead, j)
		}
	}
	// Each rule removes at most limit jobs, oldest first, as the real
	// brokers do, and says when it may have left some.
	limit := cmp.Or(p.Limit, 1000)
	remove := func(jobs []*memJob) {
		if len(jobs) > limit {
			jobs = jobs[:limit]
		}
		if len(jobs) == limit && !b.faults.maintainNoMore {
			r.More = true
		}
		for _, j := range jobs {
			delete(b.jobs, j.ID)
			r.Removed++
		}
	}
	young := func(age time.Duration) func(j *memJob) bool {
		return func(j *memJob) bool { return now.Sub(j.FinishedAt) <= age }
	}
	oldestFirst := func(x, y *memJob) int { return cmp.Or(x.FinishedAt.Compare(y.FinishedAt), cmp.Compare(x.seq, y.seq)) }
	slices.SortFunc(completed, oldestFirst)
	slices.SortFunc(dead, oldestFirst)
	if p.CompletedMaxAge > 0 {
		remove(slices.DeleteFunc(slices.Clone(completed), young(p.CompletedMaxAge)))
		completed = slices.DeleteFunc(completed, func(j *memJob) bool { return b.jobs[j.ID] == nil })
	}
	if n := len(completed) - p.CompletedMaxCount; p.CompletedMaxCount > 0 && n > 0 {
		if b.faults.retainOldest {
			remove(completed[len(completed)-n:])
		} else {
			remove(completed[:n])
		}
	}
	if p.DeadMaxAge > 0 {
		remove(slices.DeleteFunc(dead, young(p.DeadMaxAge)))
	}
	r.Idle = !r.More
	for _, j := range b.jobs {
		switch {
		case j.Queue != p.Queue:
		case j.State == broker.StatePending, j.State == broker.StateScheduled,
			j.State == broker.StateActive && !b.faults.idleWithActive:
			r.Idle = false
		}
	}
	return r, nil
}

func (b *memBroker) Ping(ctx context.Context) error {
	if err := b.lock(); err != nil {
		return err
	}
	b.mu.Unlock()
	return nil
}

func (b *memBroker) Close() error {
	if b.faults.closeNoop {
		return nil
	}
	if err := b.lock(); err != nil {
		return err
	}
	defer b.mu.Unlock()
	b.closed = true
	return nil
}

// mergeHeaders merges a failure's headers into its job's.
func mergeHeaders(j *memJob, h map[string]string) {
	if len(h) == 0 {
		return
	}
	if j.Headers == nil {
		j.Headers = make(map[string]string, len(h))
	}
	maps.Copy(j.Headers, h)
}
