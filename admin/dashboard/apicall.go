package dashboard

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/aibos/worker/admin"
)

// recorder is the http.ResponseWriter an in-process API call writes to.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (w *recorder) Header() http.Header { return w.header }
func (w *recorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.body.Write(b)
}
func (w *recorder) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
}

// callAPI sends method path to the API in process, as the browser's
// request r with bearer token, and decodes a 2xx answer into out (ignored
// if nil). An error answer is returned as *admin.Error.
func (d *Dashboard) callAPI(ctx context.Context, r *http.Request, token, method, path string, body, out any) error {
	var rd io.Reader = http.NoBody
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("encode the body of %s %s: %w", method, path, err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, path, rd)
	if err != nil {
		return fmt.Errorf("make the request %s %s: %w", method, path, err)
	}
	// The API counts failed authentications against the client's
	// address and the audit trail records it: both are the browser's.
	req.RemoteAddr = r.RemoteAddr
	req.Host = r.Host
	req.TLS = r.TLS
	req.Header.Set("User-Agent", r.UserAgent())
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	rec := &recorder{header: http.Header{}}
	d.cfg.API.ServeHTTP(rec, req)
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	if rec.status >= 200 && rec.status < 300 {
		if out == nil || rec.status == http.StatusNoContent {
			return nil
		}
		if err := json.Unmarshal(rec.body.Bytes(), out); err != nil {
			return fmt.Errorf("decode the answer to %s %s: %w", method, path, err)
		}
		return nil
	}
	var env struct {
		Error *admin.Error `json:"error"`
	}
	if err := json.Unmarshal(rec.body.Bytes(), &env); err != nil || env.Error == nil {
		return &admin.Error{Status: rec.status, Code: admin.CodeInternal, Message: fmt.Sprintf("%s %s: status %d", method, path, rec.status)}
	}
	env.Error.Status = rec.status
	return env.Error
}

// apiStatus returns the status of an API error, or 500.
func apiStatus(err error) int {
	var e *admin.Error
	if errors.As(err, &e) && e.Status != 0 {
		return e.Status
	}
	return http.StatusInternalServerError
}
