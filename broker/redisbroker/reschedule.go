package redisbroker

import (
	"context"
	"fmt"
	"time"

	"github.com/aibos/worker/broker"
)

var _ broker.JobRescheduler = (*Broker)(nil)

var scriptReschedule = loadScript("reschedule.lua")

// JobReschedule moves a scheduled or pending job to run at runAt, in one
// call of lua/reschedule.lua; see broker.JobRescheduler.
func (b *Broker) JobReschedule(ctx context.Context, queue, id string, runAt time.Time) (*broker.Job, error) {
	if err := b.open("reschedule job"); err != nil {
		return nil, err
	}
	if err := broker.ValidateQueueName(queue); err != nil {
		return nil, fmt.Errorf("redisbroker: reschedule job: %w: %v", broker.ErrInvalidJob, err)
	}
	k := b.keys(queue)
	reply, err := scriptReschedule.Run(ctx, b.client, []string{k.scheduled, k.pending, k.seq, k.ttl, k.job},
		id, runAt.UnixMilli()).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("redisbroker: reschedule job %s in %q: %w", id, queue, err)
	}
	switch reply[0] {
	case "missing":
		return nil, fmt.Errorf("redisbroker: reschedule job %s in %q: %w", id, queue, broker.ErrNotFound)
	case "state":
		return nil, fmt.Errorf("redisbroker: reschedule job %s in %q: it is %s: %w", id, queue, reply[1], broker.ErrWrongState)
	}
	return b.JobGet(ctx, queue, id)
}
