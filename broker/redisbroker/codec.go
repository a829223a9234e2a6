package redisbroker

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aibos/worker/broker"
)

// appendBody appends the job body lua/lib.lua describes, without the
// leading created time the insert script adds: "m|p|to|lt|ltn|lco|lh|"
// then type, tenant, company, headers JSON and data.
func appendBody(dst []byte, p *broker.JobInsertParams, headers []byte) []byte {
	for _, n := range [...]int64{int64(p.MaxAttempts), int64(broker.PriorityOrDefault(p.Priority)), int64(p.Timeout),
		int64(len(p.Type)), int64(len(p.TenantID)), int64(len(p.CompanyID)), int64(len(headers))} {
		dst = strconv.AppendInt(dst, n, 10)
		dst = append(dst, '|')
	}
	dst = append(dst, p.Type...)
	dst = append(dst, p.TenantID...)
	dst = append(dst, p.CompanyID...)
	dst = append(dst, headers...)
	return append(dst, p.Data...)
}

// bodyNumbers is the count of '|'-terminated numbers a stored body starts
// with: created, then the seven appendBody writes.
const bodyNumbers = 8

// decodeBody sets the fields a stored body holds.
func decodeBody(j *broker.Job, body string) error {
	var n [bodyNumbers]int64
	rest := body
	for i := range n {
		end := strings.IndexByte(rest, '|')
		if end < 0 {
			return fmt.Errorf("body has %d of its %d leading numbers", i, bodyNumbers)
		}
		v, err := strconv.ParseInt(rest[:end], 10, 64)
		if err != nil {
			return fmt.Errorf("body number %d: %w", i, err)
		}
		n[i] = v
		rest = rest[end+1:]
	}
	lt, ltn, lco, lh := n[4], n[5], n[6], n[7]
	if lt < 0 || ltn < 0 || lco < 0 || lh < 0 || lt+ltn+lco+lh > int64(len(rest)) {
		return fmt.Errorf("body lengths %d+%d+%d+%d exceed its %d remaining bytes", lt, ltn, lco, lh, len(rest))
	}
	j.CreatedAt = fromMillis(n[0])
	j.RunAt = j.CreatedAt
	j.MaxAttempts = int(n[1])
	j.Priority = broker.StoredPriority(int(n[2]))
	j.Timeout = time.Duration(n[3])
	j.State = broker.StatePending
	j.Type, rest = rest[:lt], rest[lt:]
	j.TenantID, rest = rest[:ltn], rest[ltn:]
	j.CompanyID, rest = rest[:lco], rest[lco:]
	if lh > 0 {
		if err := json.Unmarshal([]byte(rest[:lh]), &j.Headers); err != nil {
			return fmt.Errorf("body headers: %w", err)
		}
	}
	if rest = rest[lh:]; rest != "" {
		j.Data = json.RawMessage(rest)
	}
	return nil
}

// decodeJobReply decodes a job as the scripts return it (lua/lib.lua):
// {id, body (possibly empty), flat HGETALL array of the state hash}.
func decodeJobReply(queue string, reply any) (*broker.Job, error) {
	arr, ok := reply.([]any)
	if !ok || len(arr) != 3 {
		return nil, fmt.Errorf("decode job: reply is %T of length %d, want {id, body, fields}", reply, lenOf(reply))
	}
	id, _ := arr[0].(string)
	body, _ := arr[1].(string)
	fields, _ := arr[2].([]any)
	return decodeJobParts(queue, id, body, fields)
}

// decodeJobParts builds a job from its body (may be empty) and the flat
// field/value array of its state hash (may be empty), which overrides it.
func decodeJobParts(queue, id, body string, fields []any) (*broker.Job, error) {
	if id == "" {
		return nil, fmt.Errorf("decode job: no id")
	}
	if body == "" && len(fields) == 0 {
		return nil, fmt.Errorf("decode job %s: neither body nor state", id)
	}
	if len(fields)%2 != 0 {
		return nil, fmt.Errorf("decode job %s: %d state values, want field/value pairs", id, len(fields))
	}
	j := &broker.Job{ID: id, Queue: queue}
	if body != "" {
		if err := decodeBody(j, body); err != nil {
			return nil, fmt.Errorf("decode job %s: %w", id, err)
		}
	}
	for i := 0; i < len(fields); i += 2 {
		k, _ := fields[i].(string)
		v, _ := fields[i+1].(string)
		if err := setField(j, k, v); err != nil {
			return nil, fmt.Errorf("decode job %s: field %q: %w", id, k, err)
		}
	}
	if j.State != broker.StateActive {
		j.LeaseUntil = time.Time{} // a lease ends with the attempt (complete.lua leaves 'lu')
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
		j.Priority = broker.StoredPriority(j.Priority)
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
		j.UniqueKey = broker.UniqueKeyOfSlot(v) // stored as its tenant's slot
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
	case "dc":
		j.DeleteOnComplete = v == "1"
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
		j, err := decodeJobReply(queue, r)
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
