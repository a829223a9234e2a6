// Package redisbroker is the Redis implementation of broker.Broker, the
// distributed engine of aibos-worker: any number of worker processes on any
// number of machines share one Redis (standalone, Sentinel or Cluster).
//
// Use New with a go-redis client you own, or Open with a URL.
//
// # Topologies
//
// One server (redis://), a master found through Sentinel
// (redis+sentinel://s1:26379,s2:26379/mymaster) and a Redis Cluster
// (redis+cluster://h1:6379,h2:6379) all work; ParseURL reads the URLs and
// New takes any of go-redis's clients for them. On a Cluster every script
// and transaction touches one queue's keys, all in its slot (see Layout);
// calls that span queues (JobComplete, JobLeaseExtend, JobWait's due
// times) send one call per queue in a pipeline that go-redis splits by
// node; the few keys outside a queue (the queue list, the stored format,
// a leader lease) are each read and written on their own. A Cluster has
// only database 0. go-redis reloads a Cluster's slot map on a MOVED reply
// but not when a master stops answering, so a client ParseURL configures
// reloads it every second (ClusterStateReload) and leaves a killed master
// within about a second of its replica taking over. The tests run the
// conformance suite on a 3-master Cluster and fail a Sentinel master over
// (internal/redistest starts both).
//
// Redis replicates asynchronously: a write the master acknowledged can be
// lost when the master dies before its replica received it (then the
// broker reports the rollback, see Data loss). Config.DurableReplicas makes
// inserts and commits wait until that many replicas confirmed them (WAIT),
// and fail with ErrNotReplicated when fewer do in time, as while no replica
// is attached after a failover.
//
// # Layout
//
// Every key starts with Config.Prefix and carries the queue as a hash tag,
// so all keys of a queue live in one Cluster slot (keys.go names them all):
//
//	<prefix>:{q}:b         hash: job id → body (the job's immutable fields)
//	<prefix>:{q}:j:<id>    hash: one job's state (compact field names, times
//	                       in unix ms); created lazily, see below
//	<prefix>:{q}:lease     hash: job id → lease entry of an active job with
//	                       no state hash (token, place, start, worker, tenant)
//	<prefix>:{q}:done      hash: job id → the same, with its finish, once such
//	                       a job completed with no result
//	<prefix>:{q}:scheduled zset: due time
//	<prefix>:{q}:pending   zset: priority*2^40 + seq (1 first)
//	<prefix>:{q}:active    zset: lease deadline
//	<prefix>:{q}:completed, :dead, :cancelled, :expired
//	                       zsets: finish time (µs), newest last
//	<prefix>:{q}:ttl       zset: ExpiresAt of jobs inserted with a TTL
//	<prefix>:{q}:u:<slot>  string: the job holding a unique key; the slot
//	                       is broker.UniqueSlot (the key itself for a job
//	                       with no tenant, else the key in its tenant's
//	                       namespace, so tenants never contend for a key)
//	<prefix>:{q}:h:<id>    list: one job's last 20 finished attempts, oldest
//	                       first, but for a completion, which the job's hash
//	                       keeps (broker.Job.Attempts; read by JobGet only,
//	                       deleted with the job; lua/lib.lua)
//	<prefix>:{q}:t:<state>:<tenant>
//	                       zset: a tenant's jobs in one state, scored as the
//	                       state's zset (the tenant index)
//	<prefix>:{q}:seq, :paused
//	<prefix>:{q}:token     string: the last lease token issued (see Fencing)
//	<prefix>:{q}:epoch     string: random id of the queue's data (see Data loss)
//	<prefix>:{q}:m:<id>    string: broker <id>'s write marker, expiring
//	<prefix>:{q}:d:<kind>:<key>  hash: a document (broker.Committer): v
//	                       version, b body, x its index names
//	<prefix>:{q}:x:<kind>:<name> zset: a document index, key → score
//	<prefix>:queues        set: every queue name (no hash tag, written apart)
//	<prefix>:leader:{<n>}  string: the holder of lease n (broker.LeaderStore;
//	                       the name is its own hash tag), expiring by PX
//
// A job is its body, one field of the queue's body hash, plus its state
// hash. A job added due now with no unique key and no TTL has no state hash
// until a script first changes it (fetch, cancel): it is pending, attempt 0.
// So adding such a job costs one HMGET entry (the duplicate-id check), one
// HSET entry and one ZADD entry, with no per-job command, and a batch of
// 1,000 is three commands. Fetching and completing such a job keeps it
// without a state hash: its lease, then its outcome, is an entry of the
// queue's lease, then done, hash, written for the whole batch (format 9);
// any other change to it first turns the entry into its state hash.
// lua/lib.lua documents the body format, the entries and the fields. Scripts derive the body hash's name from the job hash prefix they
// are given in KEYS, as they derive per-job keys: same hash tag, same slot.
//
// # Tenant index
//
// JobList and QueueStats scoped to a tenant read its index zsets: a page is
// one ZRANGE of the tenant's zset of that state, a count one ZCARD, never a
// scan of the queue. Every script that moves or removes a job keeps them
// exact in the same call (lib.lua: finish, make_pending, retry_attempt,
// tindex_move). A job with a tenant always has a state hash or a lease or
// done entry holding it, or only a body, so the scripts learn the tenant
// from a read they do anyway; jobs with no
// tenant cost nothing extra, and a tenant's job costs one ZREM and one ZADD
// (O(log n)) per state change.
//
// This bends the rule that every key a script touches is passed in KEYS:
// which tenant zset a fetch, complete or maintenance step touches is only
// known once the script has read the job. Scripts derive those names from
// the job hash prefix they are given in KEYS, which carries the queue's hash
// tag, so the derived keys live in the same Cluster slot as the rest of the
// queue and the script stays single-slot. Each script header names the KEYS
// entry it derives them from.
//
// The tenant index is stored format 3 (format.go): a broker finding format-2
// data builds the index of every queue's jobs before it works on them.
//
// # Scripts
//
// Each state change is one Lua script under lua/, headed by its KEYS, ARGV
// and return value. On Redis 7.0 and later they are the functions of one
// Redis Functions library (FCALL), loaded by the broker when the server
// lacks it, named after a hash of its code so that two releases coexist
// during a rolling upgrade; elsewhere, or when the ACL denies FCALL or
// FUNCTION LOAD, the same scripts run with EVALSHA (functions.go). Scripts
// take the time from Redis TIME, never from the
// caller, so clock skew between workers cannot fire a job early or steal a
// live lease. Concurrent JobInsert calls on a queue are combined into one
// script call while one is in flight, each job keeping its own outcome
// (combine.go). JobFetch leases a whole batch in one call; JobComplete and
// JobLeaseExtend send one call per queue, all in one pipeline. Per-job work
// is O(log n).
//
// # Fencing
//
// Each fetch gives a job a fencing token; complete, fail, release, extend
// and progress change nothing unless the job is active under that token. A
// token is never below the Redis clock in microseconds (lua/fetch.lua), so
// it never repeats even when Redis loses data: restored from an older
// snapshot, restarted from an AOF that missed its last second, or failed
// over to a replica that had not received the last writes, Redis hands the
// same job out again under a token above every token issued before the
// loss, and the worker still holding the old lease is rejected
// (ErrLeaseLost) instead of the new holder. This holds while the Redis
// clock does not go back (a failover to a machine whose clock is behind by
// more than the failover takes would weaken it).
//
// A fetched job records its place in the pending order ('q', its seq); a
// job recovered from an expired lease or handed back goes back to that
// place, so a crashed worker's jobs run before the jobs enqueued after
// them, not behind the whole backlog.
//
// # Data loss
//
// Redis acknowledges writes before they are durable (and not at all
// without persistence), so a Redis restart can lose jobs the broker
// reported stored. The broker notices it per queue, in the same round trip
// as its inserts and fetches (lua/mark.lua): each queue has an epoch, a
// random id written when the queue is first used, and each broker keeps a
// write marker holding the number of its latest call. An epoch gone means
// the queue was emptied; a marker below a call Redis had confirmed means
// Redis went back in time, even though the snapshot it came back from holds
// the old epoch. A broker that detects a rollback replaces the epoch, so
// every other broker using the queue notices too (reported as "replaced").
//
// On detection the broker logs one ERROR line ("DATA LOSS DETECTED", with
// the queue and the reason), counts it (DataLoss, exported by package
// metrics as broker_data_loss_total), forgets which queues it registered
// (the next insert lists the queue again in QueueList), and carries on with
// the jobs Redis still has; health.Ping reports the broker unready with the
// reason for health.DataLossUnready. Jobs leased before a rollback cannot
// complete (see Fencing); they run again.
//
// What an operator should do: find out why Redis lost data (a restart
// without persistence, appendfsync everysec losing its last second, a
// failover to a lagging replica, a restore); re-enqueue what the
// application knows it added in the window the reason names (jobs added
// then may be gone; jobs completed then may run again, so processors should
// be idempotent); fix the persistence (appendonly yes, appendfsync always
// for no loss; Config.DurableReplicas for failovers). The
// alert to page on is an increase of broker_data_loss_total.
//
// # Documents
//
// Commit (lua/commit.lua) applies a broker.CommitParams in one script call
// in its queue's slot; packages workflow and schedule keep their runs and
// schedules as documents through it, so this package holds no workflow or
// schedule rule.
//
// Upgrade rule (stored format 2, see FormatVersion): releases before the
// generic primitive stored schedules as <prefix>:{q}:cron:<name> hashes
// indexed by <prefix>:schedules, and runs as <prefix>:{q}:wf:<run> hashes
// (with :wfk: and :wfx: keys). The first check of the format converts the
// schedules into documents, claim state included. Runs are not converted:
// let running workflows finish (or cancel them) before upgrading; their old
// keys can then be deleted.
package redisbroker
