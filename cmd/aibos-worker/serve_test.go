package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/broker/redisbroker"
	"github.com/aibos/worker/broker/sqlitebroker"
	"github.com/aibos/worker/envelope"
	"github.com/aibos/worker/httpproc"
	"github.com/aibos/worker/internal/redistest"
	"github.com/aibos/worker/internal/testwait"
	"github.com/aibos/worker/service"
)

// app is the application the service calls: an HTTP server on loopback
// that records the jobs POSTed to it. /fast answers 200 at once; /slow
// holds the request until the caller gives up.
type app struct {
	srv *httptest.Server
	// secret signs the calls; each is verified with httpproc.Verify, the
	// documented recipe for Go receivers.
	secret string

	mu        sync.Mutex
	fast      map[string]int // job id → calls
	callbacks map[string]int // job id → job.completed callbacks
	slowHit   chan string    // the id of each /slow call, as it starts
}

func newApp(t *testing.T) *app {
	a := &app{fast: map[string]int{}, callbacks: map[string]int{}, slowHit: make(chan string, 10), secret: "whsec_" + base64.StdEncoding.EncodeToString([]byte("e2e-test-secret-0123456789abcdef"))}
	a.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			return // the balancer's health check
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return
		}
		if err := httpproc.Verify(a.secret, r.Header, body, 0); err != nil {
			t.Errorf("call to %s not signed with the configured secret: %v", r.URL.Path, err)
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		if r.URL.Path == "/callback" {
			var cb httpproc.Callback
			if err := json.Unmarshal(body, &cb); err != nil || cb.Job == nil {
				t.Errorf("callback body %s: %v", body, err)
				return
			}
			if cb.Type == httpproc.EventJobCompleted {
				if string(cb.Result) != `{"posted":true}` {
					t.Errorf("job.completed callback of %s carries result %s, want the app's answer in plain text", cb.Job.ID, cb.Result)
				}
				a.mu.Lock()
				a.callbacks[cb.Job.ID]++
				a.mu.Unlock()
			}
			return
		}
		var job struct {
			ID, Type string
			Data     map[string]any
		}
		if err := json.Unmarshal(body, &job); err != nil || job.ID == "" {
			t.Errorf("call to %s: body is not a job: %v", r.URL.Path, err)
			http.Error(w, "bad job", http.StatusBadRequest)
			return
		}
		switch r.URL.Path {
		case "/fast":
			if _, ok := job.Data["n"]; !ok {
				t.Errorf("fast job %s POSTed with data %v, want the payload in plain text", job.ID, job.Data)
			}
			a.mu.Lock()
			a.fast[job.ID]++
			a.mu.Unlock()
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"posted":true}`)
		case "/slow":
			a.slowHit <- job.ID
			<-r.Context().Done()
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(a.srv.Close)
	return a
}

func (a *app) fastCalls() map[string]int { return a.copy(a.fast) }

func (a *app) completedCallbacks() map[string]int { return a.copy(a.callbacks) }

func (a *app) copy(m map[string]int) map[string]int {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make(map[string]int, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// configFile writes a config binding e2e.fast (through a balancer over
// the app's one instance) and e2e.slow (its URL) to the app, with
// completion callbacks; the secret is read from the environment as a
// deployment would.
func (a *app) configFile(t *testing.T) string {
	path := filepath.Join(t.TempDir(), "aibos-worker.yaml")
	cfg := fmt.Sprintf(`queues:
  - {name: invoices, priority: 1, concurrency: 3}
  - {name: reports, priority: 4, concurrency: 1}
job_types:
  e2e.fast:
    http: {url: http:///fast, instances: [%[2]s], secret_env: E2E_WEBHOOK_SECRET}
  e2e.slow:
    http: {url: %[1]s/slow, secret_env: E2E_WEBHOOK_SECRET}
callbacks: {url: %[1]s/callback, secret_env: E2E_WEBHOOK_SECRET}
`, a.srv.URL, a.srv.Listener.Addr())
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// e2e is one end-to-end run of `aibos-worker serve` against a store.
// e2eKeys is the WORKER_ENCRYPTION_KEYS of the end-to-end tests: a fixed
// test key.
var e2eKeys = "e2e:" + base64.StdEncoding.EncodeToString([]byte("e2e-test-key-0123456789abcdef012"))

// e2eEncryption is the service's default encryption under e2eKeys.
func e2eEncryption(t *testing.T) *worker.Encryption {
	keys, err := envelope.ParseKeys(e2eKeys)
	if err != nil {
		t.Fatal(err)
	}
	ring, err := envelope.NewRing(keys...)
	if err != nil {
		t.Fatal(err)
	}
	return &worker.Encryption{Keys: ring, Queues: []string{"invoices", "bills", "payments", "reports"}}
}

type e2e struct {
	env []string
	// open opens the store the service uses, from the test process.
	open func(t *testing.T) broker.Broker
	// concurrent says whether the store may be opened while the service
	// runs; the embedded store is single-process, so its jobs are added
	// before the service starts and read after it exits.
	concurrent bool
}

// run enqueues five fast jobs and a slow one through the library, checks
// the fast ones are processed by the app over HTTP and counted in
// /metrics and the periodic metrics log line, then sends SIGTERM while the slow one runs and checks the
// process exits 0 within the drain timeout and the slow job is pending
// again with its attempt not consumed.
func (e e2e) run(t *testing.T) (slowID string) {
	ctx := context.Background()
	a := newApp(t)
	enqueue := func(b broker.Broker) (fast []string, slow string) {
		c, err := worker.NewClient(b, worker.ClientConfig{Encryption: e2eEncryption(t)})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 5 {
			j, err := c.Add(ctx, "invoices", worker.JobSpec{Type: "e2e.fast", Data: map[string]int{"n": i}, TenantID: "tenant_123"})
			if err != nil {
				t.Fatalf("add fast job: %v", err)
			}
			fast = append(fast, j.ID)
		}
		j, err := c.Add(ctx, "reports", worker.JobSpec{Type: "e2e.slow", MaxAttempts: 3})
		if err != nil {
			t.Fatalf("add slow job: %v", err)
		}
		return fast, j.ID
	}

	var fast []string
	if !e.concurrent {
		b := e.open(t)
		fast, slowID = enqueue(b)
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
	}
	const drain = time.Second
	p := start(t, append(e.env, "E2E_WEBHOOK_SECRET="+a.secret, "WORKER_ENCRYPTION_KEYS="+e2eKeys, "WORKER_HTTP_ADDR=127.0.0.1:0", fmt.Sprintf("WORKER_DRAIN_TIMEOUT=%d", drain.Milliseconds()), "METRICS_INTERVAL=100"),
		"serve", "--config", a.configFile(t))
	base := p.addr()
	if e.concurrent {
		b := e.open(t)
		fast, slowID = enqueue(b)
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
	}

	testwait.For(t, 60*time.Second, "the app to receive the five fast jobs", func() bool { return len(a.fastCalls()) == 5 })
	for _, id := range fast {
		if n := a.fastCalls()[id]; n != 1 {
			t.Errorf("fast job %s was POSTed %d times, want 1", id, n)
		}
	}
	testwait.For(t, 60*time.Second, "a job.completed callback per fast job", func() bool { return len(a.completedCallbacks()) == 5 })
	for _, id := range fast {
		if n := a.completedCallbacks()[id]; n != 1 {
			t.Errorf("fast job %s had %d job.completed callbacks, want 1", id, n)
		}
	}
	want := `aibos_worker_jobs_completed_total{queue="invoices",type="e2e.fast"} 5`
	var metrics string
	testwait.For(t, 30*time.Second, "/metrics to count five completed jobs", func() bool {
		_, metrics = get(t, base+"/metrics")
		return strings.Contains(metrics, want)
	})
	// METRICS_INTERVAL drives a snapshot line counting the same jobs, and
	// the five callback deliveries, which are jobs too.
	p.waitLogMatch("metrics", 30*time.Second, func(l map[string]any) bool { return l["jobs_completed"] == 10.0 })
	if code, body := get(t, base+"/readyz"); code != http.StatusOK {
		t.Errorf("/readyz = %d %s while serving, want 200", code, body)
	}

	select {
	case id := <-a.slowHit:
		if id != slowID {
			t.Fatalf("slow endpoint got job %s, want %s", id, slowID)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the slow job never reached the app")
	}
	sent := time.Now()
	p.signal(syscall.SIGTERM)
	// Drain timeout, then the Manager's 5 s grace for cancelled
	// processors, then closing: well within 20 s on any machine.
	if code := p.wait(20 * time.Second); code != 0 {
		t.Fatalf("aibos-worker exited %d after SIGTERM, want 0", code)
	}
	if took := time.Since(sent); took < drain {
		t.Errorf("exited %v after SIGTERM with a job running, before the drain timeout %v", took, drain)
	}
	p.waitLog("stopped", time.Second)

	b := e.open(t)
	defer b.Close()
	j, err := b.JobGet(ctx, &broker.JobGetParams{Queue: "reports", ID: slowID})
	if err != nil {
		t.Fatal(err)
	}
	if j.State != broker.StatePending || j.Attempt != 0 {
		t.Errorf("slow job after SIGTERM: state %s attempt %d, want pending and 0 (handed back, attempt not consumed)", j.State, j.Attempt)
	}
	for _, id := range fast {
		j, err := b.JobGet(ctx, &broker.JobGetParams{Queue: "invoices", ID: id})
		if err != nil {
			t.Fatal(err)
		}
		// The accounting queues are encrypted by default: the stored
		// result is sealed, and opens to the app's answer.
		if strings.Contains(string(j.Result), "posted") {
			t.Errorf("fast job %s stored its result in plain text: %s", id, j.Result)
		}
		opened, err := e2eEncryption(t).OpenJob(j)
		if err != nil {
			t.Fatalf("open fast job %s: %v", id, err)
		}
		if j.State != broker.StateCompleted || string(opened.Result) != `{"posted":true}` {
			t.Errorf("fast job %s is %s with result %s, want completed with the app's answer as result", id, j.State, opened.Result)
		}
	}
	return slowID
}

func TestServeSQLite(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	e2e{
		env: []string{"WORKER_DATA_DIR=" + dir},
		open: func(t *testing.T) broker.Broker {
			b, err := sqlitebroker.Open(filepath.Join(dir, service.StoreFile), sqlitebroker.Config{})
			if err != nil {
				t.Fatalf("open the service's store: %v", err)
			}
			return b
		},
	}.run(t)
}

func TestServeRedis(t *testing.T) {
	t.Parallel()
	url, prefix := redistest.URL(t), redistest.Prefix(t)
	const db = 7
	client := func(db int) *redis.Client {
		opts, err := redis.ParseURL(url)
		if err != nil {
			t.Fatal(err)
		}
		opts.DB = db
		c := redis.NewClient(opts)
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	e2e{
		env: []string{"REDIS_URL=" + url, fmt.Sprintf("REDIS_DB=%d", db), "QUEUE_PREFIX=" + prefix,
			"WORKER_AUDIT_KEY=" + testAuditKey, "WORKER_DATA_DIR=" + t.TempDir()},
		open: func(t *testing.T) broker.Broker {
			b, err := redisbroker.New(client(db), redisbroker.Config{Prefix: prefix})
			if err != nil {
				t.Fatal(err)
			}
			return b
		},
		concurrent: true,
	}.run(t)

	// The service wrote under QUEUE_PREFIX in REDIS_DB and nowhere else.
	ctx := context.Background()
	keys, err := client(db).Keys(ctx, prefix+":*").Result()
	if err != nil {
		t.Fatal(err)
	}
	var sawReports, sawInvoices bool
	for _, k := range keys {
		sawReports = sawReports || strings.HasPrefix(k, prefix+":{reports}")
		sawInvoices = sawInvoices || strings.HasPrefix(k, prefix+":{invoices}")
	}
	if !sawReports || !sawInvoices {
		t.Errorf("keys under %s in db %d: %v; want the invoices and reports queues' keys", prefix, db, keys)
	}
	if other, err := client(0).Keys(ctx, prefix+"*").Result(); err != nil || len(other) > 0 {
		t.Errorf("keys under %s in db 0: %v (err %v); want none, REDIS_DB is %d", prefix, other, err, db)
	}
}

// testAuditKey is base64 of 32 bytes: serve on Redis needs an audit key.
const testAuditKey = "YWRtaW4tdGVzdC1hdWRpdC1rZXktMzItYnl0ZXMtb2s="
