// Package service is the aibos-worker service, importable so that a team
// can compile its own Go processors into its own binary. cmd/aibos-worker
// is a thin command line over it.
//
// Configuration comes from the seed's environment variables (same names,
// same defaults), flags, and a YAML file for what variables express badly
// (queues, job types, schedules, callbacks, recovery); Load merges them
// with flags > env > file > defaults and records where each value came
// from. A bad value is a *ConfigError: one line naming the setting, the
// value and what is allowed.
//
// A Service opens the broker the configuration names (Redis when
// REDIS_URL is set: one server with redis://, through Sentinel with
// redis+sentinel://s1:26379,s2:26379/mymaster, a Cluster with
// redis+cluster://h1:6379,h2:6379, as redisbroker.ParseURL reads them;
// else the embedded store under WORKER_DATA_DIR) and
// runs one worker.Manager over the configured queues, the workflow engine,
// the cron scheduler and an HTTP server with /metrics, /livez, /readyz,
// /health and, unless WORKER_API_ENABLED is false, the admin and producer
// API under /api/v1 (package admin), whose bearer tokens live in the store
// (OpenTokens reaches them while the service is stopped), with the web
// dashboard at / (package admin/dashboard) that logs in with those tokens:
//
//	cfg, err := service.Load(service.LoadInput{File: "aibos-worker.yaml"})
//	svc, err := service.New(ctx, cfg, service.NewLogger(cfg, os.Stderr))
//	svc.Register("invoice.processing", invoiceProcessor)
//	err = svc.Start(ctx)
//	<-ctx.Done()
//	err = svc.Shutdown(context.Background()) // drains: see Shutdown
package service
