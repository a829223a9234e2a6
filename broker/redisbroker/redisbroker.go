package redisbroker

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net/url"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/broker/internal/combine"
)

var _ broker.Broker = (*Broker)(nil)

// Config configures a Broker. The zero value works.
type Config struct {
	// Prefix starts every key the broker reads or writes, so several
	// deployments can share one Redis. It must not contain braces, which
	// Redis Cluster reads as a hash tag. Defaults to "aibos:worker".
	Prefix string
	// Logger receives the broker's own reports, such as data loss
	// (DataLoss). Defaults to slog.Default().
	Logger *slog.Logger
	// DataLossCheckInterval is the least time between two data-loss checks
	// of a queue by this broker (see the package documentation): each
	// check rides in the round trip of an insert or a fetch as one small
	// script call, so a busy queue pays for one per interval, not one per
	// call. A loss is noticed by the first insert or fetch of the queue
	// after the interval. Defaults to 100ms.
	DataLossCheckInterval time.Duration
	// DurableReplicas, when above 0, makes JobInsert, JobInsertMany and
	// Commit return only once that many replicas confirmed their writes
	// (Redis WAIT), so that an acknowledged job survives the loss of the
	// master; fewer within DurableTimeout is an error wrapping
	// ErrNotReplicated (the writes stay on the master). It costs a round
	// trip and the replication delay per call, and concurrent inserts
	// into a queue are still combined into one call. Defaults to 0: a
	// write is acknowledged when the master applied it.
	DurableReplicas int
	// DurableTimeout bounds the wait for DurableReplicas. Defaults to 1s.
	DurableTimeout time.Duration
}

// Broker stores jobs in Redis. It is safe for concurrent use, by many
// goroutines and many processes sharing one Redis.
type Broker struct {
	client redis.UniversalClient
	owned  bool // Close closes client
	prefix string
	closed atomic.Bool
	known  sync.Map // queue name → struct{}: already in the queues set
	log    *slog.Logger
	marks  marks  // what the broker saw of each queue's data (dataloss.go)
	id     string // names this broker's write markers (lua/mark.lua)
	wake   waker  // JobWait's pub/sub listener, started on first use

	// inserts combines concurrent JobInsert calls per queue (insert.go).
	inserts *combine.Group[*broker.JobInsertParams, *broker.Job]

	durable        int           // Config.DurableReplicas (durable.go)
	durableTimeout time.Duration // Config.DurableTimeout or its default

	insertCalls  atomic.Int64 // insert script calls made, for tests
	formatOK     atomic.Bool  // the stored format was checked (format.go)
	evalOnly     atomic.Bool  // the server has no Functions: run scripts (functions.go)
	loadFailedAt atomic.Int64 // when loading the library last failed for a passing reason (UnixNano; functions.go)

	// keyCache maps a queue name to its *queueKeys, keyCached counts them
	// (keys).
	keyCache  sync.Map
	keyCached atomic.Int64
}

// New returns a Broker on a client the caller owns: Close leaves the client
// open. Standalone, Sentinel (failover) and Cluster clients all work.
func New(client redis.UniversalClient, opts Config) (*Broker, error) {
	if client == nil {
		return nil, errors.New("redisbroker: new broker: client is nil")
	}
	prefix := opts.Prefix
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if strings.ContainsAny(prefix, "{}") {
		return nil, fmt.Errorf("redisbroker: new broker: prefix %q contains a brace", prefix)
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	every := opts.DataLossCheckInterval
	if every < 0 {
		return nil, fmt.Errorf("redisbroker: new broker: data loss check interval %v is negative", every)
	}
	if every == 0 {
		every = 100 * time.Millisecond
	}
	if opts.DurableReplicas < 0 || opts.DurableTimeout < 0 {
		return nil, fmt.Errorf("redisbroker: new broker: durable replicas %d or timeout %v is negative", opts.DurableReplicas, opts.DurableTimeout)
	}
	durableTimeout := opts.DurableTimeout
	if durableTimeout == 0 {
		durableTimeout = defaultDurableTimeout
	}
	b := &Broker{client: client, prefix: prefix, log: log, id: rand.Text(), durable: opts.DurableReplicas, durableTimeout: durableTimeout,
		marks: marks{queues: map[string]*queueMark{}, every: every}}
	b.inserts = combine.New(maxCombined, fmt.Errorf("%w: it closed before the job was sent", broker.ErrClosed),
		func(ctx context.Context, ps []*broker.JobInsertParams) ([]*broker.Job, []error, error) {
			return b.insert(ctx, ps, true)
		})
	return b, nil
}

// Open parses a Redis URL of any topology (ParseURL: redis://, rediss://,
// redis+sentinel://, redis+cluster://) and returns a Broker that owns its
// client: Close closes it. The client honours each call's context deadline
// while it waits on the network (go-redis ContextTimeoutEnabled), so a call
// to a Redis that is down or hung returns by its deadline, not after
// go-redis's own read timeouts and retries (which otherwise kept a call
// waiting for up to 40 s on a hung Redis). Give New a client with
// ContextTimeoutEnabled for the same.
func Open(url string, opts Config) (*Broker, error) {
	o, err := ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("redisbroker: open: %w", err)
	}
	client := o.NewClient()
	b, err := New(client, opts)
	if err != nil {
		_ = client.Close()
		return nil, err
	}
	b.owned = true
	return b, nil
}

// Close marks the broker closed and, if Open created the client, closes it.
// Jobs stay stored. Every later call, Close included, returns ErrClosed.
func (b *Broker) Close() error {
	if !b.closed.CompareAndSwap(false, true) {
		return fmt.Errorf("redisbroker: close: %w", broker.ErrClosed)
	}
	b.waker().close()
	b.inserts.Close()
	if b.owned {
		if err := b.client.Close(); err != nil {
			return fmt.Errorf("redisbroker: close client: %w", err)
		}
	}
	return nil
}

// Ping checks Redis answers, and the first time that the stored format
// is one this release reads (migrating an older one).
func (b *Broker) Ping(ctx context.Context) error {
	if err := b.open("ping"); err != nil {
		return err
	}
	if !b.formatOK.Load() {
		// Reading the stored format proves Redis answers as a PING
		// would: a worker's Start (Manager.Start pings) pays one round
		// trip here, not two.
		if err := b.checkFormat(ctx); err != nil {
			return fmt.Errorf("redisbroker: ping: %w", err)
		}
		return nil
	}
	if err := b.client.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redisbroker: ping: %w", err)
	}
	return nil
}

// open returns ErrClosed, wrapped with op, once the broker is closed.
func (b *Broker) open(op string) error {
	if b.closed.Load() {
		return fmt.Errorf("redisbroker: %s: %w", op, broker.ErrClosed)
	}
	return nil
}

// keys returns the key names of queue. They are built once per queue, for
// up to maxCachedKeys queues: every fetch and completion batch asks, and
// building them was 21 string allocations a call. Queue names past the
// bound (an API caller naming queues that do not exist) are built afresh
// each time, so the cache cannot grow without bound.
func (b *Broker) keys(queue string) queueKeys {
	if k, ok := b.keyCache.Load(queue); ok {
		return *k.(*queueKeys)
	}
	k := newQueueKeys(b.prefix, queue)
	if b.keyCached.Add(1) <= maxCachedKeys {
		if _, loaded := b.keyCache.LoadOrStore(queue, &k); loaded {
			b.keyCached.Add(-1)
		}
	} else {
		b.keyCached.Add(-1)
	}
	return k
}

// maxCachedKeys bounds the queues whose key names a Broker keeps.
const maxCachedKeys = 4096

// registerQueue adds queue to the set QueueList reads. SADD is idempotent;
// each Broker sends it once per queue.
func (b *Broker) registerQueue(ctx context.Context, queue string) error {
	if _, ok := b.known.Load(queue); ok {
		return nil
	}
	if err := b.client.SAdd(ctx, queuesKey(b.prefix), queue).Err(); err != nil {
		return err
	}
	b.known.Store(queue, struct{}{})
	return nil
}

// QueueStats counts a queue's jobs by state, read in one transaction.
func (b *Broker) QueueStats(ctx context.Context, p *broker.QueueStatsParams) (*broker.QueueStats, error) {
	if err := b.open("queue stats"); err != nil {
		return nil, err
	}
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("redisbroker: %w", err)
	}
	queue := p.Queue
	k := b.keys(queue)
	// A tenant's counts are the sizes of its index zsets (lib.lua).
	zsets := make([]string, len(broker.States))
	for i, st := range broker.States {
		zsets[i] = k.stateZset(st)
		if p.TenantID != "" {
			zsets[i] = k.tenantIndex(st, p.TenantID)
		}
	}
	counts := make([]*redis.IntCmd, len(zsets))
	var paused *redis.IntCmd
	_, err := b.client.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
		for i, z := range zsets {
			counts[i] = pipe.ZCard(ctx, z)
		}
		paused = pipe.Exists(ctx, k.paused)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("redisbroker: queue stats of %q: %w", queue, err)
	}
	st := &broker.QueueStats{
		Queue:     queue,
		Paused:    paused.Val() == 1,
		Scheduled: counts[0].Val(),
		Pending:   counts[1].Val(),
		Active:    counts[2].Val(),
		Completed: counts[3].Val(),
		Dead:      counts[4].Val(),
		Cancelled: counts[5].Val(),
		Expired:   counts[6].Val(),
	}
	// Read after the counts, not inside their transaction: a script cannot
	// be loaded inside MULTI. See lua/oldest.lua for what it measures.
	oldest, err := b.run(ctx, b.client, scriptOldest, []string{zsets[1], k.job}).Int64()
	if err != nil {
		return nil, fmt.Errorf("redisbroker: oldest pending job of %q: %w", queue, err)
	}
	if oldest >= 0 {
		st.OldestPendingAt = fromMillis(oldest)
	}
	st.CompletedLastMinute, err = b.run(ctx, b.client, scriptRecent, []string{zsets[3]}, broker.RecentWindow.Microseconds()).Int64()
	if err != nil {
		return nil, fmt.Errorf("redisbroker: jobs of %q completed recently: %w", queue, err)
	}
	if p.TenantID != "" {
		if st.TenantPaused, err = b.client.HExists(ctx, k.tpaused, p.TenantID).Result(); err != nil {
			return nil, fmt.Errorf("redisbroker: queue stats of %q: %w", queue, err)
		}
	}
	if st.Rates, err = b.rateStats(ctx, queue, p.TenantID); err != nil {
		return nil, fmt.Errorf("redisbroker: queue stats of %q: %w", queue, err)
	}
	return st, nil
}

// QueueList names every queue that ever held a job or was paused, sorted.
func (b *Broker) QueueList(ctx context.Context) ([]string, error) {
	if err := b.open("list queues"); err != nil {
		return nil, err
	}
	names, err := b.client.SMembers(ctx, queuesKey(b.prefix)).Result()
	if err != nil {
		return nil, fmt.Errorf("redisbroker: list queues: %w", err)
	}
	sort.Strings(names)
	return names, nil
}

// QueuePause stops JobFetch from leasing the queue's jobs. Idempotent.
func (b *Broker) QueuePause(ctx context.Context, queue string) error {
	if err := b.open("pause queue"); err != nil {
		return err
	}
	if err := broker.ValidateQueueName(queue); err != nil {
		return fmt.Errorf("redisbroker: pause queue: %w: %v", broker.ErrInvalidJob, err)
	}
	if err := b.registerQueue(ctx, queue); err != nil {
		return fmt.Errorf("redisbroker: pause queue %q: %w", queue, err)
	}
	if err := b.client.Set(ctx, b.keys(queue).paused, "1", 0).Err(); err != nil {
		return fmt.Errorf("redisbroker: pause queue %q: %w", queue, err)
	}
	return nil
}

// QueueResume lets JobFetch lease the queue's jobs again. Idempotent.
func (b *Broker) QueueResume(ctx context.Context, queue string) error {
	if err := b.open("resume queue"); err != nil {
		return err
	}
	if err := broker.ValidateQueueName(queue); err != nil {
		return fmt.Errorf("redisbroker: resume queue: %w: %v", broker.ErrInvalidJob, err)
	}
	if err := b.client.Del(ctx, b.keys(queue).paused).Err(); err != nil {
		return fmt.Errorf("redisbroker: resume queue %q: %w", queue, err)
	}
	if err := b.wakeIdle(ctx, queue); err != nil {
		return fmt.Errorf("redisbroker: resume queue %q: wake workers: %w", queue, err)
	}
	return nil
}

// QueueMaintain does a queue's housekeeping in one script call, each step
// bounded by p.Limit.
func (b *Broker) QueueMaintain(ctx context.Context, p *broker.QueueMaintainParams) (*broker.QueueMaintainResult, error) {
	if err := b.open("maintain queue"); err != nil {
		return nil, err
	}
	if err := b.formatReady(ctx, "maintain queue"); err != nil {
		return nil, err
	}
	if p == nil {
		return nil, fmt.Errorf("redisbroker: maintain queue: %w: params are nil", broker.ErrInvalidJob)
	}
	if err := broker.ValidateQueueName(p.Queue); err != nil {
		return nil, fmt.Errorf("redisbroker: maintain queue: %w: %v", broker.ErrInvalidJob, err)
	}
	if err := broker.ValidateMaintain(p); err != nil {
		return nil, fmt.Errorf("redisbroker: maintain queue %q: %w", p.Queue, err)
	}
	limit := p.Limit
	if limit == 0 {
		limit = 1000
	}
	k := b.keys(p.Queue)
	keys := []string{k.scheduled, k.pending, k.active, k.completed, k.dead, k.expired, k.seq, k.ttl, k.job, k.unique, wakeChannel(b.prefix, p.Queue)}
	res, err := b.run(ctx, b.client, scriptMaintain, keys, limit, millis(p.CompletedMaxAge), p.CompletedMaxCount, millis(p.DeadMaxAge),
		p.MaxCrashes, broker.QuarantineReason(p.MaxCrashes), millis(p.CrashSpread), 1+mrand.Int64N(2147483646)).Int64Slice()
	if err != nil {
		return nil, fmt.Errorf("redisbroker: maintain queue %q: %w", p.Queue, err)
	}
	if len(res) != 8 {
		return nil, fmt.Errorf("redisbroker: maintain queue %q: unexpected reply of %d values", p.Queue, len(res))
	}
	return &broker.QueueMaintainResult{
		Recovered: int(res[0]), Dead: int(res[1]), Promoted: int(res[2]), Expired: int(res[3]), Removed: int(res[4]),
		More: res[5] == 1, Quarantined: int(res[6]), Idle: res[7] == 1,
	}, nil
}

// millis converts a duration to whole milliseconds, rounding a positive
// remainder up so that a tiny positive duration is never zero.
func millis(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Millisecond - 1) / time.Millisecond)
}

func init() {
	for _, scheme := range []string{"redis", "rediss", "redis+sentinel", "rediss+sentinel", "redis+cluster", "rediss+cluster"} {
		broker.Register(scheme, openURL)
	}
}

// openURL opens a broker for broker.Open. The query parameter prefix sets
// Config.Prefix; the others are go-redis's (see ParseURL), which rejects
// unknown ones. The broker pings Redis before it is returned, so a wrong
// address or password fails at open.
func openURL(ctx context.Context, u *url.URL) (broker.Broker, error) {
	q := u.Query()
	opts := Config{Prefix: q.Get("prefix")}
	q.Del("prefix")
	c := *u
	c.RawQuery = q.Encode()
	b, err := Open(c.String(), opts)
	if err != nil {
		return nil, err
	}
	if err := b.Ping(ctx); err != nil {
		_ = b.Close()
		return nil, err
	}
	return b, nil
}
