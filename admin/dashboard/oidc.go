package dashboard

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/aibos/worker/admin"
)

// OIDCConfig configures single sign-on through an OpenID Connect provider:
// the authorization code flow with PKCE, state and nonce. The provider's
// ID token must carry the role claim; the tenant claim, when present and
// not empty, scopes the session to that tenant exactly as a tenant token
// does.
type OIDCConfig struct {
	// IssuerURL is the provider's issuer; its discovery document is read
	// at the first login. Required.
	IssuerURL string
	// ClientID and ClientSecret are the dashboard's client at the
	// provider. ClientID is required; the ID token's audience must hold
	// it.
	ClientID     string
	ClientSecret string
	// RedirectURL is this dashboard's /login/sso/callback as the browser
	// reaches it, registered at the provider. Defaults to the callback on
	// the scheme and host the browser used; the provider accepts only the
	// URLs registered with it, so a forged Host header cannot send a code
	// elsewhere.
	RedirectURL string
	// RoleClaim names the claim holding viewer, operator or admin.
	// Defaults to "role".
	RoleClaim string
	// TenantClaim names the claim holding the tenant. Defaults to
	// "tenant".
	TenantClaim string
	// AllowedRoles are the roles a login may have; a login with another
	// is refused. Defaults to all three.
	AllowedRoles []admin.Role
	// Scopes are asked for beyond openid. Defaults to profile and email.
	Scopes []string
	// HTTPClient reaches the provider. Defaults to http.DefaultClient.
	HTTPClient *http.Client
}

// ssoCookie carries a pending login's state between the redirect to the
// provider and its answer.
const ssoCookie = "aibos_sso"

// pendingLogin is an SSO login between the redirect to the provider and
// the callback.
type pendingLogin struct {
	nonce, verifier, next string
	expires               time.Time
}

// sso is the OpenID Connect side of a Dashboard.
type sso struct {
	cfg        OIDCConfig
	principals *Principals
	now        func() time.Time
	ttl        time.Duration // a session's

	mu       sync.Mutex
	provider *oidc.Provider // discovered at the first login
	pending  map[string]*pendingLogin
}

// maxPending bounds the logins waiting for the provider's answer.
const maxPending = 10000

func newSSO(cfg *OIDCConfig, auth admin.Authenticator, now func() time.Time, ttl time.Duration) (*sso, error) {
	switch {
	case cfg.IssuerURL == "":
		return nil, errors.New("OIDC IssuerURL is empty")
	case cfg.ClientID == "":
		return nil, errors.New("OIDC ClientID is empty")
	}
	if _, err := url.Parse(cfg.RedirectURL); err != nil {
		return nil, fmt.Errorf("OIDC RedirectURL: %w", err)
	}
	ps, ok := auth.(*Principals)
	if !ok {
		return nil, fmt.Errorf("OIDC needs Auth to be a *Principals (the API's Auth too), not %T", auth)
	}
	c := *cfg
	if c.RoleClaim == "" {
		c.RoleClaim = "role"
	}
	if c.TenantClaim == "" {
		c.TenantClaim = "tenant"
	}
	if len(c.AllowedRoles) == 0 {
		c.AllowedRoles = []admin.Role{admin.RoleViewer, admin.RoleOperator, admin.RoleAdmin}
	}
	for _, r := range c.AllowedRoles {
		if !r.Valid() {
			return nil, fmt.Errorf("OIDC AllowedRoles: %q is not viewer, operator or admin", r)
		}
	}
	if len(c.Scopes) == 0 {
		c.Scopes = []string{"profile", "email"}
	}
	if c.HTTPClient == nil {
		c.HTTPClient = http.DefaultClient
	}
	return &sso{cfg: c, principals: ps, now: now, ttl: ttl, pending: map[string]*pendingLogin{}}, nil
}

// discover returns the provider, reading its discovery document once it
// answers (a provider down at start does not keep the dashboard down).
func (s *sso) discover(ctx context.Context) (*oidc.Provider, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.provider != nil {
		return s.provider, nil
	}
	p, err := oidc.NewProvider(oidc.ClientContext(ctx, s.cfg.HTTPClient), s.cfg.IssuerURL)
	if err != nil {
		return nil, fmt.Errorf("read the discovery document of %s: %w", s.cfg.IssuerURL, err)
	}
	s.provider = p
	return p, nil
}

// oauth is the client of a login that r started or finishes.
func (s *sso) oauth(p *oidc.Provider, r *http.Request) *oauth2.Config {
	redirect := s.cfg.RedirectURL
	if redirect == "" {
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		redirect = scheme + "://" + r.Host + "/login/sso/callback"
	}
	return &oauth2.Config{ClientID: s.cfg.ClientID, ClientSecret: s.cfg.ClientSecret, RedirectURL: redirect,
		Endpoint: p.Endpoint(), Scopes: append([]string{oidc.ScopeOpenID}, s.cfg.Scopes...)}
}

// remember keeps a pending login under its state, dropping expired ones
// (and the oldest at the bound).
func (s *sso) remember(state string, p *pendingLogin) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for k, v := range s.pending {
		if now.After(v.expires) || len(s.pending) >= maxPending {
			delete(s.pending, k)
		}
	}
	s.pending[state] = p
}

// take returns and forgets the live pending login of state: a state is
// good for one callback.
func (s *sso) take(state string) (*pendingLogin, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.pending[state]
	delete(s.pending, state)
	if !ok || s.now().After(p.expires) {
		return nil, false
	}
	return p, true
}

// ssoStart sends the browser to the provider with a fresh state, nonce
// and PKCE verifier; the state is also in a cookie, so that the callback
// is known to come back to the browser that started the login.
func (d *Dashboard) ssoStart(w http.ResponseWriter, r *http.Request) {
	p, err := d.sso.discover(r.Context())
	if err != nil {
		d.log.Warn("dashboard: single sign-on is unavailable", "err", err)
		d.showLogin(w, r, http.StatusServiceUnavailable, "Single sign-on is unavailable: the identity provider did not answer. Try again later.")
		return
	}
	state, nonce, verifier := randomToken(), randomToken(), oauth2.GenerateVerifier()
	d.sso.remember(state, &pendingLogin{nonce: nonce, verifier: verifier, next: localPath(r.FormValue("next")), expires: d.cfg.Now().Add(10 * time.Minute)})
	// Lax, not Strict: the provider's redirect back is a cross-site
	// navigation, on which a Strict cookie is not sent.
	http.SetCookie(w, &http.Cookie{Name: ssoCookie, Value: state, Path: "/login/sso", MaxAge: 600,
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteLaxMode})
	http.Redirect(w, r, d.sso.oauth(p, r).AuthCodeURL(state, oidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier)), http.StatusFound)
}

// ssoCallback finishes an SSO login: the state must be the browser's and
// unused, the code is exchanged with the PKCE verifier, and the ID token
// must be the provider's, for this client, unexpired, with the login's
// nonce and an allowed role. Every outcome is audited.
func (d *Dashboard) ssoCallback(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: ssoCookie, Value: "", Path: "/login/sso", MaxAge: -1,
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteLaxMode})
	p, err := d.ssoPrincipal(r)
	if err != nil {
		d.log.Info("dashboard: single sign-on refused", "err", err)
		_ = d.auditLogin(r, "dashboard.login", nil, err) // refused either way
		d.showLogin(w, r, http.StatusForbidden, "Single sign-on was refused: "+err.Error())
		return
	}
	next := p.next
	if err := d.auditLogin(r, "dashboard.login", &p.principal, nil); err != nil {
		d.showLogin(w, r, http.StatusServiceUnavailable, unauditedLogin)
		return
	}
	s := d.sessions.create(d.sso.principals.mint(p.principal), true)
	setCookie(w, r, cookieName, s.id, int(d.cfg.SessionTTL.Seconds()))
	// The session cookie is SameSite=Strict, and this answer ends a
	// navigation that began at the provider: a browser may not send the
	// cookie on a redirect of it. A page that moves on by itself starts a
	// same-site navigation.
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err := signedIn.Execute(w, next); err != nil {
		d.log.Error("dashboard: render the signed-in page", "err", err)
	}
}

var signedIn = template.Must(template.New("signedin").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="0;url={{.}}">
<title>Signed in · aibos-worker</title><link rel="stylesheet" href="/static/app.css"></head>
<body><main><p>Signed in. <a href="{{.}}" id="continue">Continue</a>.</p></main></body></html>
`))

// ssoLogin is a checked SSO login.
type ssoLogin struct {
	principal admin.Principal
	next      string
}

func (d *Dashboard) ssoPrincipal(r *http.Request) (*ssoLogin, error) {
	q := r.URL.Query()
	c, err := r.Cookie(ssoCookie)
	if err != nil || !sameToken(q.Get("state"), c.Value) {
		return nil, errors.New("the answer's state is not this browser's login")
	}
	pend, ok := d.sso.take(q.Get("state"))
	if !ok {
		return nil, errors.New("the login expired or was already used")
	}
	if e := q.Get("error"); e != "" {
		return nil, fmt.Errorf("the identity provider answered %s", e)
	}
	p, err := d.sso.discover(r.Context())
	if err != nil {
		return nil, err
	}
	ctx := oidc.ClientContext(r.Context(), d.sso.cfg.HTTPClient)
	tok, err := d.sso.oauth(p, r).Exchange(ctx, q.Get("code"), oauth2.VerifierOption(pend.verifier))
	if err != nil {
		return nil, fmt.Errorf("exchange the code: %w", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return nil, errors.New("the identity provider sent no ID token")
	}
	pr, err := d.sso.verify(ctx, p, raw, pend.nonce)
	if err != nil {
		return nil, err
	}
	return &ssoLogin{principal: *pr, next: pend.next}, nil
}

// verify checks an ID token (issuer, audience, expiry, signature, nonce)
// and maps its claims to a principal that lives as long as a session.
func (s *sso) verify(ctx context.Context, p *oidc.Provider, raw, nonce string) (*admin.Principal, error) {
	idt, err := p.Verifier(&oidc.Config{ClientID: s.cfg.ClientID, Now: s.now}).Verify(ctx, raw)
	if err != nil {
		return nil, fmt.Errorf("check the ID token: %w", err)
	}
	if !sameToken(idt.Nonce, nonce) {
		return nil, errors.New("the ID token's nonce is not this login's")
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return nil, fmt.Errorf("read the ID token's claims: %w", err)
	}
	role, _ := claims[s.cfg.RoleClaim].(string)
	if !slices.Contains(s.cfg.AllowedRoles, admin.Role(role)) {
		return nil, fmt.Errorf("the role claim %q is %q, not one of the allowed roles %v", s.cfg.RoleClaim, role, s.cfg.AllowedRoles)
	}
	tenant, _ := claims[s.cfg.TenantClaim].(string)
	name, _ := claims["email"].(string)
	if name == "" {
		name = idt.Subject
	}
	return &admin.Principal{TokenID: "oidc:" + idt.Subject, Name: name, Role: admin.Role(role), TenantID: tenant, Expires: s.now().Add(s.ttl)}, nil
}
