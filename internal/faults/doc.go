// Package faults is the fault suite of issue 23: it runs real worker
// processes against a private redis-server (or a Sentinel setup, or a
// Cluster), breaks something (a worker SIGKILLed, SIGTERMed or SIGSTOPped,
// Redis killed or emptied or cut off by a TCP fault proxy, a master failed
// over, jobs that panic, hang or exit), and counts what happened to every
// job. One scenario, retention at a million jobs, runs a no-op type that
// leaves no oracle record (the oracle's two fsyncs per run would take a
// quarter of an hour there) and reads Redis itself: its memory, its keys,
// and a SCAN for keys of jobs in no state. `make faults` runs every scenario at full size
// and writes RELIABILITY.md; TestSmoke runs two of them at small sizes in
// the normal `go test` run, so the harness cannot rot.
//
// # Real serve
//
// The workers are faultworker processes: service.Serve, the very code of
// `aibos-worker serve` (configuration from the environment and a config
// file, start, signal handling, drain), with the oracle's processors
// compiled in. Not serve with an HTTP processor pointing at the harness,
// because the oracle must live inside the process the fault hits: a run a
// SIGKILL cuts short must leave its own trace, and fault.exit must end the
// process that leased the job.
//
// # The independent oracle
//
// Nothing is taken from the worker's own account. Every processor run
// appends a start line and an end line (job id, attempt, worker, lease
// token, start, end) to its process's own fsynced run file (package
// oracle); the side effect goes through an idempotency table in a SQLite
// file shared by all workers, where a second run of a job that reaches the
// effect counts a key hit instead of a second row. At the end the harness
// compares, for every enqueue the broker acknowledged:
//
//   - lost: never applied and not left in the broker to run;
//   - stuck: still pending, active or scheduled when the scenario ends;
//   - duplicate runs: processor starts beyond the first (at-least-once
//     delivery makes some after a kill: they are stated, not hidden);
//   - duplicate effects: key hits (absorbed by the key), and effects
//     applied twice (a broken idempotency check; the promise is 0);
//   - stale writes: a completion the broker accepted from a lease older
//     than the newest one a run of the job started with (fencing).
//
// Each scenario adds its own figures (recovery time after a kill, exit
// time after SIGTERM, time to resume after Redis comes back, time until
// data loss is reported, memory during an outage...) and marks each
// against the design's promise where it makes one.
//
// # Bounds and clean-up
//
// Each scenario runs under a context deadline (Scenario.Bound) and in its
// own subtest, whose clean-up kills every process the harness started by
// pid (SIGKILL after SIGCONT, in case it is stopped) and the redis-server,
// also when the scenario fails or panics.
package faults
