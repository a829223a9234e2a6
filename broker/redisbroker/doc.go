// Package redisbroker is the Redis implementation of broker.Broker, the
// distributed engine of aibos-worker: any number of worker processes on any
// number of machines share one Redis (standalone, Sentinel or Cluster).
//
// Use New with a go-redis client you own, or Open with a redis:// URL.
//
// # Layout
//
// Every key starts with Options.Prefix and carries the queue as a hash tag,
// so all keys of a queue live in one Cluster slot (keys.go names them all):
//
//	<prefix>:{q}:j:<id>    hash: one job (compact field names, times in unix ms)
//	<prefix>:{q}:scheduled zset: due time
//	<prefix>:{q}:pending   zset: (MaxPriority-priority)*2^40 + seq
//	<prefix>:{q}:active    zset: lease deadline
//	<prefix>:{q}:completed, :dead, :cancelled, :expired
//	                       zsets: finish time (µs), newest last
//	<prefix>:{q}:ttl       zset: ExpiresAt of jobs inserted with a TTL
//	<prefix>:{q}:u:<key>   string: the job holding a unique key
//	<prefix>:{q}:seq, :token, :paused
//	<prefix>:queues        set: every queue name (no hash tag, written apart)
//
// # Scripts
//
// Each state change is one Lua script under lua/, headed by its KEYS, ARGV
// and return value. Scripts take the time from Redis TIME, never from the
// caller, so clock skew between workers cannot fire a job early or steal a
// live lease. Each fetch gives a job a fencing token from the queue's token
// counter; complete, fail, release, extend and progress change nothing
// unless the job is active under that token. JobFetch leases a whole batch
// in one call; JobComplete and JobLeaseExtend send one call per queue, all in
// one pipeline. Per-job work is O(log n).
package redisbroker
