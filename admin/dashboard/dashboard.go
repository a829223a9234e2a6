// Package dashboard is the operators' web dashboard of aibos-worker: server-
// rendered pages over the admin API, served by `aibos-worker serve` at /.
//
// The dashboard adds no second way in. A user logs in with an API token;
// the server keeps the token in a server-side session (in memory: a
// restart logs everyone out) and the browser only holds an opaque session
// cookie. Every page and every action calls the same handler that serves
// /api/v1 (with whatever middleware wraps it, such as the audit trail), in
// process, with the session's token as the bearer token. So the API's
// authentication, roles, tenant scope, rate limits and audit entries apply
// unchanged, and the dashboard cannot show or do anything the token could
// not through the API. Calling in process, rather than letting the browser
// call /api/v1 with the cookie, keeps the API's single authentication
// scheme (bearer tokens, which are not sent automatically by a browser and
// so need no CSRF defence) and keeps the token out of reach of scripts.
//
// Actions are HTML form posts protected by a synchroniser CSRF token kept
// in the session. Pages carry a strict Content-Security-Policy (no inline
// script or style), frame-ancestors 'none', nosniff and a referrer policy.
// The only script, static/app.js, shows times in the browser's zone (UTC
// on hover) and refreshes the live pages by polling.
package dashboard

import (
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/aibos/worker/admin"
	"github.com/aibos/worker/audit"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Config configures a Dashboard. API and Auth are required.
type Config struct {
	// API is the handler served at /api/v1, with the middleware that
	// wraps it there (audit trail): the dashboard calls it for every page
	// and action.
	API http.Handler
	// Auth tells the role and tenant scope of a session's token, so that
	// pages can leave out the actions the role may not take. The API
	// checks them again on every call.
	Auth admin.Authenticator
	// Workflows names workflows the runs page offers besides the
	// registered ones the API lists.
	Workflows []string
	// OIDC, if set, offers single sign-on through an OpenID Connect
	// provider next to the token login. Auth must then be a *Principals,
	// also the API's Auth.
	OIDC *OIDCConfig
	// Audit, if set, records every login and logout (the API records
	// the actions).
	Audit *audit.Trail
	// SessionTTL is how long a session lasts after login. Defaults to 8h.
	SessionTTL time.Duration
	// MaxSessions bounds the sessions kept in memory. Defaults to 10000.
	MaxSessions int
	// Logger receives the dashboard's logs; tokens are never logged.
	// Defaults to slog.Default().
	Logger *slog.Logger
	// Now is the clock. Defaults to time.Now.
	Now func() time.Time
}

// Dashboard is the web dashboard, an http.Handler to mount at / (next to
// the API at /api/v1). It is safe for concurrent use.
type Dashboard struct {
	cfg      Config
	log      *slog.Logger
	mux      *http.ServeMux
	pages    map[string]*template.Template
	sessions *sessionStore
	sso      *sso // nil without Config.OIDC
}

// New returns the dashboard for cfg.
func New(cfg Config) (*Dashboard, error) {
	switch {
	case cfg.API == nil:
		return nil, errors.New("dashboard: new: API is nil")
	case cfg.Auth == nil:
		return nil, errors.New("dashboard: new: Auth is nil")
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = 8 * time.Hour
	}
	if cfg.MaxSessions <= 0 {
		cfg.MaxSessions = 10000
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	pages, err := parsePages()
	if err != nil {
		return nil, fmt.Errorf("dashboard: new: %w", err)
	}
	d := &Dashboard{cfg: cfg, log: cfg.Logger, mux: http.NewServeMux(), pages: pages,
		sessions: newSessionStore(cfg.SessionTTL, cfg.MaxSessions, cfg.Now)}
	if cfg.OIDC != nil {
		if d.sso, err = newSSO(cfg.OIDC, cfg.Auth, cfg.Now, cfg.SessionTTL); err != nil {
			return nil, fmt.Errorf("dashboard: new: %w", err)
		}
		d.mux.HandleFunc("GET /login/sso", d.ssoStart)
		d.mux.HandleFunc("GET /login/sso/callback", d.ssoCallback)
	}
	static, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, fmt.Errorf("dashboard: new: %w", err)
	}
	d.mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	d.mux.HandleFunc("GET /login", d.loginForm)
	d.mux.HandleFunc("POST /login", d.login)
	d.routes()
	return d, nil
}

// ServeHTTP serves the dashboard with its security headers.
func (d *Dashboard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "+
		"object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("X-Frame-Options", "DENY")
	defer func() {
		if v := recover(); v != nil {
			d.log.Error("dashboard: handler panicked", "path", r.URL.Path, "panic", v, "stack", string(debug.Stack()))
			http.Error(w, "internal error", http.StatusInternalServerError)
		}
	}()
	d.mux.ServeHTTP(w, r)
}

// parsePages parses each page template together with the layout and the
// parts pages share.
func parsePages() (map[string]*template.Template, error) {
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	pages := map[string]*template.Template{}
	for _, n := range names {
		base := n[len("templates/") : len(n)-len(".html")]
		if base == "layout" || base == "partials" {
			continue
		}
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/partials.html", n)
		if err != nil {
			return nil, fmt.Errorf("parse template %s: %w", n, err)
		}
		pages[base] = t
	}
	return pages, nil
}
