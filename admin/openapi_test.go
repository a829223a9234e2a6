package admin_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/aibos/worker/admin"
	"github.com/aibos/worker/admin/apitest"
	"github.com/aibos/worker/internal/testbroker"
)

func TestOpenAPIServedWithoutAuth(t *testing.T) {
	srv := apitest.Start(t, admin.Config{Broker: testbroker.SQLite(t)})
	r := srv.Do(t, "GET", "/api/v1/openapi.json", "", nil).Want(t, http.StatusOK)
	var doc struct {
		OpenAPI string         `json:"openapi"`
		Paths   map[string]any `json:"paths"`
	}
	r.JSON(t, &doc)
	if doc.OpenAPI != "3.1.0" || doc.Paths["/api/v1/openapi.json"] == nil {
		t.Fatalf("served document: openapi %q, paths %v", doc.OpenAPI, doc.Paths)
	}
	want, err := admin.OpenAPI()
	if err != nil {
		t.Fatal(err)
	}
	if !json.Valid(want) || string(want) != string(r.Body) {
		t.Fatal("the served document is not admin.OpenAPI()")
	}
}

// TestValidateCatchesUndocumentedAnswers proves the harness can fail: an
// answer the document does not describe (an unknown route's 404 has no
// operation) is reported.
func TestValidateCatchesUndocumentedAnswers(t *testing.T) {
	srv := apitest.Start(t, admin.Config{Broker: testbroker.SQLite(t)})
	req := apitest.NewRequest(t, "GET", srv.URL+"/api/v1/no-such-route", apitest.Admin, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	rec := &recorder{TB: t}
	apitest.Validate(rec, req, resp)
	if !rec.failed {
		t.Fatal("Validate accepted an answer of an undocumented route")
	}
}

// TestValidateCatchesWrongBodies: a documented status with a body that
// breaks its schema, and a status the operation does not document.
func TestValidateCatchesWrongBodies(t *testing.T) {
	for _, c := range []struct {
		name   string
		status int
		body   string
	}{
		{"array for object", http.StatusOK, `[1,2]`},
		{"undocumented status", http.StatusTeapot, `{}`},
	} {
		t.Run(c.name, func(t *testing.T) {
			req := apitest.NewRequest(t, "GET", "http://127.0.0.1/api/v1/openapi.json", "", nil)
			resp := &http.Response{
				StatusCode: c.status,
				Header:     http.Header{"Content-Type": {"application/json"}},
				Body:       io.NopCloser(strings.NewReader(c.body)),
				Request:    req,
			}
			rec := &recorder{TB: t}
			apitest.Validate(rec, req, resp)
			if !rec.failed {
				t.Fatalf("Validate accepted %d %s", c.status, c.body)
			}
		})
	}
}

// recorder is a testing.TB that notes a failure instead of failing.
type recorder struct {
	testing.TB
	failed bool
}

func (r *recorder) Errorf(string, ...any) { r.failed = true }
func (r *recorder) Fatalf(string, ...any) { r.failed = true }
func (r *recorder) Helper()               {}
