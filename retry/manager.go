package retry

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Manager retries a function with the backoff of its Policy: the seed's
// RetryManager. The zero value uses DefaultPolicy.
type Manager struct {
	// Policy sets the attempts and the delays between them. Zero fields
	// take their defaults.
	Policy Policy
	// Sleep waits for d or until ctx is done, returning ctx's error in that
	// case. Tests replace it to run without real waiting. Defaults to a
	// timer-based sleep.
	Sleep func(ctx context.Context, d time.Duration) error
}

// Retry calls fn until it returns nil, returns an error marked by NoRetry,
// or Policy.MaxAttempts calls have failed; between calls it waits
// Policy.Delay(n). It returns nil on success, else the last error (for an
// error NoRetry returned unwrapped, the error it marks). If ctx is done before or between
// attempts, Retry returns at once with ctx's error joined with the last
// error of fn; fn itself receives ctx and should honour it.
func (m *Manager) Retry(ctx context.Context, fn func(ctx context.Context) error) error {
	p := m.Policy.WithDefaults()
	if err := p.Validate(); err != nil {
		return err
	}
	sleep := m.Sleep
	if sleep == nil {
		sleep = sleepCtx
	}
	var last error
	for n := 1; ; n++ {
		if err := ctx.Err(); err != nil {
			return errors.Join(context.Cause(ctx), last)
		}
		last = fn(ctx)
		if last == nil {
			return nil
		}
		if nr, ok := last.(*noRetryError); ok {
			return nr.err
		}
		if IsNoRetry(last) {
			return last
		}
		if n >= p.MaxAttempts {
			return fmt.Errorf("gave up after %d attempts: %w", n, last)
		}
		if err := sleep(ctx, p.Delay(n)); err != nil {
			return errors.Join(err, last)
		}
	}
}

// sleepCtx waits for d or until ctx is done.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}
