package admin

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aibos/worker"
	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/internal/testbroker"
)

// tokenAPI is the API over a real broker and listener, with the token
// store as its Authenticator.
type tokenAPI struct {
	url string
	ts  *TokenStore
	clk *clock
	// scheme is the Authorization scheme sent: "Bearer" unless a test
	// sets another.
	scheme string
}

func startTokenAPI(t *testing.T, b broker.Broker, limit FailedAuthLimit) *tokenAPI {
	t.Helper()
	clk := newClock()
	ts := newTokenStore(t, b, clk.Now)
	c, err := worker.NewClient(b, worker.ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Client: c, Broker: b, Auth: ts, Tokens: ts, Now: clk.Now, FailedAuth: limit,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return &tokenAPI{url: srv.URL, ts: ts, clk: clk, scheme: "Bearer"}
}

// token makes a token in the store.
func (a *tokenAPI) token(t *testing.T, role Role, tenant string) string {
	t.Helper()
	tok, _, err := a.ts.Create(context.Background(), TokenSpec{Name: string(role) + "-" + tenant, Role: role, TenantID: tenant})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

type reply struct {
	status int
	header http.Header
	body   map[string]any
}

func (a *tokenAPI) do(t *testing.T, method, path, token, body string) reply {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, a.url+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", a.scheme+" "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	r := reply{status: resp.StatusCode, header: resp.Header}
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) > 0 {
		if err := json.Unmarshal(data, &r.body); err != nil {
			t.Fatalf("%s %s: body %q is not a JSON object: %v", method, path, data, err)
		}
	}
	return r
}

func (r reply) errField() string {
	e, _ := r.body["error"].(map[string]any)
	f, _ := e["field"].(string)
	return f
}

func TestTokenRoutesGrantRules(t *testing.T) {
	testbroker.Each(t, func(t *testing.T, b broker.Broker) {
		a := startTokenAPI(t, b, FailedAuthLimit{})
		root, adminA, opA := a.token(t, RoleAdmin, ""), a.token(t, RoleAdmin, "A"), a.token(t, RoleOperator, "")
		a.token(t, RoleViewer, "B")

		for _, c := range []struct {
			name, token, body string
			status            int
			field             string
		}{
			{"operator may not make tokens", opA, `{"name":"x","role":"viewer"}`, 403, ""},
			{"tenant admin for another tenant", adminA, `{"name":"x","role":"viewer","tenantId":"B"}`, 403, "tenantId"},
			{"tenant admin for tenant all", adminA, `{"name":"x","role":"viewer","tenantId":"all"}`, 403, "tenantId"},
			{"unknown field", root, `{"name":"x","role":"viewer","scope":"B"}`, 400, "scope"},
			{"bad role", root, `{"name":"x","role":"root"}`, 422, "role"},
			{"bad expiresIn", root, `{"name":"x","role":"viewer","expiresIn":"-1h"}`, 422, "expiresIn"},
			{"both expiries", root, `{"name":"x","role":"viewer","expiresIn":"1h","expiresAt":"2030-01-01T00:00:00Z"}`, 400, "expiresIn"},
			{"no name", root, `{"role":"viewer"}`, 422, "name"},
		} {
			r := a.do(t, "POST", "/api/v1/tokens", c.token, c.body)
			if r.status != c.status || r.errField() != c.field {
				t.Errorf("%s: %d %v, want %d naming %q", c.name, r.status, r.body, c.status, c.field)
			}
		}

		// A tenant admin's token is scoped to its tenant, even unasked.
		r := a.do(t, "POST", "/api/v1/tokens", adminA, `{"name":"a-viewer","role":"viewer","expiresIn":"1h"}`)
		if r.status != 201 || r.body["tenantId"] != "A" || r.body["expiresAt"] == nil {
			t.Fatalf("tenant admin makes a token: %d %v, want 201 scoped to A with an expiry", r.status, r.body)
		}
		made, _ := r.body["token"].(string)
		p, err := a.ts.Authenticate(context.Background(), made)
		if err != nil || p.TenantID != "A" || p.Role != RoleViewer {
			t.Fatalf("the token made through the API: %+v, %v", p, err)
		}
		// The cross-tenant admin makes a cross-tenant token.
		if r := a.do(t, "POST", "/api/v1/tokens", root, `{"name":"ops","role":"operator"}`); r.status != 201 || r.body["tenantId"] != nil {
			t.Errorf("cross-tenant admin makes a cross-tenant token: %d %v", r.status, r.body)
		}

		// Listing: the tenant admin sees its tenant's tokens only.
		names := func(token string) []string {
			r := a.do(t, "GET", "/api/v1/tokens", token, "")
			if r.status != 200 {
				t.Fatalf("list: %d %v", r.status, r.body)
			}
			var n []string
			for _, x := range r.body["tokens"].([]any) {
				m := x.(map[string]any)
				if _, leak := m["hash"]; leak {
					t.Errorf("the list shows a hash: %v", m)
				}
				n = append(n, m["name"].(string))
			}
			slices.Sort(n) // the test's clock stands still: every token has one creation time
			return n
		}
		if got := names(adminA); strings.Join(got, ",") != "a-viewer,admin-A" {
			t.Errorf("tenant A's admin lists %v, want a-viewer,admin-A", got)
		}
		if got := names(root); len(got) != 6 {
			t.Errorf("the cross-tenant admin lists %v, want all 6", got)
		}

		// Revoking: another tenant's token is 404 to a tenant admin.
		infos, err := a.ts.List(context.Background(), "B")
		if err != nil || len(infos) != 1 {
			t.Fatal(infos, err)
		}
		if r := a.do(t, "DELETE", "/api/v1/tokens/"+infos[0].ID, adminA, ""); r.status != 404 {
			t.Errorf("tenant A's admin revokes B's token: %d, want 404", r.status)
		}
		if r := a.do(t, "DELETE", "/api/v1/tokens/"+p.TokenID, adminA, ""); r.status != 204 {
			t.Errorf("tenant A's admin revokes its own tenant's token: %d %v, want 204", r.status, r.body)
		}
		if r := a.do(t, "GET", "/api/v1/tokens", made, ""); r.status != 401 {
			t.Errorf("a revoked token: %d, want 401", r.status)
		}
		if r := a.do(t, "DELETE", "/api/v1/tokens/"+infos[0].ID, root, ""); r.status != 204 {
			t.Errorf("the cross-tenant admin revokes B's token: %d %v, want 204", r.status, r.body)
		}
	})
}

func TestFailedAuthRateLimit(t *testing.T) {
	a := startTokenAPI(t, testbroker.SQLite(t), FailedAuthLimit{Every: 10 * time.Second, Burst: 3})
	good := a.token(t, RoleAdmin, "")
	bad := good[:len(good)-1] + flip(good[len(good)-1])
	for i := range 3 {
		if r := a.do(t, "GET", "/api/v1/tokens", bad, ""); r.status != 401 {
			t.Fatalf("failure %d: %d, want 401", i+1, r.status)
		}
	}
	for _, tok := range []string{bad, good, ""} {
		r := a.do(t, "GET", "/api/v1/tokens", tok, "")
		secs, err := strconv.Atoi(r.header.Get("Retry-After"))
		if r.status != 429 || err != nil || secs < 1 || secs > 10 {
			t.Fatalf("after 3 failures (token %.8q): %d Retry-After %q, want 429 with 1..10 s", tok, r.status, r.header.Get("Retry-After"))
		}
	}
	a.clk.Add(10 * time.Second)
	if r := a.do(t, "GET", "/api/v1/tokens", good, ""); r.status != 200 {
		t.Fatalf("after the wait: %d %v, want 200", r.status, r.body)
	}
	// Missing tokens count as failures too.
	a.do(t, "GET", "/api/v1/tokens", "", "")
	if r := a.do(t, "GET", "/api/v1/tokens", "", ""); r.status != 429 {
		t.Fatalf("a second missing token right after: %d, want 429", r.status)
	}
}

// TestAuthenticateStoreDown: when the store cannot say whether a token is
// good, the answer is 503, and it counts as no failure of the client.
func TestAuthenticateStoreDown(t *testing.T) {
	b := testbroker.SQLite(t)
	a := startTokenAPI(t, b, FailedAuthLimit{Every: time.Minute, Burst: 1})
	good := a.token(t, RoleAdmin, "")
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if r := a.do(t, "GET", "/api/v1/tokens", good, ""); r.status != 503 {
			t.Fatalf("request %d with the store closed: %d %v, want 503", i+1, r.status, r.body)
		}
	}
}

func TestBearerScheme(t *testing.T) {
	a := startTokenAPI(t, testbroker.SQLite(t), FailedAuthLimit{})
	good := a.token(t, RoleAdmin, "")
	for scheme, want := range map[string]int{"Bearer": 200, "bearer": 200, "BEARER": 200, "Basic": 401, "Token": 401} {
		a.scheme = scheme
		if r := a.do(t, "GET", "/api/v1/tokens", good, ""); r.status != want {
			t.Errorf("Authorization: %s <token>: %d, want %d", scheme, r.status, want)
		}
	}
}
