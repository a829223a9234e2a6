package dashboard_test

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"testing"

	"github.com/aibos/worker/admin"
	"github.com/aibos/worker/admin/apitest"
	"github.com/aibos/worker/admin/dashboard"
	"github.com/aibos/worker/audit"
	"github.com/aibos/worker/broker/sqlitebroker"
	"github.com/aibos/worker/internal/testbroker"
)

// TestLoginRefusedUnrecorded: a login is an audited action, so it is not
// granted while the audit trail cannot record it (its store closed under
// it): the form answers 503 and gives no session.
func TestLoginRefusedUnrecorded(t *testing.T) {
	trailStore, err := sqlitebroker.Open(filepath.Join(t.TempDir(), "audit.db"), sqlitebroker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	tr, err := audit.New(trailStore, audit.Config{Key: []byte("dashboard-test-audit-key-32-byte")})
	if err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.DiscardHandler)
	api := apitest.Start(t, admin.Config{Broker: testbroker.SQLite(t), Audit: tr, Logger: quiet})
	d, err := dashboard.New(dashboard.Config{API: api.API, Auth: apitest.DefaultTokens(), Audit: tr, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(d)
	t.Cleanup(hs.Close)
	login := func() (status int, session bool) {
		br := &browser{t: t, b: &bundle{base: hs.URL}, c: &http.Client{Jar: newJar(t),
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
		_, page := br.get("/login")
		m := csrfField.FindStringSubmatch(page)
		if m == nil {
			t.Fatal("the login page has no CSRF field")
		}
		resp := br.post("/login", url.Values{"csrf": {m[1]}, "token": {apitest.Operator}})
		for _, c := range resp.Cookies() {
			session = session || c.Name == "aibos_session" && c.MaxAge >= 0 && c.Value != ""
		}
		return resp.StatusCode, session
	}
	if status, session := login(); status != http.StatusSeeOther || !session {
		t.Fatalf("login with a working trail: status %d, session %v; want 303 with a session", status, session)
	}
	if err := trailStore.Close(); err != nil {
		t.Fatal(err)
	}
	if status, session := login(); status != http.StatusServiceUnavailable || session {
		t.Fatalf("login with a failing trail: status %d, session %v; want 503 without a session", status, session)
	}
}
