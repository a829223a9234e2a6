package sqlitebroker

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/aibos/worker/broker"
)

// attemptsAfter returns the SQL expression of an active row's attempts
// column (migration 0012) with the attempt ending now appended, the oldest
// entry dropped beyond broker.MaxAttemptHistory. finished, outcome and
// errText ("" for none) are SQL expressions evaluated more than once: use
// numbered placeholders (?NNN), which may repeat. The attempt number,
// worker and start come from the row as it was before the statement, which
// is how SQLite evaluates every SET expression. An entry is the compact
// array broker.DecodeAttemptRecord reads. The entry is built as text, and a
// job's first one is stored without parsing any JSON. Completion does not
// write it (sqlComplete): readers derive a completed attempt (attemptsRead).
func attemptsAfter(finished, outcome, errText string) string {
	entry := `'[' || attempt || ',' || json_quote(worker_id) || ',' || coalesce(started_at, 0) || ',' || ` +
		finished + ` || ',' || json_quote(` + outcome + `)`
	if errText != "" {
		entry += ` || ',' || json_quote(` + errText + `)`
	}
	entry += ` || ']'`
	return `CASE WHEN attempts IS NULL OR attempts = '[]' THEN '[' || ` + entry + ` || ']'
		WHEN json_array_length(attempts) < ` + strconv.Itoa(broker.MaxAttemptHistory) + `
			THEN substr(attempts, 1, length(attempts) - 1) || ',' || ` + entry + ` || ']'
		ELSE json_insert(json_remove(attempts, '$[0]'), '$[#]', json(` + entry + `)) END`
}

// attemptsRead is the SQL expression of a job's history as JobGet shows it.
// A completion leaves its attempt out of the column (sqlComplete), so for a
// completed job whose column exists but does not end with a completed
// attempt, it appends that attempt from the row. Jobs completed before
// migration 0012 have NULL (no history, as they showed before); jobs
// completed by a release that still appended the attempt end with it.
var attemptsRead = `CASE WHEN state = 'completed' AND attempts IS NOT NULL
		AND json_extract(attempts, '$[#-1][4]') IS NOT 'completed'
	THEN ` + attemptsAfter("finished_at", "'completed'", "") + ` ELSE attempts END`

// cancelAttempts is the attempts assignment of a cancel whose finish time
// is ?1: a job cancelled while active ends its attempt; cancelling a job
// that is not running ends none.
var cancelAttempts = `attempts = iif(state = 'active', ` + attemptsAfter("?1", "'cancelled'", "") + `, attempts)`

// withHistory scans a row of jobColumns followed by the attempts column.
type withHistory struct {
	s    scanner
	hist *sql.NullString
}

func (w withHistory) Scan(dest ...any) error { return w.s.Scan(append(dest, w.hist)...) }

// decodeHistory reads a job's attempts column into j.Attempts.
func decodeHistory(j *broker.Job, hist sql.NullString) error {
	if !hist.Valid {
		return nil
	}
	var entries []json.RawMessage
	if err := json.Unmarshal([]byte(hist.String), &entries); err != nil {
		return fmt.Errorf("decode attempt history of job %s: %w", j.ID, err)
	}
	j.Attempts = make([]broker.AttemptRecord, 0, len(entries))
	for _, e := range entries {
		a, err := broker.DecodeAttemptRecord(e)
		if err != nil {
			return fmt.Errorf("job %s: %w", j.ID, err)
		}
		j.Attempts = append(j.Attempts, a)
	}
	return nil
}
