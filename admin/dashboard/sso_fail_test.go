package dashboard_test

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aibos/worker/admin"
	"github.com/aibos/worker/admin/apitest"
	"github.com/aibos/worker/admin/dashboard"
	"github.com/aibos/worker/audit"
	"github.com/aibos/worker/internal/testbroker"
)

// TestSSOLoginFailures walks the ways a single sign-on through a real
// OpenID Connect provider on loopback goes wrong for a user: a role the
// dashboard does not map, no role at all, an answer with another
// browser's state, a callback used twice, a login left past its ten
// minutes, the provider refusing, and the provider down at the start or
// before the code is exchanged. Each ends on the login page with a reason
// the user can read, sets no session cookie, leaves the browser logged
// out, and adds a denied dashboard.login entry to the audit trail (but
// the provider down at the start, where no login began).
func TestSSOLoginFailures(t *testing.T) {
	ann := dashboard.OIDCUser{Name: "ann", Password: "pw-ann", Role: "operator", Tenant: "A"}
	eve := dashboard.OIDCUser{Name: "eve", Password: "pw-eve", Role: "superuser"}
	nobody := dashboard.OIDCUser{Name: "nobody", Password: "pw-nobody"}
	p := dashboard.StartProvider(t, "s3cret", []string{"dash"}, []dashboard.OIDCUser{ann, eve, nobody})
	var skew atomic.Int64 // the dashboard's clock, ahead of the provider's
	s := startSSODashboard(t, p.Issuer, func() time.Time { return time.Now().Add(time.Duration(skew.Load())) })

	// The way in works: the refusals below are the dashboard's.
	br := s.newBrowser(t)
	if resp, page := br.get(t, br.signIn(t, ann)); resp.StatusCode != http.StatusOK || !br.hasSession(resp) || !strings.Contains(page, "Signed in") {
		t.Fatalf("ann's SSO login: status %d, session %v; want signed in\n%s", resp.StatusCode, br.hasSession(resp), page)
	}
	granted, denied := 1, 0
	s.wantLogins(t, granted, denied)

	refused := func(what string, br *ssoBrowser, callback string, status int, reason string) {
		t.Helper()
		resp, page := br.get(t, callback)
		if resp.StatusCode != status || !strings.Contains(page, reason) || br.hasSession(resp) {
			t.Errorf("%s: status %d, session %v, page:\n%s\nwant %d saying %q and no session", what, resp.StatusCode, br.hasSession(resp), page, status, reason)
		}
		if resp, _ := br.get(t, "/"); resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/login") {
			t.Errorf("%s: / then answers %d to %q, want a redirect to the login page", what, resp.StatusCode, resp.Header.Get("Location"))
		}
		denied++
		s.wantLogins(t, granted, denied)
	}

	br = s.newBrowser(t)
	refused("a role not mapped", br, br.signIn(t, eve), http.StatusForbidden, "not one of the allowed roles")
	br = s.newBrowser(t)
	refused("no role claim", br, br.signIn(t, nobody), http.StatusForbidden, "not one of the allowed roles")

	br = s.newBrowser(t)
	cb := br.signIn(t, ann)
	refused("another browser's state", s.newBrowser(t), cb, http.StatusForbidden, "state is not this browser")
	forged := withQuery(t, cb, "state", "forged")
	br.setState(t, s.url, "forged")
	refused("a state the dashboard never issued", br, forged, http.StatusForbidden, "expired or was already used")

	br = s.newBrowser(t)
	cb = br.signIn(t, ann)
	if resp, _ := br.get(t, cb); !br.hasSession(resp) {
		t.Fatal("ann's second SSO login gave no session")
	}
	granted++
	s.wantLogins(t, granted, denied)
	replay := s.newBrowser(t)
	replay.setState(t, s.url, query(t, cb, "state"))
	refused("a callback used twice", replay, cb, http.StatusForbidden, "expired or was already used")

	br = s.newBrowser(t)
	cb = br.signIn(t, ann)
	skew.Store(int64(11 * time.Minute))
	refused("a login past its ten minutes", br, cb, http.StatusForbidden, "expired or was already used")
	skew.Store(0)

	br = s.newBrowser(t)
	cb = br.signIn(t, ann)
	refused("the provider refusing", br, withQuery(t, withQuery(t, cb, "code", ""), "error", "access_denied"), http.StatusForbidden, "answered access_denied")

	br = s.newBrowser(t)
	cb = br.signIn(t, ann)
	p.Stop()
	refused("the provider down before the code is exchanged", br, cb, http.StatusForbidden, "exchange the code")

	// Down from the start: the dashboard says so and begins no login.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gone := "http://" + l.Addr().String()
	l.Close()
	down := startSSODashboard(t, gone, time.Now)
	br = down.newBrowser(t)
	resp, page := br.get(t, "/login/sso")
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(page, "identity provider did not answer") || br.hasSession(resp) {
		t.Errorf("SSO with the provider down: status %d, page:\n%s\nwant 503 saying the provider did not answer", resp.StatusCode, page)
	}
	down.wantLogins(t, 0, 0)
}

// ssoDashboard is a dashboard with single sign-on and an audit trail,
// served on loopback.
type ssoDashboard struct {
	url string
	api *apitest.Server
}

func startSSODashboard(t *testing.T, issuer string, now func() time.Time) *ssoDashboard {
	t.Helper()
	store := testbroker.SQLite(t) // the API reads the trail from its broker
	tr, err := audit.New(store, audit.Config{Key: []byte("dashboard-test-audit-key-32-byte")})
	if err != nil {
		t.Fatal(err)
	}
	ps, err := dashboard.NewPrincipals(apitest.DefaultTokens())
	if err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.DiscardHandler)
	api := apitest.Start(t, admin.Config{Broker: store, Audit: tr, Auth: ps, Logger: quiet})
	d, err := dashboard.New(dashboard.Config{API: api.API, Auth: ps, Audit: tr, Logger: quiet, Now: now,
		OIDC: &dashboard.OIDCConfig{IssuerURL: issuer, ClientID: "dash", ClientSecret: "s3cret"}})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(d)
	t.Cleanup(hs.Close)
	return &ssoDashboard{url: hs.URL, api: api}
}

// wantLogins fails unless the audit trail holds ok granted and denied
// refused dashboard logins.
func (s *ssoDashboard) wantLogins(t *testing.T, ok, denied int) {
	t.Helper()
	var trail struct {
		Entries []struct {
			Outcome string `json:"outcome"`
		} `json:"entries"`
	}
	s.api.Do(t, "GET", "/api/v1/audit?action=dashboard.login", apitest.Admin, nil).Want(t, http.StatusOK).JSON(t, &trail)
	got := map[string]int{}
	for _, e := range trail.Entries {
		got[e.Outcome]++
	}
	if got["ok"] != ok || got["denied"] != denied || len(trail.Entries) != ok+denied {
		t.Errorf("dashboard.login entries by outcome: %v; want %d ok and %d denied", got, ok, denied)
	}
}

// ssoBrowser is a browser that stops at the dashboard's SSO callback, so
// that a test can hold, change or replay the provider's answer.
type ssoBrowser struct {
	s *ssoDashboard
	c *http.Client
}

func (s *ssoDashboard) newBrowser(t *testing.T) *ssoBrowser {
	br := &ssoBrowser{s: s}
	br.c = &http.Client{Jar: newJar(t), CheckRedirect: func(req *http.Request, _ []*http.Request) error {
		if strings.HasPrefix(req.URL.String(), s.url) {
			return http.ErrUseLastResponse // the dashboard's answers are the test's to read
		}
		return nil
	}}
	return br
}

var authRequest = regexp.MustCompile(`name="id" value="([^"]+)"`)

// signIn starts an SSO login, signs in as u at the provider's form and
// returns the callback URL the provider sends the browser to.
func (br *ssoBrowser) signIn(t *testing.T, u dashboard.OIDCUser) string {
	t.Helper()
	resp, page := br.get(t, "/login/sso") // redirected to the provider's form
	m := authRequest.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("the provider's login page (status %d) has no auth request id:\n%s", resp.StatusCode, page)
	}
	issuer := resp.Request.URL.Scheme + "://" + resp.Request.URL.Host
	resp, err := br.c.PostForm(issuer+"/login/username", url.Values{"id": {m[1]}, "username": {u.Name}, "password": {u.Password}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cb := resp.Header.Get("Location")
	if !strings.HasPrefix(cb, br.s.url+"/login/sso/callback?") {
		t.Fatalf("the provider answered %s's login with status %d to %q, want the dashboard's callback", u.Name, resp.StatusCode, cb)
	}
	return cb
}

// get fetches path (or a whole URL) without following the dashboard's
// redirects and returns the answer and its body.
func (br *ssoBrowser) get(t *testing.T, path string) (*http.Response, string) {
	t.Helper()
	if strings.HasPrefix(path, "/") {
		path = br.s.url + path
	}
	resp, err := br.c.Get(path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(body)
}

// hasSession reports whether resp set a session cookie.
func (br *ssoBrowser) hasSession(resp *http.Response) bool {
	for _, c := range resp.Cookies() {
		if c.Name == "aibos_session" && c.Value != "" && c.MaxAge >= 0 {
			return true
		}
	}
	return false
}

// setState gives the browser the SSO cookie of a login with state, as if
// it had started it.
func (br *ssoBrowser) setState(t *testing.T, base, state string) {
	t.Helper()
	u, err := url.Parse(base + "/login/sso")
	if err != nil {
		t.Fatal(err)
	}
	br.c.Jar.SetCookies(u, []*http.Cookie{{Name: "aibos_sso", Value: state, Path: "/login/sso"}})
}

func query(t *testing.T, raw, key string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u.Query().Get(key)
}

// withQuery returns raw with its query parameter key set to v (removed
// when v is empty).
func withQuery(t *testing.T, raw, key, v string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	if v == "" {
		q.Del(key)
	} else {
		q.Set(key, v)
	}
	u.RawQuery = q.Encode()
	return u.String()
}
