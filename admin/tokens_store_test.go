package admin

import (
	"context"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/internal/testbroker"
)

// TestClock is a clock the tests move; the package's external tests use
// it too.
type TestClock struct {
	mu sync.Mutex
	t  time.Time
}

// NewTestClock returns a TestClock at a fixed instant.
func NewTestClock() *TestClock { return &TestClock{t: time.Date(2026, 11, 30, 5, 0, 0, 0, time.UTC)} }

// Now reads the clock.
func (c *TestClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Add moves the clock by d.
func (c *TestClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newTokenStore(t *testing.T, b broker.Broker, now func() time.Time) *TokenStore {
	t.Helper()
	ts, err := NewTokenStore(b, now)
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

func TestTokenStoreLifecycle(t *testing.T) {
	testbroker.Each(t, func(t *testing.T, b broker.Broker) {
		ctx := context.Background()
		clk := NewTestClock()
		ts := newTokenStore(t, b, clk.Now)

		token, info, err := ts.Create(ctx, TokenSpec{Name: "support-alice", Role: RoleOperator, TenantID: "acme", ExpiresAt: clk.Now().Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(token, "awt_"+info.ID+"_") || len(token) < len("awt_")+16+1+43 {
			t.Fatalf("token %q: want awt_<id>_<43-char secret> with id %s", token, info.ID)
		}
		p, err := ts.Authenticate(ctx, token)
		if err != nil {
			t.Fatalf("authenticate a fresh token: %v", err)
		}
		if p.TokenID != info.ID || p.Role != RoleOperator || p.TenantID != "acme" || p.Name != "support-alice" || !p.Expires.Equal(clk.Now().Add(time.Hour)) {
			t.Fatalf("principal %+v does not describe the token %+v", p, info)
		}

		// The secret is stored only as a hash: the document never holds it.
		d, err := b.(broker.Committer).DocGet(ctx, TokenScope, tokenKind, info.ID)
		if err != nil {
			t.Fatal(err)
		}
		secret := strings.TrimPrefix(token, "awt_"+info.ID+"_") // base64url: it may itself hold "_"
		if strings.Contains(string(d.Body), secret) {
			t.Fatalf("the stored token %s holds its secret", d.Body)
		}

		// A wrong secret, a changed id, a truncated token: refused.
		for _, bad := range []string{token[:len(token)-1] + flip(token[len(token)-1]), "awt_0000000000000000_" + secret, token[:len(token)-5], "Bearer " + token, ""} {
			if _, err := ts.Authenticate(ctx, bad); !errors.Is(err, ErrUnauthenticated) {
				t.Errorf("authenticate %q: %v, want ErrUnauthenticated", bad, err)
			}
		}

		// Expired: refused from the expiry on.
		clk.Add(time.Hour)
		if _, err := ts.Authenticate(ctx, token); !errors.Is(err, ErrUnauthenticated) {
			t.Fatalf("authenticate an expired token: %v, want ErrUnauthenticated", err)
		}
		clk.Add(-time.Minute)
		if _, err := ts.Authenticate(ctx, token); err != nil {
			t.Fatalf("authenticate a token a minute before its expiry: %v", err)
		}

		// Revoked: refused, and gone from the list.
		other, _, err := ts.Create(ctx, TokenSpec{Name: "ci", Role: RoleAdmin})
		if err != nil {
			t.Fatal(err)
		}
		if err := ts.Revoke(ctx, info.ID, "other-tenant"); errorFor(err).Status != 404 {
			t.Fatalf("revoke another tenant's token: %v, want a 404", err)
		}
		if err := ts.Revoke(ctx, info.ID, ""); err != nil {
			t.Fatal(err)
		}
		if _, err := ts.Authenticate(ctx, token); !errors.Is(err, ErrUnauthenticated) {
			t.Fatalf("authenticate a revoked token: %v, want ErrUnauthenticated", err)
		}
		if err := ts.Revoke(ctx, info.ID, ""); errorFor(err).Status != 404 {
			t.Fatalf("revoke twice: %v, want a 404", err)
		}
		if _, err := ts.Authenticate(ctx, other); err != nil {
			t.Fatalf("revoking one token broke another: %v", err)
		}
	})
}

func flip(c byte) string {
	if c == 'A' {
		return "B"
	}
	return "A"
}

func TestTokenStoreListIsScopedByTheQuery(t *testing.T) {
	testbroker.Each(t, func(t *testing.T, b broker.Broker) {
		ctx := context.Background()
		ts := newTokenStore(t, b, nil)
		for _, sp := range []TokenSpec{{Name: "root", Role: RoleAdmin}, {Name: "a1", Role: RoleViewer, TenantID: "A"}, {Name: "b1", Role: RoleAdmin, TenantID: "B"}, {Name: "all", Role: RoleViewer, TenantID: "all"}} {
			if _, _, err := ts.Create(ctx, sp); err != nil {
				t.Fatal(err)
			}
		}
		names := func(tenant string) string {
			l, err := ts.List(ctx, tenant)
			if err != nil {
				t.Fatal(err)
			}
			var n []string
			for _, x := range l {
				n = append(n, x.Name)
			}
			return strings.Join(n, ",")
		}
		if got := names("A"); got != "a1" {
			t.Errorf("tenant A lists %q, want a1", got)
		}
		if got := names("all"); got != "all" {
			t.Errorf("tenant \"all\" lists %q, want only its own token: \"all\" is not a wildcard", got)
		}
		if got := strings.Split(names(""), ","); len(got) != 4 {
			t.Errorf("cross-tenant list %v, want the 4 tokens", got)
		}
	})
}

func TestTokenSpecRejectsBadInput(t *testing.T) {
	ts := newTokenStore(t, testbroker.SQLite(t), nil)
	for _, c := range []struct {
		sp    TokenSpec
		field string
	}{
		{TokenSpec{Name: "", Role: RoleAdmin}, "name"},
		{TokenSpec{Name: "x\n", Role: RoleAdmin}, "name"},
		{TokenSpec{Name: strings.Repeat("n", 101), Role: RoleAdmin}, "name"},
		{TokenSpec{Name: "x", Role: "root"}, "role"},
		{TokenSpec{Name: "x", Role: RoleViewer, TenantID: strings.Repeat("t", 513)}, "tenantId"},
		{TokenSpec{Name: "x", Role: RoleViewer, ExpiresAt: time.Now().Add(-time.Second)}, "expiresAt"},
	} {
		_, _, err := ts.Create(context.Background(), c.sp)
		var e *Error
		if !errors.As(err, &e) || e.Field != c.field || e.Status != 422 {
			t.Errorf("create %+v: %v, want a 422 naming %s", c.sp, err, c.field)
		}
	}
}

// TestSecretComparedInConstantTime keeps the rule that the secret's hash
// is compared with crypto/subtle: timing cannot be asserted in a test, so
// the code itself is checked.
func TestSecretComparedInConstantTime(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "tokens_store.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var fn *ast.FuncDecl
	for _, d := range f.Decls {
		if d, ok := d.(*ast.FuncDecl); ok && d.Name.Name == "secretMatches" {
			fn = d
		}
	}
	if fn == nil {
		t.Fatal("secretMatches not found in tokens_store.go")
	}
	constant := false
	ast.Inspect(fn.Body, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.SelectorExpr:
			if x, ok := n.X.(*ast.Ident); ok {
				switch x.Name + "." + n.Sel.Name {
				case "subtle.ConstantTimeCompare":
					constant = true
				case "bytes.Equal", "hmac.Equal", "reflect.DeepEqual", "slices.Equal":
					t.Errorf("secretMatches compares with %s.%s; use subtle.ConstantTimeCompare", x.Name, n.Sel.Name)
				}
			}
		case *ast.BinaryExpr:
			if n.Op == token.EQL || n.Op == token.NEQ {
				if !constantOperand(n.Y) {
					t.Errorf("secretMatches compares two values with %s; only lengths and constants may be compared so", n.Op)
				}
			}
		}
		return true
	})
	if !constant {
		t.Error("secretMatches does not call subtle.ConstantTimeCompare")
	}
	// And the store authenticates through it.
	ts := newTokenStore(t, testbroker.SQLite(t), nil)
	tok, _, err := ts.Create(context.Background(), TokenSpec{Name: "x", Role: RoleViewer})
	if err != nil {
		t.Fatal(err)
	}
	_, secret, _ := parseToken(tok)
	d, err := ts.get(context.Background(), tok[4:20])
	if err != nil {
		t.Fatal(err)
	}
	st, err := decodeToken(d)
	if err != nil {
		t.Fatal(err)
	}
	if !secretMatches(st.Hash, secret) || secretMatches(st.Hash, secret+"x") || secretMatches("zz", secret) {
		t.Error("secretMatches does not tell the stored secret from others")
	}
}

func TestFailureLimiter(t *testing.T) {
	clk := NewTestClock()
	l := newFailureLimiter(FailedAuthLimit{Every: 10 * time.Second, Burst: 3, MaxClients: 4}, clk.Now)
	for i := range 3 {
		if w := l.blocked("1.2.3.4"); w != 0 {
			t.Fatalf("blocked after %d failures, burst is 3", i)
		}
		l.fail("1.2.3.4")
	}
	w := l.blocked("1.2.3.4")
	if w <= 0 || w > 10*time.Second {
		t.Fatalf("after 3 failures: wait %v, want (0, 10s]", w)
	}
	if l.blocked("5.6.7.8") != 0 {
		t.Fatal("another address is blocked by the first one's failures")
	}
	clk.Add(w)
	if l.blocked("1.2.3.4") != 0 {
		t.Fatalf("still blocked after the announced wait %v", w)
	}
	// Bounded memory: many addresses never hold more than MaxClients.
	for i := range 100 {
		l.fail(strings.Repeat("x", i%7) + string(rune('a'+i%26)) + string(rune('0'+i/26)))
	}
	if n := l.size(); n > 4 {
		t.Fatalf("%d addresses remembered, bound is 4", n)
	}
}

// constantOperand reports whether e is a literal, nil or a package's
// constant (sha256.Size): what a length or result may be compared with.
func constantOperand(e ast.Expr) bool {
	switch e := e.(type) {
	case *ast.BasicLit:
		return true
	case *ast.Ident:
		return e.Name == "nil"
	case *ast.SelectorExpr:
		_, pkg := e.X.(*ast.Ident)
		return pkg
	}
	return false
}
