package dashboard_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/admin"
	"github.com/aibos/worker/internal/redistest"
	"github.com/aibos/worker/service"
	"github.com/aibos/worker/workflow"
)

// TestMain fails the run if a test left a goroutine behind.
func TestMain(m *testing.M) { os.Exit(redistest.Main(m)) }

// payFlow is the workflow whose "charge" step always fails, so that its
// run fails at that step and "reserve" is compensated.
const payFlow = "payout"

// bundle is a running service (SQLite store) with tokens, two tenants'
// jobs and a failed workflow run per tenant.
type bundle struct {
	svc  *service.Service
	base string
	tok  map[string]string
	// flaky makes jobs of type "flaky" fail while it is set.
	flaky *atomic.Bool
	// ids are each tenant's job and run ids, for the isolation checks.
	ids map[string][]string
}

func setup(t *testing.T, env ...string) *bundle {
	t.Helper()
	ctx := context.Background()
	cfg, err := service.Load(service.LoadInput{LookupEnv: lookup(append([]string{
		"WORKER_DATA_DIR=" + t.TempDir(), "WORKER_HTTP_ADDR=127.0.0.1:0", "WORKER_RETRY_DELAY=10"}, env...)...)})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := service.New(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	b := &bundle{svc: svc, tok: map[string]string{}, flaky: &atomic.Bool{}, ids: map[string][]string{}}
	b.flaky.Store(true)
	ok := worker.ProcessorFunc(func(context.Context, *worker.Job) error { return nil })
	flaky := worker.ProcessorFunc(func(context.Context, *worker.Job) error {
		if b.flaky.Load() {
			return worker.NoRetry(errors.New("the ledger refused the posting"))
		}
		return nil
	})
	for name, p := range map[string]worker.Processor{"ok": ok, "flaky": flaky} {
		if err := svc.Register(name, p); err != nil {
			t.Fatal(err)
		}
	}
	e := svc.Workflows()
	step := func(fail bool) workflow.StepProcessor {
		return workflow.StepProcessorFunc(func(context.Context, *workflow.StepInfo, workflow.Data) (workflow.Data, error) {
			if fail {
				return nil, errors.New("the card was declined")
			}
			return workflow.Data{"ok": true}, nil
		})
	}
	for name, fail := range map[string]bool{"pay.reserve": false, "pay.charge": true, "pay.undo": false} {
		if err := e.RegisterStepProcessor(name, step(fail)); err != nil {
			t.Fatal(err)
		}
	}
	if err := svc.RegisterWorkflow(workflow.Workflow{Name: payFlow, Steps: []workflow.Step{
		{Name: "reserve", Processor: "pay.reserve", Compensation: "pay.undo"},
		{Name: "charge", Processor: "pay.charge", DependsOn: []string{"reserve"}, RetryAttempts: 1},
		{Name: "notify", Processor: "pay.reserve", DependsOn: []string{"charge"}},
	}}); err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(ctx); err != nil {
		_ = svc.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := svc.Shutdown(context.Background()); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	b.base = "http://" + svc.Addr().String()
	for _, spec := range []admin.TokenSpec{
		{Name: "admin", Role: admin.RoleAdmin}, {Name: "operator", Role: admin.RoleOperator},
		{Name: "viewer", Role: admin.RoleViewer}, {Name: "operator-A", Role: admin.RoleOperator, TenantID: "A"},
	} {
		tok, _, err := svc.Tokens().Create(ctx, spec)
		if err != nil {
			t.Fatal(err)
		}
		b.tok[spec.Name] = tok
	}
	for _, ten := range []string{"A", "B"} {
		b.api(t, "admin", "POST", "/api/v1/tenants", map[string]any{"id": ten, "name": "Tenant " + ten, "timeZone": "Europe/Berlin", "currency": "EUR"}, nil)
		for _, typ := range []string{"ok", "flaky"} {
			var j admin.Job
			b.api(t, "admin", "POST", "/api/v1/queues/invoices/jobs", map[string]any{"type": typ, "tenantId": ten, "attempts": 1, "data": map[string]any{"invoice": "INV-" + ten}}, &j)
			b.ids[ten] = append(b.ids[ten], j.ID)
		}
		run, err := e.Execute(ctx, payFlow, map[string]any{"amount": 12}, workflow.ExecuteOptions{TenantID: ten})
		if err != nil {
			t.Fatal(err)
		}
		b.ids[ten] = append(b.ids[ten], run.ID)
	}
	// Wait until each tenant's flaky job is dead and each run failed, so
	// that every page has something of each tenant to show.
	for _, ten := range []string{"A", "B"} {
		b.waitJob(t, b.ids[ten][1], "dead")
		b.waitRun(t, b.ids[ten][2], "failed")
	}
	return b
}

func lookup(vars ...string) func(string) (string, bool) {
	m := map[string]string{}
	for _, v := range vars {
		k, val, _ := strings.Cut(v, "=")
		m[k] = val
	}
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// api calls the API as the named token, fails the test on an error
// answer, and decodes the answer into out (if not nil).
func (b *bundle) api(t *testing.T, token, method, path string, body, out any) {
	t.Helper()
	if status, err := b.try(token, method, path, body, out); err != nil {
		t.Fatalf("%s %s: %d %v", method, path, status, err)
	}
}

func (b *bundle) try(token, method, path string, body, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, b.base+path, rd)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+b.tok[token])
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if resp.StatusCode >= 300 {
		return resp.StatusCode, errors.New(string(data))
	}
	if out != nil {
		return resp.StatusCode, json.Unmarshal(data, out)
	}
	return resp.StatusCode, nil
}

// waitFor polls cond every 20 ms until it holds or 15 s pass.
func waitFor(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	last := ""
	for time.Now().Before(deadline) {
		ok, s := cond()
		if ok {
			return
		}
		last = s
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s: still %s after 15s", what, last)
}

// waitJob waits until the job is in state, read through the API.
func (b *bundle) waitJob(t *testing.T, id, state string) {
	t.Helper()
	waitFor(t, "job "+id+" "+state, func() (bool, string) {
		var j admin.Job
		if _, err := b.try("admin", "GET", "/api/v1/jobs/"+id, nil, &j); err != nil {
			return false, err.Error()
		}
		return j.State == state, j.State
	})
}

// waitRun waits until the workflow run is in state, read through the API.
func (b *bundle) waitRun(t *testing.T, id, state string) {
	t.Helper()
	waitFor(t, "run "+id+" "+state, func() (bool, string) {
		var r struct {
			State string `json:"state"`
		}
		if _, err := b.try("admin", "GET", "/api/v1/workflows/runs/"+id, nil, &r); err != nil {
			return false, err.Error()
		}
		return r.State == state, r.State
	})
}

// browser is an HTTP client with a cookie jar, a logged-in session of the
// named token.
type browser struct {
	t    *testing.T
	b    *bundle
	c    *http.Client
	csrf string
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// login logs in as the named token through the login form.
func (b *bundle) login(t *testing.T, token string) *browser {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	br := &browser{t: t, b: b, c: c}
	_, page := br.get("/login")
	m := csrfField.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("the login page has no CSRF field:\n%s", page)
	}
	resp := br.post("/login", url.Values{"csrf": {m[1]}, "token": {b.tok[token]}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("login as %s: status %d, want 303", token, resp.StatusCode)
	}
	_, page = br.get("/queues")
	m = csrfField.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("a page after login has no CSRF field:\n%s", page)
	}
	br.csrf = m[1]
	return br
}

func (br *browser) get(path string) (*http.Response, string) {
	br.t.Helper()
	resp, err := br.c.Get(br.b.base + path)
	if err != nil {
		br.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		br.t.Fatal(err)
	}
	return resp, string(data)
}

func (br *browser) post(path string, form url.Values) *http.Response {
	br.t.Helper()
	resp, err := br.c.PostForm(br.b.base+path, form)
	if err != nil {
		br.t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

func newJar(t *testing.T) http.CookieJar {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return jar
}
