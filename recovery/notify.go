package recovery

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/aibos/worker/broker"
)

// Notification describes one failed job. It carries metadata and the
// error text, never the job's payload. For an encrypted job the text is
// withheld unless the Policy trusts its Notifier (Policy.TrustedNotifier).
type Notification struct {
	JobID     string `json:"job_id"`
	Queue     string `json:"queue"`
	Type      string `json:"type"`
	TenantID  string `json:"tenant_id,omitempty"`
	CompanyID string `json:"company_id,omitempty"`
	Attempt   int    `json:"attempt"`
	ErrorType string `json:"error_type,omitempty"`
	Error     string `json:"error"`
	// Withheld says Error describes the error without its message: the
	// job is encrypted and the Notifier is not trusted with it.
	Withheld bool         `json:"withheld,omitempty"`
	Action   Action       `json:"action"`
	State    broker.State `json:"state"` // scheduled (will retry) or dead
	Time     time.Time    `json:"time"`
}

// Notifier delivers notifications. Notify is called from the failed job's
// goroutine after its failure is recorded, so it should be quick and honour
// ctx; it must be safe for concurrent use.
type Notifier interface {
	Notify(ctx context.Context, n Notification) error
}

// NotifierFunc adapts a function to a Notifier.
type NotifierFunc func(ctx context.Context, n Notification) error

// Notify calls f.
func (f NotifierFunc) Notify(ctx context.Context, n Notification) error { return f(ctx, n) }

// SlogNotifier logs each notification at error level.
type SlogNotifier struct {
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Notify logs n.
func (s SlogNotifier) Notify(ctx context.Context, n Notification) error {
	l := s.Logger
	if l == nil {
		l = slog.Default()
	}
	l.ErrorContext(ctx, "job failure notification",
		"job_id", n.JobID, "queue", n.Queue, "type", n.Type, "attempt", n.Attempt, "tenant_id", n.TenantID,
		"error_type", n.ErrorType, "action", string(n.Action), "state", string(n.State), "err", n.Error)
	return nil
}

// WebhookNotifier POSTs each notification as JSON to a URL.
type WebhookNotifier struct {
	// URL receives the POST. Required.
	URL string
	// Client sends the request. Defaults to a client with Timeout.
	Client *http.Client
	// Timeout bounds one delivery. Defaults to 5s.
	Timeout time.Duration
	// Header is added to every request (e.g. an Authorization token).
	Header http.Header
}

// Notify POSTs n; a response other than 2xx is an error.
func (w *WebhookNotifier) Notify(ctx context.Context, n Notification) error {
	if w.URL == "" {
		return fmt.Errorf("webhook notify: url is empty")
	}
	body, err := json.Marshal(n)
	if err != nil {
		return fmt.Errorf("webhook notify: encode notification: %w", err)
	}
	timeout := w.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("webhook notify: build request: %w", err)
	}
	for k, vs := range w.Header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	req.Header.Set("Content-Type", "application/json")
	c := w.Client
	if c == nil {
		c = &http.Client{Timeout: timeout}
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("webhook notify: post to %s: %w", req.URL.Redacted(), err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("webhook notify: post to %s: status %s", req.URL.Redacted(), resp.Status)
	}
	return nil
}
