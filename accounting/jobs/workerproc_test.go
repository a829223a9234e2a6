package jobs_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/accounting"
	"github.com/aibos/worker/accounting/sqlitestore"
	"github.com/aibos/worker/broker/redisbroker"
	"github.com/aibos/worker/internal/smtptest"
)

// The set-up the tests that run worker processes (mailChild) share.

// openLedger creates the accounting ledger the worker processes open in
// dir, with the test company, and returns it open.
func openLedger(t *testing.T, dir string) *sqlitestore.Store {
	t.Helper()
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, filepath.Join(dir, "accounting.db"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.CompanyCreate(ctx, accounting.Company{Tenant: tenant, ID: company, Name: "Acme", Currency: "EUR"}); err != nil {
		_ = st.Close()
		t.Fatal(err)
	}
	return st
}

// openRedis opens the broker the worker processes share and a client over
// it, closed when the test ends.
func openRedis(t *testing.T, url, prefix string) (*redisbroker.Broker, *worker.Client) {
	t.Helper()
	b, err := redisbroker.Open(url, redisbroker.Config{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	c, err := worker.NewClient(b, worker.ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	return b, c
}

// workerEnv is the environment of a worker process on Redis at url and
// prefix, with its data in dir, sending mail to srv in the clear.
func workerEnv(url, prefix, dir string, srv *smtptest.Server) []string {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	return append(os.Environ(), mailChildEnv+"=1", "REDIS_URL="+url, "REDIS_DB=0", "QUEUE_PREFIX="+prefix,
		"WORKER_DATA_DIR="+dir, "WORKER_HTTP_ADDR=127.0.0.1:0", "WORKER_ENCRYPTED_QUEUES=none",
		"WORKER_AUDIT_KEY="+base64.StdEncoding.EncodeToString(key), "WORKER_RETRY_DELAY=100",
		"SMTP_HOST="+srv.Host, "SMTP_PORT="+strconv.Itoa(srv.Port), "SMTP_STARTTLS=none",
		"SMTP_FROM=Acme Books <books@acme.test>", "SMTP_TO=ar@acme.test")
}

// startWorkerProcess starts this test binary as a worker process with env
// and returns it with a channel closed when it has exited; it is killed
// when the test ends.
func startWorkerProcess(t *testing.T, env []string) (*exec.Cmd, chan struct{}) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env, cmd.Stderr = env, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start worker process: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-exited })
	return cmd, exited
}
