package admin_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aibos/worker/admin"
	"github.com/aibos/worker/admin/apitest"
	"github.com/aibos/worker/audit"
	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/internal/testbroker"
)

var auditKey = []byte("admin-test-audit-key-32-bytes-ok")

// startAudited serves the API over b with an audit trail.
func startAudited(t *testing.T, b broker.Broker) *apitest.Server { return startAuditedTB(t, b) }

// startAuditedTB is startAudited for tests and benchmarks.
func startAuditedTB(t testing.TB, b broker.Broker) *apitest.Server {
	t.Helper()
	tr, err := audit.New(b, audit.Config{Key: auditKey, HeadFile: filepath.Join(t.TempDir(), audit.HeadFileName)})
	if err != nil {
		t.Fatal(err)
	}
	// The head file's writer ends before its directory is removed.
	t.Cleanup(func() { _ = tr.Sync() })
	return apitest.Start(t, admin.Config{Broker: b, Audit: tr})
}

// newest returns the trail's entries with a number above after, oldest
// first.
func newest(t *testing.T, b broker.Broker, after int64) []*audit.Entry {
	t.Helper()
	p, err := audit.List(context.Background(), b, audit.Filter{}, audit.MaxList)
	if err != nil {
		t.Fatal(err)
	}
	var out []*audit.Entry
	for i := len(p.Entries) - 1; i >= 0; i-- {
		if p.Entries[i].Seq > after {
			out = append(out, p.Entries[i])
		}
	}
	return out
}

// fill replaces a pattern's wildcards with values that name nothing.
func fill(pattern string) (method, path string) {
	method, path, _ = strings.Cut(pattern, " ")
	segs := strings.Split(path, "/")
	for i, s := range segs {
		if strings.HasPrefix(s, "{") {
			segs[i] = "nothing-" + strings.Trim(s, "{}")
		}
	}
	return method, strings.Join(segs, "/")
}

// send sends a request as the token (none if empty) with a request id and
// returns the status.
func send(t *testing.T, srv *apitest.Server, method, path, token, body, reqID string) int {
	t.Helper()
	var b any
	if body != "" {
		b = body
	}
	req := apitest.NewRequest(t, method, srv.URL+path, token, b, admin.RequestIDHeader, reqID)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get(admin.RequestIDHeader); got != reqID {
		t.Fatalf("%s %s: answered with request id %q; want %q", method, path, got, reqID)
	}
	return resp.StatusCode
}

// TestEveryMutatingRouteWritesOneEntry walks the route table: a request
// to each mutating route writes exactly one entry with the route's named
// action, whatever the outcome; so does a denied request to any route,
// while an allowed read writes none.
func TestEveryMutatingRouteWritesOneEntry(t *testing.T) {
	testbroker.Each(t, func(t *testing.T, b broker.Broker) {
		srv := startAudited(t, b)
		var seq int64
		expect := func(t *testing.T, what string, n int, check func(e *audit.Entry)) {
			t.Helper()
			got := newest(t, b, seq)
			if len(got) != n {
				t.Fatalf("%s wrote %d audit entries; want %d", what, len(got), n)
			}
			for _, e := range got {
				check(e)
				seq = e.Seq
			}
		}
		mutating := 0
		for i, rt := range srv.API.Routes() {
			method, path := fill(rt.Pattern)
			body := ""
			if method == http.MethodPost || method == http.MethodPut {
				body = "{}"
			}
			id := fmt.Sprintf("req-%d", i)
			status := send(t, srv, method, path, apitest.Admin, body, id)
			if !admin.Mutating(rt.Pattern) {
				expect(t, "allowed read "+rt.Pattern, 0, nil)
				continue
			}
			mutating++
			action, named := admin.RouteActions[rt.Pattern]
			if !named {
				t.Errorf("mutating route %s has no audit action name in routeActions", rt.Pattern)
			}
			expect(t, rt.Pattern, 1, func(e *audit.Entry) {
				if e.Action != action || e.TokenID != apitest.Admin || e.Role != "admin" || e.Status != status || e.RequestID != id {
					t.Errorf("%s (status %d): entry %+v; want action %s by the admin token with request id %s", rt.Pattern, status, e, action, id)
				}
			})
			// The same route denied: a viewer may change nothing.
			status = send(t, srv, method, path, apitest.Viewer, body, id+"-viewer")
			if status != http.StatusForbidden {
				t.Fatalf("%s as a viewer: %d; want 403", rt.Pattern, status)
			}
			expect(t, rt.Pattern+" as a viewer", 1, func(e *audit.Entry) {
				if e.Action != action || e.Outcome != audit.Denied || e.TokenID != apitest.Viewer || e.Status != http.StatusForbidden {
					t.Errorf("%s as a viewer: entry %+v; want %s denied 403", rt.Pattern, e, action)
				}
			})
		}
		if mutating < 20 {
			t.Fatalf("walked %d mutating routes; the table has more", mutating)
		}
		// A read without a token is denied and recorded.
		if status := send(t, srv, "GET", "/api/v1/jobs", "", "", "anon"); status != http.StatusUnauthorized {
			t.Fatalf("read without a token: %d", status)
		}
		expect(t, "a read without a token", 1, func(e *audit.Entry) {
			if e.Action != "job.read" || e.Outcome != audit.Denied || e.TokenID != "" || e.Status != http.StatusUnauthorized || e.Remote == "" {
				t.Errorf("read without a token: entry %+v", e)
			}
		})
		// The trail the walk wrote verifies.
		if _, err := audit.Verify(context.Background(), b, auditKey, audit.VerifyOptions{}); err != nil {
			t.Fatal(err)
		}
	})
}

// TestEnqueueIsAudited: an enqueue's entry names the job and its tenant,
// never its data.
func TestEnqueueIsAudited(t *testing.T) {
	b := testbroker.SQLite(t)
	srv := startAudited(t, b)
	var job admin.Job
	srv.Do(t, "POST", "/api/v1/queues/invoices/jobs", apitest.Scoped(admin.RoleOperator, apitest.TenantA),
		`{"type":"invoice.processing","data":{"secret":"marker-7f3a"}}`).Want(t, http.StatusCreated).JSON(t, &job)
	es := newest(t, b, 0)
	if len(es) != 1 {
		t.Fatalf("%d entries; want 1", len(es))
	}
	e := es[0]
	if e.Action != "job.enqueue" || e.Tenant != apitest.TenantA || e.Scope != apitest.TenantA || e.Target != "queues/invoices" ||
		!strings.Contains(string(e.Changes), job.ID) || strings.Contains(string(e.Changes), "marker-7f3a") {
		t.Fatalf("enqueue entry %+v (changes %s)", e, e.Changes)
	}
}

// TestAuditList: the route answers as documented; a tenant-scoped token
// sees its tenant's entries only, and asking for another's is refused.
func TestAuditList(t *testing.T) {
	testbroker.Each(t, func(t *testing.T, b broker.Broker) {
		srv := startAudited(t, b)
		opA, opB := apitest.Scoped(admin.RoleOperator, apitest.TenantA), apitest.Scoped(admin.RoleOperator, apitest.TenantB)
		srv.Do(t, "POST", "/api/v1/queues/invoices/jobs", opA, `{"type":"t"}`).Want(t, http.StatusCreated)
		srv.Do(t, "POST", "/api/v1/queues/invoices/jobs", opB, `{"type":"t"}`).Want(t, http.StatusCreated)
		srv.Do(t, "POST", "/api/v1/queues/invoices/pause", apitest.Operator, nil).Want(t, http.StatusOK)
		list := func(token, query string) admin.AuditPage {
			t.Helper()
			var p admin.AuditPage
			srv.Do(t, "GET", "/api/v1/audit?"+query, token, nil).Want(t, http.StatusOK).JSON(t, &p)
			return p
		}
		actions := func(p admin.AuditPage) string {
			var out []string
			for _, e := range p.Entries {
				out = append(out, e.Action+"@"+e.Scope)
			}
			return strings.Join(out, " ")
		}
		if got := actions(list(apitest.Admin, "")); got != "queue.pause@ job.enqueue@tenant-b job.enqueue@tenant-a" {
			t.Fatalf("admin sees %q", got)
		}
		if got := actions(list(apitest.Scoped(admin.RoleViewer, apitest.TenantA), "")); got != "job.enqueue@tenant-a" {
			t.Fatalf("a viewer of tenant A sees %q", got)
		}
		if got := actions(list(apitest.Admin, "tenant=tenant-b")); got != "job.enqueue@tenant-b" {
			t.Fatalf("admin, tenant B: %q", got)
		}
		if got := actions(list(apitest.Admin, "action=queue&actor="+apitest.Operator)); got != "queue.pause@" {
			t.Fatalf("admin, queue actions by the operator: %q", got)
		}
		p := list(apitest.Admin, "limit=2")
		if len(p.Entries) != 2 || p.NextCursor == "" {
			t.Fatalf("first page of 2: %+v", p)
		}
		if got := actions(list(apitest.Admin, "limit=2&cursor="+url.QueryEscape(p.NextCursor))); got != "job.enqueue@tenant-a" {
			t.Fatalf("second page: %q", got)
		}
		srv.Do(t, "GET", "/api/v1/audit?tenant=tenant-b", apitest.Scoped(admin.RoleViewer, apitest.TenantA), nil).WantError(t, http.StatusForbidden, admin.CodeForbidden)
		srv.Do(t, "GET", "/api/v1/audit?limit=0", apitest.Admin, nil).WantError(t, http.StatusBadRequest, admin.CodeBadRequest)
		srv.Do(t, "GET", "/api/v1/audit?since=yesterday", apitest.Admin, nil).WantError(t, http.StatusBadRequest, admin.CodeBadRequest)
		srv.Do(t, "GET", "/api/v1/audit", "", nil).WantError(t, http.StatusUnauthorized, admin.CodeUnauthenticated)
	})
}

// TestAuditListWithoutTrail: a server that records no trail lists the
// store's (empty here), and records nothing.
func TestAuditListWithoutTrail(t *testing.T) {
	b := testbroker.SQLite(t)
	srv := apitest.Start(t, admin.Config{Broker: b})
	srv.Do(t, "POST", "/api/v1/queues/invoices/pause", apitest.Operator, nil).Want(t, http.StatusOK)
	var p admin.AuditPage
	srv.Do(t, "GET", "/api/v1/audit", apitest.Admin, nil).Want(t, http.StatusOK).JSON(t, &p)
	if len(p.Entries) != 0 {
		t.Fatalf("entries %+v; want none", p.Entries)
	}
}
