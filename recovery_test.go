package worker_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/internal/testbroker"
	"github.com/aibos/worker/recovery"
)

// redisBroker opens an isolated Redis broker for one test.
func redisBroker(t *testing.T) broker.Broker { return testbroker.Redis(t) }

// eventLog records a Manager's events, safe for concurrent use.
type eventLog struct {
	mu     sync.Mutex
	events []worker.Event
}

func (l *eventLog) add(e worker.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, e)
}

// waitFinal waits until the job's last event is a final one (completed or
// dead): the Manager reports it after the broker has the state, so a test
// that saw the state must still wait for the event.
func (l *eventLog) waitFinal(t *testing.T, id string) {
	t.Helper()
	waitFor(t, 5*time.Second, "the final event of job "+id, func() bool {
		evs := l.of(id)
		if len(evs) == 0 {
			return false
		}
		k := evs[len(evs)-1].Kind
		return k == worker.EventDead || k == worker.EventCompleted
	})
}

// of returns the events of one job, in order.
func (l *eventLog) of(id string) []worker.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []worker.Event
	for _, e := range l.events {
		if e.Job.ID == id {
			out = append(out, e)
		}
	}
	return out
}

// kinds lists the kinds of events.
func kinds(es []worker.Event) []worker.EventKind {
	out := make([]worker.EventKind, len(es))
	for i, e := range es {
		out[i] = e.Kind
	}
	return out
}

// attemptTimes records when each attempt of a job started and ended.
type attemptTimes struct {
	mu         sync.Mutex
	start, end []time.Time
}

func (a *attemptTimes) run(f func() error) error {
	a.mu.Lock()
	a.start = append(a.start, time.Now())
	a.mu.Unlock()
	err := f()
	a.mu.Lock()
	a.end = append(a.end, time.Now())
	a.mu.Unlock()
	return err
}

// recoveryBundle is a Manager on real Redis with a recovery policy and an
// event log.
type recoveryBundle struct {
	c      *worker.Client
	m      *worker.Manager
	events *eventLog
}

func setupRecovery(t *testing.T, p *recovery.Policy, handler func(ctx context.Context, j *worker.Job) error) *recoveryBundle {
	t.Helper()
	b := redisBroker(t)
	events := &eventLog{}
	cfg := fastConfig()
	cfg.Recovery = p
	cfg.OnEvent = events.add
	m := newManager(t, b, cfg)
	if err := m.HandleFunc("job", handler); err != nil {
		t.Fatal(err)
	}
	startManager(t, m)
	return &recoveryBundle{c: newClient(t, b), m: m, events: events}
}

func TestRecoveryRetryWithOwnAttemptsAndDelay(t *testing.T) {
	t.Parallel()
	const delay = 300 * time.Millisecond
	p := &recovery.Policy{Strategies: []recovery.Strategy{
		{ErrorType: recovery.NetworkError, Action: recovery.Retry, MaxAttempts: 4, Delay: delay},
	}}
	times := &attemptTimes{}
	rb := setupRecovery(t, p, func(ctx context.Context, j *worker.Job) error {
		return times.run(func() error { return recovery.Classify(recovery.NetworkError, errors.New("connection reset")) })
	})
	// The job allows 2 attempts; the NetworkError strategy allows 4.
	j := add(t, rb.c, "default", worker.JobSpec{Type: "job", MaxAttempts: 2})
	got := waitState(t, rb.c, "default", j.ID, worker.StateDead)
	if got.Attempt != 4 || got.MaxAttempts != 4 {
		t.Fatalf("dead job: attempt %d of %d, want 4 of 4 (the strategy's attempts)", got.Attempt, got.MaxAttempts)
	}
	rb.events.waitFinal(t, j.ID)
	want := []worker.EventKind{"started", "retrying", "started", "retrying", "started", "retrying", "started", "dead"}
	if k := kinds(rb.events.of(j.ID)); !equalKinds(k, want) {
		t.Fatalf("events %v, want %v", k, want)
	}
	for _, e := range rb.events.of(j.ID) {
		if e.Kind == worker.EventRetrying && (e.RetryDelay != delay || e.ErrorType != recovery.NetworkError) {
			t.Fatalf("retrying event: delay %v, error type %q; want the strategy's %v and %q", e.RetryDelay, e.ErrorType, delay, recovery.NetworkError)
		}
	}
	times.mu.Lock()
	defer times.mu.Unlock()
	for i := 1; i < len(times.start); i++ {
		// Redis keeps times in milliseconds: allow 2 ms of rounding.
		if gap := times.start[i].Sub(times.end[i-1]); gap < delay-2*time.Millisecond {
			t.Fatalf("attempt %d started %v after attempt %d failed, want at least the strategy's delay %v", i+1, gap, i, delay)
		}
	}
}

func TestRecoveryFewerAttemptsAndDefaultBackoff(t *testing.T) {
	t.Parallel()
	p := &recovery.Policy{Strategies: []recovery.Strategy{
		{ErrorType: recovery.ValidationError, Action: recovery.Retry, MaxAttempts: 2},
	}}
	rb := setupRecovery(t, p, func(ctx context.Context, j *worker.Job) error {
		var in struct{ Class string }
		_ = worker.Decode(j, &in)
		if in.Class == "" {
			return errors.New("unclassified")
		}
		return recovery.Classify(in.Class, errors.New("bad field"))
	})
	v := add(t, rb.c, "default", worker.JobSpec{Type: "job", MaxAttempts: 5, Data: map[string]string{"Class": recovery.ValidationError}})
	u := add(t, rb.c, "default", worker.JobSpec{Type: "job", MaxAttempts: 3})
	if got := waitState(t, rb.c, "default", v.ID, worker.StateDead); got.Attempt != 2 || got.MaxAttempts != 2 {
		t.Fatalf("validation error job: dead at attempt %d of %d, want 2 of 2", got.Attempt, got.MaxAttempts)
	}
	// Unknown errors fall to the default: the Manager's backoff (10-50 ms
	// in fastConfig) and the job's own 3 attempts.
	if got := waitState(t, rb.c, "default", u.ID, worker.StateDead); got.Attempt != 3 || got.MaxAttempts != 3 {
		t.Fatalf("unclassified job: dead at attempt %d of %d, want 3 of 3", got.Attempt, got.MaxAttempts)
	}
	for _, e := range rb.events.of(u.ID) {
		if e.Kind == worker.EventRetrying && (e.RetryDelay > retryFast.MaxDelay || e.ErrorType != "") {
			t.Fatalf("unclassified retry: delay %v, type %q; want the backoff (at most %v) and no type", e.RetryDelay, e.ErrorType, retryFast.MaxDelay)
		}
	}
}

// webhook is a real HTTP listener that records notifications.
type webhook struct {
	srv *httptest.Server
	got chan recovery.Notification
}

func newWebhook(t *testing.T) *webhook {
	t.Helper()
	w := &webhook{got: make(chan recovery.Notification, 16)}
	w.srv = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var n recovery.Notification
		if err := json.Unmarshal(body, &n); err != nil || r.Method != http.MethodPost {
			http.Error(rw, "bad notification", http.StatusBadRequest)
			return
		}
		w.got <- n
	}))
	t.Cleanup(w.srv.Close)
	return w
}

func (w *webhook) next(t *testing.T) recovery.Notification {
	t.Helper()
	select {
	case n := <-w.got:
		return n
	case <-time.After(10 * time.Second):
		t.Fatal("no notification within 10s")
		return recovery.Notification{}
	}
}

func TestRecoveryFailNowAndNotify(t *testing.T) {
	t.Parallel()
	hook := newWebhook(t)
	p := &recovery.Policy{
		Strategies: []recovery.Strategy{
			{ErrorType: recovery.BusinessLogicError, Action: recovery.Fail, Notify: true},
			{ErrorType: recovery.DatabaseError, Action: recovery.Retry, MaxAttempts: 2, Delay: 20 * time.Millisecond, Notify: true},
		},
		Notifier: &recovery.WebhookNotifier{URL: hook.srv.URL, Timeout: 5 * time.Second},
	}
	rb := setupRecovery(t, p, func(ctx context.Context, j *worker.Job) error {
		var in struct{ Class string }
		_ = worker.Decode(j, &in)
		return recovery.Classify(in.Class, errors.New("rule violated"))
	})
	const secret = "top-secret-iban-DE44"
	biz := add(t, rb.c, "default", worker.JobSpec{Type: "job", MaxAttempts: 5, TenantID: "t1",
		Data: map[string]string{"Class": recovery.BusinessLogicError, "IBAN": secret}})
	if got := waitState(t, rb.c, "default", biz.ID, worker.StateDead); got.Attempt != 1 {
		t.Fatalf("business logic error: dead at attempt %d, want 1 (fail now, though 5 attempts were allowed)", got.Attempt)
	}
	n := hook.next(t)
	if n.JobID != biz.ID || n.ErrorType != recovery.BusinessLogicError || n.Action != recovery.Fail ||
		n.State != worker.StateDead || n.TenantID != "t1" || n.Attempt != 1 || n.Error != "rule violated" {
		t.Fatalf("notification %+v; want job %s, BusinessLogicError, fail, dead, tenant t1, attempt 1", n, biz.ID)
	}

	// Notify with retry: one notification per failed attempt, with the
	// state each failure led to.
	db := add(t, rb.c, "default", worker.JobSpec{Type: "job", MaxAttempts: 5, Data: map[string]string{"Class": recovery.DatabaseError}})
	waitState(t, rb.c, "default", db.ID, worker.StateDead)
	first, second := hook.next(t), hook.next(t)
	if first.JobID != db.ID || first.State != worker.StateScheduled || first.Action != recovery.Retry ||
		second.JobID != db.ID || second.State != worker.StateDead || second.Attempt != 2 {
		t.Fatalf("notifications %+v, %+v; want job %s scheduled at attempt 1, then dead at attempt 2", first, second, db.ID)
	}
	select {
	case extra := <-hook.got:
		t.Fatalf("unexpected extra notification %+v", extra)
	default:
	}
}

func TestRecoveryNoRetryAndRetryAfterTakePrecedence(t *testing.T) {
	t.Parallel()
	p := &recovery.Policy{Strategies: []recovery.Strategy{
		{ErrorType: recovery.NetworkError, Action: recovery.Retry, MaxAttempts: 10, Delay: time.Hour},
	}}
	rb := setupRecovery(t, p, func(ctx context.Context, j *worker.Job) error {
		err := recovery.Classify(recovery.NetworkError, errors.New("remote down"))
		if j.Headers["mode"] == "noretry" {
			return worker.NoRetry(err)
		}
		if j.Attempt == 1 {
			return worker.RetryAfter(10*time.Millisecond, err)
		}
		return nil
	})
	nr := add(t, rb.c, "default", worker.JobSpec{Type: "job", Headers: map[string]string{"mode": "noretry"}})
	ra := add(t, rb.c, "default", worker.JobSpec{Type: "job"})
	if got := waitState(t, rb.c, "default", nr.ID, worker.StateDead); got.Attempt != 1 {
		t.Fatalf("NoRetry of a NetworkError: dead at attempt %d, want 1", got.Attempt)
	}
	// RetryAfter's 10 ms wins over the strategy's hour.
	if got := waitState(t, rb.c, "default", ra.ID, worker.StateCompleted); got.Attempt != 2 {
		t.Fatalf("RetryAfter of a NetworkError: completed at attempt %d, want 2", got.Attempt)
	}
}

func TestRecoveryPolicyValidated(t *testing.T) {
	b := redisBroker(t)
	bad := []*recovery.Policy{
		{Strategies: []recovery.Strategy{{ErrorType: "X", Action: "explode"}}},
		{Strategies: []recovery.Strategy{{ErrorType: "X"}, {ErrorType: "X"}}},
		{Strategies: []recovery.Strategy{{ErrorType: "X", Delay: -time.Second}}},
	}
	for _, p := range bad {
		cfg := fastConfig()
		cfg.Recovery = p
		if _, err := worker.NewManager(b, cfg); err == nil {
			t.Errorf("NewManager with recovery policy %+v: nil error", p)
		}
	}
}

func equalKinds(a, b []worker.EventKind) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
