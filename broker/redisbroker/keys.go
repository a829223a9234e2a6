package redisbroker

import "github.com/aibos/worker/broker"

// DefaultPrefix is the key prefix used when Config.Prefix is empty.
const DefaultPrefix = "aibos:worker"

// queueKeys names every key of one queue. All of them carry the hash tag
// {queue}, so a script that touches them stays in one Cluster slot. Per-job
// keys are built inside the scripts by appending the id to job or unique.
type queueKeys struct {
	scheduled string // zset: id → due time (unix ms)
	pending   string // zset: id → priority*2^40 + seq (1 first)
	active    string // zset: id → lease deadline (unix ms)
	completed string // zset: id → finished time (unix ms)
	dead      string // zset: id → finished time (unix ms)
	cancelled string // zset: id → finished time (unix ms)
	expired   string // zset: id → finished time (unix ms)
	ttl       string // zset: id → ExpiresAt (unix ms), jobs inserted with a TTL
	seq       string // counter: FIFO order among equal priorities
	token     string // the last lease token issued (lua/fetch.lua)
	epoch     string // random id of the queue's data (lua/mark.lua)
	marker    string // prefix of a broker's write marker: marker + broker id (lua/mark.lua)
	paused    string // flag: present while the queue is paused
	body      string // hash: job id → body; scripts derive it from job (lib.lua body_key)
	lease     string // hash: job id → lease entry of a job with no state hash (lib.lua lease_key)
	done      string // hash: job id → outcome of such a job once completed (lib.lua done_key)
	job       string // prefix of a job hash: job + id
	unique    string // prefix of a unique-key string: unique + key → job id
	tenantIdx string // prefix of a tenant index zset: see tenantIndex
	fair      string // hash: the queue's fair policy (lib.lua); scripts derive it from seq
	fairTags  string // hash: the fair tags handed out (lib.lua); scripts derive it from seq
	rates     string // hash: the rate limits' GCRA state (lib.lua); scripts derive it from seq
	tpaused   string // hash: the paused tenants (lib.lua); scripts derive it from seq
}

// tenantIndex names the zset of a tenant's jobs in one state, scored as the
// state's own zset. Scripts derive the same name from the job hash prefix
// (lib.lua tindex_move): the state comes first, so a tenant id holding ':'
// cannot make two names collide.
func (k queueKeys) tenantIndex(s broker.State, tenant string) string {
	return k.tenantIdx + string(s) + ":" + tenant
}

// stateZset names the zset of the queue's jobs in state s.
func (k queueKeys) stateZset(s broker.State) string {
	switch s {
	case broker.StateScheduled:
		return k.scheduled
	case broker.StatePending:
		return k.pending
	case broker.StateActive:
		return k.active
	case broker.StateCompleted:
		return k.completed
	case broker.StateDead:
		return k.dead
	case broker.StateCancelled:
		return k.cancelled
	}
	return k.expired
}

func newQueueKeys(prefix, queue string) queueKeys {
	base := prefix + ":{" + queue + "}:"
	return queueKeys{
		scheduled: base + "scheduled",
		pending:   base + "pending",
		active:    base + "active",
		completed: base + "completed",
		dead:      base + "dead",
		cancelled: base + "cancelled",
		expired:   base + "expired",
		ttl:       base + "ttl",
		seq:       base + "seq",
		token:     base + "token",
		epoch:     base + "epoch",
		marker:    base + "m:",
		paused:    base + "paused",
		body:      base + "b",
		lease:     base + "lease",
		done:      base + "done",
		job:       base + "j:",
		unique:    base + "u:",
		tenantIdx: base + "t:",
		fair:      base + "fair",
		fairTags:  base + "ft",
		rates:     base + "rl",
		tpaused:   base + "tp",
	}
}

// all returns every key of the queue, for tests and tooling.
func (k queueKeys) all() []string {
	return []string{k.scheduled, k.pending, k.active, k.completed, k.dead, k.cancelled,
		k.expired, k.ttl, k.seq, k.token, k.epoch, k.paused, k.body, k.lease, k.done, k.job, k.unique, k.marker, k.fair, k.fairTags, k.rates, k.tpaused}
}

// queuesKey names the global set of queue names. It has no hash tag: it is
// written outside the scripts, with idempotent SADDs.
func queuesKey(prefix string) string { return prefix + ":queues" }

// leaderKey names the string holding the holder of the lease name
// (broker.LeaderStore). The name is its own hash tag: each leader script
// touches this one key.
func leaderKey(prefix, name string) string { return prefix + ":leader:{" + name + "}" }
