package admin_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aibos/worker/admin"
	"github.com/aibos/worker/internal/redistest"
	"github.com/aibos/worker/service"
)

// startService starts a Service from the config file over the store env
// names and serves the API over the service's parts; stop shuts both down.
func startService(t *testing.T, file string, env map[string]string) (a *schedAPI, stop func()) {
	t.Helper()
	ctx := context.Background()
	cfg, err := service.Load(service.LoadInput{File: file, LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := service.New(ctx, cfg, quietLog)
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	a = serveParts(t, admin.Config{Client: svc.Client(), Broker: svc.Broker(), Cron: svc.Cron(), OneTime: svc.OneTime(),
		Workflows: svc.Workflows(), Callbacks: svc.Callbacks(), Logger: quietLog})
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		a.srv.HTTP.Close()
		if err := svc.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	}
	t.Cleanup(stop)
	return a, stop
}

func writeConfig(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestConfigSchedulesAcrossRestart: schedules the file declares are
// reconciled at start and read-only through the API (409 naming the
// file); a schedule created through the API survives a new Service on the
// same store; at the next start the file wins for what it declares, and a
// schedule it no longer declares is released to the API.
func TestConfigSchedulesAcrossRestart(t *testing.T) {
	stores := map[string]func(t *testing.T) map[string]string{
		"sqlite": func(t *testing.T) map[string]string { return map[string]string{"WORKER_DATA_DIR": t.TempDir()} },
		"redis": func(t *testing.T) map[string]string {
			return map[string]string{"REDIS_URL": redistest.URL(t), "QUEUE_PREFIX": redistest.Prefix(t),
				"WORKER_AUDIT_KEY": "YWRtaW4tdGVzdC1hdWRpdC1rZXktMzItYnl0ZXMtb2s=", "WORKER_DATA_DIR": t.TempDir()}
		},
	}
	for name, store := range stores {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			env := store(t)
			env["WORKER_HTTP_ADDR"] = "127.0.0.1:0"
			file := filepath.Join(t.TempDir(), "aibos-worker.yaml")
			writeConfig(t, file, `queues: [{name: reports}]
schedules:
  - {name: nightly, cron: '0 2 * * *', timezone: Europe/Berlin, job: {queue: reports, type: report.nightly}}
  - {name: weekly, cron: '0 3 * * 1', job: {queue: reports, type: report.weekly}}
`)
			a, stop := startService(t, file, env)
			got := jsonOf(t, want(t, "get nightly", a.do("GET", "/api/v1/schedules/nightly", "viewer", nil), http.StatusOK))
			if got["managedBy"] != "config" || got["configFile"] != file {
				t.Errorf("nightly: managedBy %v, configFile %v; want config and %s", got["managedBy"], got["configFile"], file)
			}
			body := scheduleBody("nightly", "")
			r := a.do("PUT", "/api/v1/schedules/nightly", "admin", body)
			wantErr(t, "change a config schedule", r, http.StatusConflict, admin.CodeConflict, "name")
			if !strings.Contains(string(r.Body), file) {
				t.Errorf("the refusal does not name the file %s: %s", file, r.Body)
			}
			wantErr(t, "delete a config schedule", a.do("DELETE", "/api/v1/schedules/nightly", "admin", nil), http.StatusConflict, admin.CodeConflict, "name")
			if in, err := a.cron.Get(context.Background(), "nightly"); err != nil || in.Spec != "0 2 * * *" || in.Version != 1 {
				t.Fatalf("nightly after refused changes: %+v, %v", in, err)
			}
			// Pausing is an operator's act, allowed and kept over a restart.
			want(t, "pause a config schedule", a.do("POST", "/api/v1/schedules/nightly/pause", "operator", nil), http.StatusOK)
			want(t, "create through the API", a.do("POST", "/api/v1/schedules", "admin", scheduleBody("api-made", "tenant-a")), http.StatusCreated)
			stop()

			writeConfig(t, file, `queues: [{name: reports}]
schedules:
  - {name: nightly, cron: '15 2 * * *', timezone: Europe/Berlin, job: {queue: reports, type: report.nightly}}
`)
			a, _ = startService(t, file, env)
			got = jsonOf(t, want(t, "api-made after restart", a.do("GET", "/api/v1/schedules/api-made", "viewer-a", nil), http.StatusOK))
			if got["managedBy"] != "api" || got["cron"] != "0 9 * * *" {
				t.Errorf("api-made after restart: %v", got)
			}
			got = jsonOf(t, want(t, "nightly after restart", a.do("GET", "/api/v1/schedules/nightly", "viewer", nil), http.StatusOK))
			if got["cron"] != "15 2 * * *" || got["managedBy"] != "config" || got["paused"] != true {
				t.Errorf("nightly after restart: cron %v managedBy %v paused %v; want the file's spec, config, still paused", got["cron"], got["managedBy"], got["paused"])
			}
			got = jsonOf(t, want(t, "weekly after restart", a.do("GET", "/api/v1/schedules/weekly", "viewer", nil), http.StatusOK))
			if got["managedBy"] != "api" {
				t.Errorf("weekly, no longer in the file: managedBy %v, want api (released)", got["managedBy"])
			}
			want(t, "delete the released schedule", a.do("DELETE", "/api/v1/schedules/weekly", "admin", nil), http.StatusNoContent)
		})
	}
}
