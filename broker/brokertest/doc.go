// Package brokertest is the conformance suite every broker runs: the
// executable form of the semantics in DESIGN.md §4 and of the method
// contracts in package broker.
//
// A broker's own test calls Run with a constructor for fresh, empty
// brokers:
//
//	func TestConformance(t *testing.T) {
//		brokertest.Run(t, func(t *testing.T) broker.Broker {
//			b := mybroker.Open(...)
//			t.Cleanup(func() { _ = b.Close() })
//			return b
//		})
//	}
//
// Each rule is one parallel subtest with a stable name, so every broker
// reports the same cases:
//
//   - Order: PriorityOrder, FIFOAmongEquals, DelayedInvisibleBeforeDue.
//   - Leases: LeaseExpiryRecovered, StaleTokenRejected, LeaseExtend,
//     ReleaseReturnsToPending, Progress, CancelActive.
//   - Enqueue: InsertRoundTrip, BulkAtomic, DuplicateUniqueKey,
//     UniqueKeyHeldWhileRetrying, QueueFull, InvalidInput, ConcurrentInserts
//     (racing JobInserts, which a broker may combine into one write, each
//     keep their own outcome).
//   - Life cycle: TTLExpiry, TTLNeverExpiresActive, RetryUntilDead,
//     CancelPending, CompleteStoresResult, DeleteOnComplete,
//     ConcurrentFetchersNoDuplicates.
//   - Administration: PauseResume, JobGetDelete, JobList, QueueStats,
//     QueueList, RetentionRemovesCompleted, RetentionOnlyCompleted,
//     RetentionKeepsPace, MaintainReportsIdle, ClosedBroker.
//   - Leader leases (broker.LeaderStore, skipped by brokers without it):
//     LeaderLease.
//   - The generic atomic primitive (broker.Committer): CommitFenced,
//     CommitAllOrNothing, CommitCompareAndSet, CommitOptionalInsert,
//     CommitNotBefore, CommitCancelDelete, DocIndexList.
//   - Workflow and schedule rules, run through the stores of packages
//     workflow and schedule (internal/runstore, internal/schedstore) on the
//     broker's primitive: WorkflowFanIn, WorkflowWaitsForEveryBranch,
//     WorkflowFailureCompensates, WorkflowRetentionByCount, ScheduleClaimOnce,
//     ScheduleClaimRefusals, and the others named Workflow* and Schedule*.
//   - Tenancy: TenantScope (a scoped get, cancel, retry, delete, list and
//     stats treat another tenant's job, or one with no tenant, as absent,
//     with the same error as an absent job, and change nothing), TenantList
//     (a tenant's listing of each state, paged, is the queue's listing
//     restricted to it; scoped stats count it), TenantIndexExact (the same
//     after every transition and removal path), UniqueKeyPerTenant (a
//     unique key is held per queue, tenant and key: tenants never block
//     each other, jobs with no tenant are a namespace of their own, through
//     inserts, batches, completion, retry and Commit).
//
// Time is judged only by the broker's own clock: a job's RunAt, StartedAt,
// LeaseUntil and FinishedAt, and a probe job's CreatedAt when a case must
// know that the broker's "now" has passed an instant. The caller's clock
// only bounds how long a case waits. Every fetched job is also checked for
// the invariants of JobFetch (active, never started before due, lease
// length, worker id, a lease token greater than any earlier one of that
// job), whichever case fetched it.
//
// The suite takes a few seconds per broker; cases wait for the broker by
// polling with a timeout, never by sleeping and then asserting.
package brokertest
