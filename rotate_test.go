package worker_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/envelope"
	"github.com/aibos/worker/schedule"
	"github.com/aibos/worker/workflow"
)

// rotateJobs is how many jobs TestRotateKeysWhileProcessing stores: small
// in CI; WORKER_ROTATE_JOBS=10000 (make test-rotate) runs the full size.
func rotateJobs(t *testing.T) int {
	n := 400
	if s := os.Getenv("WORKER_ROTATE_JOBS"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 10 {
			t.Fatalf("WORKER_ROTATE_JOBS=%q: want a number of jobs >= 10", s)
		}
		n = v
	}
	return n
}

// TestRotateKeysWhileProcessing stores jobs under key k1 in every state a
// rotation meets (completed with result and progress, dead with an error
// history, scheduled, pending), then re-seals them under k2 while a
// Manager processes the pending ones, the first rotation stopped half way
// (as if killed) and a second one continuing it. Afterwards every value
// stored is under k2 (read from the raw store), no job is lost, none ran
// twice, and a ring without k1 opens every job.
func TestRotateKeysWhileProcessing(t *testing.T) {
	n := rotateJobs(t)
	for _, e := range storeEngines {
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			b, dump := e.open(t)
			ctx := context.Background()
			ring1, keys := testRing(t, "k1")
			enc1 := &worker.Encryption{Keys: ring1, Queues: []string{"invoices"}}
			c1, err := worker.NewClient(b, worker.ClientConfig{Encryption: enc1})
			if err != nil {
				t.Fatal(err)
			}
			data := map[string]string{"iban": secretMarker}
			add := func(typ string, count int, spec worker.JobSpec) {
				specs := make([]worker.JobSpec, count)
				for i := range specs {
					specs[i] = spec
					specs[i].Type = typ
					specs[i].Data = data
					specs[i].TenantID = "t" + strconv.Itoa(i%3)
				}
				for len(specs) > 0 {
					k := min(len(specs), 500)
					if _, err := c1.AddMany(ctx, "invoices", specs[:k]); err != nil {
						t.Fatal(err)
					}
					specs = specs[k:]
				}
			}
			nOK, nFail, nLater := n*3/10, n/10, n/5
			// A loaded machine under -race: SQLite ran 10,000 jobs in over
			// 7 minutes with a load of 28 on 2 cores.
			settle := 2*time.Minute + time.Duration(n)*100*time.Millisecond
			nRun := n - nOK - nFail - nLater

			// Phase 1, under k1 only: completed and dead jobs.
			cfg := fastConfig(worker.QueueConfig{Name: "invoices"})
			cfg.Concurrency = 16
			cfg.Encryption = enc1
			m1, err := worker.NewManager(b, cfg)
			if err != nil {
				t.Fatal(err)
			}
			_ = m1.HandleFunc("ok", func(ctx context.Context, j *worker.Job) error {
				if err := worker.SetProgress(ctx, data); err != nil {
					return err
				}
				return worker.SetResult(ctx, data)
			})
			_ = m1.HandleFunc("fail", func(ctx context.Context, j *worker.Job) error {
				return fmt.Errorf("bank rejected %s", secretMarker)
			})
			add("ok", nOK, worker.JobSpec{})
			add("fail", nFail, worker.JobSpec{MaxAttempts: 2})
			if err := m1.Start(ctx); err != nil {
				t.Fatal(err)
			}
			waitCounts(t, c1, settle, map[worker.State]int64{worker.StateCompleted: int64(nOK), worker.StateDead: int64(nFail)})
			if err := m1.Shutdown(ctx); err != nil {
				t.Fatal(err)
			}

			// Phase 2: jobs waiting to run, under k1 too.
			add("later", nLater, worker.JobSpec{Delay: time.Hour})
			add("run", nRun, worker.JobSpec{})

			// Phase 3: the ring gains k2; a Manager processes while two
			// rotations, the first cut short, re-seal everything.
			k2, err := envelope.NewKey("k2")
			if err != nil {
				t.Fatal(err)
			}
			ring2, err := envelope.NewRing(keys[0], k2)
			if err != nil {
				t.Fatal(err)
			}
			enc2 := &worker.Encryption{Keys: ring2, Queues: []string{"invoices"}}
			c2, err := worker.NewClient(b, worker.ClientConfig{Encryption: enc2})
			if err != nil {
				t.Fatal(err)
			}
			cfg.Encryption = enc2
			m2, err := worker.NewManager(b, cfg)
			if err != nil {
				t.Fatal(err)
			}
			var mu sync.Mutex
			ran := map[string]int{}
			_ = m2.HandleFunc("run", func(ctx context.Context, j *worker.Job) error {
				if !bytes.Contains(j.Data, []byte(secretMarker)) {
					return fmt.Errorf("processor got data %s, want the plaintext", j.Data)
				}
				mu.Lock()
				ran[j.ID]++
				mu.Unlock()
				return worker.SetResult(ctx, data)
			})
			if err := m2.Start(ctx); err != nil {
				t.Fatal(err)
			}
			first, err := c2.RotateKeys(ctx, worker.RotateParams{BatchSize: 50, MaxJobs: n / 2})
			if err != nil {
				t.Fatal(err)
			}
			if first.Done || first.Values == 0 {
				t.Fatalf("a rotation stopped after %d of %d jobs: %+v; want some values re-sealed and not done", n/2, n, first)
			}
			if _, err := b.(broker.Committer).DocGet(ctx, "invoices", "keyrotation", "cursor"); err != nil {
				t.Fatalf("the stopped rotation saved no cursor: %v", err)
			}
			rotateUntilDone(t, c2, 50, nil)
			waitCounts(t, c2, settle, map[worker.State]int64{worker.StateCompleted: int64(nOK + nRun), worker.StateDead: int64(nFail), worker.StateScheduled: int64(nLater)})
			if err := m2.Shutdown(ctx); err != nil {
				t.Fatal(err)
			}
			// Jobs that completed after the last pass stored results
			// under k2 anyway; one more call confirms nothing is left.
			if res, err := c2.RotateKeys(ctx, worker.RotateParams{}); err != nil || !res.Done || res.Values != 0 {
				t.Fatalf("a rotation after everything settled: %+v, %v; want done with nothing to re-seal", res, err)
			}

			mu.Lock()
			if len(ran) != nRun {
				t.Errorf("%d distinct jobs ran, want %d", len(ran), nRun)
			}
			for id, k := range ran {
				if k != 1 {
					t.Errorf("job %s ran %d times", id, k)
				}
			}
			mu.Unlock()

			raw := dump(t)
			if i := bytes.Index(raw, []byte(envelope.Prefix+"k1:")); i >= 0 {
				t.Fatalf("a value is still stored under k1 after the rotation: …%q…", raw[max(0, i-200):min(len(raw), i+60)])
			}
			if !bytes.Contains(raw, []byte(envelope.Prefix+"k2:")) {
				t.Fatal("no value stored under k2: the scan read nothing")
			}
			if bytes.Contains(raw, []byte(secretMarker)) {
				t.Fatal("the marker is stored in plain text")
			}

			// k1 removed: everything still opens.
			ring3, err := envelope.NewRing(k2)
			if err != nil {
				t.Fatal(err)
			}
			enc3 := &worker.Encryption{Keys: ring3, Queues: []string{"invoices"}}
			seen := 0
			for _, st := range broker.States {
				for off := 0; off >= 0; {
					page, err := b.JobList(ctx, &broker.JobListParams{Queue: "invoices", State: st, Offset: off, Limit: 500})
					if err != nil {
						t.Fatal(err)
					}
					for _, lj := range page.Jobs {
						j, err := b.JobGet(ctx, &broker.JobGetParams{Queue: "invoices", ID: lj.ID})
						if err != nil {
							t.Fatal(err)
						}
						o, err := enc3.OpenJob(j)
						if err != nil {
							t.Fatalf("job %s (%s) does not open without k1: %v", j.ID, j.State, err)
						}
						if !bytes.Contains(o.Data, []byte(secretMarker)) {
							t.Fatalf("job %s opened to data %s", j.ID, o.Data)
						}
						seen++
					}
					off = page.NextOffset
				}
			}
			if seen != n {
				t.Fatalf("%d jobs stored, want %d: jobs were lost", seen, n)
			}
		})
	}
}

// waitCounts waits until the invoices queue holds want jobs in each state
// named.
func waitCounts(t *testing.T, c *worker.Client, timeout time.Duration, want map[worker.State]int64) {
	t.Helper()
	var st *worker.QueueStats
	waitFor(t, timeout, fmt.Sprintf("job counts %v", want), func() bool {
		var err error
		if st, err = c.Stats(context.Background(), "invoices"); err != nil {
			t.Fatal(err)
		}
		for s, n := range want {
			if st.Count(s) != n {
				return false
			}
		}
		return true
	})
}

// TestRotateKeysResumes: a rotation stopped after some pages leaves a
// cursor, and the next call continues from it rather than from the start:
// it reads the rest of the first pass, then one clean pass.
func TestRotateKeysResumes(t *testing.T) {
	eachEngine(t, func(t *testing.T, b broker.Broker) {
		ctx := context.Background()
		const n = 250
		ring2 := storeUnderK1(t, b, n)
		c2, err := worker.NewClient(b, worker.ClientConfig{Encryption: &worker.Encryption{Keys: ring2, All: true}})
		if err != nil {
			t.Fatal(err)
		}
		r1, err := c2.RotateKeys(ctx, worker.RotateParams{Queues: []string{"invoices"}, BatchSize: 50, MaxJobs: 100})
		if err != nil || r1.Read != 100 || r1.Rewritten != 100 || r1.Done {
			t.Fatalf("first call: %+v, %v; want 100 jobs read and re-sealed, not done", r1, err)
		}
		r2, err := c2.RotateKeys(ctx, worker.RotateParams{Queues: []string{"invoices"}, BatchSize: 50})
		if err != nil || !r2.Done || r2.Rewritten != n-100 || r2.Read != (n-100)+n {
			t.Fatalf("second call: %+v, %v; want the %d jobs left re-sealed, then one clean pass (%d read)", r2, err, n-100, 2*n-100)
		}
		tc, err := c2.Tenant("t1")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tc.RotateKeys(ctx, worker.RotateParams{}); err == nil || !strings.Contains(err.Error(), "tenant-scoped") {
			t.Errorf("a tenant-scoped rotation: %v; want a refusal", err)
		}
		plain, _ := worker.NewClient(b, worker.ClientConfig{})
		if _, err := plain.RotateKeys(ctx, worker.RotateParams{}); err == nil || !strings.Contains(err.Error(), "no encryption keys") {
			t.Errorf("a rotation without keys: %v; want a refusal", err)
		}
		if _, err := c2.RotateKeys(ctx, worker.RotateParams{BatchSize: -1}); err == nil {
			t.Error("a negative batch size was accepted")
		}
	})
}

// TestRotateKeysRewritesAPageTogether: the jobs of a page are re-sealed
// concurrently, not one write after another. One at a time, each rewrite
// took a turn at the store's writer (on SQLite a synchronous transaction,
// queued behind every maintenance round and fetch of the Managers at
// work), and a rotation of 10,000 jobs beside a Manager under -race did
// not finish in 10 minutes (make test-rotate-race). Here a rewrite waits
// until another is in flight: rewrites made one at a time never see one,
// and the rotation fails.
func TestRotateKeysRewritesAPageTogether(t *testing.T) {
	eachEngine(t, func(t *testing.T, b broker.Broker) {
		const n = 40
		ring2 := storeUnderK1(t, b, n)
		ob := &overlapBroker{Broker: b, rw: b.(broker.JobRewriter), Committer: b.(broker.Committer), overlap: make(chan struct{})}
		c2, err := worker.NewClient(ob, worker.ClientConfig{Encryption: &worker.Encryption{Keys: ring2, All: true}})
		if err != nil {
			t.Fatal(err)
		}
		res, err := c2.RotateKeys(context.Background(), worker.RotateParams{Queues: []string{"invoices"}, BatchSize: 20})
		if err != nil || !res.Done || res.Rewritten != n {
			t.Fatalf("rotation: %+v, %v; want all %d jobs re-sealed, with rewrites in flight together", res, err, n)
		}
	})
}

// storeUnderK1 stores n jobs due in an hour in queue invoices, sealed
// under key k1, and returns a ring holding k1 and a newer k2.
func storeUnderK1(t *testing.T, b broker.Broker, n int) *envelope.Ring {
	t.Helper()
	ring1, keys := testRing(t, "k1")
	c1, err := worker.NewClient(b, worker.ClientConfig{Encryption: &worker.Encryption{Keys: ring1, All: true}})
	if err != nil {
		t.Fatal(err)
	}
	specs := make([]worker.JobSpec, n)
	for i := range specs {
		specs[i] = worker.JobSpec{Type: "x", Data: map[string]int{"i": i}, Delay: time.Hour}
	}
	if _, err := c1.AddMany(context.Background(), "invoices", specs); err != nil {
		t.Fatal(err)
	}
	ring2 := ringWithK2(t, keys[0])
	return ring2
}

// overlapBroker holds each JobRewrite until two are in flight at once;
// after that it lets every one through.
type overlapBroker struct {
	broker.Broker
	broker.Committer
	rw       broker.JobRewriter
	mu       sync.Mutex
	inFlight int
	seen     bool          // two rewrites were in flight once
	overlap  chan struct{} // closed then
}

func (o *overlapBroker) JobRewrite(ctx context.Context, p *broker.JobRewriteParams) error {
	o.mu.Lock()
	if o.inFlight++; o.inFlight == 2 && !o.seen {
		o.seen = true
		close(o.overlap)
	}
	o.mu.Unlock()
	defer func() {
		o.mu.Lock()
		o.inFlight--
		o.mu.Unlock()
	}()
	select {
	case <-o.overlap:
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(10 * time.Second):
		return errors.New("no other rewrite in flight within 10s: the rotation rewrites one job at a time")
	}
	return o.rw.JobRewrite(ctx, p)
}

// TestRotateKeysSealsRunsAndSchedules stores, under k1, a cron schedule's
// job template, a one-time job, finished workflow runs (input, step
// output, the errors of a failed one) and runs still to run, then rotates
// to k2 while a Manager runs those: afterwards no value in the raw store
// is under k1, every run finished with its output (a rotation never
// overwrote a run that advanced under it), and a ring without k1 opens
// every run and the template.
func TestRotateKeysSealsRunsAndSchedules(t *testing.T) {
	for _, e := range storeEngines {
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			b, dump := e.open(t)
			ctx := context.Background()
			ring1, keys := testRing(t, "k1")
			queues := []string{"invoices", workflow.DefaultQueue}
			enc1 := &worker.Encryption{Keys: ring1, Queues: queues}
			cron, err := schedule.New(b, schedule.Config{Encryption: enc1, Logger: discardLogger})
			if err != nil {
				t.Fatal(err)
			}
			tmpl := schedule.JobTemplate{Queue: "invoices", Type: "invoice", Data: json.RawMessage(`{"iban":"` + secretMarker + `"}`), TenantID: "t1"}
			if _, err := cron.Upsert(ctx, schedule.Entry{Name: "nightly", Spec: "0 3 * * *", Job: tmpl}); err != nil {
				t.Fatal(err)
			}
			once, err := schedule.NewOneTime(b)
			if err != nil {
				t.Fatal(err)
			}
			once.Encryption = enc1
			if _, err := once.Schedule(ctx, "month-end", time.Now().Add(time.Hour), tmpl); err != nil {
				t.Fatal(err)
			}

			// Runs under k1: one succeeds, one fails; then more are started
			// with no Manager running.
			engine := func(enc *worker.Encryption) *workflow.Engine {
				eng, err := workflow.NewEngine(b, workflow.Config{Encryption: enc, Logger: discardLogger})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = eng.Close() })
				_ = eng.RegisterStepProcessor("validate", workflow.StepProcessorFunc(func(ctx context.Context, s *workflow.StepInfo, d workflow.Data) (workflow.Data, error) {
					if d["iban"] != secretMarker {
						return nil, worker.NoRetry(fmt.Errorf("step got %v, want the plaintext", d))
					}
					if d["refuse"] == true {
						return nil, worker.NoRetry(fmt.Errorf("bank rejected %s", secretMarker))
					}
					return workflow.Data{"checked": secretMarker}, nil
				}))
				if err := eng.Register(workflow.Workflow{Name: "pay", Steps: []workflow.Step{{Name: "validate", Processor: "validate"}}}); err != nil {
					t.Fatal(err)
				}
				return eng
			}
			manager := func(eng *workflow.Engine, enc *worker.Encryption) *worker.Manager {
				cfg := fastConfig(worker.QueueConfig{Name: workflow.DefaultQueue})
				cfg.Encryption = enc
				m, err := worker.NewManager(b, cfg)
				if err != nil {
					t.Fatal(err)
				}
				if err := eng.Attach(m); err != nil {
					t.Fatal(err)
				}
				if err := m.Start(ctx); err != nil {
					t.Fatal(err)
				}
				return m
			}
			eng1 := engine(enc1)
			var ids []string
			execute := func(eng *workflow.Engine, refuse bool) {
				run, err := eng.Execute(ctx, "pay", map[string]any{"iban": secretMarker, "refuse": refuse}, workflow.ExecuteOptions{TenantID: "t1"})
				if err != nil {
					t.Fatal(err)
				}
				ids = append(ids, run.ID)
			}
			execute(eng1, false)
			execute(eng1, true)
			m1 := manager(eng1, enc1)
			waitFinished(t, eng1, ids)
			if err := m1.Shutdown(ctx); err != nil {
				t.Fatal(err)
			}
			for range 20 {
				execute(eng1, false)
			}

			// The ring gains k2: a Manager runs the waiting runs while the
			// rotation re-seals.
			k2, err := envelope.NewKey("k2")
			if err != nil {
				t.Fatal(err)
			}
			ring2, err := envelope.NewRing(keys[0], k2)
			if err != nil {
				t.Fatal(err)
			}
			enc2 := &worker.Encryption{Keys: ring2, Queues: queues}
			c2, err := worker.NewClient(b, worker.ClientConfig{Encryption: enc2})
			if err != nil {
				t.Fatal(err)
			}
			eng2 := engine(enc2)
			m2 := manager(eng2, enc2)
			runs, schedules := 0, 0
			rotateUntilDone(t, c2, 5, func(res *worker.RotateResult) {
				runs, schedules = runs+res.Runs, schedules+res.Schedules
			})
			if runs < 2 || schedules != 1 {
				t.Errorf("the rotation re-sealed %d runs and %d schedules; want at least the 2 finished runs, and the schedule", runs, schedules)
			}
			waitFinished(t, eng2, ids)
			if err := m2.Shutdown(ctx); err != nil {
				t.Fatal(err)
			}
			// Runs that finished after the rotation's last pass sealed
			// under k2 anyway.
			if res, err := c2.RotateKeys(ctx, worker.RotateParams{}); err != nil || !res.Done || res.Values != 0 {
				t.Fatalf("a rotation after everything settled: %+v, %v; want done with nothing to re-seal", res, err)
			}
			raw := dump(t)
			if i := bytes.Index(raw, []byte(envelope.Prefix+"k1:")); i >= 0 {
				t.Fatalf("a value is still stored under k1 after the rotation: …%q…", raw[max(0, i-200):min(len(raw), i+60)])
			}
			if bytes.Contains(raw, []byte(secretMarker)) {
				t.Fatal("the marker is stored in plain text")
			}

			// k1 removed: every run and the template still open.
			ring3, err := envelope.NewRing(k2)
			if err != nil {
				t.Fatal(err)
			}
			enc3 := &worker.Encryption{Keys: ring3, Queues: queues}
			eng3, err := workflow.NewEngine(b, workflow.Config{Encryption: enc3, Logger: discardLogger})
			if err != nil {
				t.Fatal(err)
			}
			for i, id := range ids {
				r, err := eng3.Get(ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				want := workflow.StateSucceeded
				if i == 1 {
					want = workflow.StateFailed
				}
				if r.State != want || !bytes.Contains(r.Input, []byte(secretMarker)) ||
					(want == workflow.StateSucceeded) != bytes.Contains(r.Steps[0].Output, []byte(secretMarker)) ||
					(want == workflow.StateFailed) != strings.Contains(r.Error, secretMarker) {
					t.Fatalf("run %d (%s) without k1: %s, input %s, output %s, error %q; want it %s with its values opened",
						i, id, r.State, r.Input, r.Steps[0].Output, r.Error, want)
				}
			}
			cron3, err := schedule.New(b, schedule.Config{Encryption: enc3, Logger: discardLogger})
			if err != nil {
				t.Fatal(err)
			}
			if info, err := cron3.Get(ctx, "nightly"); err != nil || !bytes.Contains(info.Job.Data, []byte(secretMarker)) {
				t.Fatalf("the schedule without k1: %+v, %v; want its template opened", info, err)
			}
		})
	}
}

// waitFinished waits until every run of ids has finished.
func waitFinished(t *testing.T, eng *workflow.Engine, ids []string) {
	t.Helper()
	waitFor(t, 60*time.Second, fmt.Sprintf("%d runs to finish", len(ids)), func() bool {
		for _, id := range ids {
			if r, err := eng.Get(context.Background(), id); err != nil || r.State == workflow.StateRunning {
				return false
			}
		}
		return true
	})
}

// rotateUntilDone calls c.RotateKeys with batch until it reports Done (at
// most 5 calls), failing on an error or an unreadable value; each, if
// not nil, sees every call's result.
func rotateUntilDone(t *testing.T, c *worker.Client, batch int, each func(*worker.RotateResult)) {
	t.Helper()
	var res *worker.RotateResult
	for try := 0; res == nil || !res.Done; try++ {
		if try == 5 {
			t.Fatalf("rotation not done after %d calls: %+v", try, res)
		}
		var err error
		if res, err = c.RotateKeys(context.Background(), worker.RotateParams{BatchSize: batch}); err != nil {
			t.Fatal(err)
		}
		if len(res.Unreadable) > 0 {
			t.Fatalf("rotation found unreadable values: %v", res.Unreadable)
		}
		if each != nil {
			each(res)
		}
	}
}

// TestRotateKeysJobsCompleteBetweenPages: jobs that complete between two
// pages of a rotation's walk must not make it skip the jobs behind them.
// The pending jobs are 10 under k2 (the newest key), then 10 under k1,
// then 10 under k2; the ten at the front complete right after the first
// page listed them. A walk by offset then starts its second page at the
// third ten: the k1 jobs were never read, the pass re-sealed nothing, and
// the rotation reported done with them under k1.
func TestRotateKeysJobsCompleteBetweenPages(t *testing.T) {
	for _, e := range storeEngines {
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			b, dump := e.open(t)
			ctx := context.Background()
			ring1, keys := testRing(t, "k1")
			ring2 := ringWithK2(t, keys[0])
			add := func(ring *envelope.Ring) {
				c, err := worker.NewClient(b, worker.ClientConfig{Encryption: &worker.Encryption{Keys: ring, All: true}})
				if err != nil {
					t.Fatal(err)
				}
				specs := make([]worker.JobSpec, 10)
				for i := range specs {
					specs[i] = worker.JobSpec{Type: "x", Data: map[string]string{"iban": secretMarker}}
				}
				if _, err := c.AddMany(ctx, "invoices", specs); err != nil {
					t.Fatal(err)
				}
			}
			add(ring2)
			add(ring1)
			add(ring2)
			cb := &completeAfterFirstPage{Broker: b, JobRewriter: b.(broker.JobRewriter), Committer: b.(broker.Committer), t: t}
			c2, err := worker.NewClient(cb, worker.ClientConfig{Encryption: &worker.Encryption{Keys: ring2, All: true}})
			if err != nil {
				t.Fatal(err)
			}
			res, err := c2.RotateKeys(ctx, worker.RotateParams{Queues: []string{"invoices"}, BatchSize: 10})
			if err != nil {
				t.Fatal(err)
			}
			if !cb.done {
				t.Fatal("no job completed between pages: the test did not decide")
			}
			if raw := dump(t); bytes.Contains(raw, []byte(envelope.Prefix+"k1:")) {
				t.Fatalf("rotation %+v: a job is still sealed under k1 (skipped by the walk)", res)
			}
			if !res.Done || res.Rewritten != 10 {
				t.Fatalf("rotation %+v; want done, the 10 jobs under k1 re-sealed", res)
			}
		})
	}
}

// completeAfterFirstPage completes the jobs of the first page of pending
// jobs listed, right after listing them.
type completeAfterFirstPage struct {
	broker.Broker
	broker.JobRewriter
	broker.Committer
	t    *testing.T
	done bool
}

func (c *completeAfterFirstPage) JobList(ctx context.Context, p *broker.JobListParams) (*broker.JobListResult, error) {
	res, err := c.Broker.JobList(ctx, p)
	if err != nil || c.done || p.State != broker.StatePending || len(res.Jobs) == 0 {
		return res, err
	}
	c.done = true
	jobs, err := c.Broker.JobFetch(ctx, &broker.JobFetchParams{Queue: p.Queue, Limit: len(res.Jobs), LeaseDuration: time.Minute})
	if err != nil {
		return nil, err
	}
	for i, j := range jobs {
		if j.ID != res.Jobs[i].ID {
			c.t.Errorf("fetched %s where the page listed %s: the test's set-up is wrong", j.ID, res.Jobs[i].ID)
		}
		errs, err := c.Broker.JobComplete(ctx, []*broker.JobCompleteParams{{JobLeaseParams: broker.JobLeaseParams{Queue: j.Queue, ID: j.ID, Token: j.LeaseToken}}})
		if err = errors.Join(append(errs, err)...); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// Scrub passes the broker's Scrub on: RotateKeys scrubs a store that
// keeps old ciphertexts in its files.
func (c *completeAfterFirstPage) Scrub(ctx context.Context) error {
	if s, ok := c.Broker.(broker.Scrubber); ok {
		return s.Scrub(ctx)
	}
	return nil
}

// TestRotateKeysCountsAScheduleOnce: a schedule whose re-sealed template
// lost a compare-and-set (the schedule changed meanwhile) and was
// re-sealed again on the retry counts once in RotateResult.Schedules and
// Values: it was counted on each try.
func TestRotateKeysCountsAScheduleOnce(t *testing.T) {
	eachEngine(t, func(t *testing.T, b broker.Broker) {
		ctx := context.Background()
		ring1, keys := testRing(t, "k1")
		cron, err := schedule.New(b, schedule.Config{Encryption: &worker.Encryption{Keys: ring1, All: true}, Logger: discardLogger})
		if err != nil {
			t.Fatal(err)
		}
		tmpl := schedule.JobTemplate{Queue: "invoices", Type: "invoice", Data: json.RawMessage(`{"iban":"` + secretMarker + `"}`)}
		if _, err := cron.Upsert(ctx, schedule.Entry{Name: "nightly", Spec: "0 3 * * *", Job: tmpl}); err != nil {
			t.Fatal(err)
		}
		cb := &writeFirstDocTwice{Broker: b, JobRewriter: b.(broker.JobRewriter), Committer: b.(broker.Committer)}
		c2, err := worker.NewClient(cb, worker.ClientConfig{Encryption: &worker.Encryption{Keys: ringWithK2(t, keys[0]), All: true}})
		if err != nil {
			t.Fatal(err)
		}
		res, err := c2.RotateKeys(ctx, worker.RotateParams{Queues: []string{"invoices"}})
		if err != nil {
			t.Fatal(err)
		}
		if !cb.raced {
			t.Fatal("no schedule write lost its compare-and-set: the test did not decide")
		}
		if res.Schedules != 1 || res.Values != 1 || !res.Done {
			t.Fatalf("rotation %+v; want one schedule and one value re-sealed, done", res)
		}
	})
}

// writeFirstDocTwice lets another writer change the first document a
// commit (other than the rotation's own cursor) writes, just before the
// commit: it rewrites the document as it stands, so that its version moves
// on and the commit fails with ErrConflict.
type writeFirstDocTwice struct {
	broker.Broker
	broker.JobRewriter
	broker.Committer
	raced bool
}

func (w *writeFirstDocTwice) Commit(ctx context.Context, p *broker.CommitParams) (*broker.CommitResult, error) {
	if !w.raced && len(p.Docs) > 0 && p.Docs[0].Kind != "keyrotation" {
		w.raced = true
		d := p.Docs[0]
		cur, err := w.Committer.DocGet(ctx, p.Scope, d.Kind, d.Key)
		if err != nil {
			return nil, err
		}
		if _, err := w.Committer.Commit(ctx, &broker.CommitParams{Scope: p.Scope, Docs: []*broker.DocWrite{{Kind: d.Kind, Key: d.Key, Version: cur.Version, Body: cur.Body}}}); err != nil {
			return nil, err
		}
	}
	return w.Committer.Commit(ctx, p)
}
