package service

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/jobschema"
)

// TestSchemaDirChecksEnqueues: the schemas of WORKER_SCHEMA_DIR are
// checked by the service's client, over those added in code; a schema that
// does not compile stops Start with a config error naming the setting.
func TestSchemaDirChecksEnqueues(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "report.generation.json"), []byte(`{"type":"object","required":["reportType"]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	svc := newSchemaService(t, dir)
	if err := svc.Schemas().Add("report.generation", []byte(`{"type":"object"}`)); err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer svc.Shutdown(ctx)
	_, err := svc.Client().Add(ctx, "reports", worker.JobSpec{Type: "report.generation", Data: map[string]any{}})
	var se *jobschema.Error
	if !errors.As(err, &se) || se.Pointer != "/reportType" {
		t.Fatalf("add without reportType: %v, want the directory's schema to reject /reportType", err)
	}
	if _, err := svc.Client().Add(ctx, "reports", worker.JobSpec{Type: "report.generation", Data: map[string]any{"reportType": "daily"}}); err != nil {
		t.Fatal(err)
	}

	if err := os.WriteFile(filepath.Join(dir, "bad.json"), []byte(`{"type":3}`), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := newSchemaService(t, dir)
	defer bad.Close()
	var ce *ConfigError
	if err := bad.Start(ctx); !errors.As(err, &ce) || ce.Name != "WORKER_SCHEMA_DIR" {
		t.Fatalf("start with a bad schema: %v, want a config error naming WORKER_SCHEMA_DIR", err)
	}
}

func newSchemaService(t *testing.T, dir string) *Service {
	t.Helper()
	cfg, err := Load(LoadInput{LookupEnv: env("WORKER_DATA_DIR="+t.TempDir(), "WORKER_HTTP_ADDR=127.0.0.1:0", "WORKER_SCHEMA_DIR="+dir)})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := New(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return svc
}
