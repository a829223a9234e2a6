package httpproc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/recovery"
)

// maxErrorBytes bounds what is read of a failed call's body: only its
// error type is used.
const maxErrorBytes = 64 << 10

// callError is a failed call. Its message names the status and the error
// type the application gave, never the body (which may quote the payload).
type callError struct {
	op         string
	status     int    // 0: the call got no response
	class      string // the error type the body named, if any
	retry      bool
	retryAfter time.Duration // > 0: the response asked for this delay
	node       bool          // the instance looks down: try another
	err        error         // the transport's error, when status is 0
}

func (e *callError) Error() string {
	switch {
	case e.status == 0:
		return fmt.Sprintf("%s: %v", e.op, e.err)
	case e.class != "":
		return fmt.Sprintf("%s answered %d (%s)", e.op, e.status, e.class)
	}
	return fmt.Sprintf("%s answered %d", e.op, e.status)
}

func (e *callError) Unwrap() error { return e.err }

// NodeFailure reports whether the instance called looks down (no answer,
// or 502, 503, 504), so that a balancer fails over to another and counts
// the failure against this one.
func (e *callError) NodeFailure() bool { return e.node }

// transportError is a call that got no response. A context that ended
// is the job's deadline or cancellation, not the node's fault.
func transportError(op string, err error) *callError {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // its message repeats the URL, unredacted
	}
	node := !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
	return &callError{op: op, err: err, retry: true, node: node, class: recovery.NetworkError}
}

// readResponse reads resp: its body (bounded) on 2xx, else a *callError.
func readResponse(resp *http.Response, what string, maxResult int64, maxRetryAfter time.Duration, now time.Time) ([]byte, error) {
	s := resp.StatusCode
	if s >= 200 && s < 300 {
		body, err := io.ReadAll(io.LimitReader(resp.Body, maxResult+1))
		switch {
		case err != nil:
			return nil, &callError{op: "read answer of " + what, err: err, retry: true, class: recovery.NetworkError}
		case int64(len(body)) > maxResult:
			return nil, &callError{op: what, status: s, err: fmt.Errorf("answer exceeds %d bytes", maxResult)}
		case !json.Valid(body):
			return nil, nil // not JSON (or empty): no result
		}
		return body, nil
	}
	e := &callError{op: what, status: s, class: errorClass(resp.Body)}
	switch {
	case s == http.StatusRequestTimeout || s == http.StatusTooManyRequests || s >= 500:
		e.retry = true
		e.retryAfter = retryAfter(resp.Header.Get("Retry-After"), now, maxRetryAfter)
		e.node = s == http.StatusBadGateway || s == http.StatusServiceUnavailable || s == http.StatusGatewayTimeout
	}
	return nil, e
}

// errorClass returns the error type named by a body of the form
// {"error":{"type":"ValidationError",...}}, if it is a plain name.
func errorClass(body io.Reader) string {
	var v struct {
		Error struct {
			Type string `json:"type"`
		} `json:"error"`
	}
	if json.NewDecoder(io.LimitReader(body, maxErrorBytes)).Decode(&v) != nil {
		return ""
	}
	t := v.Error.Type
	if t == "" || len(t) > 64 || strings.IndexFunc(t, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '.' || r == '-')
	}) >= 0 {
		return "" // only names reach error messages and logs
	}
	return t
}

// retryAfter parses a Retry-After value (seconds or an HTTP date) into a
// delay in [0, limit]; 0 when absent or unparsable.
func retryAfter(v string, now time.Time, limit time.Duration) time.Duration {
	if v == "" {
		return 0
	}
	var d time.Duration
	if n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		if n > int64(limit/time.Second) {
			return limit
		}
		d = time.Duration(n) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	} else {
		return 0
	}
	return min(max(d, 0), limit)
}

// outcome turns a failed call into what the Manager should do.
func outcome(err error) error {
	var ce *callError
	if !errors.As(err, &ce) {
		// The balancer's own error: no instance could be called.
		return recovery.Classify(recovery.NetworkError, err)
	}
	if ce.class != "" {
		err = recovery.Classify(ce.class, err)
	}
	switch {
	case !ce.retry:
		return worker.NoRetry(err)
	case ce.retryAfter > 0:
		return worker.RetryAfter(ce.retryAfter, err)
	}
	return err
}
