package service

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/audit"
	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/internal/logtest"
	"github.com/aibos/worker/internal/redistest"
	"github.com/aibos/worker/internal/testwait"
	"github.com/aibos/worker/workflow"
)

// testKeySecret is a fixed 32-byte key, base64: tests only.
var testKeySecret = base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))

// testKeys is a WORKER_ENCRYPTION_KEYS value for tests.
var testKeys = "test:" + testKeySecret

// TestEncryptedQueuesWithoutKey: with no key configured, the embedded
// store generates one in the data dir (0600) and seals the accounting
// queues' jobs; Redis leaves them unserved and refuses adds to them.
func TestEncryptedQueuesWithoutKey(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		dir := t.TempDir()
		svc, logs := startService(t, "WORKER_DATA_DIR="+dir)
		if n := logs.CountContaining("USING A GENERATED ENCRYPTION KEY"); n != 1 {
			t.Errorf("the generated key was announced %d times, want once", n)
		}
		st, err := os.Stat(filepath.Join(dir, KeyFile))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("generated key file: %v, %v; want it with mode 0600", st, err)
		}
		j, err := svc.Client().Add(context.Background(), "invoices", worker.JobSpec{Type: "x", Data: map[string]string{"iban": "MARKER"}, Delay: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		raw, err := svc.Client().Broker().JobGet(context.Background(), &broker.JobGetParams{Queue: "invoices", ID: j.ID})
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(raw.Data), "MARKER") || !strings.HasPrefix(string(raw.Data), `"aibosenc1:generated:`) {
			t.Fatalf("stored data %s; want it sealed with the generated key", raw.Data)
		}
	})
	t.Run("redis", func(t *testing.T) {
		svc, logs := startService(t, "REDIS_URL="+redistest.URL(t), "QUEUE_PREFIX="+redistest.Prefix(t))
		if n := logs.CountContaining("encrypted queues not served"); n != 1 {
			t.Errorf("the missing key was reported %d times, want one line", n)
		}
		_, err := svc.Client().Add(context.Background(), "invoices", worker.JobSpec{Type: "x"})
		if err == nil || !strings.Contains(err.Error(), "no encryption key is configured") {
			t.Fatalf("add to an encrypted queue with no key: %v; want a refusal naming the missing key", err)
		}
		if _, err := svc.Client().Add(context.Background(), "other", worker.JobSpec{Type: "x", Delay: time.Hour}); err != nil {
			t.Fatalf("add to an unencrypted queue: %v", err)
		}
		// Runs are sealed too (workflows is an encrypted queue by default):
		// with no key, Execute refuses as Add does.
		eng := svc.Workflows()
		step := workflow.StepProcessorFunc(func(ctx context.Context, s *workflow.StepInfo, d workflow.Data) (workflow.Data, error) { return d, nil })
		if err := eng.RegisterStepProcessor("noop", step); err != nil {
			t.Fatal(err)
		}
		if err := eng.Register(workflow.Workflow{Name: "w", Steps: []workflow.Step{{Name: "s", Processor: "noop"}}}); err != nil {
			t.Fatal(err)
		}
		if _, err := eng.Execute(context.Background(), "w", nil, workflow.ExecuteOptions{}); err == nil || !strings.Contains(err.Error(), "no encryption key is configured") {
			t.Fatalf("execute a workflow with no key: %v; want a refusal naming the missing key", err)
		}
	})
}

// startService starts a service with vars (and a free port, no API),
// shut down when the test ends, and returns it with its logs.
func startService(t *testing.T, vars ...string) (*Service, *logtest.Counter) {
	t.Helper()
	svc, logs := newService(t, append(vars, "WORKER_HTTP_ADDR=127.0.0.1:0", "WORKER_API_ENABLED=false")...)
	runService(t, svc)
	return svc, logs
}

// newService makes, without starting it, a service configured by vars,
// and returns it with its logs.
func newService(t *testing.T, vars ...string) (*Service, *logtest.Counter) {
	t.Helper()
	cfg, err := Load(LoadInput{LookupEnv: env(vars...)})
	if err != nil {
		t.Fatal(err)
	}
	log, logs := logtest.NewLogger()
	svc, err := New(context.Background(), cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	return svc, logs
}

// TestRedisDurabilityWarnings: at start the service warns, once each,
// when Redis may evict jobs or keeps none across a restart, and says
// nothing of a server that keeps them.
func TestRedisDurabilityWarnings(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want map[string]int // message part → times logged
	}{
		{"evicting, not persistent", []string{"--maxmemory-policy", "allkeys-lru"}, map[string]int{`maxmemory-policy is "allkeys-lru"`: 1, "no persistence": 1}},
		{"safe", []string{"--appendonly", "yes"}, map[string]int{"maxmemory-policy": 0, "persistence": 0}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := redistest.StartWith(t, redistest.Options{Args: tc.args})
			_, logs := startService(t, "REDIS_URL="+srv.URL(), "WORKER_ENCRYPTION_KEYS="+testKeys)
			for w, want := range tc.want {
				if n := logs.CountContaining(w); n != want {
					t.Errorf("a warning with %q logged %d times, want %d", w, n, want)
				}
			}
		})
	}
}

// TestUndecryptableJobAudited: on both engines, a job of an encrypted
// queue whose ciphertext was altered, copied from another tenant's job, or
// sealed under a key the service does not hold goes dead unprocessed, and
// the audit trail records each with its tenant and the reason.
func TestUndecryptableJobAudited(t *testing.T) {
	eachKeyedEngine(t, testUndecryptableAudited)
}

// eachKeyedEngine runs f on the embedded store and on Redis, with vars
// configuring a service that has encryption keys and an audit trail.
func eachKeyedEngine(t *testing.T, f func(t *testing.T, vars []string)) {
	for _, engine := range []string{"sqlite", "redis"} {
		t.Run(engine, func(t *testing.T) {
			vars := []string{"WORKER_DATA_DIR=" + t.TempDir(), "WORKER_HTTP_ADDR=127.0.0.1:0", "WORKER_ENCRYPTION_KEYS=" + testKeys}
			if engine == "redis" {
				vars = append(vars, "REDIS_URL="+redistest.URL(t), "QUEUE_PREFIX="+redistest.Prefix(t), "WORKER_AUDIT_KEY="+testKeySecret)
			}
			f(t, vars)
		})
	}
}

func testUndecryptableAudited(t *testing.T, vars []string) {
	ctx := context.Background()
	svc, _ := newService(t, vars...)
	c := svc.Client()
	spec := worker.JobSpec{Type: "invoice", Data: map[string]int{"amount": 1}, TenantID: "t1"}
	params := func(tenant string) *broker.JobInsertParams {
		s := spec
		s.TenantID = tenant
		p, err := c.InsertParams("invoices", s)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	flipped := params("t1")
	i := len(flipped.Data) - 10
	flipped.Data = bytes.Clone(flipped.Data)
	flipped.Data[i] = map[bool]byte{true: 'A', false: 'B'}[flipped.Data[i] != 'A']
	moved := params("t2")
	moved.Data = params("t1").Data // t1's ciphertext on t2's job
	unknown := params("t1")
	unknown.Data = bytes.Replace(unknown.Data, []byte(":test:"), []byte(":gone:"), 1) // a key this service does not hold
	want := map[string]struct{ tenant, reason string }{
		"jobs/" + flipped.ID: {"t1", "does not authenticate"},
		"jobs/" + moved.ID:   {"t2", "does not authenticate"},
		"jobs/" + unknown.ID: {"t1", "unknown encryption key id"},
	}
	for _, p := range []*broker.JobInsertParams{flipped, moved, unknown} {
		if _, err := svc.Broker().JobInsert(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	if err := svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Shutdown(ctx) })
	var entries []*audit.Entry
	testwait.For(t, 20*time.Second, "the audit entries of the undecryptable jobs", func() bool {
		page, err := audit.List(ctx, svc.Broker(), audit.Filter{Action: "job.undecryptable"}, 10)
		if err != nil {
			t.Fatal(err)
		}
		entries = page.Entries
		return len(entries) >= len(want)
	})
	if len(entries) != len(want) {
		t.Fatalf("%d audit entries, want %d: %+v", len(entries), len(want), entries)
	}
	for _, e := range entries {
		w, ok := want[e.Target]
		if !ok || e.Tenant != w.tenant || e.Outcome != audit.Failed || !strings.Contains(string(e.Changes), w.reason) {
			t.Errorf("audit entry %s of %s: %s; want tenant %s and the reason %q", e.Target, e.Tenant, e.Changes, w.tenant, w.reason)
		}
	}
	for _, p := range []*broker.JobInsertParams{flipped, moved, unknown} {
		j, err := c.Get(ctx, "invoices", p.ID)
		if err != nil || j.State != worker.StateDead || j.Attempt != 1 || !strings.Contains(j.LastError, "cannot be decrypted") {
			t.Fatalf("job %s: %+v, %v; want dead after one attempt with the reason", p.ID, j, err)
		}
	}
}

// runService starts svc and shuts it down when the test ends.
func runService(t *testing.T, svc *Service) {
	t.Helper()
	ctx := context.Background()
	if err := svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := svc.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
}

// TestUndecryptableRunAudited: on both engines, with the default
// encrypted queues (workflows among them), a run's input is stored
// sealed; a run of tenant t2 holding t1's sealed input fails at its first
// step without running it, with the reason, and the audit trail records
// it; no audit entry quotes the plaintext.
func TestUndecryptableRunAudited(t *testing.T) {
	eachKeyedEngine(t, testUndecryptableRunAudited)
}

func testUndecryptableRunAudited(t *testing.T, vars []string) {
	const marker = "RUN-MARKER-NL91ABNA0417164300"
	ctx := context.Background()
	svc, _ := newService(t, vars...)
	var ran atomic.Int32
	eng := svc.Workflows()
	if err := eng.RegisterStepProcessor("check", workflow.StepProcessorFunc(func(ctx context.Context, s *workflow.StepInfo, d workflow.Data) (workflow.Data, error) {
		if d["iban"] != marker {
			return nil, fmt.Errorf("step got %v, want the plaintext input", d)
		}
		ran.Add(1)
		return d, nil
	})); err != nil {
		t.Fatal(err)
	}
	if err := svc.RegisterWorkflow(workflow.Workflow{Name: "pay", Steps: []workflow.Step{{Name: "check", Processor: "check", RetryAttempts: 1}}}); err != nil {
		t.Fatal(err)
	}
	input := map[string]string{"iban": marker}
	good, err := eng.Execute(ctx, "pay", input, workflow.ExecuteOptions{TenantID: "t1"})
	if err != nil {
		t.Fatal(err)
	}
	moved, err := eng.Execute(ctx, "pay", input, workflow.ExecuteOptions{TenantID: "t2"})
	if err != nil {
		t.Fatal(err)
	}
	docs := svc.Broker().(broker.Committer)
	from, err := docs.DocGet(ctx, workflow.DefaultQueue, "run", good.ID)
	if err != nil {
		t.Fatal(err)
	}
	to, err := docs.DocGet(ctx, workflow.DefaultQueue, "run", moved.ID)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(from.Body, []byte(marker)) {
		t.Fatalf("the run is stored as %s: want its input sealed", from.Body)
	}
	var a, b map[string]any
	if err := json.Unmarshal(from.Body, &a); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(to.Body, &b); err != nil {
		t.Fatal(err)
	}
	b["input"] = a["input"] // t1's ciphertext in t2's run
	body, _ := json.Marshal(b)
	if _, err := docs.Commit(ctx, &broker.CommitParams{Scope: workflow.DefaultQueue,
		Docs: []*broker.DocWrite{{Kind: "run", Key: moved.ID, Version: to.Version, Body: body}}}); err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Shutdown(ctx) })
	var failed *workflow.Run
	testwait.For(t, 20*time.Second, "both runs to finish", func() bool {
		ok, err1 := eng.Get(ctx, good.ID)
		failed, err = eng.Get(ctx, moved.ID)
		return err1 == nil && err == nil && ok.State == workflow.StateSucceeded && failed.State == workflow.StateFailed
	})
	if ran.Load() != 1 || !strings.Contains(failed.Error, "cannot be decrypted") || !strings.Contains(failed.Error, "input") {
		t.Errorf("the step ran %d times (want once, for t1), t2's run failed with %q (want the reason)", ran.Load(), failed.Error)
	}
	var entries []*audit.Entry
	testwait.For(t, 20*time.Second, "the audit entry of the undecryptable run", func() bool {
		page, err := audit.List(ctx, svc.Broker(), audit.Filter{Action: "workflow.undecryptable"}, 10)
		if err != nil {
			t.Fatal(err)
		}
		entries = page.Entries
		return len(entries) > 0
	})
	if e := entries[0]; len(entries) != 1 || e.Target != "workflows/"+moved.ID || e.Tenant != "t2" || e.Outcome != audit.Failed ||
		!strings.Contains(string(e.Changes), "does not authenticate") {
		t.Errorf("audit entries %+v; want one for t2's run with the reason", entries)
	}
	all, err := audit.List(ctx, svc.Broker(), audit.Filter{}, 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range all.Entries {
		if raw, _ := json.Marshal(e); bytes.Contains(raw, []byte(marker)) {
			t.Errorf("audit entry %s quotes the plaintext: %s", e.Action, raw)
		}
	}
}
