package httpproc_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/httpproc"
	"github.com/aibos/worker/internal/testbroker"
	"github.com/aibos/worker/internal/testwait"
	"github.com/aibos/worker/workflow"
)

// receiver is the application's callback URL: a real server that verifies
// every delivery, refuses the first delivery of the events in refuseOnce
// (to make the worker retry) and records the accepted ones.
type receiver struct {
	*server
	mu       sync.Mutex
	refused  map[string]bool
	accepted map[string][]httpproc.Callback // by webhook-id
}

func newReceiver(t *testing.T, refuseOnce ...string) *receiver {
	r := &receiver{refused: map[string]bool{}, accepted: map[string][]httpproc.Callback{}}
	refuse := map[string]bool{}
	for _, e := range refuseOnce {
		refuse[e] = true
	}
	r.server = newServer(t, testSecret, func(_ int, body []byte, w http.ResponseWriter, req *http.Request) {
		if err := httpproc.Verify(testSecret, req.Header, body, 0); err != nil {
			answer(w, http.StatusUnauthorized, "")
			return
		}
		var cb httpproc.Callback
		if err := json.Unmarshal(body, &cb); err != nil {
			answer(w, http.StatusBadRequest, "")
			return
		}
		id := req.Header.Get(httpproc.HeaderID)
		r.mu.Lock()
		defer r.mu.Unlock()
		if refuse[cb.Type] && !r.refused[id] {
			r.refused[id] = true
			answer(w, http.StatusServiceUnavailable, "")
			return
		}
		r.accepted[id] = append(r.accepted[id], cb)
		answer(w, http.StatusNoContent, "")
	})
	return r
}

// byType returns the accepted callbacks of one event type, and how many
// deliveries of them were accepted in all (more than one per webhook-id
// would be a duplicate).
func (r *receiver) byType(event string) (cbs []httpproc.Callback, deliveries int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, got := range r.accepted {
		if got[0].Type == event {
			cbs = append(cbs, got[0])
			deliveries += len(got)
		}
	}
	return cbs, deliveries
}

func newCallbacks(t *testing.T, b broker.Broker, rcv *receiver) *httpproc.Callbacks {
	t.Helper()
	cb, err := httpproc.NewCallbacks(b, httpproc.CallbackConfig{URL: rcv.URL + "/hooks/worker", Secret: testSecret,
		Client: rcv.Client(), MaxAttempts: 5})
	if err != nil {
		t.Fatal(err)
	}
	return cb
}

// waitDelivered waits until the callback job cbID of queue has completed:
// its delivery was accepted.
func waitDelivered(t *testing.T, b broker.Broker, queue, cbID string) {
	t.Helper()
	testwait.For(t, 10*time.Second, "callback "+cbID+" to be delivered", func() bool {
		j, err := b.JobGet(context.Background(), &broker.JobGetParams{Queue: queue, ID: cbID})
		return err == nil && j.State == broker.StateCompleted
	})
}

// TestJobCallbacks: a real receiver gets exactly one signed callback per
// finished job (completed, dead, cancelled), none for a retried attempt,
// and a refused delivery is retried under the same webhook-id.
func TestJobCallbacks(t *testing.T) {
	testbroker.Each(t, func(t *testing.T, b broker.Broker) {
		const queue = "invoices"
		rcv := newReceiver(t, httpproc.EventJobDead)
		cb := newCallbacks(t, b, rcv)
		m, err := worker.NewManager(b, managerConfig(queue, discardLogger()))
		if err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		tries := map[string]int{}
		proc := worker.ProcessorFunc(func(ctx context.Context, job *worker.Job) error {
			var d struct{ Outcome string }
			_ = worker.Decode(job, &d)
			mu.Lock()
			tries[job.ID]++
			n := tries[job.ID]
			mu.Unlock()
			switch {
			case d.Outcome == "fail", d.Outcome == "flaky" && n == 1:
				return fmt.Errorf("attempt %d failed", n)
			}
			return worker.SetResult(ctx, map[string]int{"attempt": n})
		})
		if err := m.Register("invoice.processing", cb.Wrap(proc)); err != nil {
			t.Fatal(err)
		}
		if err := cb.Attach(m); err != nil {
			t.Fatal(err)
		}
		startManager(t, m)
		client, err := worker.NewClient(b, worker.ClientConfig{})
		if err != nil {
			t.Fatal(err)
		}
		add := func(outcome string, delay time.Duration) *worker.Job {
			j, err := client.Add(context.Background(), queue, worker.JobSpec{Type: "invoice.processing", TenantID: "t1", CompanyID: "c1",
				Data: map[string]string{"outcome": outcome}, MaxAttempts: 2, Delay: delay})
			if err != nil {
				t.Fatal(err)
			}
			return j
		}
		ok, flaky, dead, later := add("ok", 0), add("flaky", 0), add("fail", 0), add("ok", time.Hour)

		if _, err := cb.CancelJob(context.Background(), queue, later.ID, "t2"); !errors.Is(err, worker.ErrNotFound) {
			t.Fatalf("cancel another tenant's job: %v, want ErrNotFound", err)
		}
		got, err := cb.CancelJob(context.Background(), queue, later.ID, "t1")
		if err != nil || got.State != worker.StateCancelled {
			t.Fatalf("cancel: %+v, %v; want the job cancelled", got, err)
		}
		for _, j := range []*worker.Job{ok, flaky, dead, later} {
			waitDelivered(t, b, queue, httpproc.CallbackJobID(j.ID))
		}
		if _, err := cb.CancelJob(context.Background(), queue, ok.ID, ""); !errors.Is(err, worker.ErrWrongState) {
			t.Fatalf("cancel a completed job: %v, want ErrWrongState", err)
		}

		want := map[string][]string{
			httpproc.EventJobCompleted: {ok.ID, flaky.ID},
			httpproc.EventJobDead:      {dead.ID},
			httpproc.EventJobCancelled: {later.ID},
		}
		for event, ids := range want {
			cbs, deliveries := rcv.byType(event)
			if len(cbs) != len(ids) || deliveries != len(ids) {
				t.Errorf("%s: %d callbacks in %d accepted deliveries, want one for each of %v", event, len(cbs), deliveries, ids)
			}
			for _, c := range cbs {
				if c.Job == nil || c.Job.Queue != queue || c.Job.TenantID != "t1" || c.Job.CompanyID != "c1" || c.Job.Type != "invoice.processing" {
					t.Errorf("%s callback names job %+v", event, c.Job)
				}
			}
		}
		completed, _ := rcv.byType(httpproc.EventJobCompleted)
		for _, c := range completed {
			if want := map[string]string{ok.ID: `{"attempt":1}`, flaky.ID: `{"attempt":2}`}[c.Job.ID]; string(c.Result) != want {
				t.Errorf("job.completed of %s has result %s, want %s", c.Job.ID, c.Result, want)
			}
		}
		if deadCbs, _ := rcv.byType(httpproc.EventJobDead); len(deadCbs) == 1 && deadCbs[0].Error != "attempt 2 failed" {
			t.Errorf("job.dead callback's error %q, want the last attempt's", deadCbs[0].Error)
		}
		// The refused job.dead delivery was retried under its webhook-id:
		// the receiver saw that id twice, and accepted it once.
		rcv.mu.Lock()
		refusedIDs := len(rcv.refused)
		rcv.mu.Unlock()
		seen := map[string]int{}
		for _, c := range rcv.received() {
			seen[c.header.Get(httpproc.HeaderID)]++
			if c.verified != nil || c.official != nil {
				t.Errorf("a callback failed verification: %v / %v", c.verified, c.official)
			}
		}
		if refusedIDs != 1 || len(seen) != 4 || len(rcv.received()) != 5 {
			t.Errorf("%d refused ids, %d webhook-ids in %d deliveries; want 1 refused, 4 ids, 5 deliveries", refusedIDs, len(seen), len(rcv.received()))
		}
	})
}

// TestWorkflowCallbacks: a real receiver gets exactly one signed callback
// per finished workflow run: succeeded (with the steps' outputs), failed
// (with the error) and cancelled.
func TestWorkflowCallbacks(t *testing.T) {
	testbroker.Each(t, func(t *testing.T, b broker.Broker) {
		rcv := newReceiver(t)
		cb := newCallbacks(t, b, rcv)
		e, err := workflow.NewEngine(b, workflow.Config{Logger: discardLogger()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = e.Close() })
		started := make(chan struct{}, 1)
		err = e.RegisterStepProcessor("post", workflow.StepProcessorFunc(func(ctx context.Context, s *workflow.StepInfo, d workflow.Data) (workflow.Data, error) {
			switch d["mode"] {
			case "fail":
				return nil, worker.NoRetry(errors.New("ledger is closed"))
			case "block":
				started <- struct{}{}
				<-ctx.Done()
				return nil, ctx.Err()
			}
			return workflow.Data{"posted": true}, nil
		}))
		if err != nil {
			t.Fatal(err)
		}
		hooked := make(chan string, 3)
		w := workflow.Workflow{Name: "invoice", Steps: []workflow.Step{{Name: "post", Processor: "post", RetryAttempts: 1}},
			OnSuccess: func(ctx context.Context, run *workflow.Run) error { hooked <- run.ID; return nil }}
		if err := e.Register(cb.Workflow(w)); err != nil {
			t.Fatal(err)
		}
		m, err := worker.NewManager(b, managerConfig(e.Queue(), discardLogger()))
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Attach(m); err != nil {
			t.Fatal(err)
		}
		if err := cb.Attach(m); err != nil {
			t.Fatal(err)
		}
		startManager(t, m)
		exec := func(mode string) *workflow.Run {
			run, err := e.Execute(context.Background(), "invoice", map[string]string{"mode": mode}, workflow.ExecuteOptions{TenantID: "t1"})
			if err != nil {
				t.Fatal(err)
			}
			return run
		}
		ok, failed, blocked := exec("ok"), exec("fail"), exec("block")
		select {
		case <-started:
		case <-time.After(10 * time.Second):
			t.Fatal("the blocking step never started")
		}
		if _, err := cb.CancelRun(context.Background(), e, blocked.ID); err != nil {
			t.Fatal(err)
		}
		// Calling again (as an admin API would after a lost answer) sends
		// no second callback.
		if _, err := cb.CancelRun(context.Background(), e, blocked.ID); err != nil {
			t.Fatalf("cancel again: %v", err)
		}
		for _, r := range []*workflow.Run{ok, failed, blocked} {
			waitDelivered(t, b, e.Queue(), httpproc.CallbackRunID(r.ID))
		}
		if id := <-hooked; id != ok.ID {
			t.Errorf("the workflow's own OnSuccess ran for %s, want %s", id, ok.ID)
		}
		for event, id := range map[string]string{httpproc.EventWorkflowSucceeded: ok.ID, httpproc.EventWorkflowFailed: failed.ID,
			httpproc.EventWorkflowCancelled: blocked.ID} {
			cbs, deliveries := rcv.byType(event)
			if len(cbs) != 1 || deliveries != 1 || cbs[0].Run == nil || cbs[0].Run.ID != id || cbs[0].Run.TenantID != "t1" {
				t.Errorf("%s: %+v in %d deliveries, want one about run %s", event, cbs, deliveries, id)
				continue
			}
			switch c := cbs[0]; event {
			case httpproc.EventWorkflowSucceeded:
				if string(c.Result) != `{"post":{"mode":"ok","posted":true}}` && string(c.Result) != `{"post":{"posted":true}}` {
					t.Errorf("succeeded callback's result %s, want the step's output", c.Result)
				}
			case httpproc.EventWorkflowFailed:
				if c.Run.FailedStep != "post" || c.Error == "" {
					t.Errorf("failed callback names step %q, error %q", c.Run.FailedStep, c.Error)
				}
			}
		}
	})
}
