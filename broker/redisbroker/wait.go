package redisbroker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/broker/internal/wake"
)

var (
	_ broker.ReadyWaiter   = (*Broker)(nil)
	_ broker.PendingLister = (*Broker)(nil)
	_ broker.WakeMuter     = (*Broker)(nil)
)

var scriptNextDue = loadScript("nextdue.lua")

// waker implements JobWait for a Broker. lua/insert.lua publishes on the
// queue's wake channel (<prefix>:{queue}:wake) the delay until the batch's
// earliest job is due, 0 for a pending one; one pub/sub connection, opened
// on the first JobWait, receives them for every queue waited on.
type waker struct {
	once sync.Once
	hub  *wake.Hub

	mu     sync.Mutex
	ps     *redis.PubSub
	subbed map[string]bool // queues whose channels were asked for
	muted  map[string]int  // queues whose channels JobWaitMute muted, and how many times
	// subbedAll is the last list of queues found all in subbed: a
	// Manager waits on the same thousand queues at every wait and
	// collect, and comparing the list with it (the same strings: their
	// pointers match) costs a few µs where a map lookup per queue cost
	// about 25.
	subbedAll []string
	closed    bool
	done      sync.WaitGroup

	// awaited holds, per queue, the subscribe call waiting for its
	// channel's confirmation (see subscribe); under awaitMu, which listen
	// takes without mu.
	awaitMu sync.Mutex
	awaited map[string]*confirmWait
}

// confirmWait is one subscribe call waiting for left confirmations.
type confirmWait struct {
	left int
	done chan struct{}
}

// confirmWaitMax bounds how long a subscribe waits for its confirmations:
// a wake is not lost without them (listen notifies when they come), only
// reported in a later call.
const confirmWaitMax = time.Second

func wakeChannel(prefix, queue string) string { return prefix + ":{" + queue + "}:wake" }

func (b *Broker) waker() *waker {
	b.wake.once.Do(func() {
		b.wake.hub = wake.New(b.nextDue)
		b.wake.subbed = map[string]bool{}
		b.wake.muted = map[string]int{}
		b.wake.awaited = map[string]*confirmWait{}
	})
	return &b.wake
}

// JobWait blocks until one of queues may have a fetchable job, timeout
// passes or ctx ends; see broker.Waiter. Wakes come from Redis pub/sub, so
// every idle worker on a queue wakes for an insert and all but one find it
// taken; an insert behind jobs still pending publishes none (lua/lib.lua
// wake_worth).
func (b *Broker) JobWait(ctx context.Context, queues []string, timeout time.Duration) error {
	_, err := b.JobWaitReady(ctx, queues, timeout)
	return err
}

// JobWaitReady is JobWait that names the queues woken; see
// broker.ReadyWaiter.
func (b *Broker) JobWaitReady(ctx context.Context, queues []string, timeout time.Duration) ([]string, error) {
	if err := b.open("wait for jobs"); err != nil {
		return nil, err
	}
	w := b.waker()
	if err := w.subscribe(ctx, b, queues); errors.Is(err, broker.ErrClosed) || errors.Is(err, broker.ErrInvalidJob) {
		return nil, fmt.Errorf("redisbroker: wait for jobs: %w", err)
	} else if err != nil {
		return nil, fmt.Errorf("redisbroker: wait for jobs in %d queues: %w", len(queues), err)
	}
	ready, err := w.hub.WaitReady(ctx, queues, timeout)
	switch {
	case errors.Is(err, wake.ErrClosed):
		return nil, fmt.Errorf("redisbroker: wait for jobs: %w", broker.ErrClosed)
	case err != nil && ctx.Err() != nil:
		return nil, ctx.Err()
	case err != nil:
		return nil, fmt.Errorf("redisbroker: wait for jobs in %d queues: %w", len(queues), err)
	}
	return ready, nil
}

// QueuesPending returns the queues, among queues, that hold a pending job;
// see broker.PendingLister. One pipeline of EXISTS, one per queue (a
// queue's pending zset is removed with its last job), read-only.
func (b *Broker) QueuesPending(ctx context.Context, queues []string) ([]string, error) {
	const op = "list queues with pending jobs"
	if err := b.open(op); err != nil {
		return nil, err
	}
	for _, q := range queues {
		if err := broker.ValidateQueueName(q); err != nil {
			return nil, fmt.Errorf("redisbroker: %s: %w: %v", op, broker.ErrInvalidJob, err)
		}
	}
	cmds := make([]*redis.IntCmd, len(queues))
	_, err := b.client.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		for i, q := range queues {
			cmds[i] = pipe.Exists(ctx, b.keys(q).pending)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("redisbroker: %s among %d: %w", op, len(queues), err)
	}
	var out []string
	for i, q := range queues {
		if cmds[i].Val() > 0 {
			out = append(out, q)
		}
	}
	return out, nil
}

// subscribe makes sure the wake channels of queues are subscribed,
// checking the names of queues it has not subscribed yet (a Manager calls
// it with the same thousand queues at every wait). The confirmation of a
// new subscription wakes its queue (see listen), so a job inserted before
// it took effect is fetched then; subscribe waits for those confirmations
// (up to confirmWaitMax), so that the call subscribing reports the queues
// at once, all together, rather than as wakes trickling in afterwards,
// which a caller serving a thousand queues would take for new jobs.
func (w *waker) subscribe(ctx context.Context, b *Broker, queues []string) error {
	cw, err := w.subscribeNew(ctx, b, queues)
	if cw == nil || err != nil {
		return err
	}
	t := time.NewTimer(confirmWaitMax)
	defer t.Stop()
	select {
	case <-cw.done:
	case <-t.C:
	case <-ctx.Done():
	}
	return nil
}

// subscribeNew subscribes the channels of queues not subscribed yet and
// returns what waits for their confirmations, nil if there were none.
func (w *waker) subscribeNew(ctx context.Context, b *Broker, queues []string) (*confirmWait, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil, broker.ErrClosed
	}
	if slices.Equal(queues, w.subbedAll) {
		return nil, nil
	}
	var chans, names []string
	for _, q := range queues {
		if w.subbed[q] || w.muted[q] > 0 {
			continue
		}
		if err := broker.ValidateQueueName(q); err != nil {
			return nil, fmt.Errorf("%w: %v", broker.ErrInvalidJob, err)
		}
		chans, names = append(chans, wakeChannel(b.prefix, q)), append(names, q)
	}
	if len(chans) == 0 {
		w.subbedAll = slices.Clone(queues)
		return nil, nil
	}
	if w.ps == nil {
		w.ps = b.client.Subscribe(ctx)
		msgs := w.ps.ChannelWithSubscriptions(redis.WithChannelSize(1024))
		w.done.Add(1)
		go w.listen(b.prefix, msgs)
	}
	cw := &confirmWait{left: len(names), done: make(chan struct{})}
	w.awaitMu.Lock()
	for _, q := range names {
		w.awaited[q] = cw
	}
	w.awaitMu.Unlock()
	if err := w.ps.Subscribe(ctx, chans...); err != nil {
		w.awaitMu.Lock()
		for _, q := range names {
			delete(w.awaited, q)
		}
		w.awaitMu.Unlock()
		return nil, err
	}
	for _, q := range names {
		w.subbed[q] = true
	}
	return cw, nil
}

// JobWaitMute mutes or unmutes queue's wake channel; see
// broker.WakeMuter. Muted, the channel is unsubscribed, so Redis sends
// this process none of the queue's wakes (each PUBLISH reaches every
// subscriber: fifty Managers of a queue, fifty messages per urgent
// insert). Unmuted, it is subscribed again; the confirmation wakes the
// queue's waiters (see listen), and the due times are read again, so
// nothing published in between is missed.
func (b *Broker) JobWaitMute(ctx context.Context, queue string, mute bool) error {
	if err := b.open("mute wakes"); err != nil {
		return err
	}
	if err := broker.ValidateQueueName(queue); err != nil {
		return fmt.Errorf("redisbroker: mute wakes of %q: %w: %v", queue, broker.ErrInvalidJob, err)
	}
	w := b.waker()
	if err := w.mute(ctx, b.prefix, queue, mute); err != nil {
		verb := "mute"
		if !mute {
			verb = "unmute"
		}
		return fmt.Errorf("redisbroker: %s wakes of %q: %w", verb, queue, err)
	}
	return nil
}

// mute does JobWaitMute's work under w.mu.
func (w *waker) mute(ctx context.Context, prefix, queue string, mute bool) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return broker.ErrClosed
	}
	n := w.muted[queue]
	switch {
	case mute:
		w.muted[queue] = n + 1
		if n > 0 || !w.subbed[queue] {
			return nil
		}
		// A later JobWaitReady must not subscribe it again: subbedAll
		// may still list it, and subscribeNew skips muted queues.
		w.subbed[queue] = false
		return w.ps.Unsubscribe(ctx, wakeChannel(prefix, queue))
	case n == 0:
		return nil
	case n > 1:
		w.muted[queue] = n - 1
		return nil
	}
	delete(w.muted, queue)
	w.hub.Stale(queue)
	w.subbedAll = nil // it may list queue, which subscribeNew skipped while muted
	if w.ps == nil {
		// Never subscribed: the next wait subscribes it, and its
		// confirmation wakes the queue.
		return nil
	}
	if err := w.ps.Subscribe(ctx, wakeChannel(prefix, queue)); err != nil {
		// The next wait tries again; meanwhile the waiters fetch, as a
		// wake may have been missed.
		w.hub.Notify(queue, 0)
		return err
	}
	w.subbed[queue] = true
	return nil
}

// confirmed records that queue's channel is subscribed; listen calls it
// after waking the queue.
func (w *waker) confirmed(queue string) {
	w.awaitMu.Lock()
	defer w.awaitMu.Unlock()
	cw := w.awaited[queue]
	if cw == nil {
		return
	}
	delete(w.awaited, queue)
	if cw.left--; cw.left == 0 {
		close(cw.done)
	}
}

// listen feeds the hub from pub/sub until the PubSub is closed.
func (w *waker) listen(prefix string, msgs <-chan any) {
	defer w.done.Done()
	queueOf := func(channel string) (string, bool) {
		rest, ok := strings.CutPrefix(channel, prefix+":{")
		if !ok {
			return "", false
		}
		return strings.CutSuffix(rest, "}:wake")
	}
	for m := range msgs {
		switch m := m.(type) {
		case *redis.Subscription:
			// (Re)subscribed: wakes may have been missed meanwhile.
			if q, ok := queueOf(m.Channel); ok && m.Kind == "subscribe" {
				w.hub.Notify(q, 0)
				w.confirmed(q)
			}
		case *redis.Message:
			q, ok := queueOf(m.Channel)
			if !ok {
				continue
			}
			ms, err := strconv.ParseInt(m.Payload, 10, 64)
			if err != nil {
				ms = 0
			}
			w.hub.Notify(q, time.Duration(ms)*time.Millisecond)
		}
	}
}

// wakeIdle wakes the workers waiting on queue after a change that may let
// them lease jobs already pending (a queue or tenant resumed, a new fair
// policy): no insert need come to wake them, as one behind pending jobs
// publishes none (lua/lib.lua wake_worth). A lost wake only delays the
// jobs to a worker's next poll.
func (b *Broker) wakeIdle(ctx context.Context, queue string) error {
	return b.client.Publish(ctx, wakeChannel(b.prefix, queue), "0").Err()
}

// close stops the listener and wakes every waiter with ErrClosed.
func (w *waker) close() {
	w.mu.Lock()
	ps := w.ps
	w.closed = true
	w.mu.Unlock()
	w.hub.Close()
	if ps != nil {
		_ = ps.Close()
		w.done.Wait()
	}
}

// nextDue asks Redis, in one script call per Cluster slot, how long until
// each queue's earliest scheduled job is due.
func (b *Broker) nextDue(ctx context.Context, queues []string) (map[string]time.Duration, error) {
	calls := make([]scriptCall, len(queues))
	for i, q := range queues {
		k := b.keys(q)
		calls[i] = scriptCall{keys: []string{k.scheduled, k.paused}}
	}
	cmds, err := b.runPipelined(ctx, scriptNextDue, calls)
	if err != nil {
		return nil, fmt.Errorf("read next due times: %w", err)
	}
	out := make(map[string]time.Duration, len(queues))
	for i, q := range queues {
		v, err := cmds[i].Int64Slice()
		if err != nil || len(v) != 2 {
			return nil, fmt.Errorf("read next due time of %q: unexpected reply %v", q, cmds[i].Val())
		}
		if v[0] == 1 {
			out[q] = time.Duration(v[1]) * time.Millisecond
		}
	}
	return out, nil
}
