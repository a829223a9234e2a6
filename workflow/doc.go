// Package workflow runs durable multi-step workflows: the seed's
// WorkflowEngine.
//
// A Workflow is named steps, each run by a registered StepProcessor with its
// own retry attempts and delay, plus optional OnSuccess and OnError. Without
// DependsOn the steps run in the listed order; with it they form a DAG whose
// independent steps run in parallel and whose fan-in steps start when all
// their dependencies have completed.
//
//	eng, _ := workflow.NewEngine(b, workflow.Config{})
//	eng.RegisterStepProcessor("InvoiceValidator", validator)
//	eng.Register(workflow.Workflow{Name: "invoice.processing", Steps: steps})
//	eng.Attach(manager) // the Manager must serve eng.Queue()
//	defer eng.Close()   // after manager.Shutdown: stops the run retention
//	run, _ := eng.Execute(ctx, "invoice.processing", data, workflow.ExecuteOptions{TenantID: "t1"})
//
// # Durability
//
// Run state lives in the broker, not in the process that started the run,
// as versioned documents of the broker's generic atomic primitive
// (broker.Committer, implemented by the Redis and SQLite brokers): the run
// rules are written once, in Go, on top of it, so any broker that offers the
// primitive runs workflows. A run is stored whole at Execute, DAG included,
// in the same commit that enqueues its first steps. Each step is carried by
// an ordinary job (type workflow.step, in the engine's queue, retried after
// the step's RetryDelay, with a few attempts beyond the step's
// RetryAttempts that are never used to run it: see below) run by the
// processor Attach registers on a worker.Manager. That processor installs a
// worker.Finisher, so the Manager reports the step's outcome as one commit
// (one Lua script on Redis, all keys under the queue's hash tag; one
// transaction on SQLite) that checks the job's lease token, completes the
// job, compares-and-sets the run's document (the step's output and
// completion order) and enqueues every step it unblocks. Two parallel steps
// completing together race on the run's version: one commit wins, the other
// re-reads the run and retries, so a fan-in step is enqueued exactly once.
// A step's attempts, last error and timings are its job's, read with the
// run.
//
// Delivery is at least once, per step: a worker killed before the step's
// completion commits leaves the job's lease to expire, and the step runs
// again; a worker killed after it loses nothing, and the completed step
// never runs again (its job is completed and its state is recorded in the
// same transition). Step processors with side effects outside the broker
// should be idempotent, keyed by StepInfo.RunID and the step name. An
// attempt cut short so counts as one of the step's RetryAttempts: a step
// whose workers keep dying fails its run when they are used up, like a step
// that keeps returning errors. The step's job has a few attempts more than
// the step (the broker moves a job whose last lease expires to dead without
// telling the run); the first of them fails the step through the run
// without running it.
//
// # Data between steps
//
// Execute takes a JSON object. A step receives the run's data merged with
// the outputs of its dependencies (StepInput): top-level keys, the run's data
// first, then each dependency's output in the workflow's declared step
// order, so on a conflict the dependency declared later wins. A step returns
// its output, conventionally the data it received plus what it added (the
// seed's {...data, validation}); in a sequential workflow the data thus
// accumulates from step to step.
//
// # Failure, compensation, hooks
//
// A step retries by its own attempts and delay. When its attempts are used
// up (or it returns worker.NoRetry), the same atomic transition marks the step
// and the run failed, cancels the run's other unfinished steps, and enqueues
// the compensation of the most recently completed step that has one. The
// compensations then run one after another, in reverse completion order,
// each enqueued by its predecessor's completion (or death: a failed
// compensation does not stop the chain), and finally OnError runs. OnSuccess
// runs after the last step completes. Hooks and compensations are jobs too:
// each is enqueued exactly once, and runs at least once.
//
// # Cancel
//
// Cancel cancels the jobs of the run's unfinished steps (a running step's
// lease is revoked, so its processor's context is cancelled at the next
// heartbeat and its result is discarded) and marks the run cancelled. No
// compensation or hook runs for a cancelled run.
//
// # Idempotency
//
// ExecuteOptions.IdempotencyKey maps, per workflow and tenant, to one run:
// a second Execute with the same key returns the first run, for as long as
// that run is stored (see Retention).
//
// # Encryption
//
// When Config.Encryption applies to the engine's queue, a run is sealed
// at rest: its input under the run (tenant, queue, workflow, run id), and
// each step's output and error as the result and error of the step's job,
// which the attached Manager seals with the same Encryption (Attach
// refuses a Manager that disagrees). Step processors, hooks, Get, List and
// Page see the values opened; a value moved to another run, step or
// tenant does not open, and the step that would read it fails the run
// with the reason instead of running (Config.OnUndecryptable is told).
// Step jobs carry only the run's and step's names, never run data.
// worker.Client.RotateKeys re-seals runs under the newest key.
//
// # Retention
//
// Finished runs (succeeded, failed, cancelled) are kept for
// Config.FinishedMaxAge (7 days) and at most Config.FinishedMaxCount (10,000
// per queue) of them, then removed whole, so the broker's storage stays
// bounded under steady load: the run, its steps, its idempotency key (free
// again for a new run), its index entries, and the jobs that carried its
// steps, compensations and hooks. A running run is never removed, nor a
// finished one whose compensation or hook has not finished. Attach starts a
// background loop that applies the rules every Config.RetentionInterval
// (one commit per batch of at most 1000 runs, reading only the oldest
// finished runs through an index); it ends at Close or once every attached
// Manager is shutting down. Engine.Maintain applies them once, on demand.
package workflow
