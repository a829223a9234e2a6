package schedule

import (
	"context"
	"time"

	"github.com/aibos/worker/broker"
)

// TickEvent reports one tick a scheduler claimed: its job was enqueued, or
// held back by the job's unique key or a full queue (Status).
type TickEvent struct {
	Schedule string
	Tick     time.Time
	Status   broker.ClaimStatus
	// Late is how long after the tick the claim was made, on the broker's
	// clock.
	Late time.Duration
	// Missed counts the schedule's fire times since its previous claimed
	// tick that got no job of their own (down time, CatchUpSkip, or the
	// ticks a catch-up job stands for), at most maxScan.
	Missed int
}

// TickTracer traces tick claims: package tracing's Tracer implements it.
type TickTracer interface {
	// StartTick starts the span of one tick's claim; end is called with
	// the claim's status ("" on error) and error.
	StartTick(ctx context.Context, schedule string, tick time.Time) (context.Context, func(status string, err error))
	// Inject adds ctx's trace context to a tick job's headers.
	Inject(ctx context.Context, headers map[string]string)
}

// claimed reports whether a claim took the tick.
func claimed(s broker.ClaimStatus) bool {
	return s == broker.ClaimOK || s == broker.ClaimUniqueHeld || s == broker.ClaimQueueFull
}

// reportTick tells OnTick about a tick this scheduler claimed.
func (c *Cron) reportTick(s *broker.Schedule, cl tickClaim, res *broker.ScheduleClaimResult) {
	ev := TickEvent{Schedule: s.Name, Tick: cl.tick, Status: res.Status, Late: max(res.Now.Sub(cl.tick), 0)}
	from := s.LastTick
	if from.IsZero() {
		from = s.Since
	}
	if sp, err := c.parse(s.Spec, s.TimeZone); err == nil && !from.IsZero() {
		for t, i := sp.Next(from), 0; i < maxScan && !t.IsZero() && t.Before(cl.tick); t, i = sp.Next(t), i+1 {
			ev.Missed++
		}
	}
	defer func() {
		if v := recover(); v != nil {
			c.cfg.Logger.Error("schedule: OnTick hook panicked", "schedule", s.Name, "panic", v)
		}
	}()
	c.cfg.OnTick(ev)
}
