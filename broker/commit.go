package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Committer is an optional capability of a Broker: one generic, all or
// nothing commit of job transitions and small versioned documents, plus
// reading the documents back. Package workflow and package schedule build
// every rule of theirs on it (runs, fan-in, compensation, retention of
// runs, cron tick claims), so a storage engine that implements Committer
// runs workflows and schedules with no code of its own for them. Both
// brokers of this module implement it; test for it with a type assertion.
//
// A document is addressed by (scope, kind, key). The scope is a queue: every
// job and document one commit touches lives in its scope, so on Redis a
// commit stays in the queue's Cluster slot. A document carries a version
// (1 when created, +1 on every write) and a JSON body, and may be listed in
// indexes: named sorted lists of the keys of one kind's documents, each key
// with an integer score, read in (score, key) order.
//
// Contracts, in addition to the Broker's:
//   - Commit is atomic: everything in it is applied, or nothing is (one Lua
//     script call on Redis, one transaction on SQLite). Commits are
//     serialised with each other and with every other state change.
//   - Methods are safe for concurrent use by many goroutines and processes.
type Committer interface {
	// Commit applies p whole or not at all and returns what it did. It
	// returns, applying nothing:
	//   - ErrLeaseLost or ErrNotFound for a completion or failure whose job
	//     is not active under its token, or does not exist (as JobComplete
	//     and JobFail);
	//   - an error wrapping ErrConflict when a document's version is not the
	//     expected one, or a job to delete is not finished;
	//   - a *DuplicateError or ErrQueueFull for an insert that is not
	//     Optional (an Optional one is skipped and reported instead), and a
	//     *DuplicateError for an Absent job that exists;
	//   - ErrNotFound or ErrWrongState for a Reschedule of a missing job, or
	//     of one that is active or finished;
	//   - a *TooEarlyError when the broker's clock is before p.NotBefore;
	//   - an *InvalidError (or an error wrapping ErrInvalidJob) for bad p.
	Commit(ctx context.Context, p *CommitParams) (*CommitResult, error)

	// DocGet returns one document. It returns an error wrapping
	// ErrDocNotFound if there is none.
	DocGet(ctx context.Context, scope, kind, key string) (*Doc, error)

	// DocList returns one page of the documents of an index, ordered by
	// score then key (both descending if p.Desc), read at one instant.
	DocList(ctx context.Context, p *DocListParams) (*DocListResult, error)

	// Now reads the broker's clock, the one Commit's NotBefore is judged by.
	Now(ctx context.Context) (time.Time, error)
}

// ErrConflict: a commit found a document at another version than the one
// it expected (or a job to delete unfinished), and applied nothing. The
// caller re-reads and retries.
var ErrConflict = errors.New("commit conflict")

// ErrDocNotFound: no document with that scope, kind and key exists.
var ErrDocNotFound = errors.New("document not found")

// TooEarlyError reports a commit refused because the broker's clock was
// before its NotBefore. It matches ErrTooEarly with errors.Is.
type TooEarlyError struct {
	Now time.Time // the broker's clock at the refusal
}

// ErrTooEarly: the broker's clock is before the commit's NotBefore.
var ErrTooEarly = errors.New("commit is not due yet")

func (e *TooEarlyError) Error() string {
	return fmt.Sprintf("commit is not due yet: the broker clock reads %s", e.Now.UTC().Format(time.RFC3339Nano))
}

// Is makes errors.Is(err, ErrTooEarly) true.
func (e *TooEarlyError) Is(target error) bool { return target == ErrTooEarly }

// CommitParams is one atomic commit. Every job and document in it belongs
// to Scope.
type CommitParams struct {
	// Scope is the queue every job and document of the commit lives in.
	Scope string
	// NotBefore, when set, refuses the commit (*TooEarlyError) while the
	// broker's clock is before it.
	NotBefore time.Time
	// Complete completes active jobs under their lease tokens, as
	// JobComplete.
	Complete []*JobCompleteParams
	// Fail records failed attempts under lease tokens, as JobFail
	// (RetryDelay, Discard, MaxAttempts, Headers). CommitResult.Failed gives each
	// job's new state.
	Fail []*JobFailParams
	// Docs are compare-and-set writes and deletes of documents.
	Docs []*DocWrite
	// Insert inserts jobs of Scope.
	Insert []*CommitInsert
	// Cancel cancels jobs by id, as JobCancel: a scheduled, pending or
	// active job becomes cancelled (an active one loses its lease). A
	// finished or missing job is left as it is.
	Cancel []string
	// Reschedule moves scheduled or pending jobs to a new due time, as a
	// one-time schedule's Reschedule does: a job due after the broker's now
	// becomes scheduled, else pending now; a TTL keeps its length. A
	// missing job fails the commit with ErrNotFound, an active or finished
	// one with ErrWrongState.
	Reschedule []*JobReschedule
	// Absent names jobs that must not exist: one that does fails the
	// commit with a *DuplicateError. (A run reserves the ids of the jobs it
	// will insert later this way.)
	Absent []string
	// Delete removes finished jobs by id, whole, as JobDelete. A missing
	// job is skipped; an unfinished one makes the commit fail with
	// ErrConflict.
	Delete []string
}

// DocWrite is a compare-and-set write or delete of one document of the
// commit's scope.
type DocWrite struct {
	Kind string // letters, digits and "._-", 1..64
	Key  string // 1..MaxKeyLen bytes
	// Version is the version the document must have: 0 means it must not
	// exist.
	Version int64
	// Delete removes the document and its index entries.
	Delete bool
	// Body is the new JSON body (ignored by Delete).
	Body json.RawMessage
	// Index replaces the document's index entries (ignored by Delete).
	Index []IndexEntry
}

// IndexEntry lists a document in a named index with a score.
type IndexEntry struct {
	Name  string // 1..1024 bytes
	Score int64  // ordered ascending, ties by key; keep within ±2^53
}

// JobReschedule names a job to move and its new due time.
type JobReschedule struct {
	ID    string
	RunAt time.Time
}

// CommitInsert is a job to insert in a commit.
type CommitInsert struct {
	Job *JobInsertParams // its Queue must be the commit's scope
	// IfAbsent skips the insert when a job with its id exists (reported
	// as ErrDuplicate in CommitResult.Skipped) instead of failing.
	IfAbsent bool
	// Optional skips the insert when its unique key is held or the queue
	// is full (reported in CommitResult.Skipped) instead of failing the
	// commit.
	Optional bool
}

// CommitResult reports an applied commit.
type CommitResult struct {
	// Now is the broker's clock at the commit.
	Now time.Time
	// Failed holds the new state of each job of CommitParams.Fail, in order.
	Failed []State
	// Versions holds the new version of each document of CommitParams.Docs,
	// in order (0 for a delete).
	Versions []int64
	// Jobs holds each inserted job, in the order of CommitParams.Insert;
	// nil where the insert was skipped.
	Jobs []*Job
	// Skipped holds, for each skipped insert, why: an error wrapping
	// ErrDuplicate or ErrQueueFull; nil where the job was inserted.
	Skipped []error
}

// Doc is a stored document.
type Doc struct {
	Kind    string
	Key     string
	Version int64
	Body    json.RawMessage
}

// DocListParams selects one page of an index.
type DocListParams struct {
	Scope string
	Kind  string
	Index string
	// Min and Max bound the scores (inclusive) when not zero.
	Min, Max int64
	// Desc lists the highest score first.
	Desc   bool
	Offset int
	Limit  int // 1..MaxDocList; 0 means 100
}

// MaxDocList bounds DocListParams.Limit.
const MaxDocList = 10000

// DocListResult is one page of an index.
type DocListResult struct {
	Docs []*Doc
	// Total counts the index's entries within Min..Max, on every page.
	Total int
	// Now is the broker's clock at the read.
	Now time.Time
}

// maxKindLen and maxIndexLen bound document kinds and index names.
const (
	maxKindLen  = 64
	maxIndexLen = 1024
)

// ValidateDocKey checks a document's kind and key.
func ValidateDocKey(kind, key string) error {
	if err := validateName("document kind", kind, maxKindLen); err != nil {
		return err
	}
	for _, c := range kind {
		if c == ':' {
			return fmt.Errorf("document kind %q must not contain ':'", kind)
		}
	}
	return checkText("document key", key, MaxKeyLen, true)
}

// Validate checks a commit before it is applied and returns an error
// wrapping ErrInvalidJob naming the first bad part.
func (p *CommitParams) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: commit: %s", ErrInvalidJob, fmt.Sprintf(format, args...))
	}
	if p == nil {
		return bad("params are nil")
	}
	if err := ValidateQueueName(p.Scope); err != nil {
		return bad("scope: %v", err)
	}
	for i, c := range p.Complete {
		if c == nil || c.Queue != p.Scope || c.ID == "" {
			return bad("completion %d: nil, or not a job of scope %q", i, p.Scope)
		}
		if len(c.Result) > 0 && !json.Valid(c.Result) {
			return bad("completion %d (job %s): result is not valid JSON", i, c.ID)
		}
	}
	for i, f := range p.Fail {
		if f == nil || f.Queue != p.Scope || f.ID == "" {
			return bad("failure %d: nil, or not a job of scope %q", i, p.Scope)
		}
		if err := f.Validate(); err != nil {
			return fmt.Errorf("commit: failure %d (job %s): %w", i, f.ID, err)
		}
	}
	seen := map[string]bool{}
	for i, d := range p.Docs {
		if d == nil {
			return bad("document write %d is nil", i)
		}
		if err := ValidateDocKey(d.Kind, d.Key); err != nil {
			return bad("document write %d: %v", i, err)
		}
		if seen[d.Kind+":"+d.Key] {
			return bad("document %s %q is written twice", d.Kind, d.Key)
		}
		seen[d.Kind+":"+d.Key] = true
		if d.Version < 0 || d.Delete && d.Version == 0 {
			return bad("document %s %q: version %d (a delete needs the current version)", d.Kind, d.Key, d.Version)
		}
		if !d.Delete && !json.Valid(d.Body) {
			return bad("document %s %q: body is not valid JSON", d.Kind, d.Key)
		}
		for _, x := range d.Index {
			if x.Name == "" || len(x.Name) > maxIndexLen {
				return bad("document %s %q: index name %q must be 1..%d bytes", d.Kind, d.Key, x.Name, maxIndexLen)
			}
			if x.Score > 1<<53 || x.Score < -(1<<53) {
				return bad("document %s %q: index %q score %d is beyond ±2^53", d.Kind, d.Key, x.Name, x.Score)
			}
		}
	}
	for i, in := range p.Insert {
		if in == nil || in.Job == nil {
			return bad("insert %d is nil", i)
		}
		if in.Job.Queue != p.Scope {
			return bad("insert %d (job %s): queue %q is not the scope %q", i, in.Job.ID, in.Job.Queue, p.Scope)
		}
		if err := in.Job.Validate(); err != nil {
			return fmt.Errorf("commit: insert %d: %w", i, err)
		}
	}
	for i, r := range p.Reschedule {
		if r == nil || r.RunAt.IsZero() {
			return bad("reschedule %d: nil, or no time", i)
		}
		if err := checkText("job id", r.ID, MaxIDLen, true); err != nil {
			return bad("reschedule %d: %v", i, err)
		}
	}
	for _, ids := range [][]string{p.Cancel, p.Delete, p.Absent} {
		for _, id := range ids {
			if err := checkText("job id", id, MaxIDLen, true); err != nil {
				return bad("%v", err)
			}
		}
	}
	// A job is completed, failed or rescheduled at most once per commit:
	// the brokers judge every change against the state before the commit,
	// so two such changes of one job would leave it in two states.
	changed := map[string]string{}
	change := func(what, id string) error {
		if prev, dup := changed[id]; dup {
			return bad("job %s is both %s and %s in one commit", id, prev, what)
		}
		changed[id] = what
		return nil
	}
	for _, c := range p.Complete {
		if err := change("completed", c.ID); err != nil {
			return err
		}
	}
	for _, f := range p.Fail {
		if err := change("failed", f.ID); err != nil {
			return err
		}
	}
	for _, r := range p.Reschedule {
		if err := change("rescheduled", r.ID); err != nil {
			return err
		}
	}
	// Cancel and Delete leave a finished job as it is, so they may name a
	// job the commit completes (a run cancelling its other jobs), but not
	// one it reschedules.
	for what, ids := range map[string][]string{"cancelled": p.Cancel, "deleted": p.Delete} {
		for _, id := range ids {
			if changed[id] == "rescheduled" {
				return bad("job %s is both rescheduled and %s in one commit", id, what)
			}
		}
	}
	return nil
}

// Validate checks list parameters.
func (p *DocListParams) Validate() error {
	if p == nil {
		return fmt.Errorf("%w: list documents: params are nil", ErrInvalidJob)
	}
	if err := ValidateQueueName(p.Scope); err != nil {
		return fmt.Errorf("%w: list documents: scope: %v", ErrInvalidJob, err)
	}
	if err := ValidateDocKey(p.Kind, "-"); err != nil {
		return fmt.Errorf("%w: list documents: %v", ErrInvalidJob, err)
	}
	if p.Index == "" || len(p.Index) > maxIndexLen || p.Offset < 0 || p.Limit < 0 || p.Limit > MaxDocList {
		return fmt.Errorf("%w: list documents: index %q, offset %d, limit %d (want an index, offset >= 0, limit 0..%d)",
			ErrInvalidJob, p.Index, p.Offset, p.Limit, MaxDocList)
	}
	return nil
}
