package dashboard

import (
	"net/http"
	"strings"
)

type loginData struct {
	CSRF  string
	Next  string
	Error string
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
	v := &view{Title: "Log in", Data: loginData{CSRF: tok, Next: localPath(r.FormValue("next")), Error: msg}}
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
	s := d.sessions.create(token)
	setCookie(w, r, loginCookie, "", -1)
	setCookie(w, r, cookieName, s.id, int(d.cfg.SessionTTL.Seconds()))
	http.Redirect(w, r, localPath(r.PostFormValue("next")), http.StatusSeeOther)
}

// logout ends the session.
func (d *Dashboard) logout(q *request) error {
	d.sessions.remove(q.s.id)
	setCookie(q.w, q.r, cookieName, "", -1)
	http.Redirect(q.w, q.r, "/login", http.StatusSeeOther)
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
