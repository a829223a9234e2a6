package broker

import (
	"encoding/json"
	"fmt"
	"time"
	"unicode/utf8"
)

// AttemptOutcome is how one attempt of a job ended.
type AttemptOutcome string

// The attempt outcomes. A failed attempt is AttemptRetryScheduled or
// AttemptDead, by what the failure did to the job.
const (
	AttemptCompleted      AttemptOutcome = "completed"       // the job completed (or was removed on completion)
	AttemptRetryScheduled AttemptOutcome = "retry_scheduled" // failed, and the job waits to retry
	AttemptDead           AttemptOutcome = "dead"            // failed with no attempts left, or discarded
	AttemptLeaseExpired   AttemptOutcome = "lease_expired"   // the lease expired and maintenance recovered the job (pending again, or dead)
	AttemptHandedBack     AttemptOutcome = "handed_back"     // released by its worker (JobRelease), not counted
	AttemptCancelled      AttemptOutcome = "cancelled"       // the job was cancelled while the attempt ran
)

// AttemptRecord is one finished attempt of a job, as Job.Attempts lists it.
type AttemptRecord struct {
	// Attempt is the job's Attempt during this attempt (a handed-back
	// attempt's number is used again by the next one).
	Attempt  int    `json:"attempt"`
	WorkerID string `json:"worker_id,omitempty"`
	// StartedAt is when the attempt's lease began; FinishedAt is when its
	// outcome was recorded, on the broker's clock (for a lease that
	// expired: when maintenance recovered it).
	StartedAt  time.Time      `json:"started_at"`
	FinishedAt time.Time      `json:"finished_at"`
	Outcome    AttemptOutcome `json:"outcome"`
	// Error is the failure's error, cut to MaxAttemptErrorBytes.
	Error string `json:"error,omitempty"`
}

// MaxAttemptHistory is how many attempts a broker keeps per job: the most
// recent ones. MaxAttemptErrorBytes bounds each attempt's Error (the job's
// LastError keeps the whole text); a cut never splits a UTF-8 sequence.
const (
	MaxAttemptHistory    = 20
	MaxAttemptErrorBytes = 1024
)

// ClipAttemptError cuts s to at most MaxAttemptErrorBytes bytes, at a UTF-8
// sequence boundary.
func ClipAttemptError(s string) string {
	if len(s) <= MaxAttemptErrorBytes {
		return s
	}
	n := MaxAttemptErrorBytes
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// DecodeAttemptRecord reads one attempt as both brokers of this module
// store it: a compact JSON array [attempt, worker id, started unix ms,
// finished unix ms, outcome] with the error as a sixth element when there
// is one. It is exported for them, not for callers.
func DecodeAttemptRecord(raw []byte) (AttemptRecord, error) {
	var a []json.RawMessage
	if err := json.Unmarshal(raw, &a); err != nil {
		return AttemptRecord{}, fmt.Errorf("decode attempt record: %w", err)
	}
	if len(a) < 5 || len(a) > 6 {
		return AttemptRecord{}, fmt.Errorf("decode attempt record: %d elements, want 5 or 6", len(a))
	}
	var (
		r                 AttemptRecord
		started, finished int64
		err               error
	)
	for i, dst := range []any{&r.Attempt, &r.WorkerID, &started, &finished, &r.Outcome} {
		if err == nil {
			err = json.Unmarshal(a[i], dst)
		}
	}
	if err == nil && len(a) == 6 {
		err = json.Unmarshal(a[5], &r.Error)
	}
	if err != nil {
		return AttemptRecord{}, fmt.Errorf("decode attempt record %s: %w", raw, err)
	}
	r.StartedAt, r.FinishedAt = time.UnixMilli(started).UTC(), time.UnixMilli(finished).UTC()
	return r, nil
}
