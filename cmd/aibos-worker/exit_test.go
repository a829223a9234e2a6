package main

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/broker/sqlitebroker"
	"github.com/aibos/worker/internal/redistest"
	"github.com/aibos/worker/service"
)

// TestConfigErrorsExit2 runs the binary with bad configuration: each exits
// 2 with one line naming the setting, its value and what is allowed, and
// nothing starts: the one line is all the output, so no listener and no
// worker started.
func TestConfigErrorsExit2(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(file, []byte("queues:\n  - {name: invoices, priority: 1, concurency: 3}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	unbound := filepath.Join(t.TempDir(), "unbound.yaml")
	if err := os.WriteFile(unbound, []byte("job_types:\n  invoice.processing: {processor: invoices}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"non-numeric concurrency", []string{"WORKER_CONCURRENCY=abc"}, nil, `aibos-worker: WORKER_CONCURRENCY="abc": want an integer from 1 to 10000`},
		{"negative timeout flag", nil, []string{"--timeout", "-5"}, `aibos-worker: --timeout="-5": want ` + "milliseconds (e.g. 1000) or a Go duration (e.g. 1s), above 0"},
		{"unparsable redis url", []string{"REDIS_URL=redis://:hunter2@host:port/1"}, nil, `aibos-worker: REDIS_URL="redis://xxxxx@host:port/1": want empty (the embedded store) or a redis://, rediss://, redis+sentinel:// or redis+cluster:// URL (invalid port ":port" after host)`},
		{"unknown key in the file", nil, []string{"--config", file}, "aibos-worker: config file " + file + " line 2: concurency: unknown key"},
		{"unknown flag", nil, []string{"--concurency", "3"}, "aibos-worker: unknown flag: --concurency"},
		{"processor not compiled in", nil, []string{"--config", unbound}, `job_types.invoice.processing.processor="invoices": want a Go processor compiled into this binary`},
		{"smtp authority file without a certificate", []string{"SMTP_HOST=127.0.0.1", "SMTP_FROM=books@books.test", "SMTP_CA_FILE=" + file}, nil,
			`SMTP_CA_FILE="` + file + `": holds no PEM certificate`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), "data")
			p := start(t, append(tc.env, "WORKER_DATA_DIR="+dir, "WORKER_HTTP_ADDR=127.0.0.1:0"), append([]string{"serve"}, tc.args...)...)
			if code := p.wait(60 * time.Second); code != exitConfig {
				t.Errorf("exit code %d, want %d", code, exitConfig)
			}
			out := p.output()
			if strings.Count(out, "\n") != 0 || !strings.Contains(out, tc.want) {
				t.Errorf("stderr:\n%s\nwant one line containing %q", out, tc.want)
			}
			if strings.Contains(out, "hunter2") {
				t.Errorf("stderr shows the password: %s", out)
			}
		})
	}
}

// TestUnreachableRedisExit1: a runtime failure at start exits 1, and the
// Redis client's complaints are in the service's log format.
func TestUnreachableRedisExit1(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	p := start(t, []string{"REDIS_URL=redis://" + addr, "WORKER_HTTP_ADDR=127.0.0.1:0"}, "serve")
	if code := p.wait(60 * time.Second); code != exitFail {
		t.Errorf("exit code %d, want %d\n%s", code, exitFail, p.output())
	}
	// go-redis's own messages come through slog, as JSON lines.
	p.waitLogMatch("", 0, func(l map[string]any) bool { return l["component"] == "redis" && l["level"] == "WARN" })
}

// TestSecondSignalExitsAtOnce: with a job running and a long drain
// timeout, a second SIGTERM ends the process at once with exit code 3.
func TestSecondSignalExitsAtOnce(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	dir := t.TempDir()
	b, err := sqlitebroker.Open(filepath.Join(dir, service.StoreFile), sqlitebroker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := worker.NewClient(b, worker.ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Add(context.Background(), "reports", worker.JobSpec{Type: "e2e.slow"}); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	p := start(t, []string{"E2E_WEBHOOK_SECRET=" + a.secret, "WORKER_DATA_DIR=" + dir, "WORKER_HTTP_ADDR=127.0.0.1:0", "WORKER_DRAIN_TIMEOUT=600000"},
		"serve", "--config", a.configFile(t))
	select {
	case <-a.slowHit:
	case <-p.done:
		t.Fatalf("aibos-worker exited (code %d) before the slow job reached the app", p.code)
	case <-time.After(60 * time.Second):
		t.Fatal("the slow job never reached the app")
	}
	p.signal(syscall.SIGTERM)
	p.waitLog("signal received; draining", 10*time.Second)
	p.signal(syscall.SIGTERM)
	// The drain would last ten minutes; "at once" is anything far below.
	if code := p.wait(30 * time.Second); code != exitForced {
		t.Errorf("exit code %d after a second SIGTERM, want %d", code, exitForced)
	}
}

// TestConfigCommand prints each setting's value and source, the
// password redacted.
func TestConfigCommand(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(file, []byte("redis_db: 6\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut strings.Builder
	code := run(context.Background(), []string{"config", "--config", file, "--concurrency", "9"},
		func(k string) (string, bool) {
			v, ok := map[string]string{"REDIS_URL": "redis+sentinel://:hunter2@s1:26379/m?password=hunter2", "WORKER_RETRY_ATTEMPTS": "4"}[k]
			return v, ok
		}, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	rows := map[string][2]string{} // setting → value, source
	for _, line := range strings.Split(out.String(), "\n") {
		if f := strings.Fields(line); len(f) == 4 && strings.HasPrefix(f[3], "--") {
			rows[f[0]] = [2]string{f[1], f[2]}
		}
	}
	for env, want := range map[string][2]string{
		"WORKER_CONCURRENCY":    {"9", "flag"},
		"WORKER_RETRY_ATTEMPTS": {"4", "env"},
		"REDIS_URL":             {"redis+sentinel://:xxxxx@s1:26379/m?password=xxxxx", "env"},
		"REDIS_DB":              {"6", "file"},
		"QUEUE_PREFIX":          {"aibos:worker", "default"},
	} {
		if rows[env] != want {
			t.Errorf("%s: value and source %q, want %q\n%s", env, rows[env], want, out.String())
		}
	}
	if strings.Contains(out.String(), "hunter2") {
		t.Errorf("config output shows the password:\n%s", out.String())
	}
}

// TestRedisTLSRefusedExit1: serve against a TLS-only Redis that requires a
// client certificate, as an ACL user, exits 1 when the connection is
// refused, with one line that names the redacted URL and the cause: a
// wrong password, an untrusted authority, no client certificate.
func TestRedisTLSRefusedExit1(t *testing.T) {
	t.Parallel()
	certs, other := redistest.NewCerts(t), redistest.NewCerts(t)
	srv := redistest.StartWith(t, redistest.Options{TLS: certs, ACL: []string{"worker on >hunter2 ~* &* +@all"}})
	url := "REDIS_URL=rediss://worker:hunter2@" + srv.Addr + "/0"
	client := []string{"REDIS_TLS_CERT_FILE=" + certs.CertFile, "REDIS_TLS_KEY_FILE=" + certs.KeyFile}
	for _, tc := range []struct {
		name string
		env  []string
		want string
	}{
		{"wrong password", append([]string{"REDIS_URL=rediss://worker:hunter3@" + srv.Addr + "/0", "REDIS_TLS_CA_FILE=" + certs.CAFile}, client...), "WRONGPASS"},
		{"untrusted authority", append([]string{url, "REDIS_TLS_CA_FILE=" + other.CAFile}, client...), "certificate signed by unknown authority"},
		{"no client certificate", []string{url, "REDIS_TLS_CA_FILE=" + certs.CAFile}, "set REDIS_TLS_CERT_FILE and REDIS_TLS_KEY_FILE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := start(t, append(tc.env, "WORKER_HTTP_ADDR=127.0.0.1:0", "WORKER_AUDIT_KEY="+testAuditKey), "serve")
			if code := p.wait(60 * time.Second); code != exitFail {
				t.Errorf("exit code %d, want %d\n%s", code, exitFail, p.output())
			}
			var last string
			for _, l := range strings.Split(p.output(), "\n") {
				if strings.HasPrefix(l, "aibos-worker: ") {
					last = l
				}
			}
			if !strings.Contains(last, "open redis rediss://worker:xxxxx@") || !strings.Contains(last, tc.want) {
				t.Errorf("the error line is %q; want it to name the redacted URL and %q\n%s", last, tc.want, p.output())
			}
			if strings.Contains(p.output(), "hunter") {
				t.Errorf("the output shows the password:\n%s", p.output())
			}
		})
	}
}
