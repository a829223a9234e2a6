package dashboard

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/aibos/worker/admin"
)

// noTokens knows no API token.
type noTokens struct{}

func (noTokens) Authenticate(context.Context, string) (*admin.Principal, error) {
	return nil, admin.ErrUnauthenticated
}

// TestSSOVerify checks the ID token checks against ID tokens a real
// provider issued: its claims make the principal; a token for another
// client (audience), an expired one, another login's nonce and a role not
// allowed are refused.
func TestSSOVerify(t *testing.T) {
	ann := OIDCUser{Name: "ann", Password: "pw-ann", Role: "operator", Tenant: "A"}
	root := OIDCUser{Name: "root", Password: "pw-root", Role: "superuser"}
	p := StartProvider(t, "s3cret", []string{"dash", "other"}, []OIDCUser{ann, root})
	ctx := context.Background()
	prov, err := oidc.NewProvider(ctx, p.Issuer)
	if err != nil {
		t.Fatal(err)
	}
	ps, err := NewPrincipals(noTokens{})
	if err != nil {
		t.Fatal(err)
	}
	mk := func(client string, now func() time.Time, roles ...admin.Role) *sso {
		s, err := newSSO(&OIDCConfig{IssuerURL: p.Issuer, ClientID: client, AllowedRoles: roles}, ps, now, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	good := p.IDToken(t, "dash", "s3cret", "n1", ann)
	pr, err := mk("dash", time.Now).verify(ctx, prov, good, "n1")
	if err != nil || pr.Role != admin.RoleOperator || pr.TenantID != "A" || pr.TokenID != "oidc:ann" {
		t.Fatalf("ann's token: %+v, %v; want an operator of tenant A", pr, err)
	}
	refused := []struct {
		what, want string
		s          *sso
		raw, nonce string
	}{
		{"another login's nonce", "nonce", mk("dash", time.Now), good, "n2"},
		{"a token for another client", "audience", mk("dash", time.Now), p.IDToken(t, "other", "s3cret", "n3", ann), "n3"},
		{"an expired token", "expired", mk("dash", func() time.Time { return time.Now().Add(3 * time.Hour) }), good, "n1"},
		{"a role not allowed", "allowed roles", mk("dash", time.Now, admin.RoleAdmin), good, "n1"},
		{"a role that is none", "allowed roles", mk("dash", time.Now), p.IDToken(t, "dash", "s3cret", "n4", root), "n4"},
	}
	for _, c := range refused {
		if pr, err := c.s.verify(ctx, prov, c.raw, c.nonce); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %+v, %v; want refused for its %s", c.what, pr, err, c.want)
		}
	}
}
