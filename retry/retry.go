// Package retry holds the backoff policy of aibos-worker (the seed's
// RetryManager): exponential backoff with a cap and optional jitter. The
// Manager's job retries use the same Policy, so the project has one backoff
// implementation.
package retry

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// Policy describes exponential backoff: the delay before retry n (n >= 1,
// counting failed attempts) is BaseDelay * Multiplier^(n-1), capped at
// MaxDelay. With Jitter, the delay is drawn uniformly from [d/2, d] ("equal
// jitter"), so retries of many jobs spread out yet never wait less than half
// the nominal delay.
type Policy struct {
	// MaxAttempts is the number of tries in all. Defaults to 3.
	MaxAttempts int
	// BaseDelay is the delay before the first retry. Defaults to 1s.
	BaseDelay time.Duration
	// MaxDelay caps every delay. Defaults to 10m.
	MaxDelay time.Duration
	// Multiplier grows the delay per attempt. Defaults to 2.
	Multiplier float64
	// Jitter randomises each delay within [d/2, d].
	Jitter bool
}

// DefaultPolicy returns the seed's defaults: 3 attempts, 1 s base delay,
// multiplier 2, jitter on, capped at 10 minutes.
func DefaultPolicy() Policy {
	return Policy{MaxAttempts: 3, BaseDelay: time.Second, MaxDelay: 10 * time.Minute, Multiplier: 2, Jitter: true}
}

// WithDefaults returns p with zero fields set to their defaults.
func (p Policy) WithDefaults() Policy {
	d := DefaultPolicy()
	if p.MaxAttempts == 0 {
		p.MaxAttempts = d.MaxAttempts
	}
	if p.BaseDelay == 0 {
		p.BaseDelay = d.BaseDelay
	}
	if p.MaxDelay == 0 {
		p.MaxDelay = d.MaxDelay
	}
	if p.Multiplier == 0 {
		p.Multiplier = d.Multiplier
	}
	return p
}

// Validate reports the first field out of range.
func (p Policy) Validate() error {
	switch {
	case p.MaxAttempts < 0:
		return fmt.Errorf("retry policy: max attempts %d is negative", p.MaxAttempts)
	case p.BaseDelay < 0:
		return fmt.Errorf("retry policy: base delay %v is negative", p.BaseDelay)
	case p.MaxDelay < 0:
		return fmt.Errorf("retry policy: max delay %v is negative", p.MaxDelay)
	case p.Multiplier != 0 && p.Multiplier < 1:
		return fmt.Errorf("retry policy: multiplier %v is below 1", p.Multiplier)
	case p.MaxDelay != 0 && p.BaseDelay > p.MaxDelay:
		return fmt.Errorf("retry policy: base delay %v exceeds max delay %v", p.BaseDelay, p.MaxDelay)
	}
	return nil
}

// Delay returns the delay before retry n (n >= 1 is the number of failed
// attempts so far). Zero fields take their defaults.
func (p Policy) Delay(n int) time.Duration {
	p = p.WithDefaults()
	if n < 1 {
		n = 1
	}
	d := float64(p.BaseDelay) * math.Pow(p.Multiplier, float64(n-1))
	if d > float64(p.MaxDelay) || math.IsInf(d, 0) || math.IsNaN(d) {
		d = float64(p.MaxDelay)
	}
	if p.Jitter {
		d = d/2 + rand.Float64()*d/2
	}
	return time.Duration(d)
}
