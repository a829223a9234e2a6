package recovery

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/aibos/worker/retry"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// dbError classifies itself through an ErrorType method.
type dbError struct{ table string }

func (e dbError) Error() string     { return "deadlock on " + e.table }
func (e dbError) ErrorType() string { return DatabaseError }

func TestDecide(t *testing.T) {
	p := DefaultPolicy()
	if err := p.Validate(); err != nil {
		t.Fatalf("DefaultPolicy invalid: %v", err)
	}
	tests := []struct {
		name    string
		err     error
		class   string
		action  Action
		max     int
		delay   time.Duration
		notify  bool
		matched bool
	}{
		{"classified", Classify(NetworkError, errors.New("reset")), NetworkError, Retry, 10, 5 * time.Second, false, true},
		{"wrapped classified", fmt.Errorf("call bank: %w", Classify(ValidationError, errors.New("bad"))), ValidationError, Retry, 3, 0, false, true},
		{"error type method", fmt.Errorf("post ledger: %w", dbError{"ledger"}), DatabaseError, Retry, 5, 2 * time.Second, false, true},
		{"fail and notify", Classify(BusinessLogicError, errors.New("negative total")), BusinessLogicError, Fail, 0, 0, true, true},
		{"unknown class", Classify("CosmicRay", errors.New("flip")), "CosmicRay", Retry, 0, 0, false, false},
		{"unclassified", errors.New("plain"), "", Retry, 0, 0, false, false},
		// retry.NoRetry (= worker.NoRetry) fails whatever the class says.
		{"no retry, classified", retry.NoRetry(Classify(NetworkError, errors.New("reset"))), NetworkError, Fail, 10, 5 * time.Second, false, true},
		{"classified, then no retry", Classify(DatabaseError, retry.NoRetry(errors.New("bad row"))), DatabaseError, Fail, 5, 2 * time.Second, false, true},
		{"no retry, wrapped", fmt.Errorf("load: %w", retry.NoRetry(errors.New("bad"))), "", Fail, 0, 0, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := p.Decide(tt.err)
			s := d.Strategy
			if d.Class != tt.class || d.Matched != tt.matched || s.Action != tt.action || s.MaxAttempts != tt.max || s.Delay != tt.delay || s.Notify != tt.notify {
				t.Fatalf("Decide(%v) = %+v", tt.err, d)
			}
		})
	}
	custom := &Policy{Default: Strategy{Action: Fail, Notify: true}}
	if d := custom.Decide(errors.New("x")); d.Strategy.Action != Fail || !d.Strategy.Notify {
		t.Fatalf("Decide with a custom default = %+v, want fail and notify", d)
	}
	if Classify(NetworkError, nil) != nil {
		t.Fatal("Classify(class, nil) is not nil")
	}
	if err := Classify(NetworkError, errors.New("reset")); err.Error() != "reset" || ErrorType(err) != NetworkError {
		t.Fatalf("Classify: message %q, type %q", err.Error(), ErrorType(err))
	}
}

func TestValidate(t *testing.T) {
	bad := []*Policy{
		{Strategies: []Strategy{{Action: Retry}}},
		{Strategies: []Strategy{{ErrorType: "A"}, {ErrorType: "A"}}},
		{Strategies: []Strategy{{ErrorType: "A", Action: "maybe"}}},
		{Strategies: []Strategy{{ErrorType: "A", MaxAttempts: -1}}},
		{Default: Strategy{Delay: -time.Second}},
	}
	for _, p := range bad {
		if err := p.Validate(); err == nil {
			t.Errorf("Validate(%+v) = nil, want an error", p)
		}
	}
}

func sample() Notification {
	return Notification{JobID: "j1", Queue: "invoices", Type: "invoice.post", TenantID: "t1", Attempt: 2,
		ErrorType: BusinessLogicError, Error: "negative total", Action: Fail, State: "dead", Time: time.Unix(1700000000, 0).UTC()}
}

func TestWebhookNotifierPostsJSON(t *testing.T) {
	got := make(chan Notification, 1)
	var auth, ctype string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth, ctype = r.Header.Get("Authorization"), r.Header.Get("Content-Type")
		var n Notification
		if r.Method != http.MethodPost || json.NewDecoder(r.Body).Decode(&n) != nil {
			http.Error(w, "bad", http.StatusBadRequest)
			return
		}
		got <- n
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	w := &WebhookNotifier{URL: srv.URL, Header: http.Header{"Authorization": {"Bearer tok"}}}
	if err := w.Notify(context.Background(), sample()); err != nil {
		t.Fatalf("Notify: %v", err)
	}
	if n := <-got; n != sample() || auth != "Bearer tok" || ctype != "application/json" {
		t.Fatalf("received %+v with Authorization %q, Content-Type %q", n, auth, ctype)
	}
}

func TestWebhookNotifierErrors(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/500":
			http.Error(w, "down", http.StatusInternalServerError)
		case "/slow":
			select {
			case <-r.Context().Done():
			case <-release:
			}
		}
	}))
	defer srv.Close()
	defer close(release)
	err := (&WebhookNotifier{URL: srv.URL + "/500"}).Notify(context.Background(), sample())
	if err == nil || !strings.Contains(err.Error(), "500") {
		t.Fatalf("Notify to a 500 endpoint = %v, want an error naming the status", err)
	}
	start := time.Now()
	err = (&WebhookNotifier{URL: srv.URL + "/slow", Timeout: 100 * time.Millisecond}).Notify(context.Background(), sample())
	if err == nil || time.Since(start) > 5*time.Second {
		t.Fatalf("Notify to a hanging endpoint with a 100ms timeout = %v after %v, want an error soon", err, time.Since(start))
	}
	if err := (&WebhookNotifier{}).Notify(context.Background(), sample()); err == nil {
		t.Fatal("Notify with no URL = nil")
	}
}

func TestSlogNotifierAndPolicyNotify(t *testing.T) {
	var buf bytes.Buffer
	p := &Policy{Notifier: SlogNotifier{Logger: slog.New(slog.NewJSONHandler(&buf, nil))}}
	if err := p.Notify(context.Background(), sample()); err != nil {
		t.Fatalf("Notify: %v", err)
	}
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatalf("log line %q: %v", buf.String(), err)
	}
	for k, v := range map[string]any{"job_id": "j1", "queue": "invoices", "type": "invoice.post", "tenant_id": "t1",
		"attempt": 2.0, "error_type": BusinessLogicError, "state": "dead", "level": "ERROR"} {
		if rec[k] != v {
			t.Fatalf("log attribute %s = %v, want %v (line %s)", k, rec[k], v, buf.String())
		}
	}
	failing := &Policy{Notifier: NotifierFunc(func(context.Context, Notification) error { return errors.New("smtp down") })}
	if err := failing.Notify(context.Background(), sample()); err == nil || !strings.Contains(err.Error(), "j1") {
		t.Fatalf("Notify through a failing notifier = %v, want an error naming the job", err)
	}
}
