package retry

import "errors"

// noRetryError marks an error that no retry can fix.
type noRetryError struct{ err error }

func (e *noRetryError) Error() string { return e.err.Error() }
func (e *noRetryError) Unwrap() error { return e.err }

// NoRetry wraps err to say that no retry can fix it. It is the one "do not
// retry" marker of the module, and every part honours it:
//   - Manager.Retry stops at once and returns it;
//   - the worker Manager moves the job to dead at once, whatever attempts
//     it has left (worker.NoRetry is this same function);
//   - a recovery.Policy decides Fail for it, whatever its class's strategy
//     says.
//
// The marker survives wrapping: fmt.Errorf("...: %w", NoRetry(err)) is
// still not retried. NoRetry(nil) returns an error saying "no retry", so a
// caller that returns it always stops.
func NoRetry(err error) error {
	if err == nil {
		err = errors.New("no retry")
	}
	return &noRetryError{err}
}

// IsNoRetry reports whether err, or an error it wraps, was marked by
// NoRetry.
func IsNoRetry(err error) bool {
	var nr *noRetryError
	return errors.As(err, &nr)
}
