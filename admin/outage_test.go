package admin_test

import (
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/aibos/worker/admin"
	"github.com/aibos/worker/admin/apitest"
	"github.com/aibos/worker/broker/redisbroker"
	"github.com/aibos/worker/internal/redistest"
	"github.com/aibos/worker/internal/testbroker"
	"github.com/aibos/worker/workflow"
)

// outage is an API over a Redis broker whose redis-server a test can stop
// and start again (with its data: append-only file, fsync always). store
// authenticates with tokens kept in that Redis (as the service does); mem
// with apitest's in-memory tokens, so that its handlers, not the
// authentication, meet the outage; it serves every part (token store,
// schedules, workflows), so that every route reaches the store.
type outage struct {
	redis      *redistest.Server
	store, mem *apitest.Server
	op         string // store's operator token
}

func startOutage(t *testing.T) *outage {
	t.Helper()
	srv := redistest.StartWith(t, redistest.Options{Dir: t.TempDir(), Args: []string{"--appendonly", "yes", "--appendfsync", "always"}})
	// No retries: each call meets the outage once, so the sweeps stay quick.
	client := redis.NewClient(&redis.Options{Addr: srv.Addr, DialTimeout: time.Second, ReadTimeout: time.Second, MaxRetries: -1})
	t.Cleanup(func() { _ = client.Close() })
	b, err := redisbroker.New(client, redisbroker.Config{Prefix: redistest.Prefix(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	ts, err := admin.NewTokenStore(b, nil)
	if err != nil {
		t.Fatal(err)
	}
	op, _, err := ts.Create(t.Context(), admin.TokenSpec{Name: "op", Role: admin.RoleOperator})
	if err != nil {
		t.Fatal(err)
	}
	wf, err := workflow.NewEngine(b, workflow.Config{Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	return &outage{redis: srv, op: op,
		store: apitest.Start(t, admin.Config{Broker: b, Auth: ts, Tokens: ts, Logger: quietLog}),
		mem:   apitest.Start(t, withSchedulers(t, admin.Config{Broker: b, Tokens: ts, Workflows: wf, Logger: quietLog}))}
}

// restart starts the redis-server again and waits until GET path answers
// 200 (503 until the client has reconnected), which also lets the
// client's background dials end before the package's leak check.
func (o *outage) restart(t *testing.T, path string) {
	t.Helper()
	o.redis = o.redis.Restart(t)
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := o.store.Do(t, "GET", path, o.op, nil)
		if r.Status == http.StatusOK {
			return
		}
		if r.Status != http.StatusServiceUnavailable || time.Now().After(deadline) {
			t.Fatalf("after the restart: GET %s: %d %s; want 200 (503 until the client reconnects)", path, r.Status, r.Body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestStoreUnreachableIs503: with the redis-server stopped, reading a job,
// listing jobs and enqueueing one answer 503 in the API's error shape
// (through the store's token check and through the handlers), and once it
// is back the same calls succeed.
func TestStoreUnreachableIs503(t *testing.T) {
	o := startOutage(t)
	var j admin.Job
	o.store.Do(t, "POST", "/api/v1/queues/q/jobs", o.op, `{"type":"x"}`).Want(t, http.StatusCreated).JSON(t, &j)

	o.redis.Kill()
	for _, s := range []struct {
		name  string
		srv   *apitest.Server
		token string
	}{{"store tokens", o.store, o.op}, {"handlers", o.mem, apitest.Operator}} {
		t.Run(s.name, func(t *testing.T) {
			for _, c := range []struct{ method, path, body string }{
				{"GET", "/api/v1/jobs/" + j.ID + "?queue=q", ""},
				{"GET", "/api/v1/jobs/" + j.ID, ""},
				{"GET", "/api/v1/jobs?queue=q&state=pending", ""},
				{"POST", "/api/v1/queues/q/jobs", `{"type":"x"}`},
			} {
				var body any
				if c.body != "" {
					body = c.body
				}
				e := s.srv.Do(t, c.method, c.path, s.token, body).WantError(t, http.StatusServiceUnavailable, admin.CodeUnavailable)
				if e.Message == "" {
					t.Fatalf("%s %s: 503 with no message", c.method, c.path)
				}
			}
		})
	}

	o.restart(t, "/api/v1/jobs/"+j.ID)
	var again admin.Job
	o.mem.Do(t, "POST", "/api/v1/queues/q/jobs", apitest.Operator, `{"type":"x"}`).Want(t, http.StatusCreated).JSON(t, &again)
	o.store.Do(t, "GET", "/api/v1/jobs/"+again.ID, o.op, nil).Want(t, http.StatusOK)
}

// routePath turns a route pattern into a request: its method and a path
// with every {param} replaced by a value no resource has, and the query
// parameters a listing requires.
func routePath(pattern string) (method, path string) {
	method, path, _ = strings.Cut(pattern, " ")
	path = regexp.MustCompile(`\{[^}]+\}`).ReplaceAllString(path, "none")
	switch pattern {
	case "GET /api/v1/one-time-schedules":
		path += "?queue=none"
	case "GET /api/v1/workflows/runs":
		path += "?workflow=none"
	}
	return method, path
}

// routeBody is a body the route's operation accepts in shape, or nil.
func routeBody(method string) any {
	if method == "POST" || method == "PUT" {
		return "{}"
	}
	return nil
}

// TestEveryRouteDocuments503: with the redis-server stopped, every route
// answers with a status and body its operation documents (apitest checks
// each against the OpenAPI document): through the store's token check,
// 503, which every operation documents, processOnly ones included;
// through the handlers, never 500, and 503 for every read but the ones
// that read only this process's memory (processOnly), which answer 200.
func TestEveryRouteDocuments503(t *testing.T) {
	// GET /api/v1/workflows lists the workflow definitions registered in
	// this process (workflow.Engine.Names), never the store, so its
	// handler cannot answer 503; its operation documents 503 for the
	// token check above it and says so in its description.
	processOnly := map[string]bool{"GET /api/v1/workflows": true}
	o := startOutage(t)
	o.redis.Kill()
	for _, rt := range o.mem.API.Routes() {
		method, path := routePath(rt.Pattern)
		o.store.Do(t, method, path, o.op, routeBody(method)).WantError(t, http.StatusServiceUnavailable, admin.CodeUnavailable)
		r := o.mem.Do(t, method, path, apitest.Admin, routeBody(method))
		want := http.StatusServiceUnavailable
		if processOnly[rt.Pattern] {
			want = http.StatusOK
		}
		if r.Status == http.StatusInternalServerError || method == "GET" && r.Status != want {
			t.Errorf("%s with the store down: %d %s; want %d for a read, and never 500", rt.Pattern, r.Status, r.Body, want)
		}
	}
	o.restart(t, "/api/v1/queues")
}

// TestEveryRouteDocuments429: a client out of failed authentications gets
// 429 with Retry-After on every route, even with a good token, as the
// route's operation documents.
func TestEveryRouteDocuments429(t *testing.T) {
	srv := apitest.Start(t, admin.Config{Broker: testbroker.SQLite(t), FailedAuth: admin.FailedAuthLimit{Burst: 1, Every: time.Hour}})
	srv.Do(t, "GET", "/api/v1/queues", "not-a-token", nil).WantError(t, http.StatusUnauthorized, admin.CodeUnauthenticated)
	for _, rt := range srv.API.Routes() {
		method, path := routePath(rt.Pattern)
		r := srv.Do(t, method, path, apitest.Admin, routeBody(method))
		r.WantError(t, http.StatusTooManyRequests, admin.CodeTooMany)
		if s, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || s < 1 {
			t.Errorf("%s: Retry-After %q, want a number of seconds", rt.Pattern, r.Header.Get("Retry-After"))
		}
	}
}
