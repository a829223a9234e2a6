package sqlitebroker

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/aibos/worker/broker"
)

// appendAttempt returns the SET assignment that records the attempt of an
// active row ending now in its history column (migration 0012), dropping
// the oldest entry beyond broker.MaxAttemptHistory. finished, outcome and
// errText are SQL expressions (placeholders allowed, used once each, in
// that order); the attempt number, worker and start come from the row as it
// was before the statement, which is how SQLite evaluates every SET
// expression. An entry is the compact array broker.DecodeAttemptRecord reads.
func appendAttempt(finished, outcome, errText string) string {
	return `attempts = json_insert(iif(json_array_length(coalesce(attempts, '[]')) >= ` +
		strconv.Itoa(broker.MaxAttemptHistory) + `, json_remove(attempts, '$[0]'), coalesce(attempts, '[]')), '$[#]',
		json_array(attempt, worker_id, coalesce(started_at, 0), ` + finished + `, ` + outcome + `, ` + errText + `))`
}

// appendCancelled records the attempt of a job cancelled while active; the
// job's finish time is its one placeholder. Cancelling a job that is not
// running ends no attempt.
var appendCancelled = `attempts = iif(state = 'active', ` +
	strings.TrimPrefix(appendAttempt("?", "'cancelled'", "''"), "attempts = ") + `, attempts)`

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
