package main

import (
	"context"
	"encoding/json"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/broker/sqlitebroker"
	"github.com/aibos/worker/service"
)

// cliRun runs the binary with args to its end and returns the exit code,
// stdout and stderr.
func cliRun(t *testing.T, env []string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = testEnv(env...)
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run aibos-worker %v: %v", args, err)
	}
	return code, out.String(), errOut.String()
}

// TestAuditCLI: what an operator does through the API is listed by
// `audit ls` (table, filters, JSON); once the service stops, `audit
// verify` passes, and after an entry is removed from the store it exits
// 4 naming it.
func TestAuditCLI(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	env := []string{"WORKER_DATA_DIR=" + dir, "WORKER_HTTP_ADDR=127.0.0.1:0", "LOG_LEVEL=warn"}
	code, out, errOut := tokensRun(t, env, "create", "--name", "root", "--role", "admin")
	if code != 0 {
		t.Fatalf("create token: exit %d: %s", code, errOut)
	}
	tok := lastLine(out)

	p := start(t, append(env, "LOG_LEVEL=info"), "serve")
	base := p.addr()
	for _, path := range []string{"/api/v1/queues/invoices/pause", "/api/v1/queues/invoices/resume", "/api/v1/jobs/nothing/retry"} {
		req, _ := http.NewRequest("POST", base+path, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	api := append(env, "AIBOS_WORKER_URL="+base, "AIBOS_WORKER_TOKEN="+tok)
	code, out, errOut = cliRun(t, api, "audit", "ls")
	if code != 0 {
		t.Fatalf("audit ls: exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "SEQ") || !strings.Contains(lines[1], "job.retry") || !strings.Contains(lines[1], "error 404") ||
		!strings.Contains(lines[3], "queue.pause") || !strings.Contains(lines[3], "root") {
		t.Fatalf("audit ls:\n%s\nwant a header and the three actions, newest first", out)
	}
	code, out, errOut = cliRun(t, api, "audit", "ls", "--action", "queue", "--since", "1h", "-o", "json")
	var page struct {
		Entries []struct {
			Seq               int64
			Action, TokenName string
		}
	}
	if err := json.Unmarshal([]byte(out), &page); code != 0 || err != nil || len(page.Entries) != 2 || page.Entries[0].Action != "queue.resume" {
		t.Fatalf("audit ls --action queue -o json: exit %d %s %s (%v)", code, out, errOut, err)
	}
	if code, _, errOut := cliRun(t, api, "audit", "ls", "--since", "yesterday"); code != 2 || !strings.Contains(errOut, "--since") {
		t.Errorf("audit ls --since yesterday: exit %d %q; want 2 naming the flag", code, errOut)
	}

	p.signal(syscall.SIGTERM)
	if code := p.wait(60 * time.Second); code != 0 {
		t.Fatalf("serve exited %d", code)
	}
	code, out, errOut = cliRun(t, env, "audit", "verify")
	if code != 0 || !strings.Contains(out, "audit trail verified: entries 1..3") || !strings.Contains(out, "head file names entry 3") {
		t.Fatalf("audit verify: exit %d %q %q", code, out, errOut)
	}
	// Someone with the store's file removes entry 2.
	b, err := sqlitebroker.Open(filepath.Join(dir, service.StoreFile), sqlitebroker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	var cm broker.Committer = b
	d, err := cm.DocGet(context.Background(), "_audit", "audit-entry", "2")
	if err == nil {
		_, err = cm.Commit(context.Background(), &broker.CommitParams{Scope: "_audit",
			Docs: []*broker.DocWrite{{Kind: "audit-entry", Key: "2", Version: d.Version, Delete: true}}})
	}
	if cerr := b.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	code, _, errOut = cliRun(t, env, "audit", "verify")
	if code != exitTampered || !strings.Contains(errOut, "entry 2 missing") {
		t.Fatalf("audit verify after removing entry 2: exit %d %q; want %d naming entry 2", code, errOut, exitTampered)
	}
}
