package worker_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/broker/redisbroker"
	"github.com/aibos/worker/broker/sqlitebroker"
	"github.com/aibos/worker/envelope"
	"github.com/aibos/worker/internal/logtest"
	"github.com/aibos/worker/internal/redistest"
	"github.com/aibos/worker/recovery"
	"github.com/aibos/worker/schedule"
	"github.com/aibos/worker/workflow"
)

// storeEngine is a broker with a way to read every byte it has stored.
type storeEngine struct {
	name string
	open func(t *testing.T) (broker.Broker, func(t *testing.T) []byte)
}

var storeEngines = []storeEngine{
	{"redis", func(t *testing.T) (broker.Broker, func(t *testing.T) []byte) {
		rc, prefix := redistest.Client(t), redistest.Prefix(t)
		b, err := redisbroker.New(rc, redisbroker.Config{Prefix: prefix})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = b.Close() })
		return b, func(t *testing.T) []byte { return redisDump(t, rc, prefix) }
	}},
	{"sqlite", func(t *testing.T) (broker.Broker, func(t *testing.T) []byte) {
		path := filepath.Join(t.TempDir(), "worker.db")
		b, err := sqlitebroker.Open(path, sqlitebroker.Config{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = b.Close() })
		return b, func(t *testing.T) []byte {
			var all []byte
			for _, f := range []string{path, path + "-wal"} {
				raw, err := os.ReadFile(f)
				if err != nil && !errors.Is(err, os.ErrNotExist) {
					t.Fatal(err)
				}
				all = append(all, raw...)
			}
			if len(all) == 0 {
				t.Fatal("the sqlite file and its WAL are empty")
			}
			return all
		}
	}},
}

// redisDump reads every key under prefix and every value, by type.
func redisDump(t *testing.T, rc *redis.Client, prefix string) []byte {
	t.Helper()
	ctx := context.Background()
	var out bytes.Buffer
	keys := 0
	iter := rc.Scan(ctx, 0, prefix+"*", 500).Iterator()
	for iter.Next(ctx) {
		k := iter.Val()
		keys++
		fmt.Fprintln(&out, k)
		typ, err := rc.Type(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		var v any
		switch typ {
		case "string":
			v, err = rc.Get(ctx, k).Result()
		case "hash":
			v, err = rc.HGetAll(ctx, k).Result()
		case "list":
			v, err = rc.LRange(ctx, k, 0, -1).Result()
		case "set":
			v, err = rc.SMembers(ctx, k).Result()
		case "zset":
			v, err = rc.ZRangeWithScores(ctx, k, 0, -1).Result()
		case "stream":
			v, err = rc.XRange(ctx, k, "-", "+").Result()
		case "none": // removed since the scan saw it
		default:
			t.Fatalf("key %s has type %s, which the scan cannot read", k, typ)
		}
		if err != nil && !errors.Is(err, redis.Nil) {
			t.Fatalf("read %s (%s): %v", k, typ, err)
		}
		fmt.Fprintf(&out, "%v\n", v)
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	if keys == 0 {
		t.Fatalf("no keys under %s", prefix)
	}
	return out.Bytes()
}

func testRing(t *testing.T, ids ...string) (*envelope.Ring, []envelope.Key) {
	t.Helper()
	var keys []envelope.Key
	for _, id := range ids {
		k, err := envelope.NewKey(id)
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	r, err := envelope.NewRing(keys...)
	if err != nil {
		t.Fatal(err)
	}
	return r, keys
}

// ringWithK2 returns a ring of k1 and a newer key k2, which seals.
func ringWithK2(t *testing.T, k1 envelope.Key) *envelope.Ring {
	t.Helper()
	k2, err := envelope.NewKey("k2")
	if err != nil {
		t.Fatal(err)
	}
	r, err := envelope.NewRing(k1, k2)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

const secretMarker = "MARKER-IBAN-DE89370400440532013000"

// TestEncryptionKeepsMarkerOutOfStore runs jobs of an encrypted queue whose
// payload, progress, result and error messages carry a marker, then reads
// everything the broker stored: the marker is nowhere, while processors
// got the plaintext and Client.Get shows it.
func TestEncryptionKeepsMarkerOutOfStore(t *testing.T) {
	for _, e := range storeEngines {
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			b, dump := e.open(t)
			ring, _ := testRing(t, "k1")
			enc := &worker.Encryption{Keys: ring, Queues: []string{"invoices"}}
			c, err := worker.NewClient(b, worker.ClientConfig{Encryption: enc})
			if err != nil {
				t.Fatal(err)
			}
			cfg := fastConfig(worker.QueueConfig{Name: "invoices"})
			cfg.Encryption = enc
			var logs logtest.Buffer
			cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			m, err := worker.NewManager(b, cfg)
			if err != nil {
				t.Fatal(err)
			}
			var mu sync.Mutex
			var seen []string
			_ = m.HandleFunc("invoice.ok", func(ctx context.Context, j *worker.Job) error {
				mu.Lock()
				seen = append(seen, string(j.Data))
				mu.Unlock()
				if err := worker.SetProgress(ctx, map[string]string{"at": secretMarker}); err != nil {
					return err
				}
				return worker.SetResult(ctx, map[string]string{"paid_to": secretMarker})
			})
			_ = m.HandleFunc("invoice.fail", func(ctx context.Context, j *worker.Job) error {
				mu.Lock()
				seen = append(seen, string(j.Data))
				mu.Unlock()
				// Long enough that the brokers cut each attempt's copy:
				// the sealed copy must still open.
				return fmt.Errorf("bank rejected %s:%s", secretMarker, strings.Repeat(" detail", 300))
			})
			ctx := context.Background()
			data := map[string]string{"iban": secretMarker}
			ok, err := c.Add(ctx, "invoices", worker.JobSpec{Type: "invoice.ok", Data: data, TenantID: "t1"})
			if err != nil {
				t.Fatal(err)
			}
			bad, err := c.Add(ctx, "invoices", worker.JobSpec{Type: "invoice.fail", Data: data, TenantID: "t1", MaxAttempts: 2})
			if err != nil {
				t.Fatal(err)
			}
			pending, err := c.Add(ctx, "invoices", worker.JobSpec{Type: "invoice.ok", Data: data, Delay: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			startManager(t, m)
			done := waitState(t, c, "invoices", ok.ID, worker.StateCompleted)
			dead := waitState(t, c, "invoices", bad.ID, worker.StateDead)

			if !strings.Contains(string(done.Result), secretMarker) || !strings.Contains(string(done.Data), secretMarker) {
				t.Errorf("Client.Get of the completed job: data %s result %s; want both opened", done.Data, done.Result)
			}
			if !strings.Contains(dead.LastError, secretMarker) || len(dead.Attempts) != 2 || !strings.Contains(dead.Attempts[0].Error, secretMarker) {
				t.Errorf("Client.Get of the dead job: last error %q, attempts %+v; want the errors opened", dead.LastError, dead.Attempts)
			}
			mu.Lock()
			for _, s := range seen {
				if !strings.Contains(s, secretMarker) {
					t.Errorf("processor got data %s, want the plaintext", s)
				}
			}
			if len(seen) != 3 {
				t.Errorf("processors ran %d times, want 3", len(seen))
			}
			mu.Unlock()
			if got, _ := c.Get(ctx, "invoices", pending.ID); got == nil || !strings.Contains(string(got.Data), secretMarker) {
				t.Errorf("Client.Get of the scheduled job: %+v", got)
			}
			raw := dump(t)
			if i := bytes.Index(raw, []byte(secretMarker)); i >= 0 {
				t.Fatalf("the marker is stored in plain text: …%q…", raw[max(0, i-200):i+len(secretMarker)])
			}
			// The Manager logs a failed encrypted job's error class, not
			// its message.
			if l := logs.String(); strings.Contains(l, secretMarker) || !strings.Contains(l, "message withheld: the job is encrypted") {
				t.Fatalf("the log quotes an encrypted job's error, or says nothing of it:\n%s", l)
			}
			if !bytes.Contains(raw, []byte(envelope.Prefix+"k1:")) {
				t.Fatal("no sealed value found in the store: the scan read nothing")
			}
		})
	}
}

// TestUndecryptableJobsGoDead stores jobs whose ciphertext was altered,
// copied from another tenant's job, or sealed under a key the workers do
// not hold: each goes dead unprocessed with the reason, and the hook is
// told.
func TestUndecryptableJobsGoDead(t *testing.T) {
	eachEngine(t, func(t *testing.T, b broker.Broker) {
		ring, _ := testRing(t, "k1")
		enc := &worker.Encryption{Keys: ring, Queues: []string{"invoices"}}
		c, err := worker.NewClient(b, worker.ClientConfig{Encryption: enc})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		spec := worker.JobSpec{Type: "invoice", Data: map[string]int{"amount": 100}, TenantID: "t1", MaxAttempts: 5}

		flipped, err := c.InsertParams("invoices", spec)
		if err != nil {
			t.Fatal(err)
		}
		i := len(flipped.Data) - 10
		flipped.Data = bytes.Clone(flipped.Data)
		flipped.Data[i] = map[bool]byte{true: 'A', false: 'B'}[flipped.Data[i] != 'A']

		other := spec
		other.TenantID = "t2"
		moved, err := c.InsertParams("invoices", other)
		if err != nil {
			t.Fatal(err)
		}
		fromT1, err := c.InsertParams("invoices", spec)
		if err != nil {
			t.Fatal(err)
		}
		moved.Data = fromT1.Data

		otherRing, _ := testRing(t, "k9")
		foreign, err := worker.NewClient(b, worker.ClientConfig{Encryption: &worker.Encryption{Keys: otherRing, All: true}})
		if err != nil {
			t.Fatal(err)
		}
		unknown, err := foreign.InsertParams("invoices", spec)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]error{flipped.ID: envelope.ErrTampered, moved.ID: envelope.ErrTampered, unknown.ID: envelope.ErrUnknownKey}
		for _, p := range []*broker.JobInsertParams{flipped, moved, unknown} {
			if _, err := b.JobInsert(ctx, p); err != nil {
				t.Fatal(err)
			}
		}
		good, err := c.Add(ctx, "invoices", spec)
		if err != nil {
			t.Fatal(err)
		}

		cfg := fastConfig(worker.QueueConfig{Name: "invoices"})
		cfg.Encryption = enc
		var mu sync.Mutex
		hooked := map[string]error{}
		cfg.OnUndecryptable = func(_ context.Context, j *worker.Job, err error) {
			mu.Lock()
			hooked[j.ID] = err
			mu.Unlock()
		}
		m, err := worker.NewManager(b, cfg)
		if err != nil {
			t.Fatal(err)
		}
		rec := recordType(m, "invoice", jobID)
		startManager(t, m)
		waitState(t, c, "invoices", good.ID, worker.StateCompleted)
		for id, wantErr := range want {
			j := waitState(t, c, "invoices", id, worker.StateDead)
			if !strings.Contains(j.LastError, "cannot be decrypted") || !strings.Contains(j.LastError, wantErr.Error()) {
				t.Errorf("job %s dead with %q; want the reason %q", id, j.LastError, wantErr)
			}
			if j.Attempt != 1 {
				t.Errorf("job %s dead after %d attempts; want 1 (no retries)", id, j.Attempt)
			}
			// The hook runs after the job is recorded dead.
			var got error
			waitFor(t, 5*time.Second, "OnUndecryptable for "+id, func() bool {
				mu.Lock()
				defer mu.Unlock()
				got = hooked[id]
				return got != nil
			})
			if !errors.Is(got, wantErr) {
				t.Errorf("OnUndecryptable for %s got %v, want %v", id, got, wantErr)
			}
		}
		if got := rec.first(t, 1, time.Second); len(got) != 1 || got[0] != good.ID {
			t.Errorf("processed %v, want only %s", got, good.ID)
		}
		rec.mu.Lock()
		if len(rec.got) != 1 {
			t.Errorf("processed %v; the undecryptable jobs must never reach a processor", rec.got)
		}
		rec.mu.Unlock()
	})
}

// TestEncryptionRotationKeepsOldJobsReadable runs a job sealed under an
// old key on a Manager whose ring has a newer one: it opens, and what the
// processor stores is sealed under the newest key.
func TestEncryptionRotationKeepsOldJobsReadable(t *testing.T) {
	eachEngine(t, func(t *testing.T, b broker.Broker) {
		oldRing, keys := testRing(t, "k1")
		newRing := ringWithK2(t, keys[0])
		ctx := context.Background()
		oldClient, err := worker.NewClient(b, worker.ClientConfig{Encryption: &worker.Encryption{Keys: oldRing, All: true}})
		if err != nil {
			t.Fatal(err)
		}
		j, err := oldClient.Add(ctx, "default", worker.JobSpec{Type: "work", Data: json.RawMessage(`{"n":1}`)})
		if err != nil {
			t.Fatal(err)
		}
		enc := &worker.Encryption{Keys: newRing, All: true}
		cfg := fastConfig()
		cfg.Encryption = enc
		m, err := worker.NewManager(b, cfg)
		if err != nil {
			t.Fatal(err)
		}
		_ = m.HandleFunc("work", func(ctx context.Context, j *worker.Job) error {
			if string(j.Data) != `{"n":1}` {
				return worker.NoRetry(fmt.Errorf("got data %s", j.Data))
			}
			return worker.SetResult(ctx, "done")
		})
		startManager(t, m)
		plain, err := worker.NewClient(b, worker.ClientConfig{})
		if err != nil {
			t.Fatal(err)
		}
		stored := waitState(t, plain, "default", j.ID, worker.StateCompleted)
		if !strings.HasPrefix(string(stored.Result), `"`+envelope.Prefix+"k2:") {
			t.Fatalf("stored result %s; want it sealed under the newest key k2", stored.Result)
		}
		if !strings.HasPrefix(string(stored.Data), `"`+envelope.Prefix+"k1:") {
			t.Fatalf("stored data %s; want it still under k1", stored.Data)
		}
	})
}

func TestEncryptionConfigErrors(t *testing.T) {
	b := storeEngines[1]
	br, _ := b.open(t)
	for _, enc := range []*worker.Encryption{{}, {Keys: mustRing(t)}} {
		if _, err := worker.NewClient(br, worker.ClientConfig{Encryption: enc}); err == nil || !strings.Contains(err.Error(), "encryption") {
			t.Errorf("NewClient with %+v: %v, want an error naming encryption", enc, err)
		}
		if _, err := worker.NewManager(br, worker.ManagerConfig{Encryption: enc}); err == nil || !strings.Contains(err.Error(), "encryption") {
			t.Errorf("NewManager with %+v: %v, want an error naming encryption", enc, err)
		}
	}
}

func mustRing(t *testing.T) *envelope.Ring {
	r, _ := testRing(t, "k1")
	return r
}

// TestEncryptionSealsSchedules: a cron schedule's job template, its
// jobs (ticks and a manual trigger) and a one-time job of an encrypted
// queue carry a marker: the store holds none of it in plain text, the
// schedule reads back with its template opened, and processors get the
// plaintext.
func TestEncryptionSealsSchedules(t *testing.T) {
	for _, e := range storeEngines {
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			b, dump := e.open(t)
			ctx := context.Background()
			ring, _ := testRing(t, "k1")
			enc := &worker.Encryption{Keys: ring, Queues: []string{"invoices"}}
			cron, err := schedule.New(b, schedule.Config{Encryption: enc, PollInterval: 50 * time.Millisecond, Logger: discardLogger})
			if err != nil {
				t.Fatal(err)
			}
			data := json.RawMessage(`{"iban":"` + secretMarker + `"}`)
			tmpl := schedule.JobTemplate{Queue: "invoices", Type: "invoice", Data: data, TenantID: "t1"}
			if _, err := cron.Upsert(ctx, schedule.Entry{Name: "nightly", Spec: "@every 1s", Job: tmpl}); err != nil {
				t.Fatal(err)
			}
			info, err := cron.Get(ctx, "nightly")
			if err != nil || !bytes.Contains(info.Job.Data, []byte(secretMarker)) {
				t.Fatalf("Get of the schedule: %+v, %v; want its template opened", info, err)
			}
			if _, err := cron.Trigger(ctx, "nightly"); err != nil {
				t.Fatal(err)
			}
			once, err := schedule.NewOneTime(b)
			if err != nil {
				t.Fatal(err)
			}
			once.Encryption = enc
			if _, err := once.Schedule(ctx, "month-end", time.Now(), tmpl); err != nil {
				t.Fatal(err)
			}
			runCtx, stop := context.WithCancel(ctx)
			ran := make(chan error, 1)
			go func() { ran <- cron.Run(runCtx) }()
			t.Cleanup(func() { stop(); <-ran })

			cfg := fastConfig(worker.QueueConfig{Name: "invoices"})
			cfg.Encryption = enc
			m, err := worker.NewManager(b, cfg)
			if err != nil {
				t.Fatal(err)
			}
			var mu sync.Mutex
			var got []string
			_ = m.HandleFunc("invoice", func(ctx context.Context, j *worker.Job) error {
				mu.Lock()
				got = append(got, string(j.Data))
				mu.Unlock()
				return nil
			})
			startManager(t, m)
			// The trigger, the one-time job and at least one tick.
			waitFor(t, 20*time.Second, "three schedule jobs processed", func() bool {
				mu.Lock()
				defer mu.Unlock()
				return len(got) >= 3
			})
			mu.Lock()
			for _, d := range got {
				if !strings.Contains(d, secretMarker) {
					t.Errorf("processor got data %s, want the plaintext", d)
				}
			}
			mu.Unlock()
			raw := dump(t)
			if i := bytes.Index(raw, []byte(secretMarker)); i >= 0 {
				t.Fatalf("the marker is stored in plain text: …%q…", raw[max(0, i-200):i+len(secretMarker)])
			}
		})
	}
}

// TestEncryptionSealsWorkflowRuns: a run of an encrypted workflow queue
// whose input, first step's output, second step's attempt errors and so
// the run's error carry a marker: the store holds none of it in plain
// text, while the steps get the plaintext and the engine shows it.
func TestEncryptionSealsWorkflowRuns(t *testing.T) {
	for _, e := range storeEngines {
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			b, dump := e.open(t)
			ctx := context.Background()
			ring, _ := testRing(t, "k1")
			enc := &worker.Encryption{Keys: ring, Queues: []string{workflow.DefaultQueue}}
			eng, err := workflow.NewEngine(b, workflow.Config{Encryption: enc, Logger: discardLogger})
			if err != nil {
				t.Fatal(err)
			}
			var mu sync.Mutex
			var got []workflow.Data
			record := func(d workflow.Data) {
				mu.Lock()
				got = append(got, d)
				mu.Unlock()
			}
			_ = eng.RegisterStepProcessor("validate", workflow.StepProcessorFunc(func(ctx context.Context, s *workflow.StepInfo, d workflow.Data) (workflow.Data, error) {
				record(d)
				return workflow.Data{"checked_iban": secretMarker}, nil
			}))
			_ = eng.RegisterStepProcessor("post", workflow.StepProcessorFunc(func(ctx context.Context, s *workflow.StepInfo, d workflow.Data) (workflow.Data, error) {
				record(d)
				return nil, fmt.Errorf("ledger refused %v", d["checked_iban"])
			}))
			if err := eng.Register(workflow.Workflow{Name: "invoice-processing", Steps: []workflow.Step{
				{Name: "validate", Processor: "validate"}, {Name: "post", Processor: "post", RetryAttempts: 2},
			}}); err != nil {
				t.Fatal(err)
			}
			cfg := fastConfig(worker.QueueConfig{Name: workflow.DefaultQueue})
			cfg.Encryption = enc
			var logs logtest.Buffer
			cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			m, err := worker.NewManager(b, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if err := eng.Attach(m); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = eng.Close() })
			run, err := eng.Execute(ctx, "invoice-processing", map[string]string{"customer_iban": secretMarker}, workflow.ExecuteOptions{TenantID: "t1"})
			if err != nil {
				t.Fatal(err)
			}
			startManager(t, m)
			var failed *workflow.Run
			waitFor(t, 20*time.Second, "the run to fail", func() bool {
				failed, err = eng.Get(ctx, run.ID)
				return err == nil && failed.State == workflow.StateFailed
			})
			mu.Lock()
			if len(got) != 3 || got[0]["customer_iban"] != secretMarker || got[1]["checked_iban"] != secretMarker {
				t.Errorf("steps got %v; want validate the input and post validate's output (twice), in plain text", got)
			}
			mu.Unlock()
			if !bytes.Contains(failed.Input, []byte(secretMarker)) || !bytes.Contains(failed.Step("validate").Output, []byte(secretMarker)) ||
				!strings.Contains(failed.Error, secretMarker) || !strings.Contains(failed.Step("post").Error, secretMarker) {
				t.Errorf("Get shows input %s, output %s, errors %q and %q; want each opened",
					failed.Input, failed.Step("validate").Output, failed.Error, failed.Step("post").Error)
			}
			raw := dump(t)
			if i := bytes.Index(raw, []byte(secretMarker)); i >= 0 {
				t.Fatalf("the marker is stored in plain text: …%q…", raw[max(0, i-200):i+len(secretMarker)])
			}
			if l := logs.String(); strings.Contains(l, secretMarker) {
				t.Fatalf("the log quotes a sealed run's data:\n%s", l)
			}
			if !bytes.Contains(raw, []byte(envelope.Prefix+"k1:")) {
				t.Fatal("no sealed value found in the store: the scan read nothing")
			}
		})
	}
}

// TestEncryptedJobNotificationWithheld: the recovery policy's notifier
// gets an encrypted job's failure without its message (its class and that
// it was withheld), unless the policy trusts it; a job of a plain queue
// is notified with its message as before.
func TestEncryptedJobNotificationWithheld(t *testing.T) {
	for _, trusted := range []bool{false, true} {
		t.Run(fmt.Sprintf("trusted=%v", trusted), func(t *testing.T) {
			t.Parallel()
			b, _ := storeEngines[1].open(t)
			ctx := context.Background()
			ring, _ := testRing(t, "k1")
			enc := &worker.Encryption{Keys: ring, Queues: []string{"invoices"}}
			got := make(chan recovery.Notification, 4)
			cfg := fastConfig(worker.QueueConfig{Name: "invoices"}, worker.QueueConfig{Name: "plain"})
			cfg.Encryption = enc
			cfg.Recovery = &recovery.Policy{TrustedNotifier: trusted,
				Strategies: []recovery.Strategy{{ErrorType: recovery.BusinessLogicError, Action: recovery.Fail, Notify: true}},
				Notifier:   recovery.NotifierFunc(func(ctx context.Context, n recovery.Notification) error { got <- n; return nil })}
			m, err := worker.NewManager(b, cfg)
			if err != nil {
				t.Fatal(err)
			}
			_ = m.HandleFunc("pay", func(ctx context.Context, j *worker.Job) error {
				return recovery.Classify(recovery.BusinessLogicError, fmt.Errorf("account %s is closed", secretMarker))
			})
			c, err := worker.NewClient(b, worker.ClientConfig{Encryption: enc})
			if err != nil {
				t.Fatal(err)
			}
			startManager(t, m)
			for _, q := range []string{"invoices", "plain"} {
				if _, err := c.Add(ctx, q, worker.JobSpec{Type: "pay"}); err != nil {
					t.Fatal(err)
				}
			}
			byQueue := map[string]recovery.Notification{}
			for len(byQueue) < 2 {
				select {
				case n := <-got:
					byQueue[n.Queue] = n
				case <-time.After(20 * time.Second):
					t.Fatalf("notifications: got %v, want one per queue", byQueue)
				}
			}
			sealed, plain := byQueue["invoices"], byQueue["plain"]
			if !strings.Contains(plain.Error, secretMarker) || plain.Withheld {
				t.Errorf("the plain queue's notification: %+v; want its message", plain)
			}
			if trusted != strings.Contains(sealed.Error, secretMarker) || sealed.Withheld == trusted ||
				sealed.ErrorType != recovery.BusinessLogicError {
				t.Errorf("the encrypted queue's notification (trusted %v): %+v; want the message only when trusted, and the class", trusted, sealed)
			}
			if !trusted && !strings.Contains(sealed.Error, "class "+recovery.BusinessLogicError) {
				t.Errorf("withheld notification error %q; want it to name the class", sealed.Error)
			}
		})
	}
}
