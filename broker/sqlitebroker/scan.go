package sqlitebroker

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/aibos/worker/broker"
)

// jobColumns lists the columns scanJob reads, in order.
const jobColumns = `seq, id, queue, type, data, priority, max_attempts, attempt, tenant_id, company_id,
	headers, unique_key, timeout_ns, state, created_at, run_at, expires_at, started_at, finished_at,
	last_error, result, progress, lease_token, lease_until, worker_id, delete_on_complete`

// leasedColumns lists the columns rowScan.leased reads, in order:
// jobColumns but those a lease sets to values the fetch knows (queue,
// state, started_at, lease_until, worker_id). Each column returned costs
// its conversion, and most an allocation, per job fetched.
const leasedColumns = `seq, id, type, data, priority, max_attempts, attempt, tenant_id, company_id,
	headers, unique_key, timeout_ns, created_at, run_at, expires_at, finished_at,
	last_error, result, progress, lease_token, delete_on_complete`

// scanner is a *sql.Row or *sql.Rows.
type scanner interface{ Scan(dest ...any) error }

// rowScan holds the destinations of a scanned row that are not fields of
// its job, in one allocation that the rows of a query share: as local
// variables, each escaped to the heap on its own (Scan takes them as
// interfaces), 17 allocations per job.
type rowScan struct {
	seq, timeout, created, runAt, token    int64
	headers, uniqueKey                     sql.NullString
	expires, started, finished, leaseUntil sql.NullInt64
	data, result, progress                 []byte
	state                                  string
	dest                                   []any
}

// scanJob reads one row of jobColumns. It also returns the job's seq.
func scanJob(s scanner) (*broker.Job, int64, error) {
	return new(rowScan).job(s)
}

// job reads one row of jobColumns, as scanJob.
func (r *rowScan) job(s scanner) (*broker.Job, int64, error) {
	j := new(broker.Job)
	if err := s.Scan(r.args(&r.seq, &j.ID, &j.Queue, &j.Type, &r.data, &j.Priority, &j.MaxAttempts, &j.Attempt,
		&j.TenantID, &j.CompanyID, &r.headers, &r.uniqueKey, &r.timeout, &r.state, &r.created, &r.runAt,
		&r.expires, &r.started, &r.finished, &j.LastError, &r.result, &r.progress, &r.token, &r.leaseUntil,
		&j.WorkerID, &j.DeleteOnComplete)...); err != nil {
		return nil, 0, err
	}
	return r.fill(j)
}

// lease is what a fetch set on every job it leased: the columns of
// jobColumns that leasedColumns leaves out.
type lease struct {
	queue, worker  string
	started, until int64 // unix ms
}

// leased reads one row of leasedColumns, a job that l leased.
func (r *rowScan) leased(s scanner, l *lease) (*broker.Job, int64, error) {
	j := &broker.Job{Queue: l.queue, WorkerID: l.worker}
	if err := s.Scan(r.args(&r.seq, &j.ID, &j.Type, &r.data, &j.Priority, &j.MaxAttempts, &j.Attempt,
		&j.TenantID, &j.CompanyID, &r.headers, &r.uniqueKey, &r.timeout, &r.created, &r.runAt,
		&r.expires, &r.finished, &j.LastError, &r.result, &r.progress, &r.token, &j.DeleteOnComplete)...); err != nil {
		return nil, 0, err
	}
	r.state = string(broker.StateActive)
	r.started = sql.NullInt64{Int64: l.started, Valid: true}
	r.leaseUntil = sql.NullInt64{Int64: l.until, Valid: true}
	return r.fill(j)
}

// args returns dest in r's slice, with room for the extra destinations
// that withHistory and tagScanner append.
func (r *rowScan) args(dest ...any) []any {
	if r.dest == nil {
		r.dest = make([]any, 0, len(dest)+2)
	}
	r.dest = append(r.dest[:0], dest...)
	return r.dest
}

// fill sets the fields of j that r scanned, and returns j and its seq.
func (r *rowScan) fill(j *broker.Job) (*broker.Job, int64, error) {
	j.Data, j.Result, j.Progress = raw(r.data), raw(r.result), raw(r.progress)
	if r.headers.Valid {
		if err := json.Unmarshal([]byte(r.headers.String), &j.Headers); err != nil {
			return nil, 0, fmt.Errorf("decode headers of job %s: %w", j.ID, err)
		}
	}
	j.UniqueKey = r.uniqueKey.String
	j.Timeout = time.Duration(r.timeout)
	j.State = broker.State(r.state)
	j.CreatedAt = time.UnixMilli(r.created)
	j.RunAt = time.UnixMilli(r.runAt)
	j.ExpiresAt = optTime(r.expires)
	j.StartedAt = optTime(r.started)
	j.FinishedAt = optTime(r.finished)
	if j.State == broker.StateActive {
		j.LeaseToken = r.token
		j.LeaseUntil = optTime(r.leaseUntil)
	}
	return j, r.seq, nil
}

// raw turns a scanned BLOB (already a copy) into a json.RawMessage; NULL
// stays nil.
func raw(b []byte) json.RawMessage {
	if b == nil {
		return nil
	}
	return json.RawMessage(b)
}

func optTime(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return time.UnixMilli(v.Int64)
}

// nullText stores s, or NULL when s is empty.
func nullText(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// nullBlob stores b, or NULL when b is empty.
func nullBlob(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return []byte(b)
}
