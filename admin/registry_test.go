package admin_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"testing"

	"github.com/aibos/worker"
	"github.com/aibos/worker/admin"
	"github.com/aibos/worker/admin/apitest"
	"github.com/aibos/worker/broker"
)

// The tenants of the registry tests are apitest's, as are the tokens:
// "admin", "operator", "viewer" cross-tenant, "admin-a" and "viewer-a"
// scoped to tenant-a.
const (
	tenantA = apitest.TenantA
	tenantB = apitest.TenantB
)

// registryAPI is the API on a real listener over broker b; every request
// and answer is checked against the OpenAPI document.
type registryAPI struct {
	t      *testing.T
	srv    *apitest.Server
	client *worker.Client
}

func newRegistryAPI(t *testing.T, b broker.Broker) *registryAPI {
	t.Helper()
	srv := apitest.Start(t, admin.Config{Broker: b, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	return &registryAPI{t: t, srv: srv, client: srv.Config.Client}
}

// expect sends the request and fails unless the status is want; for an
// error status it also checks the error shape and, when field is not
// empty, the field it names. It returns the decoded body.
func (a *registryAPI) expect(want int, field, method, path, token string, body any) map[string]any {
	a.t.Helper()
	r := a.srv.Do(a.t, method, path, token, body).Want(a.t, want)
	out := map[string]any{}
	if err := json.Unmarshal(r.Body, &out); err != nil {
		a.t.Fatalf("%s %s: body is not a JSON object: %s", method, path, r.Body)
	}
	if want >= 400 {
		e := r.Error(a.t)
		if e.Code == "" || e.Message == "" {
			a.t.Fatalf("%s %s: error body %s is not the API's error shape", method, path, r.Body)
		}
		if field != "" && e.Field != field {
			a.t.Fatalf("%s %s: error names field %q, want %q (%s)", method, path, e.Field, field, e.Message)
		}
	}
	return out
}
