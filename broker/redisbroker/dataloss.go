package redisbroker

import (
	"context"
	"crypto/rand"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/aibos/worker/broker"
)

var _ broker.DataLossReporter = (*Broker)(nil)

// markerTTL is how long a broker's write marker outlives its last insert or
// fetch on the queue (lua/mark.lua). A marker found missing after a broker
// was idle for longer than half of it is not taken for a loss.
const markerTTL = 7 * 24 * time.Hour

// queueMark is what a broker knows of a queue's data: its epoch and the
// calls whose marker writes Redis confirmed. While Redis keeps its data the
// epoch stays and the marker holds at least the number of the latest
// confirmed call; an epoch gone or replaced means the queue was emptied (or
// another broker detected a loss), a marker below it means a rollback.
type queueMark struct {
	epoch     string
	prev      string    // the epoch this broker replaced: replies still naming it are stale
	sent      int64     // the number of the latest call sent
	sentAt    time.Time // when it was sent
	confirmed int64     // the highest number of a call whose reply came back
	at        time.Time // when confirmed was
}

// marks holds a broker's queueMarks and what it detected.
type marks struct {
	every  time.Duration // Config.DataLossCheckInterval
	mu     sync.Mutex
	queues map[string]*queueMark
	loss   broker.DataLoss
}

// markCall numbers a call about to be sent on queue and returns the
// lua/mark.lua call to pipeline before it, with the queue's mark as it was;
// ok is false when the queue was checked less than an interval ago.
func (b *Broker) markCall(queue string) (call scriptCall, seen queueMark, n int64, ok bool) {
	now := time.Now()
	b.marks.mu.Lock()
	q := b.marks.queues[queue]
	if q == nil {
		q = &queueMark{}
		b.marks.queues[queue] = q
	}
	if q.sent > 0 && now.Sub(q.sentAt) < b.marks.every {
		b.marks.mu.Unlock()
		return scriptCall{}, queueMark{}, 0, false
	}
	q.sent++
	q.sentAt = now
	n, seen = q.sent, *q
	b.marks.mu.Unlock()
	k := b.keys(queue)
	return scriptCall{script: scriptMark, keys: []string{k.epoch, k.marker + b.id},
		args: []any{rand.Text(), n, int64(markerTTL / time.Second)}}, seen, n, true
}

// runMarked runs script with keys and args, at most once per check
// interval right after lua/mark.lua in the same round trip, and then
// checks the mark for data loss. The mark's own failure does not fail the
// call: the script ran (or not) on its own.
func (b *Broker) runMarked(ctx context.Context, queue string, script *luaScript, keys []string, args []any) *redis.Cmd {
	return b.runMarkedVia(ctx, b.client, queue, script, keys, args)
}

// runMarkedVia is runMarked through via (see durably).
func (b *Broker) runMarkedVia(ctx context.Context, via scriptRunner, queue string, script *luaScript, keys []string, args []any) *redis.Cmd {
	mark, seen, n, ok := b.markCall(queue)
	if !ok {
		return b.run(ctx, via, script, keys, args...)
	}
	cmds, err := b.runPipelinedVia(ctx, via, script, []scriptCall{mark, {keys: keys, args: args}})
	if err != nil {
		cmd := redis.NewCmd(ctx)
		cmd.SetErr(err)
		return cmd
	}
	if reply, err := cmds[0].Slice(); err == nil && len(reply) == 3 {
		epoch, _ := reply[0].(string)
		created, _ := reply[1].(int64)
		before, _ := reply[2].(int64)
		b.observeMark(ctx, queue, seen, n, epoch, created == 1, before)
	}
	return cmds[1]
}

// observeMark checks the reply of call n's lua/mark.lua (the epoch, whether
// the call created it, the marker before the call) against the queue's
// mark as it was when the call was sent (seen), and reports data loss.
func (b *Broker) observeMark(ctx context.Context, queue string, seen queueMark, n int64, epoch string, created bool, before int64) {
	// A marker below a confirmed call is a lost write, unless it simply
	// expired while this broker was idle.
	idle := before == 0 && time.Since(seen.at) > markerTTL/2
	lost := before < seen.confirmed && !idle
	m := &b.marks
	m.mu.Lock()
	cur := m.queues[queue]
	var reason string
	rollback := false
	switch {
	case cur.epoch == "":
		cur.epoch = epoch
	case epoch == cur.epoch:
		if seen.epoch == epoch && lost {
			rollback = true
			reason = "rolled back: writes Redis had confirmed are gone (restored from an older snapshot, " +
				"restarted from an AOF that missed the last writes, or failed over to a replica that had not received them); " +
				"the queue's marker for this worker went back from " + strconv.FormatInt(seen.confirmed, 10) + " to " + strconv.FormatInt(before, 10)
		}
	case epoch == cur.prev:
		// Read before this broker replaced the epoch: already reported.
		m.mu.Unlock()
		return
	default:
		reason = "emptied: its data is gone (Redis restarted without its data, or was flushed)"
		if !created && !(lost && before == 0) {
			reason = "replaced: its epoch changed (another worker detected lost or rolled-back data)"
		}
		cur.prev, cur.epoch = cur.epoch, epoch
	}
	if n > cur.confirmed {
		cur.confirmed, cur.at = n, time.Now()
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
// broker that used the queue notices the loss too.
func (b *Broker) renewEpoch(ctx context.Context, queue, old string) {
	k := b.keys(queue)
	reply, err := b.run(ctx, b.client, scriptMark, []string{k.epoch, k.marker + b.id},
		rand.Text(), 0, int64(markerTTL/time.Second), old).Slice()
	if err != nil || len(reply) != 3 {
		b.log.Error("redisbroker: renew the epoch of a rolled-back queue; other workers may not notice the loss",
			"queue", queue, "err", err)
		return
	}
	epoch, _ := reply[0].(string)
	b.marks.mu.Lock()
	if cur := b.marks.queues[queue]; cur.epoch == old {
		cur.prev, cur.epoch = old, epoch
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
