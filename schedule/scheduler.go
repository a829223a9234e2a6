package schedule

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/aibos/worker/broker"
)

// maxScan bounds how many fire times one pass walks for one schedule.
const maxScan = 200_000

// retryEarly is how soon a scheduler retries a tick the broker called
// early (its clock is behind the scheduler's estimate).
const retryEarly = 20 * time.Millisecond

// Run claims and enqueues due ticks of every stored schedule until ctx is
// done, then returns nil. Errors of the broker are logged and retried at the
// next poll. Run as many schedulers as you like, in one process or many:
// the broker's atomic claim makes each tick enqueue one job.
func (c *Cron) Run(ctx context.Context) error {
	for {
		wake := c.pass(ctx)
		d := wake.Sub(c.cfg.Now())
		if d < 0 {
			d = 0
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// pass reads the schedules, claims what is due and returns when to wake
// (local clock).
func (c *Cron) pass(ctx context.Context) time.Time {
	wake := c.cfg.Now().Add(c.cfg.PollInterval)
	l, err := c.store.ScheduleList(ctx)
	if err != nil {
		if ctx.Err() == nil {
			c.cfg.Logger.Error("schedule: list schedules", "err", err)
		}
		return wake
	}
	c.observe(l.Now)
	for _, s := range l.Schedules {
		if ctx.Err() != nil {
			return wake
		}
		if s.Paused {
			continue
		}
		next := c.runSchedule(ctx, s)
		if !next.IsZero() {
			// next is in broker time; the timer runs on the local clock.
			if local := next.Add(-c.skewNow()); local.Before(wake) {
				wake = local
			}
		}
	}
	return wake
}

func (c *Cron) skewNow() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.skew
}

// runSchedule claims the schedule's due ticks under its catch-up policy and
// returns its next fire time (broker clock), zero if none.
func (c *Cron) runSchedule(ctx context.Context, s *broker.Schedule) time.Time {
	sp, err := c.parse(s.Spec, s.TimeZone)
	if err != nil {
		c.cfg.Logger.Error("schedule: stored spec no longer parses", "schedule", s.Name, "err", err)
		return time.Time{}
	}
	now := c.brokerNow()
	base := s.Since
	if s.LastTick.After(base) {
		base = s.LastTick
	}
	window := c.cfg.Grace
	if CatchUp(s.CatchUp) != CatchUpSkip && s.CatchUpWindow > window {
		window = s.CatchUpWindow
	}
	if start := now.Add(-window - time.Second); start.After(base) {
		base = start
	}
	var late, missed []time.Time
	t := sp.Next(base)
	for i := 0; i < maxScan && !t.IsZero() && !t.After(now); i++ {
		if now.Sub(t) <= c.cfg.Grace {
			late = append(late, t)
		} else {
			missed = append(missed, t)
		}
		t = sp.Next(t)
	}
	var claims []tickClaim
	if len(missed) > 0 && CatchUp(s.CatchUp) != CatchUpSkip && now.Sub(missed[len(missed)-1]) <= window {
		claims = append(claims, tickClaim{tick: missed[len(missed)-1], missed: len(missed)})
	}
	for _, lt := range late {
		claims = append(claims, tickClaim{tick: lt})
	}
	for _, cl := range claims {
		res, err := c.claim(ctx, s, cl)
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, broker.ErrScheduleNotFound) {
				c.cfg.Logger.Error("schedule: claim tick", "schedule", s.Name, "tick", cl.tick, "err", err)
			}
			return time.Time{}
		}
		c.observe(res.Now)
		switch res.Status {
		case broker.ClaimEarly:
			return res.Now.Add(retryEarly)
		case broker.ClaimChanged, broker.ClaimPaused:
			return time.Time{} // re-read at the next poll
		}
	}
	return t
}

// tickClaim is one tick to claim; missed > 0 marks a catch-up for that
// many missed ticks.
type tickClaim struct {
	tick   time.Time
	missed int
}

// claim asks the broker for one tick.
func (c *Cron) claim(ctx context.Context, s *broker.Schedule, cl tickClaim) (res *broker.ScheduleClaimResult, err error) {
	if c.cfg.Tracer != nil {
		var end func(status string, err error)
		ctx, end = c.cfg.Tracer.StartTick(ctx, s.Name, cl.tick)
		defer func() {
			var status string
			if res != nil {
				status = string(res.Status)
			}
			end(status, err)
		}()
	}
	res, err = c.claimTick(ctx, s, cl)
	if err == nil && c.cfg.OnTick != nil && claimed(res.Status) {
		c.reportTick(s, cl, res)
	}
	return res, err
}

// claimTick asks the broker for one tick, its job carrying ctx's trace
// context when there is a Tracer.
func (c *Cron) claimTick(ctx context.Context, s *broker.Schedule, cl tickClaim) (*broker.ScheduleClaimResult, error) {
	p, err := c.jobOf(s, TickJobID(s.Name, cl.tick))
	if err != nil {
		return nil, err
	}
	h := map[string]string{"schedule": s.Name, "schedule-tick": cl.tick.UTC().Format(time.RFC3339)}
	if cl.missed > 0 {
		h["schedule-missed"] = strconv.Itoa(cl.missed)
	}
	if c.cfg.Tracer != nil {
		c.cfg.Tracer.Inject(ctx, h)
	}
	p.Headers = withHeaders(p.Headers, h)
	return c.store.ScheduleClaim(ctx, &broker.ScheduleClaimParams{Name: s.Name, Version: s.Version, Tick: cl.tick, Job: &p})
}
