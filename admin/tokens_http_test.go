package admin_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aibos/worker/admin"
	"github.com/aibos/worker/admin/apitest"
	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/internal/testbroker"
)

// tokenAPI is the API over a real broker and listener (apitest, which
// checks every request and answer against the OpenAPI document), with
// the token store as its Authenticator.
type tokenAPI struct {
	*apitest.Server
	ts  *admin.TokenStore
	clk *admin.TestClock
}

func startTokenAPI(t *testing.T, b broker.Broker, limit admin.FailedAuthLimit) *tokenAPI {
	t.Helper()
	clk := admin.NewTestClock()
	ts, err := admin.NewTokenStore(b, clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	srv := apitest.Start(t, admin.Config{Broker: b, Auth: ts, Tokens: ts, Now: clk.Now, FailedAuth: limit,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	return &tokenAPI{Server: srv, ts: ts, clk: clk}
}

// token makes a token in the store.
func (a *tokenAPI) token(t *testing.T, role admin.Role, tenant string) string {
	t.Helper()
	tok, _, err := a.ts.Create(context.Background(), admin.TokenSpec{Name: string(role) + "-" + tenant, Role: role, TenantID: tenant})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// wrong returns token with its last character changed.
func wrong(token string) string {
	last := "A"
	if strings.HasSuffix(token, "A") {
		last = "B"
	}
	return token[:len(token)-1] + last
}

func TestTokenRoutesGrantRules(t *testing.T) {
	testbroker.Each(t, func(t *testing.T, b broker.Broker) {
		a := startTokenAPI(t, b, admin.FailedAuthLimit{})
		root, adminA, op := a.token(t, admin.RoleAdmin, ""), a.token(t, admin.RoleAdmin, "A"), a.token(t, admin.RoleOperator, "")
		a.token(t, admin.RoleViewer, "B")

		for _, c := range []struct {
			name, token, body string
			status            int
			field             string
		}{
			{"operator may not make tokens", op, `{"name":"x","role":"viewer"}`, 403, ""},
			{"tenant admin for another tenant", adminA, `{"name":"x","role":"viewer","tenantId":"B"}`, 403, "tenantId"},
			{"tenant admin for tenant all", adminA, `{"name":"x","role":"viewer","tenantId":"all"}`, 403, "tenantId"},
			{"unknown field", root, `{"name":"x","role":"viewer","scope":"B"}`, 400, "scope"},
			{"bad role", root, `{"name":"x","role":"root"}`, 422, "role"},
			{"bad expiresIn", root, `{"name":"x","role":"viewer","expiresIn":"-1h"}`, 422, "expiresIn"},
			{"both expiries", root, `{"name":"x","role":"viewer","expiresIn":"1h","expiresAt":"2030-01-01T00:00:00Z"}`, 400, "expiresIn"},
			{"no name", root, `{"role":"viewer"}`, 422, "name"},
			{"not JSON", root, `{"name":`, 400, ""},
		} {
			r := a.Do(t, "POST", "/api/v1/tokens", c.token, c.body)
			if r.Status != c.status || r.Error(t).Field != c.field {
				t.Errorf("%s: %d %s, want %d naming %q", c.name, r.Status, r.Body, c.status, c.field)
			}
		}
		a.Do(t, "POST", "/api/v1/tokens", wrong(root), `{"name":"x","role":"viewer"}`).WantError(t, 401, admin.CodeUnauthenticated)

		// A tenant admin's token is scoped to its tenant, even unasked.
		var made struct {
			Token     string
			ID        string
			TenantID  string
			ExpiresAt *time.Time
		}
		a.Do(t, "POST", "/api/v1/tokens", adminA, `{"name":"a-viewer","role":"viewer","expiresIn":"1h"}`).Want(t, 201).JSON(t, &made)
		if made.TenantID != "A" || made.ExpiresAt == nil || !made.ExpiresAt.Equal(a.clk.Now().Add(time.Hour)) {
			t.Fatalf("tenant admin makes a token: %+v, want it scoped to A, expiring in an hour", made)
		}
		p, err := a.ts.Authenticate(context.Background(), made.Token)
		if err != nil || p.TenantID != "A" || p.Role != admin.RoleViewer {
			t.Fatalf("the token made through the API: %+v, %v", p, err)
		}
		// The cross-tenant admin makes a cross-tenant token.
		r := a.Do(t, "POST", "/api/v1/tokens", root, `{"name":"ops","role":"operator"}`).Want(t, 201)
		if strings.Contains(string(r.Body), "tenantId") {
			t.Errorf("cross-tenant admin's new token: %s, want no tenant", r.Body)
		}

		// Listing: the tenant admin sees its tenant's tokens only.
		names := func(token string) []string {
			var l struct{ Tokens []map[string]any }
			a.Do(t, "GET", "/api/v1/tokens", token, nil).Want(t, 200).JSON(t, &l)
			var n []string
			for _, m := range l.Tokens {
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
		a.Do(t, "GET", "/api/v1/tokens", op, nil).WantError(t, 403, admin.CodeForbidden)

		// Revoking: another tenant's token is 404 to a tenant admin.
		infos, err := a.ts.List(context.Background(), "B")
		if err != nil || len(infos) != 1 {
			t.Fatal(infos, err)
		}
		a.Do(t, "DELETE", "/api/v1/tokens/"+infos[0].ID, adminA, nil).WantError(t, 404, admin.CodeNotFound)
		a.Do(t, "DELETE", "/api/v1/tokens/"+made.ID, adminA, nil).Want(t, 204)
		a.Do(t, "GET", "/api/v1/tokens", made.Token, nil).WantError(t, 401, admin.CodeUnauthenticated)
		a.Do(t, "DELETE", "/api/v1/tokens/"+infos[0].ID, root, nil).Want(t, 204)
		a.Do(t, "DELETE", "/api/v1/tokens/"+infos[0].ID, root, nil).WantError(t, 404, admin.CodeNotFound)
	})
}

func TestFailedAuthRateLimit(t *testing.T) {
	a := startTokenAPI(t, testbroker.SQLite(t), admin.FailedAuthLimit{Every: 10 * time.Second, Burst: 3})
	good := a.token(t, admin.RoleAdmin, "")
	for range 3 {
		a.Do(t, "GET", "/api/v1/tokens", wrong(good), nil).WantError(t, 401, admin.CodeUnauthenticated)
	}
	for _, tok := range []string{wrong(good), good, ""} {
		r := a.Do(t, "GET", "/api/v1/tokens", tok, nil)
		r.WantError(t, 429, admin.CodeTooMany)
		if secs, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || secs < 1 || secs > 10 {
			t.Fatalf("after 3 failures: Retry-After %q, want 1..10 s", r.Header.Get("Retry-After"))
		}
	}
	a.clk.Add(10 * time.Second)
	a.Do(t, "GET", "/api/v1/tokens", good, nil).Want(t, 200)
	// Missing tokens count as failures too.
	a.Do(t, "GET", "/api/v1/tokens", "", nil).WantError(t, 401, admin.CodeUnauthenticated)
	a.Do(t, "GET", "/api/v1/tokens", "", nil).WantError(t, 429, admin.CodeTooMany)
}

// TestAuthenticateStoreDown: when the store cannot say whether a token is
// good, the answer is 503, and it counts as no failure of the client.
func TestAuthenticateStoreDown(t *testing.T) {
	b := testbroker.SQLite(t)
	a := startTokenAPI(t, b, admin.FailedAuthLimit{Every: time.Minute, Burst: 1})
	good := a.token(t, admin.RoleAdmin, "")
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		a.Do(t, "GET", "/api/v1/tokens", good, nil).WantError(t, 503, admin.CodeUnavailable)
	}
}

func TestBearerScheme(t *testing.T) {
	a := startTokenAPI(t, testbroker.SQLite(t), admin.FailedAuthLimit{})
	good := a.token(t, admin.RoleAdmin, "")
	for _, c := range []struct {
		scheme string
		want   int
	}{{"Bearer", 200}, {"bearer", 200}, {"BEARER", 200}, {"Basic", 401}, {"Token", 401}} {
		if r := a.Do(t, "GET", "/api/v1/tokens", "", nil, "Authorization", c.scheme+" "+good); r.Status != c.want {
			t.Errorf("Authorization: %s <token>: %d, want %d", c.scheme, r.Status, c.want)
		}
	}
}

// TestTokenCreatedShownOnce: the answer to POST holds the token; nothing
// later does.
func TestTokenCreatedShownOnce(t *testing.T) {
	a := startTokenAPI(t, testbroker.SQLite(t), admin.FailedAuthLimit{})
	root := a.token(t, admin.RoleAdmin, "")
	var made map[string]any
	a.Do(t, "POST", "/api/v1/tokens", root, `{"name":"ci","role":"operator","expiresAt":"2030-01-01T00:00:00Z"}`).Want(t, 201).JSON(t, &made)
	secret := made["token"].(string)[len("awt_")+17:]
	r := a.Do(t, "GET", "/api/v1/tokens", root, nil).Want(t, 200)
	if strings.Contains(string(r.Body), secret) {
		t.Fatalf("the list shows a secret: %s", r.Body)
	}
	var l struct{ Tokens []json.RawMessage }
	r.JSON(t, &l)
	if len(l.Tokens) != 2 {
		t.Fatalf("list: %s, want 2 tokens", r.Body)
	}
}
