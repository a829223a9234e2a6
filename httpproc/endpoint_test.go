package httpproc_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/httpproc"
	"github.com/aibos/worker/internal/logtest"
	"github.com/aibos/worker/internal/testbroker"
	"github.com/aibos/worker/internal/testwait"
	"github.com/aibos/worker/recovery"
)

// Markers that must never reach a log line or a job's error: the payload
// and the body of an error answer may hold customer data.
const (
	payloadMarker = "PAYLOAD-MARKER-4711"
	bodyMarker    = "ANSWER-MARKER-0815"
)

// answer writes a status with an optional JSON body and headers.
func answer(w http.ResponseWriter, status int, body string, headers ...string) {
	for i := 0; i+1 < len(headers); i += 2 {
		w.Header().Set(headers[i], headers[i+1])
	}
	if body != "" {
		w.Header().Set("Content-Type", "application/json")
	}
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}

// errorBody is an application's error answer naming a class.
func errorBody(class string) string {
	return fmt.Sprintf(`{"error":{"type":%q,"message":"invoice %s is invalid"}}`, class, bodyMarker)
}

type statusCase struct {
	name        string
	maxAttempts int
	timeout     time.Duration // the job's
	handle      func(n int, w http.ResponseWriter, r *http.Request)
	wantState   worker.State
	wantCalls   int
	wantResult  string // JSON, compared as values; "" for none
	wantClass   string // the final event's error type
	// check inspects the events of the job (e.g. a retry delay).
	check func(t *testing.T, evs []worker.Event)
}

func statusCases() []statusCase {
	okThen := func(first func(w http.ResponseWriter, r *http.Request)) func(n int, w http.ResponseWriter, r *http.Request) {
		return func(n int, w http.ResponseWriter, r *http.Request) {
			if n == 1 {
				first(w, r)
				return
			}
			answer(w, http.StatusOK, `{"done":true}`)
		}
	}
	retryDelay := func(lo, hi time.Duration) func(t *testing.T, evs []worker.Event) {
		return func(t *testing.T, evs []worker.Event) {
			t.Helper()
			if len(evs) < 2 || evs[1].Kind != worker.EventRetrying {
				t.Fatalf("events %v: want started, retrying first", evs)
			}
			if d := evs[1].RetryDelay; d < lo || d > hi {
				t.Errorf("retry delay %v, want within [%v, %v] (the answer's Retry-After)", d, lo, hi)
			}
		}
	}
	return []statusCase{
		{name: "200 JSON becomes the result", maxAttempts: 3, wantState: worker.StateCompleted, wantCalls: 1,
			wantResult: `{"invoice":"INV-1","total":"12.50"}`,
			handle: func(n int, w http.ResponseWriter, r *http.Request) {
				answer(w, http.StatusOK, `{"invoice":"INV-1","total":"12.50"}`)
			}},
		{name: "204 completes without result", maxAttempts: 3, wantState: worker.StateCompleted, wantCalls: 1,
			handle: func(n int, w http.ResponseWriter, r *http.Request) { answer(w, http.StatusNoContent, "") }},
		{name: "408 retries", maxAttempts: 3, wantState: worker.StateCompleted, wantCalls: 2, wantResult: `{"done":true}`,
			handle: okThen(func(w http.ResponseWriter, r *http.Request) { answer(w, http.StatusRequestTimeout, "") })},
		{name: "429 Retry-After seconds", maxAttempts: 3, wantState: worker.StateCompleted, wantCalls: 2, wantResult: `{"done":true}`,
			handle: okThen(func(w http.ResponseWriter, r *http.Request) {
				answer(w, http.StatusTooManyRequests, "", "Retry-After", "1")
			}),
			check: retryDelay(time.Second, time.Second)},
		{name: "429 Retry-After date", maxAttempts: 3, wantState: worker.StateCompleted, wantCalls: 2, wantResult: `{"done":true}`,
			handle: okThen(func(w http.ResponseWriter, r *http.Request) {
				answer(w, http.StatusTooManyRequests, "", "Retry-After", time.Now().Add(3*time.Second).UTC().Format(http.TimeFormat))
			}),
			// The date has whole seconds: 3 s ahead is 2 s to 3 s ahead,
			// less the time the answer took to arrive.
			check: retryDelay(time.Second, 3*time.Second)},
		{name: "500 retries until dead", maxAttempts: 2, wantState: worker.StateDead, wantCalls: 2,
			handle: func(n int, w http.ResponseWriter, r *http.Request) { answer(w, http.StatusInternalServerError, "") }},
		{name: "502 retries", maxAttempts: 3, wantState: worker.StateCompleted, wantCalls: 2, wantResult: `{"done":true}`,
			handle: okThen(func(w http.ResponseWriter, r *http.Request) { answer(w, http.StatusBadGateway, "") })},
		{name: "dropped connection retries", maxAttempts: 3, wantState: worker.StateCompleted, wantCalls: 2, wantResult: `{"done":true}`,
			handle: okThen(func(w http.ResponseWriter, r *http.Request) {
				conn, _, err := http.NewResponseController(w).Hijack()
				if err == nil {
					_ = conn.Close()
				}
			})},
		{name: "400 fails without retry", maxAttempts: 3, wantState: worker.StateDead, wantCalls: 1,
			handle: func(n int, w http.ResponseWriter, r *http.Request) { answer(w, http.StatusBadRequest, "") }},
		{name: "404 fails without retry", maxAttempts: 3, wantState: worker.StateDead, wantCalls: 1,
			handle: func(n int, w http.ResponseWriter, r *http.Request) { answer(w, http.StatusNotFound, "") }},
		{name: "422 ValidationError fails", maxAttempts: 3, wantState: worker.StateDead, wantCalls: 1, wantClass: recovery.ValidationError,
			handle: func(n int, w http.ResponseWriter, r *http.Request) {
				answer(w, http.StatusUnprocessableEntity, errorBody(recovery.ValidationError))
			}},
		{name: "500 ValidationError: the policy fails it", maxAttempts: 3, wantState: worker.StateDead, wantCalls: 1, wantClass: recovery.ValidationError,
			handle: func(n int, w http.ResponseWriter, r *http.Request) {
				answer(w, http.StatusInternalServerError, errorBody(recovery.ValidationError))
			}},
		{name: "503 DatabaseError: the policy retries it", maxAttempts: 1, wantState: worker.StateCompleted, wantCalls: 2, wantResult: `{"done":true}`,
			handle: okThen(func(w http.ResponseWriter, r *http.Request) {
				answer(w, http.StatusServiceUnavailable, errorBody(recovery.DatabaseError))
			})},
		{name: "slower than the job timeout retries", maxAttempts: 3, timeout: 300 * time.Millisecond,
			wantState: worker.StateCompleted, wantCalls: 2, wantResult: `{"done":true}`,
			handle: okThen(func(w http.ResponseWriter, r *http.Request) {
				select {
				case <-r.Context().Done(): // the worker gave up: its deadline passed
				case <-time.After(10 * time.Second):
				}
			}),
			check: func(t *testing.T, evs []worker.Event) {
				if len(evs) < 2 || evs[1].Kind != worker.EventRetrying || !strings.Contains(evs[1].Err.Error(), "timed out") {
					t.Errorf("events %v: want the first attempt to time out and retry", evs)
				}
			}},
	}
}

// testPolicy is the service's recovery config for the classes the cases
// use: validation errors fail, database errors retry (5 attempts).
var testPolicy = &recovery.Policy{Strategies: []recovery.Strategy{
	{ErrorType: recovery.ValidationError, Action: recovery.Fail},
	{ErrorType: recovery.DatabaseError, Action: recovery.Retry, MaxAttempts: 5, Delay: 10 * time.Millisecond},
}, Notifier: recovery.NotifierFunc(func(context.Context, recovery.Notification) error { return nil })}

// TestStatusOutcomes runs a job against a real endpoint answering each
// status class, on every broker, and checks the job's outcome, its
// result, its calls (all signed, all with one webhook-id) and that neither
// payload nor answer body reaches the logs or the job's error.
func TestStatusOutcomes(t *testing.T) {
	testbroker.Each(t, func(t *testing.T, b broker.Broker) {
		for i, tc := range statusCases() {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				runStatusCase(t, b, fmt.Sprintf("q%d", i), tc)
			})
		}
	})
}

func runStatusCase(t *testing.T, b broker.Broker, queue string, tc statusCase) {
	srv := newServer(t, testSecret, func(n int, _ []byte, w http.ResponseWriter, r *http.Request) { tc.handle(n, w, r) })
	p, err := httpproc.New(httpproc.EndpointConfig{URL: srv.URL + "/jobs/invoice", Secret: testSecret, Client: srv.Client(),
		Headers: map[string]string{"Authorization": "Bearer app-token"}})
	if err != nil {
		t.Fatal(err)
	}
	logs := &logtest.Buffer{}
	events := &eventLog{}
	cfg := managerConfig(queue, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	cfg.Recovery, cfg.OnEvent = testPolicy, events.add
	m, err := worker.NewManager(b, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Register("invoice.processing", p); err != nil {
		t.Fatal(err)
	}
	startManager(t, m)
	client, err := worker.NewClient(b, worker.ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	job, err := client.Add(context.Background(), queue, worker.JobSpec{Type: "invoice.processing", TenantID: "t1", CompanyID: "c1",
		Data: map[string]string{"invoice": payloadMarker}, MaxAttempts: tc.maxAttempts, Timeout: tc.timeout,
		Headers: map[string]string{"trace": "abc"}})
	if err != nil {
		t.Fatal(err)
	}
	var final worker.Event
	testwait.For(t, 10*time.Second, "job "+job.ID+" to finish", func() (ok bool) { final, ok = events.final(job.ID); return ok })
	got, err := client.Get(context.Background(), queue, job.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != tc.wantState {
		t.Errorf("state %s, want %s (last error %q)", got.State, tc.wantState, got.LastError)
	}
	if final.ErrorType != tc.wantClass {
		t.Errorf("final event's error type %q, want %q", final.ErrorType, tc.wantClass)
	}
	checkResult(t, got.Result, tc.wantResult)
	calls := srv.received()
	if len(calls) != tc.wantCalls {
		t.Errorf("the endpoint got %d calls, want %d", len(calls), tc.wantCalls)
	}
	checkCalls(t, calls, job)
	for what, text := range map[string]string{"logs": logs.String(), "job's last error": got.LastError} {
		for _, secret := range []string{payloadMarker, bodyMarker, testSecret} {
			if strings.Contains(text, secret) {
				t.Errorf("%s quote %q:\n%s", what, secret, text)
			}
		}
	}
	if tc.check != nil {
		var evs []worker.Event
		for _, e := range events.all() {
			if e.Job.ID == job.ID {
				evs = append(evs, e)
			}
		}
		tc.check(t, evs)
	}
}

// checkResult compares a job's result with want as JSON values.
func checkResult(t *testing.T, got json.RawMessage, want string) {
	t.Helper()
	if want == "" {
		if len(got) != 0 {
			t.Errorf("result %s, want none", got)
		}
		return
	}
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("result %q: %v", got, err)
	}
	_ = json.Unmarshal([]byte(want), &w)
	if fmt.Sprint(g) != fmt.Sprint(w) {
		t.Errorf("result %s, want %s", got, want)
	}
}

// checkCalls checks that every call is signed (by Verify and by the
// official library), carries one webhook-id, the configured headers and
// the job as documented.
func checkCalls(t *testing.T, calls []call, job *worker.Job) {
	t.Helper()
	for i, c := range calls {
		if c.verified != nil || c.official != nil {
			t.Errorf("call %d: Verify: %v; official library: %v", i+1, c.verified, c.official)
		}
		if id, first := c.header.Get(httpproc.HeaderID), calls[0].header.Get(httpproc.HeaderID); id != first {
			t.Errorf("call %d has webhook-id %q, call 1 %q: want one id for every attempt", i+1, id, first)
		}
		if c.header.Get("Authorization") != "Bearer app-token" || c.header.Get("Content-Type") != "application/json" {
			t.Errorf("call %d headers %v: want the configured Authorization and JSON content type", i+1, c.header)
		}
		var req httpproc.Request
		if err := json.Unmarshal(c.body, &req); err != nil {
			t.Fatalf("call %d body: %v", i+1, err)
		}
		want := httpproc.Request{ID: job.ID, Type: "invoice.processing", Queue: job.Queue, TenantID: "t1", CompanyID: "c1",
			Attempt: i + 1, MaxAttempts: req.MaxAttempts, Data: json.RawMessage(`{"invoice":"` + payloadMarker + `"}`),
			Headers: map[string]string{"trace": "abc"}}
		if fmt.Sprint(req) != fmt.Sprint(want) {
			t.Errorf("call %d body %+v, want %+v", i+1, req, want)
		}
	}
}
