// Package admin is the admin and producer HTTP API of the aibos-worker
// service, under /api/v1: enqueue (with Idempotency-Key), jobs, queues,
// schedules, workflow runs, workers, tenants, tokens, series, health and
// the audit trail,
// behind bearer tokens with roles (viewer, operator, admin) and an optional
// tenant scope that the storage seam enforces. The dashboard and the CLI
// use the same handlers.
//
// Every error has one shape, {"error":{"code","message","field"}}, with the
// status the table in errors.go gives: 400 bad input, 401, 403, 404 (also
// for another tenant's job), 409, 413, 422, 429, 503. A store that does not
// answer (Redis down, a connection cut) is 503 on every route, never 500,
// whether the token check or the handler meets it; the client may retry.
//
// GET /api/v1/jobs/{id} shows the job's attempts: the last 20 finished
// attempts (broker.Job.Attempts), each with its number, worker, start,
// finish, outcome and error; listings and actions leave them out.
//
// # Schedules: the config file and the API together
//
// Schedules declared in the service's config file are reconciled at every
// start (schedule.Cron.Reconcile): the file wins for what it declares,
// replacing a stored schedule of the same name, and the stored schedule
// carries the marker managedBy "config" with the file's path. The API
// shows such a schedule with managedBy "config" and configFile, and
// refuses to change (PUT) or delete it with 409, naming the file: the
// next start would undo the change. Pause, resume and trigger are allowed
// (an operator's act on the running system, kept across restarts).
// Schedules created through the API (managedBy "api") live in the store
// and survive restarts; the file does not touch them. A schedule an
// earlier start declared from the same file, and the file no longer
// declares, is released, not removed: it becomes managedBy "api" and may
// then be deleted through the API (other processes of a fleet may still
// run the old file).
//
// Queues are reconciled the same way (ReconcileQueues, run at start): a
// queue the file declares shows managedBy "config" and configFile in GET
// /api/v1/queues, and PUT .../concurrency on it is refused with 409 naming
// the file; pause and resume stay allowed. A queue the file no longer
// declares goes back to managedBy "api".
//
// Idempotency-Key records are kept IdempotencyTTL (24h) and then deleted
// by SweepIdempotency, which a service runs now and then.
//
// A tenant-scoped token sees and touches only the schedules whose job
// belongs to its tenant, read through the store's tenant index; a schedule
// of the seed's tenant "all" belongs to no tenant's scope. Workflow runs
// are scoped the same way, through a per-tenant index of runs.
//
// # Tokens
//
// A token reads awt_<id>_<secret>: 32 random bytes of secret, shown once
// when it is made and stored only as a SHA-256 hash (TokenStore). Make the
// first admin token with `aibos-worker tokens create` while the service is
// stopped. An address that fails to authenticate too often is answered 429
// with Retry-After until its bucket refills (Config.FailedAuth).
//
// # Roles
//
// Each route needs a role, and a role includes those below it: viewer <
// operator < admin. A tenant-scoped token acts only within its tenant, and
// a tenant-scoped admin makes tokens only for its own tenant. The table is
// the routes' own (Server.Routes); a test keeps it in step and checks each
// role against each route that changes something.
//
//	POST   /api/v1/queues/{queue}/jobs                operator
//	POST   /api/v1/queues/{queue}/jobs/batch          operator
//	GET    /api/v1/jobs                               viewer
//	POST   /api/v1/jobs/bulk                          operator
//	GET    /api/v1/jobs/{id}                          viewer
//	POST   /api/v1/jobs/{id}/retry                    operator
//	POST   /api/v1/jobs/{id}/cancel                   operator
//	DELETE /api/v1/jobs/{id}                          operator
//	GET    /api/v1/queues                             viewer
//	POST   /api/v1/queues/{queue}/pause               operator
//	POST   /api/v1/queues/{queue}/resume              operator
//	PUT    /api/v1/queues/{queue}/concurrency         admin
//	GET    /api/v1/queues/{queue}/tenants             viewer
//	GET    /api/v1/queues/{queue}/tenants/{tenant}    viewer
//	POST   /api/v1/queues/{queue}/tenants/{tenant}/pause  operator
//	POST   /api/v1/queues/{queue}/tenants/{tenant}/resume operator
//	GET    /api/v1/health                             viewer
//	GET    /api/v1/schedules                          viewer
//	POST   /api/v1/schedules                          admin
//	GET    /api/v1/schedules/{name}                   viewer
//	PUT    /api/v1/schedules/{name}                   admin
//	DELETE /api/v1/schedules/{name}                   admin
//	POST   /api/v1/schedules/{name}/pause             operator
//	POST   /api/v1/schedules/{name}/resume            operator
//	POST   /api/v1/schedules/{name}/trigger           operator
//	GET    /api/v1/one-time-schedules                 viewer
//	POST   /api/v1/one-time-schedules                 admin
//	GET    /api/v1/one-time-schedules/{queue}/{name}  viewer
//	DELETE /api/v1/one-time-schedules/{queue}/{name}  operator
//	GET    /api/v1/series                             viewer
//	GET    /api/v1/tenants                            viewer
//	GET    /api/v1/tenants/{id}                       viewer
//	POST   /api/v1/tenants                            admin
//	PUT    /api/v1/tenants/{id}                       admin
//	POST   /api/v1/tenants/{id}/purge                 admin
//	POST   /api/v1/tokens                             admin
//	GET    /api/v1/tokens                             admin
//	DELETE /api/v1/tokens/{id}                        admin
//	GET    /api/v1/workers                            viewer
//	GET    /api/v1/workflows                          viewer
//	GET    /api/v1/workflows/runs                     viewer
//	GET    /api/v1/workflows/runs/{id}                viewer
//	POST   /api/v1/workflows/runs/{id}/cancel         operator
//	POST   /api/v1/workflows/{name}/runs              operator
//	GET    /api/v1/audit                              viewer
//	POST   /api/v1/keys/rotate                        admin
//	POST   /api/v1/companies                                    operator
//	POST   /api/v1/companies/{company}/customers                operator
//	POST   /api/v1/companies/{company}/vendors                  operator
//	POST   /api/v1/companies/{company}/invoices                 operator
//	GET    /api/v1/companies/{company}/invoices/{id}            viewer
//	PUT    /api/v1/companies/{company}/invoices/{id}            operator
//	POST   /api/v1/companies/{company}/invoices/{id}/void       operator
//	POST   /api/v1/companies/{company}/invoices/{id}/process    operator
//	POST   /api/v1/companies/{company}/bills                    operator
//	GET    /api/v1/companies/{company}/bills/{id}               viewer
//	PUT    /api/v1/companies/{company}/bills/{id}               operator
//	POST   /api/v1/companies/{company}/bills/{id}/void          operator
//	POST   /api/v1/companies/{company}/bills/{id}/process       operator
//	POST   /api/v1/companies/{company}/payments                 operator
//	POST   /api/v1/companies/{company}/payments/{id}/process    operator
//	GET    /api/v1/companies/{company}/trial-balance            viewer
//	GET    /api/v1/companies/{company}/accounts/{code}/activity viewer
//	GET    /api/v1/companies/{company}/receivables              viewer
//	GET    /api/v1/companies/{company}/payables                 viewer
//	GET    /api/v1/companies/{company}/reports                  viewer
//	GET    /api/v1/companies/{company}/reports/{date}/{name}    viewer
//
// # Audit trail
//
// With Config.Audit, every request to a route that changes something and
// every denied request (401, 403, reads included) writes exactly one
// entry to the tamper-evident audit trail (package audit): the action the
// route is named by (ActionOf), its target, the caller's token, role and
// scope, the target's tenant, outcome and status, what changed (ids,
// settings before and after; never a payload or a secret) and the
// request's X-Request-ID. GET /api/v1/audit lists it; a tenant-scoped
// token reads its tenant's index of entries, those of its tenant's tokens
// and those about its tenant's jobs and settings.
//
// An audited action is never acknowledged unrecorded: the answer to a
// mutating request (and any denial or error the server writes) is held
// until the request's entry is in the store, then sent. If the entry
// cannot be recorded, a request that succeeded is answered 503 with code
// not_audited instead, saying that the action was carried out and giving
// the request id (an enqueue retried with the same Idempotency-Key is
// safe); a denied or failed request is still answered as it was. The
// entries of concurrent requests are committed together (audit.Trail), so
// holding answers costs latency, not a store commit per request.
//
// # Accounting
//
// The accounting routes (/api/v1/companies/...) read and write one
// company's books in the accounting ledger (Config.Ledger, SetLedger): the
// tenant is the token's scope, or ?tenant= for a cross-tenant token.
// Writing a document stores a version and posts nothing; POST .../process
// enqueues the job that posts it (invoice.processing, bill.processing,
// payment.processing), which the application calls once a document is
// final.
package admin
