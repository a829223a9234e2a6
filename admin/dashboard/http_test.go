package dashboard_test

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/aibos/worker/admin"
)

// TestDashboardOverHTTP drives the dashboard with a plain HTTP client
// against a real service: headers, login, CSRF, roles and tenant scope.
// The browser tests cover the pages as a user sees them.
func TestDashboardOverHTTP(t *testing.T) {
	b := setup(t)

	t.Run("SecurityHeaders", func(t *testing.T) {
		for _, path := range []string{"/login", "/static/app.js"} {
			resp, err := http.Get(b.base + path)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			h := resp.Header
			csp := h.Get("Content-Security-Policy")
			if !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") || !strings.Contains(csp, "frame-ancestors 'none'") {
				t.Errorf("%s: Content-Security-Policy %q", path, csp)
			}
			if h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Referrer-Policy") == "" {
				t.Errorf("%s: nosniff %q, referrer policy %q", path, h.Get("X-Content-Type-Options"), h.Get("Referrer-Policy"))
			}
		}
	})

	t.Run("LoginCookie", func(t *testing.T) {
		br := b.login(t, "viewer")
		u, _ := url.Parse(b.base)
		var found bool
		for _, c := range br.c.Jar.Cookies(u) {
			found = found || c.Name == "aibos_session"
		}
		if !found {
			t.Fatal("no session cookie after login")
		}
		// The jar hides the attributes: read them from a fresh login.
		resp, page := (&browser{t: t, b: b, c: &http.Client{CheckRedirect: br.c.CheckRedirect, Jar: newJar(t)}}).get("/login")
		m := csrfField.FindStringSubmatch(page)
		form := url.Values{"csrf": {m[1]}, "token": {b.tok["viewer"]}}
		req, _ := http.NewRequest("POST", b.base+"/login", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for _, c := range resp.Cookies() {
			req.AddCookie(c)
		}
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		var sc *http.Cookie
		for _, c := range resp.Cookies() {
			if c.Name == "aibos_session" {
				sc = c
			}
		}
		if sc == nil || !sc.HttpOnly || sc.SameSite != http.SameSiteStrictMode || sc.Value == b.tok["viewer"] {
			t.Fatalf("session cookie %+v: want HttpOnly, SameSite=Strict and not the token", sc)
		}
		// A wrong token is refused and gets no session.
		_, page = (&browser{t: t, b: b, c: &http.Client{Jar: newJar(t)}}).get("/login")
		if got := br.post("/login", url.Values{"csrf": {csrfField.FindStringSubmatch(page)[1]}, "token": {"nope"}}); got.StatusCode == http.StatusSeeOther {
			t.Fatalf("a wrong token logged in (status %d)", got.StatusCode)
		}
	})

	t.Run("CSRF", func(t *testing.T) {
		br := b.login(t, "operator")
		for _, form := range []url.Values{{}, {"csrf": {"forged"}}} {
			if resp := br.post("/queues/invoices/pause", form); resp.StatusCode != http.StatusForbidden {
				t.Errorf("pause with csrf %q: status %d, want 403", form.Get("csrf"), resp.StatusCode)
			}
		}
		if b.paused(t, "invoices") {
			t.Fatal("a post without the CSRF token paused the queue")
		}
		if resp := br.post("/queues/invoices/pause", url.Values{"csrf": {br.csrf}}); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("pause with the CSRF token: status %d, want 303", resp.StatusCode)
		}
		if !b.paused(t, "invoices") {
			t.Fatal("pause with the CSRF token did not pause the queue")
		}
		// The action's result shows once, on the next page; a link cannot
		// put words in the dashboard's mouth.
		if _, page := br.get("/queues?notice=forged"); !strings.Contains(page, "Queue invoices: pause done.") || strings.Contains(page, "forged") {
			t.Error("the page after the pause does not show its notice, or shows the URL's")
		}
		if _, page := br.get("/queues"); strings.Contains(page, "pause done") {
			t.Error("the notice shows twice")
		}
		br.post("/queues/invoices/resume", url.Values{"csrf": {br.csrf}})
		// After logout the session is gone: its cookie no longer works.
		br.post("/logout", url.Values{"csrf": {br.csrf}})
		if resp, _ := br.get("/queues"); resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/login") {
			t.Fatalf("after logout: status %d to %q, want a redirect to /login", resp.StatusCode, resp.Header.Get("Location"))
		}
		// A token login and its logout are in the audit trail.
		b.wantAudit(t, "dashboard.login", "ok", "", "")
		b.wantAudit(t, "dashboard.logout", "ok", "", "")
	})

	t.Run("ViewerHasNoActions", func(t *testing.T) {
		br := b.login(t, "viewer")
		for _, path := range []string{"/queues", "/jobs/" + b.ids["A"][1], "/dead", "/schedules"} {
			_, page := br.get(path)
			if strings.Contains(page, `type="submit" id="`) || strings.Contains(page, "/pause\"") || strings.Contains(page, "/retry\"") {
				t.Errorf("%s shows a viewer an action button", path)
			}
		}
		if resp := br.post("/queues/invoices/pause", url.Values{"csrf": {br.csrf}}); resp.StatusCode != http.StatusForbidden {
			t.Errorf("a viewer's pause: status %d, want 403", resp.StatusCode)
		}
		if resp := br.post("/jobs/"+b.ids["A"][1]+"/retry", url.Values{"csrf": {br.csrf}, "queue": {"invoices"}}); resp.StatusCode != http.StatusForbidden {
			t.Errorf("a viewer's retry: status %d, want 403", resp.StatusCode)
		}
		if b.paused(t, "invoices") {
			t.Fatal("a viewer paused a queue")
		}
		b.waitJob(t, b.ids["A"][1], "dead")
	})

	t.Run("OverviewWaiting", func(t *testing.T) {
		// A paused queue keeps its job pending, so it waits.
		b.api(t, "admin", "POST", "/api/v1/queues/reports/pause", nil, nil)
		defer b.api(t, "admin", "POST", "/api/v1/queues/reports/resume", nil, nil)
		var j admin.Job
		b.api(t, "admin", "POST", "/api/v1/queues/reports/jobs", map[string]any{"type": "ok"}, &j)
		_, page := b.login(t, "viewer").get("/")
		row := regexp.MustCompile(`(?s)<tr><td><a href="/jobs\?queue=reports">reports</a></td><td>1</td><td>1</td><td>0</td><td>(\d+(ms|s|m[0-9.]*s?))</td>`)
		if !row.MatchString(page) {
			t.Fatalf("the overview does not show how long reports' pending job waits:\n%s", page)
		}
	})

	t.Run("TenantScope", func(t *testing.T) {
		scoped, adm := b.login(t, "operator-A"), b.login(t, "admin")
		pages := []string{"/", "/queues", "/jobs", "/jobs?state=dead", "/dead", "/runs?workflow=" + payFlow, "/tenants", "/schedules", "/workers", "/audit"}
		for _, path := range pages {
			_, mine := scoped.get(path)
			_, all := adm.get(path)
			for _, id := range b.ids["B"] {
				if strings.Contains(mine, id) {
					t.Errorf("%s shows tenant A's login tenant B's id %s", path, id)
				}
			}
			// The admin sees B's ids where the page lists jobs or runs,
			// so that the check above can fail.
			if strings.HasPrefix(path, "/jobs") || strings.HasPrefix(path, "/dead") || strings.HasPrefix(path, "/runs") || path == "/audit" {
				if !strings.Contains(all, b.ids["B"][1]) && !strings.Contains(all, b.ids["B"][2]) {
					t.Errorf("%s does not show the admin tenant B's ids", path)
				}
				if !strings.Contains(mine, b.ids["A"][1]) && !strings.Contains(mine, b.ids["A"][2]) {
					t.Errorf("%s does not show tenant A's login its own ids", path)
				}
			}
		}
		// The tenants page has a row per tenant and queue: A's login sees
		// its own, the admin both.
		_, mine := scoped.get("/tenants")
		_, all := adm.get("/tenants")
		if strings.Contains(mine, `id="tq-invoices-B"`) || !strings.Contains(mine, `id="tq-invoices-A"`) || !strings.Contains(all, `id="tq-invoices-B"`) {
			t.Error("the tenants page shows tenant A's login another tenant's row, or not its own, or the admin not B's")
		}
		if resp := scoped.post("/tenants/invoices/B/pause", url.Values{"csrf": {scoped.csrf}}); resp.StatusCode != http.StatusForbidden || b.tenantPaused(t, "invoices", "B") {
			t.Errorf("tenant A's login paused tenant B: status %d", resp.StatusCode)
		}
		for _, id := range []string{b.ids["B"][0], b.ids["B"][1]} {
			if resp, page := scoped.get("/jobs/" + id); resp.StatusCode != http.StatusNotFound || strings.Contains(page, "INV-B") {
				t.Errorf("tenant A's login opened tenant B's job %s: status %d", id, resp.StatusCode)
			}
		}
		if resp, _ := scoped.get("/runs/" + b.ids["B"][2]); resp.StatusCode != http.StatusNotFound {
			t.Errorf("tenant A's login opened tenant B's run: status %d", resp.StatusCode)
		}
		if resp := scoped.post("/jobs/"+b.ids["B"][1]+"/retry", url.Values{"csrf": {scoped.csrf}}); resp.StatusCode != http.StatusNotFound {
			t.Errorf("tenant A's login retried tenant B's job: status %d", resp.StatusCode)
		}
		b.waitJob(t, b.ids["B"][1], "dead")
	})
}

func (b *bundle) tenantPaused(t *testing.T, queue, tenant string) bool {
	t.Helper()
	var qt admin.QueueTenant
	b.api(t, "admin", "GET", "/api/v1/queues/"+queue+"/tenants/"+tenant, nil, &qt)
	return qt.TenantPaused
}

func (b *bundle) paused(t *testing.T, queue string) bool {
	t.Helper()
	var ql admin.QueueList
	b.api(t, "admin", "GET", "/api/v1/queues", nil, &ql)
	for _, q := range ql.Queues {
		if q.Name == queue {
			return q.Paused
		}
	}
	t.Fatalf("no queue %s", queue)
	return false
}

// TestPayloadOnlyForAllowedRoles checks the dashboard follows the API's
// payload rule: a viewer's job page has neither the payload nor a link to
// reveal it (and asking anyway shows nothing), an operator's hides it
// until revealed.
func TestPayloadOnlyForAllowedRoles(t *testing.T) {
	b := setup(t)
	id := b.ids["A"][0] // its data is {"invoice":"INV-A"}
	path := "/jobs/" + id + "?queue=invoices"
	viewer := b.login(t, "viewer")
	for _, p := range []string{path, path + "&payload=1"} {
		_, page := viewer.get(p)
		if strings.Contains(page, "INV-A") || strings.Contains(page, `id="reveal"`) || !strings.Contains(page, `id="payload-redacted"`) {
			t.Errorf("a viewer's %s shows the payload or offers to reveal it", p)
		}
	}
	op := b.login(t, "operator")
	if _, page := op.get(path); strings.Contains(page, "INV-A") || !strings.Contains(page, `id="reveal"`) {
		t.Error("an operator's job page shows the payload before it is asked for, or offers no reveal link")
	}
	if _, page := op.get(path + "&payload=1"); !strings.Contains(page, "INV-A") {
		t.Error("an operator's revealed job page does not show the payload")
	}
}
