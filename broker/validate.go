package broker

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Name limits.
const (
	MaxQueueNameLen = 128
	MaxTypeLen      = 256
	MaxIDLen        = 256
	MaxKeyLen       = 512 // unique keys, tenant and company ids, header keys and values
	MaxHeaders      = 64
)

// ValidateQueueName checks a queue name: 1 to MaxQueueNameLen characters of
// letters, digits and "._-:". Braces are excluded because the Redis broker
// uses them as hash tags.
func ValidateQueueName(q string) error { return validateName("queue name", q, MaxQueueNameLen) }

// validateName checks a name that becomes part of Redis keys and job ids:
// 1 to max bytes of letters, digits and "._-:"; what names the kind.
func validateName(what, s string, max int) error {
	if s == "" {
		return fmt.Errorf("%s is empty", what)
	}
	if len(s) > max {
		return fmt.Errorf("%s is %d bytes long, the limit is %d", what, len(s), max)
	}
	for i, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._-:", r)) {
			return fmt.Errorf("%s %q has %q at byte %d (allowed: letters, digits and . _ - :)", what, s, r, i)
		}
	}
	return nil
}

func checkText(field, s string, max int, required bool) error {
	if s == "" {
		if required {
			return fmt.Errorf("%s is empty", field)
		}
		return nil
	}
	if len(s) > max {
		return fmt.Errorf("%s is %d bytes long, the limit is %d", field, len(s), max)
	}
	// Fast path: printable ASCII, the common case, needs one pass.
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f {
			return checkTextSlow(field, s)
		}
	}
	return nil
}

func checkTextSlow(field, s string) error {
	if !utf8.ValidString(s) {
		return fmt.Errorf("%s is not valid UTF-8", field)
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%s %q contains a control character", field, s)
		}
	}
	return nil
}

// validateHeaders checks a job's headers, or those a failure adds.
func validateHeaders(h map[string]string) error {
	if len(h) > MaxHeaders {
		return fmt.Errorf("%d headers, the limit is %d", len(h), MaxHeaders)
	}
	for k, v := range h {
		if err := checkText("header name", k, MaxKeyLen, true); err != nil {
			return err
		}
		if len(v) > MaxKeyLen || !utf8.ValidString(v) {
			return fmt.Errorf("value of %q is longer than %d bytes or not UTF-8", k, MaxKeyLen)
		}
	}
	return nil
}

// Validate checks p and returns an *InvalidError (Index -1) naming the
// first bad field.
func (p *JobInsertParams) Validate() error {
	bad := func(field, format string, args ...any) error {
		return &InvalidError{Index: -1, Field: field, Reason: fmt.Sprintf(format, args...)}
	}
	if p == nil {
		return bad("job", "is nil")
	}
	if err := ValidateQueueName(p.Queue); err != nil {
		return bad("queue", "%v", err)
	}
	if err := checkText("type", p.Type, MaxTypeLen, true); err != nil {
		return bad("type", "%v", err)
	}
	if err := checkText("id", p.ID, MaxIDLen, true); err != nil {
		return bad("id", "%v", err)
	}
	if len(p.Data) > MaxDataBytes {
		return bad("data", "payload is %d bytes, the limit is %d", len(p.Data), MaxDataBytes)
	}
	if len(p.Data) > 0 && !json.Valid(p.Data) {
		return bad("data", "payload is not valid JSON")
	}
	if p.Priority != 0 && (p.Priority < MinPriority || p.Priority > MaxPriority) {
		return bad("priority", "%d is outside [%d, %d] (0 means the default, %d)", p.Priority, MinPriority, MaxPriority, DefaultPriority)
	}
	if p.MaxAttempts < 1 {
		return bad("max_attempts", "%d is below 1", p.MaxAttempts)
	}
	for _, f := range [...]struct{ name, v string }{{"tenant_id", p.TenantID}, {"company_id", p.CompanyID}, {"unique_key", p.UniqueKey}} {
		if err := checkText(f.name, f.v, MaxKeyLen, false); err != nil {
			return bad(f.name, "%v", err)
		}
	}
	if err := validateHeaders(p.Headers); err != nil {
		return bad("headers", "%v", err)
	}
	for _, f := range [...]struct {
		name string
		d    time.Duration
	}{{"timeout", p.Timeout}, {"delay", p.Delay}, {"ttl", p.TTL}} {
		if f.d < 0 {
			return bad(f.name, "%v is negative", f.d)
		}
	}
	if p.MaxQueueLength < 0 {
		return bad("max_queue_length", "%d is negative", p.MaxQueueLength)
	}
	return nil
}

// ValidateBatch validates each job and checks they share one queue. The
// error names the index of the first bad job.
func ValidateBatch(ps []*JobInsertParams) error {
	if len(ps) == 0 {
		return &InvalidError{Index: -1, Field: "jobs", Reason: "batch is empty"}
	}
	for i, p := range ps {
		if err := p.Validate(); err != nil {
			ie := err.(*InvalidError)
			ie.Index = i
			return ie
		}
		if p.Queue != ps[0].Queue {
			return &InvalidError{Index: i, Field: "queue", Reason: fmt.Sprintf("%q differs from %q: a batch must target one queue", p.Queue, ps[0].Queue)}
		}
	}
	return nil
}

// Validate checks fetch parameters.
func (p *JobFetchParams) Validate() error {
	if err := ValidateQueueName(p.Queue); err != nil {
		return fmt.Errorf("%w: fetch: %v", ErrInvalidJob, err)
	}
	if p.Limit < 1 || p.Limit > 1000 {
		return fmt.Errorf("%w: fetch: limit %d is outside [1, 1000]", ErrInvalidJob, p.Limit)
	}
	if p.LeaseDuration <= 0 {
		return fmt.Errorf("%w: fetch: lease duration %v must be positive", ErrInvalidJob, p.LeaseDuration)
	}
	return nil
}

// Validate checks list parameters.
func (p *JobListParams) Validate() error {
	if p == nil {
		return errNilParams("list")
	}
	if err := ValidateQueueName(p.Queue); err != nil {
		return fmt.Errorf("%w: list: %v", ErrInvalidJob, err)
	}
	if !p.State.Valid() {
		return fmt.Errorf("%w: list: unknown state %q", ErrInvalidJob, p.State)
	}
	if p.Offset < 0 || p.Limit < 0 || p.Limit > 1000 {
		return fmt.Errorf("%w: list: offset %d / limit %d out of range (limit 0..1000)", ErrInvalidJob, p.Offset, p.Limit)
	}
	if p.After != "" && p.Offset != 0 {
		return fmt.Errorf("%w: list: offset %d given with a cursor (After): use one or the other", ErrInvalidJob, p.Offset)
	}
	return nil
}

// InScope reports whether a job of tenant jobTenant is visible to a call
// scoped to tenant scope (see the package doc): every job is visible to an
// unscoped call (scope ""), and to a scoped call only its own tenant's jobs,
// never a job with no tenant.
func InScope(scope, jobTenant string) bool { return scope == "" || scope == jobTenant }

// errNilParams is the error of a call given nil params.
func errNilParams(op string) error {
	return fmt.Errorf("%w: %s: params are nil", ErrInvalidJob, op)
}

// Validate checks the params of JobGet: they must not be nil. A queue name
// or id that no job can have is not invalid: it is ErrNotFound.
func (p *JobGetParams) Validate() error { return checkNil(p == nil, "get job") }

// Validate checks the params of JobCancel; see JobGetParams.Validate.
func (p *JobCancelParams) Validate() error { return checkNil(p == nil, "cancel job") }

// Validate checks the params of JobRetry; see JobGetParams.Validate.
func (p *JobRetryParams) Validate() error { return checkNil(p == nil, "retry job") }

// Validate checks the params of JobDelete; see JobGetParams.Validate.
func (p *JobDeleteParams) Validate() error { return checkNil(p == nil, "delete job") }

// Validate checks the params of QueueStats: a valid queue name.
func (p *QueueStatsParams) Validate() error {
	if p == nil {
		return errNilParams("queue stats")
	}
	if err := ValidateQueueName(p.Queue); err != nil {
		return fmt.Errorf("%w: queue stats: %v", ErrInvalidJob, err)
	}
	return nil
}

func checkNil(isNil bool, op string) error {
	if isNil {
		return errNilParams(op)
	}
	return nil
}

// Validate checks a failure's own fields (not its lease: the broker judges
// that) and returns an error wrapping ErrInvalidJob naming the first bad
// one.
func (p *JobFailParams) Validate() error {
	if p == nil {
		return fmt.Errorf("%w: params are nil", ErrInvalidJob)
	}
	if p.RetryDelay < 0 {
		return fmt.Errorf("%w: retry delay %v is negative", ErrInvalidJob, p.RetryDelay)
	}
	if p.MaxAttempts < 0 {
		return fmt.Errorf("%w: max attempts %d is negative", ErrInvalidJob, p.MaxAttempts)
	}
	if err := validateHeaders(p.Headers); err != nil {
		return fmt.Errorf("%w: headers: %v", ErrInvalidJob, err)
	}
	return nil
}

// BadCursorError is the error of a JobList given an After it cannot have
// returned: the broker names it with the cursor.
func BadCursorError(after string) error {
	return fmt.Errorf("%w: list: cursor (After) %q is not one this broker returned", ErrInvalidJob, after)
}
