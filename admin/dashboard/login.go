package dashboard

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/aibos/worker/admin"
	"github.com/aibos/worker/audit"
)

type loginData struct {
	CSRF  string
	Next  string
	Error string
	// SSO offers single sign-on.
	SSO bool
}

// loginForm shows the login form. It has no session to keep a CSRF token
// in, so it uses a double-submit cookie: a site that cannot read or set
// this site's cookies cannot log a browser in with its own token.
func (d *Dashboard) loginForm(w http.ResponseWriter, r *http.Request) {
	d.showLogin(w, r, http.StatusOK, "")
}

func (d *Dashboard) showLogin(w http.ResponseWriter, r *http.Request, status int, msg string) {
	tok := randomToken()
	setCookie(w, r, loginCookie, tok, 600)
	v := &view{Title: "Log in", Data: loginData{CSRF: tok, Next: localPath(r.FormValue("next")), Error: msg, SSO: d.sso != nil}}
	if err := d.write(w, status, "login", v); err != nil {
		d.log.Error("dashboard: render the login page", "err", err)
	}
}

// login exchanges an API token for a session. The token is checked by the
// API itself (GET /api/v1/health), so its failed-authentication limit and
// its answers apply to the form as to any client.
func (d *Dashboard) login(w http.ResponseWriter, r *http.Request) {
	c, err := r.Cookie(loginCookie)
	if err != nil || !sameToken(r.PostFormValue("csrf"), c.Value) {
		d.showLogin(w, r, http.StatusForbidden, "The form expired or was not sent by this page: try again.")
		return
	}
	token := strings.TrimSpace(r.PostFormValue("token"))
	if token == "" {
		d.showLogin(w, r, http.StatusBadRequest, "Enter an API token.")
		return
	}
	// A 503 comes after the token was accepted or when the store could not
	// tell: every page checks the token again, so let it in.
	if err := d.callAPI(r.Context(), r, token, "GET", "/api/v1/health", nil, nil); err != nil && apiStatus(err) != http.StatusServiceUnavailable {
		d.showLogin(w, r, apiStatus(err), "The token was refused: "+err.Error())
		return
	}
	if p, err := d.cfg.Auth.Authenticate(r.Context(), token); err == nil {
		if err := d.auditLogin(r, "dashboard.login", p, nil); err != nil {
			d.showLogin(w, r, http.StatusServiceUnavailable, unauditedLogin)
			return
		}
	}
	s := d.sessions.create(token, false)
	setCookie(w, r, loginCookie, "", -1)
	setCookie(w, r, cookieName, s.id, int(d.cfg.SessionTTL.Seconds()))
	http.Redirect(w, r, localPath(r.PostFormValue("next")), http.StatusSeeOther)
}

// logout ends the session, and an SSO session's internal token with it.
func (d *Dashboard) logout(q *request) error {
	d.sessions.remove(q.s.id)
	if q.s.sso && d.sso != nil {
		d.sso.principals.revoke(q.s.token)
	}
	// A logout is not refused for want of its entry: that would leave
	// the session open.
	_ = d.auditLogin(q.r, "dashboard.logout", q.p, nil)
	setCookie(q.w, q.r, cookieName, "", -1)
	http.Redirect(q.w, q.r, "/login", http.StatusSeeOther)
	return nil
}

// unauditedLogin is the login page's message when the login could not
// be recorded: a login is an audited action, never granted unrecorded.
const unauditedLogin = "The login could not be recorded in the audit trail, so it was refused: try again later."

// auditLogin records a login or logout in the audit trail, if the
// dashboard has one: who (p, nil when a login was refused before anyone
// was known), and why a login was refused (err). A failure to record is
// logged and returned: the caller refuses a login it would grant.
func (d *Dashboard) auditLogin(r *http.Request, action string, p *admin.Principal, err error) error {
	if d.cfg.Audit == nil {
		return nil
	}
	e := &audit.Entry{Action: action, Target: "dashboard", Outcome: audit.OK, Remote: r.RemoteAddr}
	if p != nil {
		e.TokenID, e.TokenName, e.Role, e.Scope = p.TokenID, p.Name, string(p.Role), p.TenantID
	}
	if err != nil {
		e.Outcome, e.Status = audit.Denied, http.StatusForbidden
		e.Changes, _ = json.Marshal(map[string]string{"reason": err.Error()})
	}
	if _, err := d.cfg.Audit.Record(context.WithoutCancel(r.Context()), e); err != nil {
		d.log.Error("dashboard: record a login in the audit trail", "action", action, "err", err)
		return err
	}
	return nil
}

// localPath returns p if it is a path on this site, else "/": a login
// link must not send the browser elsewhere.
func localPath(p string) string {
	if !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") || strings.HasPrefix(p, "/\\") || strings.HasPrefix(p, "/login") {
		return "/"
	}
	return p
}
