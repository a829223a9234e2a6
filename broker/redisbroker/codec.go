package redisbroker

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/aibos/worker/broker"
)

// decodeJob turns the flat HGETALL array of a job hash into a Job. The field
// names are listed in lua/lib.lua.
func decodeJob(queue string, reply any) (*broker.Job, error) {
	arr, ok := reply.([]any)
	if !ok || len(arr) == 0 || len(arr)%2 != 0 {
		return nil, fmt.Errorf("decode job: reply is %T of length %d, want a field/value array", reply, lenOf(reply))
	}
	j := &broker.Job{Queue: queue}
	for i := 0; i < len(arr); i += 2 {
		k, _ := arr[i].(string)
		v, _ := arr[i+1].(string)
		if err := setField(j, k, v); err != nil {
			return nil, fmt.Errorf("decode job %s: field %q: %w", j.ID, k, err)
		}
	}
	if j.ID == "" {
		return nil, fmt.Errorf("decode job: hash has no id field")
	}
	return j, nil
}

func lenOf(v any) int {
	if a, ok := v.([]any); ok {
		return len(a)
	}
	return -1
}

func setField(j *broker.Job, k, v string) error {
	var err error
	switch k {
	case "id":
		j.ID = v
	case "t":
		j.Type = v
	case "d":
		j.Data = json.RawMessage(v)
	case "p":
		j.Priority, err = strconv.Atoi(v)
	case "m":
		j.MaxAttempts, err = strconv.Atoi(v)
	case "a":
		j.Attempt, err = strconv.Atoi(v)
	case "tn":
		j.TenantID = v
	case "co":
		j.CompanyID = v
	case "h":
		err = json.Unmarshal([]byte(v), &j.Headers)
	case "u":
		j.UniqueKey = v
	case "to":
		var ns int64
		ns, err = strconv.ParseInt(v, 10, 64)
		j.Timeout = time.Duration(ns)
	case "s":
		j.State = broker.State(v)
	case "c":
		j.CreatedAt, err = parseMillis(v)
	case "r":
		j.RunAt, err = parseMillis(v)
	case "e":
		j.ExpiresAt, err = parseMillis(v)
	case "st":
		j.StartedAt, err = parseMillis(v)
	case "f":
		j.FinishedAt, err = parseMillis(v)
	case "le":
		j.LastError = v
	case "res":
		j.Result = json.RawMessage(v)
	case "pg":
		j.Progress = json.RawMessage(v)
	case "tk":
		j.LeaseToken, err = strconv.ParseInt(v, 10, 64)
	case "lu":
		j.LeaseUntil, err = parseMillis(v)
	case "w":
		j.WorkerID = v
	}
	return err
}

func parseMillis(v string) (time.Time, error) {
	ms, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return time.Time{}, err
	}
	return fromMillis(ms), nil
}

func fromMillis(ms int64) time.Time { return time.UnixMilli(ms).UTC() }

// decodeJobs decodes the jobs of a script reply, from index first on.
func decodeJobs(queue string, reply []any, first int) ([]*broker.Job, error) {
	jobs := make([]*broker.Job, 0, max(len(reply)-first, 0))
	for _, r := range reply[min(first, len(reply)):] {
		j, err := decodeJob(queue, r)
		if err != nil {
			return nil, err
		}
		jobs = append(jobs, j)
	}
	return jobs, nil
}

// status reads the leading status string of a script reply.
func status(reply any) ([]any, string, error) {
	arr, ok := reply.([]any)
	if !ok || len(arr) == 0 {
		return nil, "", fmt.Errorf("unexpected script reply %T", reply)
	}
	s, ok := arr[0].(string)
	if !ok {
		return nil, "", fmt.Errorf("unexpected script status %T", arr[0])
	}
	return arr, s, nil
}

// str and num read a script reply element, tolerating a missing one.
func str(arr []any, i int) string {
	if i < len(arr) {
		s, _ := arr[i].(string)
		return s
	}
	return ""
}

func num(arr []any, i int) int64 {
	if i >= len(arr) {
		return 0
	}
	switch v := arr[i].(type) {
	case int64:
		return v
	case string:
		n, _ := strconv.ParseInt(v, 10, 64)
		return n
	}
	return 0
}

// leaseErr maps a lease script code to the documented per-job error.
func leaseErr(code int64) error {
	switch code {
	case 1:
		return nil
	case 0:
		return broker.ErrNotFound
	default:
		return broker.ErrLeaseLost
	}
}
