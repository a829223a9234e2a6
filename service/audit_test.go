package service

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aibos/worker/admin"
	"github.com/aibos/worker/audit"
	"github.com/aibos/worker/internal/logtest"
	"github.com/aibos/worker/internal/redistest"
)

// testAuditKey is base64 of 32 bytes, for the tests that use Redis.
const testAuditKey = "YWRtaW4tdGVzdC1hdWRpdC1rZXktMzItYnl0ZXMtb2s="

// runAudited starts a service with vars, pauses a queue through the API
// as an operator, and stops it; it returns the configuration and the
// count of the log's records.
func runAudited(t *testing.T, vars ...string) (*Config, *logtest.Counter) {
	t.Helper()
	ctx := context.Background()
	cfg, err := Load(LoadInput{LookupEnv: env(append(vars, "WORKER_HTTP_ADDR=127.0.0.1:0")...)})
	if err != nil {
		t.Fatal(err)
	}
	log, logs := logtest.NewLogger()
	svc, err := New(ctx, cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(ctx); err != nil {
		_ = svc.Close()
		t.Fatal(err)
	}
	tok, _, err := svc.Tokens().Create(ctx, admin.TokenSpec{Name: "op", Role: admin.RoleOperator})
	if err != nil {
		t.Fatal(err)
	}
	if st, body := request(t, "POST", "http://"+svc.Addr().String()+"/api/v1/queues/invoices/pause", tok, ""); st != http.StatusOK {
		t.Fatalf("pause: %d %v", st, body)
	}
	if err := svc.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	return cfg, logs
}

// TestAuditOnEmbeddedStore: with no key configured the embedded store
// generates one (0600) in the data directory and warns; the API's actions
// are recorded, and the trail verifies offline after a restart that
// reuses the key.
func TestAuditOnEmbeddedStore(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg, logs := runAudited(t, "WORKER_DATA_DIR="+dir)
	st, err := os.Stat(filepath.Join(dir, GeneratedAuditKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("generated key file mode %v; want 0600", st.Mode().Perm())
	}
	if n := logs.Count(generatedKeyWarning); n != 1 {
		t.Fatalf("the warning about the generated key was logged %d times; want once", n)
	}
	if _, logs = runAudited(t, "WORKER_DATA_DIR="+dir); logs.Count(generatedKeyWarning) != 1 {
		t.Fatal("a restart on the generated key does not warn again")
	}
	rep, err := VerifyAudit(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Entries != 2 || !rep.HeadFileChecked || rep.HeadFileSeq != 2 {
		t.Fatalf("report %+v; want the two pauses, and the head file at 2", rep)
	}
}

// TestAuditOnRedis: Redis refuses to start without a key, in one line
// naming the setting; with one, the trail verifies while the store is
// shared.
func TestAuditOnRedis(t *testing.T) {
	t.Parallel()
	vars := []string{"REDIS_URL=" + redistest.URL(t), "QUEUE_PREFIX=" + redistest.Prefix(t), "WORKER_DATA_DIR=" + t.TempDir()}
	cfg, err := Load(LoadInput{LookupEnv: env(vars...)})
	if err != nil {
		t.Fatal(err)
	}
	_, err = New(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if !IsConfigError(err) || !strings.HasPrefix(err.Error(), "WORKER_AUDIT_KEY: required with REDIS_URL") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("redis without an audit key: %v; want one line naming WORKER_AUDIT_KEY", err)
	}
	cfg, _ = runAudited(t, append(vars, "WORKER_AUDIT_KEY="+testAuditKey)...)
	rep, err := VerifyAudit(context.Background(), cfg)
	if err != nil || rep.Entries != 1 {
		t.Fatalf("verify: %+v, %v", rep, err)
	}
	// Another key does not verify the trail.
	cfg.AuditKey = "b3RoZXIta2V5LW90aGVyLWtleS1vdGhlci1rZXktb3RoZXI="
	var ve *audit.VerifyError
	if _, err := VerifyAudit(context.Background(), cfg); !errors.As(err, &ve) {
		t.Fatalf("verify with another key: %v; want a VerifyError", err)
	}
}

// TestAuditKeyIsNeverShown: the key is redacted whole from the effective
// configuration and from errors about it.
func TestAuditKeyIsNeverShown(t *testing.T) {
	cfg, err := Load(LoadInput{LookupEnv: env("WORKER_AUDIT_KEY=" + testAuditKey)})
	if err != nil {
		t.Fatal(err)
	}
	if v, src := value(t, cfg, "WORKER_AUDIT_KEY"); v != "(set, redacted)" || src != FromEnv {
		t.Fatalf("shown as %q from %s", v, src)
	}
	short := "c2hvcnQta2V5"
	_, err = Load(LoadInput{LookupEnv: env("WORKER_AUDIT_KEY=" + short)})
	if !IsConfigError(err) || strings.Contains(err.Error(), short) || !strings.HasSuffix(err.Error(), "(9 bytes, fewer than 32)") {
		t.Fatalf("a short key: %v", err)
	}
}
