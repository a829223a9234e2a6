package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/recovery"
	"github.com/aibos/worker/retry"
)

// failParams decides how a failed attempt is recorded. NoRetry and
// RetryAfter win; then the recovery policy's strategy for the error's
// class, if the Manager has a policy; else the backoff with the job's own
// attempts. The decision is returned when a policy was asked, so that the
// caller can notify.
func (m *Manager) failParams(r *running, err error) (*broker.JobFailParams, *recovery.Decision) {
	r.mu.Lock()
	fp := &broker.JobFailParams{JobLeaseParams: *r.lease(), Error: err.Error(), Headers: r.failHeaders}
	r.mu.Unlock()
	var dec *recovery.Decision
	if m.cfg.Recovery != nil {
		d := m.cfg.Recovery.Decide(err)
		dec = &d
	}
	var ra *retryAfterError
	switch {
	case retry.IsNoRetry(err):
		fp.Discard = true
	case errors.As(err, &ra):
		fp.RetryDelay = ra.delay
	case dec != nil && dec.Strategy.Action == recovery.Fail:
		fp.Discard = true
	case dec != nil:
		fp.MaxAttempts = dec.Strategy.MaxAttempts
		fp.RetryDelay = dec.Strategy.Delay
		if fp.RetryDelay <= 0 {
			fp.RetryDelay = m.cfg.Retry.Delay(r.job.Attempt)
		}
	default:
		fp.RetryDelay = m.cfg.Retry.Delay(r.job.Attempt)
	}
	return fp, dec
}

// notify sends a failure to the recovery policy's notifier when the
// strategy asks for it. A notifier error is logged, never retried: the
// failure itself is already recorded. An encrypted job's message, which
// may quote its sealed data, goes only to a trusted notifier
// (recovery.Policy.TrustedNotifier); others get what the log gets.
func (m *Manager) notify(ctx context.Context, log *slog.Logger, job *Job, err error, dec *recovery.Decision, state State) {
	if dec == nil || !dec.Strategy.Notify {
		return
	}
	n := recovery.NotificationFor(job, err, *dec, state, time.Now())
	if m.cfg.Encryption.Applies(job.Queue, job.Type) && !m.cfg.Recovery.TrustedNotifier {
		n.Error, n.Withheld = fmt.Sprint(m.loggedError(job, err)), true
	}
	if nerr := m.cfg.Recovery.Notify(ctx, n); nerr != nil {
		log.Error("notify job failure", "err", nerr)
	}
}
