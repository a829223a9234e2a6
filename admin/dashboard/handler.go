package dashboard

import (
	"bytes"
	"errors"
	"net/http"
	"net/url"

	"github.com/aibos/worker/admin"
)

// view is what every page template gets.
type view struct {
	Title string
	Nav   string
	// Role and Tenant are the session token's; Tenant is empty for a
	// cross-tenant token.
	Role   admin.Role
	Tenant string
	CSRF   string
	// Operate and Admin say which actions to show; the API refuses the
	// others anyway.
	Operate bool
	Admin   bool
	// Live marks a page the script refreshes by polling.
	Live bool
	// Notice is a one-line result of the last action.
	Notice string
	Data   any
}

// request is one authenticated dashboard request.
type request struct {
	d *Dashboard
	w http.ResponseWriter
	r *http.Request
	s *session
	p *admin.Principal
}

// api calls the API as the session's token.
func (q *request) api(method, path string, body, out any) error {
	return q.d.callAPI(q.r.Context(), q.r, q.s.token, method, path, body, out)
}

// render writes page with data.
func (q *request) render(page, title string, live bool, data any) error {
	v := &view{Title: title, Nav: page, Role: q.p.Role, Tenant: q.p.TenantID, CSRF: q.s.csrf,
		Operate: q.p.Role.Allows(admin.RoleOperator), Admin: q.p.Role.Allows(admin.RoleAdmin),
		Live: live, Notice: q.d.sessions.takeNotice(q.s), Data: data}
	return q.d.write(q.w, http.StatusOK, page, v)
}

// write renders a page into a buffer first, so that a template error is
// a 500 rather than half a page.
func (d *Dashboard) write(w http.ResponseWriter, status int, page string, v *view) error {
	t, ok := d.pages[page]
	if !ok {
		return errors.New("no template " + page)
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, v); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, err := w.Write(buf.Bytes())
	return err
}

// page registers a GET page handler that needs a session.
func (d *Dashboard) page(pattern string, h func(*request) error) {
	d.mux.HandleFunc("GET "+pattern, d.authed(false, h))
}

// action registers a POST handler that needs a session and its CSRF
// token.
func (d *Dashboard) action(pattern string, h func(*request) error) {
	d.mux.HandleFunc("POST "+pattern, d.authed(true, h))
}

// authed wraps h: without a live session, to the login page; a post
// without the session's CSRF token is refused before anything is done.
// The token's role and scope are read anew on every request, so a revoked
// token ends the session at once.
func (d *Dashboard) authed(post bool, h func(*request) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s, ok := d.sessionOf(r)
		if !ok {
			d.toLogin(w, r)
			return
		}
		if post && !checkCSRF(r, s) {
			http.Error(w, "the form's CSRF token is missing or wrong: reload the page and try again", http.StatusForbidden)
			return
		}
		p, err := d.cfg.Auth.Authenticate(r.Context(), s.token)
		if errors.Is(err, admin.ErrUnauthenticated) {
			d.sessions.remove(s.id)
			d.toLogin(w, r)
			return
		}
		if err != nil {
			d.log.Warn("dashboard: cannot check the session's token", "err", err)
			http.Error(w, "cannot check the session now: the store did not answer", http.StatusServiceUnavailable)
			return
		}
		q := &request{d: d, w: w, r: r, s: s, p: p}
		if err := h(q); err != nil {
			d.fail(q, err)
		}
	}
}

// fail shows an error page: the API's message and status for an API
// error (a viewer's refused action is its 403), a generic 500 otherwise.
func (d *Dashboard) fail(q *request, err error) {
	status := apiStatus(err)
	if status == http.StatusUnauthorized {
		d.sessions.remove(q.s.id)
		d.toLogin(q.w, q.r)
		return
	}
	msg := err.Error()
	var e *admin.Error
	if !errors.As(err, &e) {
		d.log.Error("dashboard: page failed", "path", q.r.URL.Path, "err", err)
		msg = "internal error"
	}
	v := &view{Title: "Error", Role: q.p.Role, Tenant: q.p.TenantID, CSRF: q.s.csrf, Data: struct {
		Status  int
		Message string
	}{status, msg}}
	if err := d.write(q.w, status, "error", v); err != nil {
		http.Error(q.w, msg, status)
	}
}

func (d *Dashboard) toLogin(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		http.Error(w, "not logged in", http.StatusUnauthorized)
		return
	}
	http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
}

// back redirects after an action to a page of this site, which shows
// notice.
func (q *request) back(to, notice string) error {
	q.d.sessions.setNotice(q.s, notice)
	http.Redirect(q.w, q.r, localPath(to), http.StatusSeeOther)
	return nil
}
