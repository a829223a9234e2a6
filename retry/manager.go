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

// permanentError marks an error that no retry can fix.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent wraps err so that Manager.Retry stops at once and returns it.
// Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err}
}

// IsPermanent reports whether err, or an error it wraps, was marked by
// Permanent.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

// Retry calls fn until it returns nil, returns a Permanent error, or
// Policy.MaxAttempts calls have failed; between calls it waits
// Policy.Delay(n). It returns nil on success, else the last error (for a
// Permanent error, the error it wraps). If ctx is done before or between
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
		var perm *permanentError
		if errors.As(last, &perm) {
			if last == error(perm) {
				return perm.err
			}
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
