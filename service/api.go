package service

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aibos/worker/accounting/report"
	"github.com/aibos/worker/admin"
	"github.com/aibos/worker/admin/dashboard"
	"github.com/aibos/worker/internal/workerreg"
)

// newAPI builds the token store and, when WORKER_API_ENABLED, the admin
// API over the service's parts.
func (s *Service) newAPI() error {
	var err error
	if s.tokens, err = admin.NewTokenStore(s.store.b, nil); err != nil {
		return fmt.Errorf("service: %w", err)
	}
	if !s.cfg.APIEnabled {
		return nil
	}
	if err := s.newAudit(); err != nil {
		return err
	}
	// The dashboard's SSO sessions call the API as principals of their
	// own: the API's Auth knows them, then the tokens.
	auth, err := dashboard.NewPrincipals(s.tokens)
	if err != nil {
		return fmt.Errorf("service: %w", err)
	}
	s.api, err = admin.New(admin.Config{
		Client: s.client, Broker: s.store.b, Manager: s.manager,
		Workflows: s.engine, Cron: s.cron, OneTime: s.once, Callbacks: s.callbacks,
		Auth: auth, Tokens: s.tokens, Logger: s.log.With("component", "api"), Audit: s.audit,
		MaxBodyBytes: int64(s.cfg.APIMaxBodyBytes),
		RouteMaxBodyBytes: map[string]int64{
			"POST /api/v1/queues/{queue}/jobs":       int64(s.cfg.APIMaxEnqueueBytes),
			"POST /api/v1/queues/{queue}/jobs/batch": int64(s.cfg.APIMaxBatchBytes),
		},
		Reports: &report.Dir{Root: s.cfg.ReportsDir()},
	})
	if err != nil {
		return fmt.Errorf("service: %w", err)
	}
	s.apiHandler = s.api
	s.dash, err = dashboard.New(dashboard.Config{API: s.apiHandler, Auth: auth, OIDC: s.cfg.oidc(),
		Audit: s.audit, Logger: s.log.With("component", "dashboard")})
	if err != nil {
		return fmt.Errorf("service: %w", err)
	}
	return nil
}

// oidc is the dashboard's single sign-on configuration, nil without an
// issuer.
func (c *Config) oidc() *dashboard.OIDCConfig {
	if c.OIDCIssuer == "" {
		return nil
	}
	o := &dashboard.OIDCConfig{IssuerURL: c.OIDCIssuer, ClientID: c.OIDCClientID, ClientSecret: c.OIDCClientSecret,
		RedirectURL: c.OIDCRedirectURL, RoleClaim: c.OIDCRoleClaim, TenantClaim: c.OIDCTenantClaim}
	for _, r := range strings.Split(c.OIDCAllowedRoles, ",") {
		if r = strings.TrimSpace(r); r != "" {
			o.AllowedRoles = append(o.AllowedRoles, admin.Role(r))
		}
	}
	return o
}

// startRegistries starts what keeps the store's registries current for
// the API of any process on the store: this worker's heartbeat and the
// per-minute series, recorded by every process whether or not it serves
// the API itself. A heartbeat that cannot start is logged, not fatal: jobs
// run without it.
func (s *Service) startRegistries(ctx context.Context) {
	// The recorder outlives the Manager's drain, so that the jobs that
	// finish while it drains are in its last flush.
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := s.series.Run(rctx); err != nil {
			s.log.Error("series recorder stopped", "err", err)
		}
	}()
	s.stopSeries = func() { cancel(); <-done }
	// Queue settings set through the API (concurrency) reach this
	// process's Manager through the store.
	s.manager.Go(func(ctx context.Context) {
		if err := admin.WatchQueueSettings(ctx, s.store.b, s.manager, 0); err != nil && !errors.Is(err, context.Canceled) {
			s.log.Error("queue settings watcher stopped", "err", err)
		}
	})
	// Fair queues get the tenants registry's weights and caps.
	s.manager.Go(s.syncFairness)
	// Expired Idempotency-Key records are only space: sweep them hourly.
	s.manager.Go(func(ctx context.Context) {
		every(ctx, time.Hour, func(ctx context.Context) {
			if n, err := admin.SweepIdempotency(ctx, s.store.b, time.Now()); err != nil && ctx.Err() == nil {
				s.log.Warn("sweep expired idempotency keys", "err", err)
			} else if n > 0 {
				s.log.Info("swept expired idempotency keys", "deleted", n)
			}
		})
	})
	// Audit entries past their retention are trimmed daily.
	s.manager.Go(s.sweepAudit)
	h, err := workerreg.Start(context.WithoutCancel(ctx), s.store.b, s.manager, workerreg.Config{Logger: s.log})
	if err != nil {
		s.log.Error("start the worker registry's heartbeat", "err", err)
		return
	}
	s.heartbeat = h
}

// reconcileQueues marks the queues the config file declares as managed by
// it (the API shows them read-only and refuses to change their
// concurrency), and releases those it declared before but no longer does.
// Without a file there is nothing to reconcile: the built-in queues stay
// open to the API.
func (s *Service) reconcileQueues(ctx context.Context) error {
	if s.cfg.File == "" {
		return nil
	}
	names := make([]string, 0, len(s.cfg.Queues))
	for _, q := range s.cfg.Queues {
		names = append(names, q.Name)
	}
	if err := admin.ReconcileQueues(ctx, s.store.b, s.cfg.File, names); err != nil {
		return fmt.Errorf("service: reconcile the file's queues: %w", err)
	}
	return nil
}

// stopRegistries flushes the series a last time and removes this worker
// from the registry (a clean stop is not shown as gone). Call it once the
// Manager has drained, before the store closes.
func (s *Service) stopRegistries(ctx context.Context) {
	if s.stopSeries != nil {
		s.stopSeries()
	}
	if s.heartbeat == nil {
		return
	}
	if err := s.heartbeat.Stop(context.WithoutCancel(ctx)); err != nil {
		s.log.Warn("remove this worker from the registry", "err", err)
	}
}

// every runs f at once, then every interval, until ctx ends.
func every(ctx context.Context, interval time.Duration, f func(context.Context)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		f(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
