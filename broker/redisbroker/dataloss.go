package redisbroker

import (
	"context"
	"crypto/rand"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/aibos/worker/broker"
)

var _ broker.DataLossReporter = (*Broker)(nil)

// queueMark is what a broker last saw of a queue's data (lua/mark.lua): its
// epoch and its counters. While Redis keeps its data the epoch stays and
// the counters only grow; an epoch gone or replaced means the queue was
// emptied (or another broker detected a loss), counters below what was
// seen mean a rollback that brought an old epoch back.
type queueMark struct {
	epoch  string
	prev   string // the epoch this broker replaced: replies still naming it are stale
	seq    int64
	leases int64
}

// marks holds a broker's queueMarks and what it detected.
type marks struct {
	mu     sync.Mutex
	queues map[string]*queueMark
	loss   broker.DataLoss
}

// before returns the queue's mark as it is when a call is sent: the reply's
// counters must not be below it (a later call's counters may be read first).
func (m *marks) before(queue string) queueMark {
	m.mu.Lock()
	defer m.mu.Unlock()
	if q := m.queues[queue]; q != nil {
		return *q
	}
	return queueMark{}
}

// markCall is the lua/mark.lua call pipelined before an insert or a fetch
// of queue, and the queue's mark as it was before the call.
func (b *Broker) markCall(queue string) (scriptCall, queueMark) {
	k := b.keys(queue)
	return scriptCall{script: scriptMark, keys: []string{k.epoch, k.seq, k.token}, args: []any{rand.Text()}},
		b.marks.before(queue)
}

// runMarked runs script with keys and args right after lua/mark.lua, in one
// round trip, and checks the mark for data loss. The mark's own failure
// does not fail the call: the script ran (or not) on its own.
func (b *Broker) runMarked(ctx context.Context, queue string, script *redis.Script, keys []string, args []any) *redis.Cmd {
	mark, seen := b.markCall(queue)
	cmds, err := b.runPipelined(ctx, script, []scriptCall{mark, {keys: keys, args: args}})
	if err != nil {
		cmd := redis.NewCmd(ctx)
		cmd.SetErr(err)
		return cmd
	}
	if reply, err := cmds[0].Slice(); err == nil {
		b.observeMark(ctx, queue, seen, reply)
	}
	return cmds[1]
}

// observeMark compares a lua/mark.lua reply with the queue's mark as it was
// before the call (seen), and reports data loss.
func (b *Broker) observeMark(ctx context.Context, queue string, seen queueMark, reply []any) {
	if len(reply) != 4 {
		return
	}
	epoch, _ := reply[0].(string)
	created, _ := reply[1].(int64)
	seq, _ := reply[2].(int64)
	leases, _ := reply[3].(int64)
	m := &b.marks
	m.mu.Lock()
	cur := m.queues[queue]
	var reason string
	rollback := false
	switch {
	case cur == nil:
		m.queues[queue] = &queueMark{epoch: epoch, seq: seq, leases: leases}
	case epoch == cur.epoch:
		if seen.epoch == epoch && (seq < seen.seq || leases < seen.leases) {
			rollback = true
			reason = fmt.Sprintf("rolled back: its counters went back from seq %d, leases %d to seq %d, leases %d"+
				" (restored from an older snapshot, or failed over to a replica that had not received the last writes)",
				seen.seq, seen.leases, seq, leases)
		}
		cur.seq, cur.leases = max(cur.seq, seq), max(cur.leases, leases)
	case epoch == cur.prev:
		// Read before this broker replaced the epoch: already reported.
	default:
		reason = "emptied: its data is gone (Redis restarted without its data, or was flushed)"
		if created == 0 {
			reason = "replaced: its epoch changed (another worker detected lost or rolled-back data)"
		}
		*cur = queueMark{epoch: epoch, prev: cur.epoch, seq: seq, leases: leases}
	}
	m.mu.Unlock()
	if reason == "" {
		return
	}
	if rollback {
		b.renewEpoch(ctx, queue, epoch)
	}
	b.reportLoss(queue, reason)
}

// renewEpoch replaces the epoch of a rolled-back queue, so that every other
// broker that saw the queue notices the loss too, even one whose counters
// the rollback did not take below what it saw.
func (b *Broker) renewEpoch(ctx context.Context, queue, old string) {
	k := b.keys(queue)
	reply, err := scriptMark.Run(ctx, b.client, []string{k.epoch, k.seq, k.token}, rand.Text(), old).Slice()
	if err != nil || len(reply) != 4 {
		b.log.Error("redisbroker: renew the epoch of a rolled-back queue; other workers may not notice the loss",
			"queue", queue, "err", err)
		return
	}
	epoch, _ := reply[0].(string)
	b.marks.mu.Lock()
	if cur := b.marks.queues[queue]; cur != nil && cur.epoch == old {
		cur.epoch, cur.prev = epoch, old
	}
	b.marks.mu.Unlock()
}

// reportLoss records a detection, logs it loudly and forgets which queues
// this broker registered, so that the next insert registers them again.
func (b *Broker) reportLoss(queue, reason string) {
	m := &b.marks
	m.mu.Lock()
	m.loss.Count++
	m.loss.At, m.loss.Queue, m.loss.Reason = time.Now(), queue, reason
	m.mu.Unlock()
	b.known.Clear()
	b.log.Error("redisbroker: DATA LOSS DETECTED: jobs acknowledged earlier may be gone or may run again; "+
		"see the redisbroker package documentation for what to do", "queue", queue, "reason", reason)
}

// DataLoss returns the data loss this broker detected: queues emptied or
// rolled back under it. See broker.DataLossReporter.
func (b *Broker) DataLoss() broker.DataLoss {
	b.marks.mu.Lock()
	defer b.marks.mu.Unlock()
	return b.marks.loss
}
