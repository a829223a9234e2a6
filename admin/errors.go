package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"

	"github.com/aibos/worker/broker"
)

// Error is the API's one error shape, written as
//
//	{"error":{"code":"not_found","message":"job \"j1\" not found","field":"id"}}
//
// with Status as the HTTP status. Handlers return it (or any error, which
// statusOf maps) and the server writes it.
type Error struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
	// Field names the request field at fault (a JSON path, query
	// parameter or header), when one is.
	Field string `json:"field,omitempty"`
}

func (e *Error) Error() string { return e.Message }

// The error codes, one per status the API answers with.
const (
	CodeBadRequest      = "bad_request"          // 400
	CodeUnauthenticated = "unauthenticated"      // 401
	CodeForbidden       = "forbidden"            // 403
	CodeNotFound        = "not_found"            // 404
	CodeConflict        = "conflict"             // 409: duplicate, wrong state
	CodeTooLarge        = "too_large"            // 413
	CodeInvalid         = "invalid"              // 422: schema or validation
	CodeSchema          = "schema"               // 422: the payload fails its job type's JSON Schema
	CodeTooMany         = "too_many_requests"    // 429
	CodeUnavailable     = "unavailable"          // 503: the broker is unreachable
	CodeInternal        = "internal"             // 500
	CodeQueueFull       = "queue_full"           // 429 as well: QUEUE_MAX_LENGTH reached
	CodeMethod          = "method_not_allowed"   // 405
	CodeUnsupported     = "unsupported_media"    // 415
	CodeTimeout         = "timeout"              // 503 when the request's deadline passed
	CodeIdempotency     = "idempotency_mismatch" // 422: a key reused with another body
	CodeNotAudited      = "not_audited"          // 503: the action was done but its audit entry could not be recorded
)

// Errorf returns an *Error with the status and code, naming field.
func Errorf(status int, code, field, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Field: field, Message: fmt.Sprintf(format, args...)}
}

// errorFor maps any error a handler returns to the API's error shape: an
// *Error as is, the broker's sentinels to their status (the table below),
// a failed connection to the store (a network error, or one cut short) to
// 503, anything else to 500 with a message that reveals nothing internal.
func errorFor(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	for _, m := range sentinelStatus {
		if errors.Is(err, m.err) {
			return &Error{Status: m.status, Code: m.code, Message: err.Error()}
		}
	}
	var netErr net.Error
	if errors.As(err, &netErr) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return &Error{Status: http.StatusServiceUnavailable, Code: CodeUnavailable, Message: "the store is unreachable"}
	}
	return &Error{Status: http.StatusInternalServerError, Code: CodeInternal, Message: "internal error"}
}

// sentinelStatus is the one error → HTTP status table. A job of another
// tenant is ErrNotFound in the seam, so it is 404 here too.
var sentinelStatus = []struct {
	err    error
	status int
	code   string
}{
	{broker.ErrNotFound, http.StatusNotFound, CodeNotFound},
	{broker.ErrDuplicate, http.StatusConflict, CodeConflict},
	{broker.ErrWrongState, http.StatusConflict, CodeConflict},
	{broker.ErrQueueFull, http.StatusTooManyRequests, CodeQueueFull},
	{broker.ErrInvalidJob, http.StatusBadRequest, CodeBadRequest},
	{broker.ErrClosed, http.StatusServiceUnavailable, CodeUnavailable},
	{ErrUnauthenticated, http.StatusUnauthorized, CodeUnauthenticated},
}

// writeError writes err in the API's error shape.
func writeError(w http.ResponseWriter, err error) {
	e := errorFor(err)
	if e.Status == 0 {
		e.Status = http.StatusInternalServerError
	}
	writeJSON(w, e.Status, struct {
		Error *Error `json:"error"`
	}{e})
}

// writeJSON writes v as the JSON body with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// decodeJSON decodes a request body into v: JSON only, at most the
// route's body limit (413 beyond, at once when Content-Length says so), no
// unknown fields (400 naming the field), exactly one value.
func (s *Server) decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		return Errorf(http.StatusUnsupportedMediaType, CodeUnsupported, "Content-Type", "the body must be application/json, not %q", ct)
	}
	limit := s.maxBody(r.Pattern)
	if r.ContentLength > limit {
		return tooLargeError(limit)
	}
	body := http.MaxBytesReader(w, r.Body, limit)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Errorf(http.StatusBadRequest, CodeBadRequest, "", "the body must hold one JSON value")
	}
	return nil
}

// tooLargeError is the 413 of a body over limit bytes.
func tooLargeError(limit int64) *Error {
	return Errorf(http.StatusRequestEntityTooLarge, CodeTooLarge, "", "the body is larger than the route's limit of %d bytes", limit)
}

func decodeError(err error) *Error {
	var tooLarge *http.MaxBytesError
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &tooLarge):
		return tooLargeError(tooLarge.Limit)
	case errors.Is(err, io.EOF):
		return Errorf(http.StatusBadRequest, CodeBadRequest, "", "the body is empty; want a JSON object")
	case errors.As(err, &syntax):
		return Errorf(http.StatusBadRequest, CodeBadRequest, "", "the body is not valid JSON at byte %d", syntax.Offset)
	case errors.As(err, &typ):
		return Errorf(http.StatusBadRequest, CodeBadRequest, typ.Field, "%s must be %s, not %s", typ.Field, typ.Type, typ.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		f := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return Errorf(http.StatusBadRequest, CodeBadRequest, f, "unknown field %q", f)
	}
	return Errorf(http.StatusBadRequest, CodeBadRequest, "", "the body is not valid JSON: %v", err)
}
