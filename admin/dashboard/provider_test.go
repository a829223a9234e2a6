package dashboard

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"
	zoidc "github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
	"golang.org/x/oauth2"
	"golang.org/x/text/language"
)

// OIDCUser is a user of the test provider and the claims its ID token
// carries (role and tenant; empty ones are left out).
type OIDCUser struct {
	Name, Password, Role, Tenant string
}

// Provider is a real OpenID Connect provider on loopback: zitadel/oidc's
// example OP (pkg/op with its in-memory storage and login form), with
// web clients whose redirect URLs may be globs.
type Provider struct {
	Issuer string
	stop   func()
}

// Stop stops the provider, as if it went down; it answers nothing after.
func (p *Provider) Stop() { p.stop() }

// StartProvider starts a provider knowing users and one web client per
// id in clients (all with secret), accepting redirects to any loopback
// port's /login/sso/callback. It stops when the test ends.
func StartProvider(t *testing.T, secret string, clients []string, users []OIDCUser) *Provider {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	issuer := "http://" + l.Addr().String()
	cs := map[string]*storage.Client{}
	for _, id := range clients {
		cs[id] = storage.WebClient(id, secret, "http://127.0.0.1/login/sso/callback")
	}
	us := userStore{}
	for _, u := range users {
		us[u.Name] = u
	}
	st := &claimStorage{Storage: storage.NewStorageWithClients(us, cs), users: us}
	srv := &http.Server{Handler: exampleop.SetupServer(issuer, st, nil, false)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("the OIDC provider stopped: %v", err)
		}
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			_ = srv.Close()
			<-done
		})
	}
	t.Cleanup(stop)
	return &Provider{Issuer: issuer, stop: stop}
}

// userStore is the provider's users by name (which is also their id).
type userStore map[string]OIDCUser

func (u userStore) GetUserByID(id string) *storage.User { return u.GetUserByUsername(id) }
func (u userStore) GetUserByUsername(name string) *storage.User {
	x, ok := u[name]
	if !ok {
		return nil
	}
	return &storage.User{ID: x.Name, Username: x.Name, Password: x.Password, FirstName: x.Name, LastName: "Test",
		Email: x.Name + "@example.test", EmailVerified: true, PreferredLanguage: language.English}
}
func (u userStore) ExampleClientID() string { return "service" }

// claimStorage adds each user's role and tenant claims to its ID tokens.
type claimStorage struct {
	*storage.Storage
	users userStore
}

func (s *claimStorage) SetUserinfoFromRequest(ctx context.Context, ui *zoidc.UserInfo, req op.IDTokenRequest, scopes []string) error {
	if err := s.Storage.SetUserinfoFromRequest(ctx, ui, req, scopes); err != nil {
		return err
	}
	u := s.users[req.GetSubject()]
	if u.Role != "" {
		ui.AppendClaims("role", u.Role)
	}
	if u.Tenant != "" {
		ui.AppendClaims("tenant", u.Tenant)
	}
	return nil
}

// GetClientByClientID returns the client accepting redirects to any
// loopback port (the dashboard under test listens on port 0).
func (s *claimStorage) GetClientByClientID(ctx context.Context, id string) (op.Client, error) {
	c, err := s.Storage.GetClientByClientID(ctx, id)
	if err != nil {
		return nil, err
	}
	return loopbackClient{c}, nil
}

type loopbackClient struct{ op.Client }

func (loopbackClient) RedirectURIGlobs() []string {
	return []string{"http://127.0.0.1:*/login/sso/callback"}
}
func (loopbackClient) PostLogoutRedirectURIGlobs() []string { return nil }

var authRequestID = regexp.MustCompile(`name="id" value="([^"]+)"`)

// IDToken logs user in at the provider over HTTP as client, with the
// login form, and returns the ID token the code is exchanged for.
func (p *Provider) IDToken(t *testing.T, client, secret, nonce string, user OIDCUser) string {
	t.Helper()
	ctx := context.Background()
	disc, err := fetchEndpoints(ctx, p.Issuer)
	if err != nil {
		t.Fatal(err)
	}
	redirect := "http://127.0.0.1:1/login/sso/callback"
	cfg := &oauth2.Config{ClientID: client, ClientSecret: secret, RedirectURL: redirect, Endpoint: disc, Scopes: []string{"openid"}}
	verifier := oauth2.GenerateVerifier()
	jar, _ := cookiejar.New(nil)
	var code string
	c := &http.Client{Jar: jar, CheckRedirect: func(req *http.Request, _ []*http.Request) error {
		if strings.HasPrefix(req.URL.String(), redirect) {
			code = req.URL.Query().Get("code")
			return http.ErrUseLastResponse
		}
		return nil
	}}
	resp, err := c.Get(cfg.AuthCodeURL("state", oauth2.SetAuthURLParam("nonce", nonce), oauth2.S256ChallengeOption(verifier)))
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := authRequestID.FindSubmatch(page)
	if m == nil {
		t.Fatalf("the provider's login page has no auth request id:\n%s", page)
	}
	resp, err = c.PostForm(p.Issuer+"/login/username", url.Values{"id": {string(m[1])}, "username": {user.Name}, "password": {user.Password}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if code == "" {
		t.Fatalf("the provider sent no code (status %d)", resp.StatusCode)
	}
	tok, err := cfg.Exchange(ctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange the code: %v", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	return raw
}

func fetchEndpoints(ctx context.Context, issuer string) (oauth2.Endpoint, error) {
	p, err := oidc.NewProvider(ctx, issuer)
	if err != nil {
		return oauth2.Endpoint{}, err
	}
	return p.Endpoint(), nil
}
