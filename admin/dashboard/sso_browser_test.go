package dashboard_test

import (
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/aibos/worker/admin/dashboard"
)

// TestBrowserSSO signs in through a real OpenID Connect provider on
// loopback: the ID token's role and tenant claims make the session (a
// tenant claim scopes it like a tenant token), a role not allowed and a
// forged state are refused, and every login and logout is in the audit
// trail.
func TestBrowserSSO(t *testing.T) {
	chromium(t)
	ann := dashboard.OIDCUser{Name: "ann", Password: "pw-ann", Role: "operator", Tenant: "A"}
	eve := dashboard.OIDCUser{Name: "eve", Password: "pw-eve", Role: "superuser"}
	p := dashboard.StartProvider(t, "s3cret", []string{"dash"}, []dashboard.OIDCUser{ann, eve})
	b := setup(t, "WORKER_OIDC_ISSUER="+p.Issuer, "WORKER_OIDC_CLIENT_ID=dash", "WORKER_OIDC_CLIENT_SECRET=s3cret")
	tb := newTab(t, b)
	signIn := func(u dashboard.OIDCUser, then chromedp.CSS) {
		tb.open("/login")
		tb.do("sign in with SSO as "+u.Name, chromedp.Click(chromedp.ID("sso")), chromedp.WaitVisible(chromedp.ID("username")),
			chromedp.SendKeys(chromedp.ID("username"), u.Name), chromedp.SendKeys(chromedp.ID("password"), u.Password),
			chromedp.Click(chromedp.CSS(`button[type=submit]`)), chromedp.WaitVisible(then))
		tb.forget() // the provider's pages are not the dashboard's
	}

	signIn(ann, `nav[aria-label=Main]`)
	if who := run(tb, "read who is logged in", chromedp.Text(chromedp.CSS("form.who span"))); who != "operator · tenant A" {
		t.Fatalf("after SSO the page says %q, want operator · tenant A", who)
	}
	for _, path := range []string{"/", "/jobs", "/dead", "/runs", "/audit"} {
		tb.open(path)
		page := tb.html()
		for _, id := range b.ids["B"] {
			if strings.Contains(page, id) {
				t.Errorf("%s shows the tenant-A SSO login tenant B's id %s", path, id)
			}
		}
		if path == "/jobs" && !strings.Contains(page, b.ids["A"][0]) {
			t.Errorf("/jobs does not show the tenant-A SSO login its own job %s", b.ids["A"][0])
		}
		tb.clean(path + " after SSO")
	}
	tb.do("log out", chromedp.Click(chromedp.CSS(`form.who button`)), chromedp.WaitVisible(chromedp.ID("token")))
	b.wantAudit(t, "dashboard.login", "ok", "oidc:ann", "A")
	b.wantAudit(t, "dashboard.logout", "ok", "oidc:ann", "A")

	// A role that is none of the allowed ones is refused.
	signIn(eve, `p.error`)
	if msg := run(tb, "read the refusal", chromedp.Text(chromedp.CSS("p.error"))); !strings.Contains(msg, "allowed roles") {
		t.Errorf("eve's login says %q, want a refusal of her role", msg)
	}
	b.wantAudit(t, "dashboard.login", "denied", "", "")

	// An answer this browser did not ask for is refused.
	tb.open("/login/sso/callback?state=forged&code=nope")
	if msg := run(tb, "read the refusal", chromedp.Text(chromedp.CSS("p.error"))); !strings.Contains(msg, "state") {
		t.Errorf("a forged state says %q, want it refused", msg)
	}
	tb.forget()
	tb.open("/")
	if loc := run(tb, "read the location", chromedp.Location()); !strings.Contains(loc, "/login") {
		t.Errorf("after refused logins the browser is at %s, want the login page", loc)
	}
}

// wantAudit fails unless the newest audit entry of action has outcome,
// and (when not empty) the token id and scope.
func (b *bundle) wantAudit(t *testing.T, action, outcome, tokenID, scope string) {
	t.Helper()
	var trail struct {
		Entries []struct {
			TokenID string `json:"tokenId"`
			Scope   string `json:"scope"`
			Outcome string `json:"outcome"`
		} `json:"entries"`
	}
	b.api(t, "admin", "GET", "/api/v1/audit?action="+action, nil, &trail)
	if len(trail.Entries) == 0 {
		t.Fatalf("no %s in the audit trail", action)
	}
	e := trail.Entries[0]
	if e.Outcome != outcome || (tokenID != "" && (e.TokenID != tokenID || e.Scope != scope)) {
		t.Errorf("the newest %s is %+v, want outcome %s by %q scoped to %q", action, e, outcome, tokenID, scope)
	}
}
