package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/aibos/worker/admin"
	"github.com/aibos/worker/admin/adminclient"
)

// TestCLIScripts drives the operators' commands with the scripts in
// testdata/script, each running the real binary against one served
// instance on the embedded store. Every script uses its own queues and
// tenants, so they share the instance and run in parallel.
//
// The instance's config binds cli.ok to an endpoint answering 200 and
// cli.fail to one answering 400 (a failure that is not retried), serves
// the queues cli_work and cli_dead, and declares the cron schedule
// cli-nightly. Jobs enqueued to any other queue stay put: no worker
// serves it. Scripts get AIBOS_WORKER_URL and AIBOS_WORKER_TOKEN (admin),
// and VIEWER_TOKEN and ACME_TOKEN (an operator scoped to tenant acme).
//
// Beyond testscript's own, scripts have these commands:
//
//	aw ARGS...               run aibos-worker; ! aw expects a failure
//	exitcode N               the last aw's exit code was N
//	jsonvar NAME PATH        set $NAME to the value at PATH (a.0.b) in the last stdout, a JSON document
//	jsonlen PATH N           the array at PATH in the last stdout has N elements
//	waitjobs QUEUE STATE N   wait (up to a minute) until QUEUE has N jobs in STATE
//	waitjob ID QUEUE STATE   wait (up to a minute) until job ID of QUEUE is in STATE
//
// The queue reports is served too (report.generation), and tenant acme
// has the company cli-books.
func TestCLIScripts(t *testing.T) {
	t.Parallel()
	env := []string{"WORKER_DATA_DIR=" + t.TempDir(), "WORKER_HTTP_ADDR=127.0.0.1:0", "LOG_LEVEL=warn"}
	tokens := map[string]string{}
	for name, args := range map[string][]string{
		"admin":  {"--role", "admin"},
		"viewer": {"--role", "viewer"},
		"acme":   {"--role", "operator", "--tenant", "acme"},
	} {
		code, out, errOut := tokensRun(t, env, append([]string{"create", "--name", "cli-" + name}, args...)...)
		if code != 0 {
			t.Fatalf("make the %s token offline: exit %d: %s", name, code, errOut)
		}
		tokens[name] = lastLine(out)
	}

	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/fail" {
			http.Error(w, "refused by the test app", http.StatusBadRequest)
		}
	}))
	t.Cleanup(app.Close)
	secret := "whsec_" + base64.StdEncoding.EncodeToString([]byte("cli-test-secret-0123456789abcdef"))
	cfg := filepath.Join(t.TempDir(), "aibos-worker.yaml")
	err := os.WriteFile(cfg, fmt.Appendf(nil, `queues:
  - {name: cli_work, priority: 1, concurrency: 2}
  - {name: cli_dead, priority: 2, concurrency: 2}
  - {name: cli_sched, priority: 3, concurrency: 1}
  - {name: reports, priority: 4, concurrency: 1}
job_types:
  cli.ok: {http: {url: %[1]s/ok, secret_env: CLI_SECRET}}
  cli.fail: {http: {url: %[1]s/fail, secret_env: CLI_SECRET}}
schedules:
  - name: cli-nightly
    cron: "0 3 * * *"
    timezone: Europe/Paris
    job: {queue: cli_sched, type: cli.ok, tenant_id: acme}
`, app.URL), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	p := start(t, append(env, "LOG_LEVEL=info", "CLI_SECRET="+secret), "serve", "--config", cfg)
	base := p.addr()
	api, err := adminclient.New(adminclient.Config{URLs: []string{base}, Token: tokens["admin"]})
	if err != nil {
		t.Fatal(err)
	}

	err = api.Do(context.Background(), "POST", "/api/v1/companies?tenant=acme",
		map[string]string{"id": "cli-books", "name": "CLI Books", "currency": "EUR"}, nil)
	if err != nil {
		t.Fatalf("create the company cli-books: %v", err)
	}

	testscript.Run(t, testscript.Params{
		Dir: "testdata/script",
		Setup: func(e *testscript.Env) error {
			e.Setenv("AIBOS_WORKER_URL", base)
			e.Setenv("AIBOS_WORKER_TOKEN", tokens["admin"])
			e.Setenv("VIEWER_TOKEN", tokens["viewer"])
			e.Setenv("ACME_TOKEN", tokens["acme"])
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"aw":       runCLI,
			"exitcode": exitCode,
			"jsonvar":  jsonVar,
			"jsonlen":  jsonLen,
			"waitjobs": func(ts *testscript.TestScript, neg bool, args []string) { waitJobs(ts, neg, args, api) },
			"waitjob":  func(ts *testscript.TestScript, neg bool, args []string) { waitJob1(ts, neg, args, api) },
		},
	})
}

// runCLI runs the binary with args, keeping its output for stdout and
// stderr and its exit code for exitcode.
func runCLI(ts *testscript.TestScript, neg bool, args []string) {
	err := ts.Exec(bin, args...)
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		ts.Fatalf("run aibos-worker: %v", err)
	}
	ts.Setenv("AW_EXIT", strconv.Itoa(code))
	if neg != (code != 0) {
		ts.Fatalf("aibos-worker %s: exit %d, want %s", strings.Join(args, " "), code, map[bool]string{true: "a failure", false: "success"}[neg])
	}
}

func exitCode(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 || neg {
		ts.Fatalf("usage: exitcode N")
	}
	if got := ts.Getenv("AW_EXIT"); got != args[0] {
		ts.Fatalf("the last aw exited %s, want %s", got, args[0])
	}
}

// jsonAt returns the value at path (keys and array indexes, separated by
// dots; "" for the whole document) in the last stdout.
func jsonAt(ts *testscript.TestScript, path string) any {
	var v any
	if err := json.Unmarshal([]byte(ts.ReadFile("stdout")), &v); err != nil {
		ts.Fatalf("stdout is not JSON: %v", err)
	}
	if path == "" {
		return v
	}
	for _, k := range strings.Split(path, ".") {
		switch c := v.(type) {
		case map[string]any:
			v = c[k]
		case []any:
			i, err := strconv.Atoi(k)
			if err != nil || i < 0 || i >= len(c) {
				ts.Fatalf("%s: no element %s in an array of %d", path, k, len(c))
			}
			v = c[i]
		default:
			ts.Fatalf("%s: %q is not in a JSON object or array", path, k)
		}
	}
	return v
}

func jsonVar(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 || neg {
		ts.Fatalf("usage: jsonvar NAME PATH")
	}
	v := jsonAt(ts, args[1])
	s, ok := v.(string)
	if !ok || s == "" {
		ts.Fatalf("%s is %v, want a string", args[1], v)
	}
	ts.Setenv(args[0], s)
}

func jsonLen(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 || neg {
		ts.Fatalf("usage: jsonlen PATH N")
	}
	a, ok := jsonAt(ts, args[0]).([]any)
	if !ok {
		ts.Fatalf("%s is not an array", args[0])
	}
	if strconv.Itoa(len(a)) != args[1] {
		ts.Fatalf("%s has %d elements, want %s", args[0], len(a), args[1])
	}
}

// waitJob1 polls the API until a job is in a state, or fails after a
// minute saying which state it saw.
func waitJob1(ts *testscript.TestScript, neg bool, args []string, api *adminclient.Client) {
	if len(args) != 3 || neg {
		ts.Fatalf("usage: waitjob ID QUEUE STATE")
	}
	deadline := time.Now().Add(time.Minute)
	for {
		j, err := api.Job(context.Background(), args[0], args[1])
		if err != nil {
			ts.Fatalf("waitjob: get job %s: %v", args[0], err)
		}
		if j.State == args[2] {
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("job %s is %s after a minute, want %s (last error: %s)", args[0], j.State, args[2], j.LastError)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitJobs polls the API until the queue has the number of jobs in the
// state, or fails after a minute saying how many it saw.
func waitJobs(ts *testscript.TestScript, neg bool, args []string, api *adminclient.Client) {
	if len(args) != 3 || neg {
		ts.Fatalf("usage: waitjobs QUEUE STATE N")
	}
	want, err := strconv.Atoi(args[2])
	if err != nil {
		ts.Fatalf("waitjobs: N %q is not a number", args[2])
	}
	deadline := time.Now().Add(time.Minute)
	for {
		page, err := api.ListJobs(context.Background(), admin.JobFilter{Queue: args[0], State: args[1]}, "", 1000)
		if err != nil {
			ts.Fatalf("waitjobs: list jobs: %v", err)
		}
		if len(page.Jobs) == want {
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("queue %s has %d %s jobs after a minute, want %d", args[0], len(page.Jobs), args[1], want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
