package admin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/aibos/worker"
	"github.com/aibos/worker/admin"
	"github.com/aibos/worker/broker"
)

// registryAuth is an in-test Authenticator: a map from token to principal.
type registryAuth map[string]*admin.Principal

func (a registryAuth) Authenticate(_ context.Context, token string) (*admin.Principal, error) {
	if p, ok := a[token]; ok {
		return p, nil
	}
	return nil, admin.ErrUnauthenticated
}

// registryTokens are the tokens of the registry tests: each role
// cross-tenant, and an admin and a viewer scoped to tenant "a".
var registryTokens = registryAuth{
	"viewer":   {TokenID: "t-viewer", Role: admin.RoleViewer},
	"operator": {TokenID: "t-operator", Role: admin.RoleOperator},
	"admin":    {TokenID: "t-admin", Role: admin.RoleAdmin},
	"admin-a":  {TokenID: "t-admin-a", Role: admin.RoleAdmin, TenantID: "a"},
	"viewer-a": {TokenID: "t-viewer-a", Role: admin.RoleViewer, TenantID: "a"},
}

// registryAPI is the API on a real listener over broker b.
type registryAPI struct {
	t      *testing.T
	url    string
	client *worker.Client
	b      broker.Broker
}

func newRegistryAPI(t *testing.T, b broker.Broker) *registryAPI {
	t.Helper()
	c, err := worker.NewClient(b, worker.ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := admin.New(admin.Config{Client: c, Broker: b, Auth: registryTokens,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return &registryAPI{t: t, url: srv.URL, client: c, b: b}
}

// do sends a request with token and body (JSON-encoded unless nil or a
// string) and returns the status and the decoded body.
func (a *registryAPI) do(method, path, token string, body any) (int, map[string]any) {
	a.t.Helper()
	var rd io.Reader
	switch v := body.(type) {
	case nil:
	case string:
		rd = bytes.NewBufferString(v)
	default:
		b, err := json.Marshal(v)
		if err != nil {
			a.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, a.url+path, rd)
	if err != nil {
		a.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		a.t.Fatal(err)
	}
	out := map[string]any{}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &out); err != nil {
			a.t.Fatalf("%s %s: body is not a JSON object: %s", method, path, raw)
		}
	}
	return resp.StatusCode, out
}

// expect sends the request and fails unless the status is want; for an
// error status it also checks the error shape and, when field is not
// empty, the field it names.
func (a *registryAPI) expect(want int, field, method, path, token string, body any) map[string]any {
	a.t.Helper()
	got, out := a.do(method, path, token, body)
	if got != want {
		a.t.Fatalf("%s %s (token %q): status %d, want %d; body %v", method, path, token, got, want, out)
	}
	if want >= 400 {
		e, ok := out["error"].(map[string]any)
		if !ok || e["code"] == "" || e["message"] == "" {
			a.t.Fatalf("%s %s: error body %v is not the API's error shape", method, path, out)
		}
		if field != "" && e["field"] != field {
			a.t.Fatalf("%s %s: error names field %v, want %q (%v)", method, path, e["field"], field, e["message"])
		}
	}
	return out
}
