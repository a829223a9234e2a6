// Package admin is the admin and producer HTTP API of the aibos-worker
// service, under /api/v1: enqueue (with Idempotency-Key), jobs, queues,
// schedules, workflow runs, workers, tenants, tokens, series and health,
// behind bearer tokens with roles (viewer, operator, admin) and an optional
// tenant scope that the storage seam enforces. The dashboard and the CLI
// use the same handlers.
//
// Every error has one shape, {"error":{"code","message","field"}}, with the
// status the table in errors.go gives: 400 bad input, 401, 403, 404 (also
// for another tenant's job), 409, 413, 422, 429, 503.
package admin
