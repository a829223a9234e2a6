package admin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"slices"
	"sync/atomic"
	"time"

	"github.com/aibos/worker"
	"github.com/aibos/worker/accounting"
	"github.com/aibos/worker/accounting/report"
	"github.com/aibos/worker/audit"
	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/httpproc"
	"github.com/aibos/worker/schedule"
	"github.com/aibos/worker/workflow"
)

// Config is what the API serves. Client and Broker are required; the other
// parts are optional and their routes answer 404 without them.
type Config struct {
	// Client enqueues and inspects jobs. Required. The API makes a
	// tenant-scoped view of it (Client.Tenant) for every request by a
	// tenant-scoped token, so the seam enforces the scope.
	Client *worker.Client
	// Broker is the store the registries (tokens, tenants, workers,
	// series, idempotency keys) live in. Required; it must implement
	// broker.Committer (both brokers of this module do).
	Broker broker.Broker
	// Manager is this process's Manager, if any.
	Manager *worker.Manager
	// Workflows, Cron, OneTime and Callbacks are the service's engines.
	Workflows *workflow.Engine
	Cron      *schedule.Cron
	OneTime   *schedule.OneTime
	Callbacks *httpproc.Callbacks
	// Auth authenticates bearer tokens. Required.
	Auth Authenticator
	// Tokens is the token store the tokens routes manage; usually Auth
	// too. Without it those routes answer 404.
	Tokens *TokenStore
	// MaxBodyBytes bounds a request body on every route that
	// RouteMaxBodyBytes does not name: a larger one is refused with 413
	// too_large before it is read whole. Defaults to 1 MiB.
	MaxBodyBytes int64
	// RouteMaxBodyBytes bounds the body of the routes it names, by their
	// pattern as Routes lists it (e.g. "POST /api/v1/queues/{queue}/jobs/batch"),
	// instead of MaxBodyBytes: enqueueing a batch may need more room than
	// changing a setting. A pattern that is no route is an error of New.
	RouteMaxBodyBytes map[string]int64
	// RequestTimeout bounds one request's work. Defaults to 30s.
	RequestTimeout time.Duration
	// Logger receives the API's logs; payloads and tokens are never
	// logged. Defaults to slog.Default().
	Logger *slog.Logger
	// Now is the clock. Defaults to time.Now.
	Now func() time.Time
	// Ledger is the accounting store the accounting routes serve. Without
	// it (and until SetLedger) they answer 503.
	Ledger accounting.Store
	// Reports holds the daily report files (package accounting/report)
	// the report routes list and serve. Without it they answer 503.
	Reports *report.Dir
	// FailedAuth limits failed authentications per client address.
	FailedAuth FailedAuthLimit
	// Audit, if set, records every mutating request and every denied
	// one (see ActionOf). GET /api/v1/audit lists the store's trail
	// either way.
	Audit *audit.Trail
}

// Server is the admin and producer API under /api/v1. It is an
// http.Handler; mount it at the root of a mux (its routes carry the
// /api/v1 prefix).
type Server struct {
	cfg      Config
	log      *slog.Logger
	mux      *http.ServeMux
	failures *failureLimiter
	routes   []Route
	// ledger is the accounting store the accounting routes serve, set by
	// SetLedger (or Config.Ledger).
	ledger atomic.Pointer[accounting.Store]
}

// Route is one authenticated route of the API and the role it needs.
type Route struct {
	Pattern string // e.g. "POST /api/v1/jobs/{id}/retry"
	Role    Role
}

// Routes lists the authenticated routes in the order they were
// registered, for documentation and for the role tests.
func (s *Server) Routes() []Route { return slices.Clone(s.routes) }

// New returns the API server for cfg.
func New(cfg Config) (*Server, error) {
	switch {
	case cfg.Client == nil:
		return nil, errors.New("admin: new: Client is nil")
	case cfg.Broker == nil:
		return nil, errors.New("admin: new: Broker is nil")
	case cfg.Auth == nil:
		return nil, errors.New("admin: new: Auth is nil")
	}
	if _, ok := cfg.Broker.(broker.Committer); !ok {
		return nil, fmt.Errorf("admin: new: broker %T does not implement broker.Committer", cfg.Broker)
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 1 << 20
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	doc, err := OpenAPI()
	if err != nil {
		return nil, fmt.Errorf("admin: new: %w", err)
	}
	s := &Server{cfg: cfg, log: cfg.Logger, mux: http.NewServeMux(), failures: newFailureLimiter(cfg.FailedAuth, cfg.Now)}
	s.openapiRoutes(doc)
	// Each area registers its routes in its own file.
	s.jobRoutes()
	s.queueRoutes()
	s.queueTenantRoutes()
	s.tokenRoutes()
	s.tenantRoutes()
	s.workerRoutes()
	s.seriesRoutes()
	s.scheduleRoutes()
	s.workflowRoutes()
	s.accountingRoutes()
	s.reportRoutes()
	if cfg.Ledger != nil {
		s.SetLedger(cfg.Ledger)
	}
	s.keyRoutes()
	s.auditRoutes()
	for pattern, n := range cfg.RouteMaxBodyBytes {
		if !slices.ContainsFunc(s.routes, func(r Route) bool { return r.Pattern == pattern }) {
			return nil, fmt.Errorf("admin: new: RouteMaxBodyBytes names %q, which is no route", pattern)
		}
		if n <= 0 {
			return nil, fmt.Errorf("admin: new: RouteMaxBodyBytes[%q] is %d, want above 0", pattern, n)
		}
	}
	s.mux.HandleFunc("/api/v1/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, Errorf(http.StatusNotFound, CodeNotFound, "", "no route %s %s", r.Method, r.URL.Path))
	})
	return s, nil
}

// ServeHTTP serves the API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// handlerFunc is an API handler: it gets the authenticated principal and
// returns an error to be written in the API's error shape (or nil once it
// has written its answer).
type handlerFunc func(w http.ResponseWriter, r *http.Request, p *Principal) error

// handle registers h for pattern (a Go 1.22 ServeMux pattern with method,
// e.g. "GET /api/v1/jobs/{id}"), requiring role need: the request is
// authenticated, authorised, bounded by RequestTimeout, and a panic in h
// becomes a 500 with its stack logged.
func (s *Server) handle(pattern string, need Role, h handlerFunc) {
	s.routes = append(s.routes, Route{Pattern: pattern, Role: need})
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		// Exactly one audit entry per request: finish runs once, after
		// the handler, whichever way the request ended (a panic
		// included), and sends the answer held until the entry is
		// recorded.
		a := s.startAudit(w, r, pattern)
		r, errW := a.r, a.errorWriter()
		var p *Principal
		defer func() { a.finish(p) }()
		defer func() {
			if v := recover(); v != nil {
				s.log.Error("admin: handler panicked", "route", pattern, "panic", v, "stack", string(debug.Stack()))
				a.discard()
				writeError(errW, Errorf(http.StatusInternalServerError, CodeInternal, "", "internal error"))
			}
		}()
		p, err := s.authenticate(r)
		if err != nil {
			setRetryAfter(errW, err)
			writeError(errW, err)
			return
		}
		if err := s.authorize(r, p, need); err != nil {
			writeError(errW, err)
			return
		}
		ctx, cancel := context.WithTimeout(withPrincipal(r.Context(), p), s.cfg.RequestTimeout)
		defer cancel()
		if err := h(a.handlerWriter(), r.WithContext(ctx), p); err != nil {
			if ctx.Err() != nil && r.Context().Err() == nil && errors.Is(err, context.DeadlineExceeded) {
				err = Errorf(http.StatusServiceUnavailable, CodeTimeout, "", "the request took longer than %v", s.cfg.RequestTimeout)
			}
			writeError(errW, err)
		}
	})
}

// maxBody returns the body limit of the route pattern.
func (s *Server) maxBody(pattern string) int64 {
	if n, ok := s.cfg.RouteMaxBodyBytes[pattern]; ok {
		return n
	}
	return s.cfg.MaxBodyBytes
}

// client returns the Client a request by p uses: scoped to p's tenant for
// a tenant-scoped token, so that the seam, not this package, enforces the
// scope.
func (s *Server) client(p *Principal) (*worker.Client, error) {
	if p.CrossTenant() {
		return s.cfg.Client, nil
	}
	return s.cfg.Client.Tenant(p.TenantID)
}
