//go:build servicebench

package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/aibos/worker/admin"
	"github.com/aibos/worker/service"
)

// Phase h measures the service (package service, what `aibos-worker
// serve` runs). This file is built only with the tag servicebench: the
// default build runs phase h in a child built with it (service_child.go),
// so that the process measuring phases a-g does not link the service.
// It measures the service through its real HTTP listener on loopback, on
// Redis and on the embedded store, as a user runs it: a bearer token, the audit
// trail on, payload encryption as the service configures it by default
// (the seed's queue invoices is encrypted; the queue plain, which the
// bench adds, is not, and is fair like invoices so that encryption is the
// one difference between the two).
//
//   - h enqueue: POST /api/v1/queues/{queue}/jobs from 1 and 32 clients,
//     and POST .../jobs/batch with 1,000 jobs a request, into a paused
//     queue so that nothing is processed meanwhile.
//   - h http process: jobs of a type bound to an HTTP endpoint of a
//     trivial application server on loopback (answers 200 at once), at the
//     queue's concurrency 10 and 50 with the service's other defaults.
//   - h http latency: serviceRate jobs/s enqueued one by one through the API
//     for latencySeconds; enqueue-to-start is when the application
//     receives the job, enqueue-to-done when the job is recorded
//     completed (its FinishedAt), both from the instant the client sent
//     the enqueue.
const (
	serviceJobType  = "bench.http"
	encryptedQueue  = "invoices"
	plainQueue      = "plain"
	serviceMaxQueue = 1 << 30 // QUEUE_MAX_LENGTH's largest: the default 10,000 would refuse the bench's fills
	// serviceRate is the latency workload's rate: below what one client
	// enqueues through the API on the embedded store on a loaded 2-core
	// machine (~300/s), so that the figure is the service's latency, not
	// a backlog's.
	serviceRate = 200
)

// serviceEngine is one store the service runs on.
type serviceEngine struct {
	label string
	env   func(dir string) []string
	flush func(context.Context) error
}

func measureServiceAll(ctx context.Context, cfg *config, srv *redisServer, res results) error {
	app, err := startApp()
	if err != nil {
		return err
	}
	defer app.close()
	engines := []serviceEngine{
		{label: "sqlite", env: func(string) []string { return nil }, flush: func(context.Context) error { return nil }},
	}
	if cfg.has(cfg.systems, "aibos") {
		engines = append([]serviceEngine{{label: "aibos", env: func(string) []string {
			return []string{"REDIS_URL=" + srv.url}
		}, flush: srv.flush}}, engines...)
	}
	for _, e := range engines {
		set := func(metric string, v float64) {
			res.set(e.label, metric, v)
			if cfg.verbose {
				fmt.Fprintf(os.Stderr, "%-7s %-36s %12.2f\n", e.label, metric, v)
			}
		}
		if err := measureService(ctx, cfg, e, app, set); err != nil {
			return fmt.Errorf("%s: %w", e.label, err)
		}
	}
	return nil
}

func measureService(ctx context.Context, cfg *config, e serviceEngine, app *benchApp, set func(string, float64)) error {
	// Each workload gets a fresh service on an empty store.
	run := func(conc int, f func(s *benchService) error) error {
		if err := e.flush(ctx); err != nil {
			return err
		}
		s, err := startService(ctx, e, app, conc)
		if err != nil {
			return err
		}
		err = f(s)
		if cerr := s.close(); err == nil {
			err = cerr
		}
		return err
	}
	if err := run(10, func(s *benchService) error { return serviceEnqueueRows(ctx, cfg, s, set) }); err != nil {
		return err
	}
	if err := run(10, func(s *benchService) error {
		lags, done, err := s.latency(ctx, app, serviceRate, cfg.latencyS)
		if err != nil {
			return fmt.Errorf("latency: %w", err)
		}
		set("h http enqueue-to-start p99 ms", percentile(lags, 99))
		set("h http enqueue-to-done p99 ms", percentile(done, 99))
		return nil
	}); err != nil {
		return err
	}
	for _, conc := range []int{10, 50} {
		if err := run(conc, func(s *benchService) error {
			d, err := s.process(ctx, app, cfg.n)
			if err != nil {
				return fmt.Errorf("process at %d: %w", conc, err)
			}
			set(fmt.Sprintf("h http process c%d jobs/s", conc), float64(cfg.n)/d.Seconds())
			return nil
		}); err != nil {
			return err
		}
	}
	return nil
}

// serviceEnqueueRows measures the API's enqueue into each queue, paused
// so that nothing is processed meanwhile.
func serviceEnqueueRows(ctx context.Context, cfg *config, s *benchService, set func(string, float64)) error {
	for _, q := range []string{encryptedQueue, plainQueue} {
		if err := s.call(ctx, "POST", "/api/v1/queues/"+q+"/pause", nil, nil); err != nil {
			return err
		}
		for _, g := range []int{1, 32} {
			t0 := time.Now()
			if err := split(cfg.n, g, func(int) error { return s.enqueueOne(ctx, q, payload) }); err != nil {
				return fmt.Errorf("enqueue into %s from %d: %w", q, g, err)
			}
			set(fmt.Sprintf("h api enqueue %s x%d jobs/s", q, g), float64(cfg.n)/time.Since(t0).Seconds())
		}
		t0 := time.Now()
		if err := s.enqueueBatches(ctx, q, cfg.n); err != nil {
			return fmt.Errorf("batch enqueue into %s: %w", q, err)
		}
		set(fmt.Sprintf("h api enqueue %s batch1000 jobs/s", q), float64(cfg.n)/time.Since(t0).Seconds())
	}
	return nil
}

// benchService is a started service and an operator token for its API.
type benchService struct {
	svc   *service.Service
	dir   string
	base  string
	token string
	http  *http.Client
}

func startService(ctx context.Context, e serviceEngine, app *benchApp, conc int) (*benchService, error) {
	dir, err := os.MkdirTemp("", "aibos-bench-service-")
	if err != nil {
		return nil, err
	}
	file := filepath.Join(dir, "aibos-worker.yaml")
	yaml := fmt.Sprintf(`concurrency: %d
queues:
  - {name: %s, priority: 1, concurrency: %d}
  - {name: %s, priority: 2, concurrency: %d, fair: true}
job_types:
  %s:
    http:
      url: %s/jobs
      secret: %s
`, conc, encryptedQueue, conc, plainQueue, conc, serviceJobType, app.url, app.secret)
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		return nil, err
	}
	env := append(e.env(dir), "WORKER_HTTP_ADDR=127.0.0.1:0", "WORKER_DATA_DIR="+dir, "LOG_LEVEL=error",
		fmt.Sprintf("QUEUE_MAX_LENGTH=%d", serviceMaxQueue),
		"WORKER_AUDIT_KEY="+randomKey(), "WORKER_ENCRYPTION_KEYS=bench:"+randomKey())
	lookup := func(k string) (string, bool) {
		for _, kv := range env {
			if name, v, ok := strings.Cut(kv, "="); ok && name == k {
				return v, true
			}
		}
		return "", false
	}
	scfg, err := service.Load(service.LoadInput{File: file, LookupEnv: lookup})
	if err != nil {
		return nil, err
	}
	svc, err := service.New(ctx, scfg, quietLogger())
	if err != nil {
		return nil, err
	}
	if err := svc.Start(ctx); err != nil {
		_ = svc.Close()
		return nil, err
	}
	token, _, err := svc.Tokens().Create(ctx, admin.TokenSpec{Name: "bench", Role: admin.RoleOperator})
	if err != nil {
		_ = svc.Shutdown(ctx)
		return nil, err
	}
	return &benchService{svc: svc, dir: dir, base: "http://" + svc.Addr().String(), token: token,
		http: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}}, nil
}

func (s *benchService) close() error {
	s.http.CloseIdleConnections()
	err := s.svc.Shutdown(context.Background())
	_ = os.RemoveAll(s.dir)
	return err
}

// call sends a JSON request to the API and decodes a 2xx answer into out
// (if not nil); any other status is an error showing the body.
func (s *benchService) call(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		enc, err := json.Marshal(b)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(enc)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, bytes.TrimSpace(b))
	}
	if out == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		return err
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

func (s *benchService) enqueueOne(ctx context.Context, queue string, data []byte) error {
	body := fmt.Appendf(nil, `{"type":%q,"data":%s}`, serviceJobType, data)
	return s.call(ctx, "POST", "/api/v1/queues/"+queue+"/jobs", body, nil)
}

func (s *benchService) enqueueBatches(ctx context.Context, queue string, n int) error {
	for done := 0; done < n; {
		k := min(admin.MaxBatch, n-done)
		var b bytes.Buffer
		b.WriteString(`{"jobs":[`)
		for i := range k {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"type":%q,"data":%s}`, serviceJobType, payload)
		}
		b.WriteString(`]}`)
		if err := s.call(ctx, "POST", "/api/v1/queues/"+queue+"/jobs/batch", b.Bytes(), nil); err != nil {
			return err
		}
		done += k
	}
	return nil
}

// process fills the encrypted queue while it is paused, then times the
// service from resuming it until every job is completed.
func (s *benchService) process(ctx context.Context, app *benchApp, n int) (time.Duration, error) {
	q := encryptedQueue
	if err := s.call(ctx, "POST", "/api/v1/queues/"+q+"/pause", nil, nil); err != nil {
		return 0, err
	}
	if err := s.enqueueBatches(ctx, q, n); err != nil {
		return 0, err
	}
	before, err := s.svc.Client().Stats(ctx, q)
	if err != nil {
		return 0, err
	}
	app.reset(nil)
	t0 := time.Now()
	if err := s.call(ctx, "POST", "/api/v1/queues/"+q+"/resume", nil, nil); err != nil {
		return 0, err
	}
	err = waitUntil(5*time.Minute, func() (bool, error) {
		st, err := s.svc.Client().Stats(ctx, q)
		if err != nil {
			return false, err
		}
		if st.Dead > before.Dead {
			return false, fmt.Errorf("%d jobs died; the application answers 200", st.Dead-before.Dead)
		}
		return st.Completed-before.Completed >= int64(n), nil
	})
	return time.Since(t0), err
}

// latency enqueues at rate jobs/s for seconds, one request a job, and
// returns each job's enqueue-to-start and enqueue-to-done in ms.
func (s *benchService) latency(ctx context.Context, app *benchApp, rate int, seconds float64) (start, done []float64, err error) {
	total := int(float64(rate) * seconds)
	rec := newLagRecorder(total)
	app.reset(rec)
	defer app.reset(nil)
	ids := make([]string, total)
	sent := make([]float64, total)
	err = pace(total, seconds, func(i int) error {
		sent[i] = nowMs()
		data := fmt.Appendf(nil, `{"invoice":"INV-0001","amount":1250,"due":%f}`, sent[i])
		var j admin.Job
		body := fmt.Appendf(nil, `{"type":%q,"data":%s}`, serviceJobType, data)
		if err := s.call(ctx, "POST", "/api/v1/queues/"+encryptedQueue+"/jobs", body, &j); err != nil {
			return err
		}
		ids[i] = j.ID
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	if start, err = rec.wait(time.Minute); err != nil {
		return nil, nil, err
	}
	for i, id := range ids {
		var j admin.Job
		err := waitUntil(time.Minute, func() (bool, error) {
			if err := s.call(ctx, "GET", "/api/v1/jobs/"+id, nil, &j); err != nil {
				return false, err
			}
			return j.State == "completed", nil
		})
		if err != nil {
			return nil, nil, fmt.Errorf("job %s: %w", id, err)
		}
		if j.FinishedAt == nil {
			return nil, nil, fmt.Errorf("job %s: completed without a finish time", id)
		}
		done = append(done, float64(j.FinishedAt.UnixNano())/1e6-sent[i])
	}
	return start, done, nil
}

// benchApp is the trivial application server: it answers every job 200
// at once, and hands the job's "due" stamp to a lag recorder when one is
// set.
type benchApp struct {
	url    string
	secret string
	srv    *http.Server
	ln     net.Listener

	mu  sync.Mutex
	rec *lagRecorder
}

func startApp() (*benchApp, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	a := &benchApp{url: "http://" + ln.Addr().String(), secret: "whsec_" + randomKey(), ln: ln}
	a.srv = &http.Server{Handler: http.HandlerFunc(a.serve), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = a.srv.Serve(ln) }()
	return a, nil
}

func (a *benchApp) serve(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	rec := a.rec
	a.mu.Unlock()
	if rec == nil {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusOK)
		return
	}
	var job struct {
		Data stampPayload `json:"data"`
	}
	if err := json.NewDecoder(r.Body).Decode(&job); err == nil && job.Data.Due > 0 {
		rec.add(job.Data.Due)
	}
	w.WriteHeader(http.StatusOK)
}

func (a *benchApp) reset(rec *lagRecorder) {
	a.mu.Lock()
	a.rec = rec
	a.mu.Unlock()
}

func (a *benchApp) close() { _ = a.srv.Close() }

// randomKey returns 32 random bytes in standard base64.
func randomKey() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}
