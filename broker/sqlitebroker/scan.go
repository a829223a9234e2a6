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

// scanner is a *sql.Row or *sql.Rows.
type scanner interface{ Scan(dest ...any) error }

// scanJob reads one row of jobColumns. It also returns the job's seq.
func scanJob(s scanner) (*broker.Job, int64, error) {
	var (
		j                                  broker.Job
		seq, timeout, created, runAt       int64
		token                              int64
		headers, uniqueKey                 sql.NullString
		expires, started, finished, leaseU sql.NullInt64
		data, result, progress             []byte
		state                              string
	)
	err := s.Scan(&seq, &j.ID, &j.Queue, &j.Type, &data, &j.Priority, &j.MaxAttempts, &j.Attempt,
		&j.TenantID, &j.CompanyID, &headers, &uniqueKey, &timeout, &state, &created, &runAt,
		&expires, &started, &finished, &j.LastError, &result, &progress, &token, &leaseU, &j.WorkerID, &j.DeleteOnComplete)
	if err != nil {
		return nil, 0, err
	}
	j.Data, j.Result, j.Progress = raw(data), raw(result), raw(progress)
	if headers.Valid {
		if err := json.Unmarshal([]byte(headers.String), &j.Headers); err != nil {
			return nil, 0, fmt.Errorf("decode headers of job %s: %w", j.ID, err)
		}
	}
	j.UniqueKey = uniqueKey.String
	j.Timeout = time.Duration(timeout)
	j.State = broker.State(state)
	j.CreatedAt = time.UnixMilli(created)
	j.RunAt = time.UnixMilli(runAt)
	j.ExpiresAt = optTime(expires)
	j.StartedAt = optTime(started)
	j.FinishedAt = optTime(finished)
	if j.State == broker.StateActive {
		j.LeaseToken = token
		j.LeaseUntil = optTime(leaseU)
	}
	return &j, seq, nil
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
