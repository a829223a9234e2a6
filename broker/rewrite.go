package broker

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
)

// JobRewriter is an optional capability of a Broker: rewriting the stored
// values of one job in place, each only if it still holds what the caller
// read (compare-and-set on the stored bytes). Key rotation re-seals stored
// jobs with it while workers keep running: a job that completed, failed or
// reported progress between the caller's read and its rewrite holds another
// value by then, so the rewrite is refused instead of putting back what was
// read. Both brokers of this module implement it; test for it with a type
// assertion.
type JobRewriter interface {
	// JobRewrite applies p's rewrites to one job, all of them or none, in
	// one atomic step, whatever the job's state (an active job keeps its
	// lease: its worker completes or fails it as if nothing happened).
	// Nothing else of the job changes: not its state, attempt, lease,
	// place or indexes. It returns an error wrapping ErrNotFound if the job
	// does not exist, ErrConflict if any named value is not, byte for byte,
	// its Old (or an attempt named is not in the history), and an
	// *InvalidError for bad p; nothing changes on error. Safe for
	// concurrent use.
	JobRewrite(ctx context.Context, p *JobRewriteParams) error
}

// ValueRewrite replaces one stored value: Old is what the caller read,
// New what it stores instead.
type ValueRewrite struct {
	Old string
	New string
}

// JobRewriteParams names a job and the values to rewrite; nil leaves a
// value as it is.
type JobRewriteParams struct {
	Queue string
	ID    string
	// Data, Result and Progress are JSON documents (as Job.Data, Job.Result
	// and Job.Progress hold them).
	Data, Result, Progress *ValueRewrite
	// LastError is Job.LastError.
	LastError *ValueRewrite
	// Attempts rewrites the errors of the attempt history by position in
	// Job.Attempts (0 is the oldest kept).
	Attempts map[int]*ValueRewrite
}

// Validate checks p: a valid queue and an id, at least one rewrite, every
// Old non-empty (a value that was never stored is not rewritten), JSON
// values valid JSON, and error texts within MaxAttemptErrorBytes (which a
// broker would otherwise cut, leaving a value the caller did not write).
func (p *JobRewriteParams) Validate() error {
	bad := func(field, reason string) error { return &InvalidError{Index: -1, Field: field, Reason: reason} }
	if p == nil {
		return bad("params", "nil")
	}
	if err := ValidateQueueName(p.Queue); err != nil {
		return bad("queue", err.Error())
	}
	if p.ID == "" {
		return bad("id", "empty")
	}
	if p.Data == nil && p.Result == nil && p.Progress == nil && p.LastError == nil && len(p.Attempts) == 0 {
		return bad("rewrite", "nothing to rewrite")
	}
	for field, v := range map[string]*ValueRewrite{"data": p.Data, "result": p.Result, "progress": p.Progress} {
		if v == nil {
			continue
		}
		if v.Old == "" || !json.Valid([]byte(v.New)) {
			return bad(field, "old value empty or new value not valid JSON")
		}
	}
	for _, i := range p.AttemptPositions() {
		if i < 0 || i >= MaxAttemptHistory {
			return bad("attempts", fmt.Sprintf("position %d outside the history (0..%d)", i, MaxAttemptHistory-1))
		}
	}
	texts := map[string]*ValueRewrite{"last error": p.LastError}
	for i, v := range p.Attempts {
		texts[fmt.Sprintf("attempt %d error", i)] = v
	}
	for field, v := range texts {
		if v == nil {
			if field != "last error" {
				return bad(field, "nil rewrite")
			}
			continue
		}
		if v.Old == "" || v.New == "" || len(v.New) > MaxAttemptErrorBytes {
			return bad(field, fmt.Sprintf("old or new value empty, or new value longer than %d bytes", MaxAttemptErrorBytes))
		}
	}
	return nil
}

// AttemptPositions returns the positions p.Attempts names, in order.
func (p *JobRewriteParams) AttemptPositions() []int {
	ks := make([]int, 0, len(p.Attempts))
	for i := range p.Attempts {
		ks = append(ks, i)
	}
	sort.Ints(ks)
	return ks
}

// Scrubber is an optional capability of a Broker whose files can keep
// copies of values after they were overwritten (SQLite's freed pages and
// write-ahead log). Key rotation calls it when done, so that ciphertexts
// under a retired key do not linger on disk.
type Scrubber interface {
	// Scrub rewrites the store so that no overwritten or deleted value
	// remains in its files. It may block writers while it runs. Safe for
	// concurrent use.
	Scrub(ctx context.Context) error
}
