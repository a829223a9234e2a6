package brokertest_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/broker/brokertest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// faultEnv names the fault TestMemory injects into its broker; the parent
// TestSuiteCatchesFaults sets it when it re-runs the test binary.
const faultEnv = "BROKERTEST_FAULT"

// faultCases maps each injectable fault to the case that must catch it.
var faultCases = map[string]struct {
	f    faults
	want string
}{
	"ignorePriority":      {faults{ignorePriority: true}, "PriorityOrder"},
	"lifo":                {faults{lifo: true}, "FIFOAmongEquals"},
	"ignoreDelay":         {faults{ignoreDelay: true}, "DelayedInvisibleBeforeDue"},
	"noLeaseRecovery":     {faults{noLeaseRecovery: true}, "LeaseExpiryRecovered"},
	"anyTokenAccepted":    {faults{anyTokenAccepted: true}, "StaleTokenRejected"},
	"newerTokenOK":        {faults{newerTokenOK: true}, "StaleTokenRejected"},
	"extendNoop":          {faults{extendNoop: true}, "LeaseExtend"},
	"nonAtomicBulk":       {faults{nonAtomicBulk: true}, "BulkAtomic"},
	"ignoreUniqueKey":     {faults{ignoreUniqueKey: true}, "DuplicateUniqueKey"},
	"uniqueAcrossTenants": {faults{uniqueAcrossTenants: true}, "UniqueKeyPerTenant"},
	"fullCountsPending":   {faults{fullCountsPending: true}, "QueueFull"},
	"ignoreTTL":           {faults{ignoreTTL: true}, "TTLExpiry"},
	"ignoreRetryDelay":    {faults{ignoreRetryDelay: true}, "RetryUntilDead"},
	"ignorePause":         {faults{ignorePause: true}, "PauseResume"},
	"cancelKeepsLease":    {faults{cancelKeepsLease: true}, "CancelActive"},
	"racyFetch":           {faults{racyFetch: true}, "ConcurrentFetchersNoDuplicates"},
	"releaseCounts":       {faults{releaseCounts: true}, "ReleaseReturnsToPending"},
	"retainOldest":        {faults{retainOldest: true}, "RetentionRemovesCompleted"},
	"closeNoop":           {faults{closeNoop: true}, "ClosedBroker"},
	"skipValidate":        {faults{skipValidate: true}, "InvalidInput"},
	"dropResult":          {faults{dropResult: true}, "CompleteStoresResult"},
	"fetchNoPromote":      {faults{fetchNoPromote: true}, "DelayedInvisibleBeforeDue"},
	"finishedOldest":      {faults{finishedOldest: true}, "JobList"},
	"cursorIsOffset":      {faults{cursorIsOffset: true}, "JobListCursor"},
	"expiredAsDead":       {faults{expiredAsDead: true}, "QueueStats"},
	"queueListReversed":   {faults{queueListReversed: true}, "QueueList"},
	"ignoreProgress":      {faults{ignoreProgress: true}, "Progress"},
	"dropHeaders":         {faults{dropHeaders: true}, "InsertRoundTrip"},
	"deleteActive":        {faults{deleteActive: true}, "JobGetDelete"},
	"ignoreFailMax":       {faults{ignoreFailMax: true}, "FailMaxAttemptsOverride"},
	"failDropsHeaders":    {faults{failDropsHeaders: true}, "FailMergesHeaders"},
	"failReplacesHeaders": {faults{failReplacesHeaders: true}, "FailMergesHeaders"},
	"commitDropsHeaders":  {faults{commitDropsHeaders: true}, "FailMergesHeaders"},
	"oldestFirstInLine":   {faults{oldestFirstInLine: true}, "OldestPending"},
	"leaderSteal":         {faults{leaderSteal: true}, "LeaderLease"},
	"leaderExtendNoop":    {faults{leaderExtendNoop: true}, "LeaderLease"},
	// The primitive's faults, caught by its own cases and by the workflow
	// and schedule rules built on it.
	"commitNotAtomic":          {faults{commitNotAtomic: true}, "CommitAllOrNothing"},
	"commitAnyToken":           {faults{commitAnyToken: true}, "CommitFenced"},
	"commitAnyToken/workflow":  {faults{commitAnyToken: true}, "WorkflowStaleTokenRejected"},
	"casIgnoresVersion":        {faults{casIgnoresVersion: true}, "CommitCompareAndSet"},
	"optionalAborts":           {faults{optionalAborts: true}, "CommitOptionalInsert"},
	"optionalAborts/schedule":  {faults{optionalAborts: true}, "ScheduleUniqueOverlap"},
	"optionalWrites":           {faults{optionalWrites: true}, "CommitOptionalInsert"},
	"ignoreNotBefore":          {faults{ignoreNotBefore: true}, "CommitNotBefore"},
	"ignoreNotBefore/schedule": {faults{ignoreNotBefore: true}, "ScheduleClaimRefusals"},
	"docListReversed":          {faults{docListReversed: true}, "DocIndexList"},
	"rescheduleKeepsTTL":       {faults{rescheduleKeepsTTL: true}, "JobReschedule"},
	"docListReversed/runs":     {faults{docListReversed: true}, "WorkflowRetentionByCount"},

	"scopedGetIgnoresTenant":     {faults{scopedGetIgnoresTenant: true}, "TenantScope"},
	"scopedCancelIgnoresTenant":  {faults{scopedCancelIgnoresTenant: true}, "TenantScope"},
	"scopedRetryIgnoresTenant":   {faults{scopedRetryIgnoresTenant: true}, "TenantScope"},
	"scopedDeleteIgnoresTenant":  {faults{scopedDeleteIgnoresTenant: true}, "TenantScope"},
	"scopedListLeaks":            {faults{scopedListLeaks: true}, "TenantList"},
	"scopedStatsCountAll":        {faults{scopedStatsCountAll: true}, "TenantList"},
	"scopedStatsCountAll/recent": {faults{scopedStatsCountAll: true}, "RecentCompletions"},
	"recentCountsFinished":       {faults{recentCountsFinished: true}, "RecentCompletions"},
	"scopeSeesUntenanted":        {faults{scopeSeesUntenanted: true}, "TenantScope"},
	"scopeHintsExistence":        {faults{scopeHintsExistence: true}, "TenantScope"},

	// Retention, delete on complete and the rules item 7 pins.
	"ttlExpiresActive":   {faults{ttlExpiresActive: true}, "TTLNeverExpiresActive"},
	"retryReleasesKey":   {faults{retryReleasesKey: true}, "UniqueKeyHeldWhileRetrying"},
	"retainCancelled":    {faults{retainCancelled: true}, "RetentionOnlyCompleted"},
	"maintainNoMore":     {faults{maintainNoMore: true}, "RetentionKeepsPace"},
	"idleWithActive":     {faults{idleWithActive: true}, "MaintainReportsIdle"},
	"keepDeleted":        {faults{keepDeleted: true}, "DeleteOnComplete"},
	"commitKeepsDeleted": {faults{commitKeepsDeleted: true}, "DeleteOnComplete"},
	"recoveredToBack":    {faults{recoveredToBack: true}, "RecoveredKeepPlace"},

	"historyUntrimmed":   {faults{historyUntrimmed: true}, "AttemptHistory"},
	"historyNoRecovery":  {faults{historyNoRecovery: true}, "AttemptHistory"},
	"historyNoCancelled": {faults{historyNoCancelled: true}, "AttemptHistory"},

	"quarantineIgnored":     {faults{quarantineIgnored: true}, "QuarantineAfterCrashes"},
	"quarantineAnyExpiries": {faults{quarantineAnyExpiries: true}, "QuarantineAfterCrashes"},
	"crashSpreadIgnored":    {faults{crashSpreadIgnored: true}, "QuarantineAfterCrashes"},
	// In-place rewrites (broker.JobRewriter), which key rotation uses.
	"rewriteIgnoresOld": {faults{rewriteIgnoresOld: true}, "JobRewriteCompareAndSet"},
	"rewritePartial":    {faults{rewritePartial: true}, "JobRewriteCompareAndSet"},

	// Fairness between tenants and their caps (broker/fair.go).
	"fairIgnoresWeight":   {faults{fairIgnoresWeight: true}, "FairOrder"},
	"fairAlways":          {faults{fairAlways: true}, "FairOrder"},
	"fairNoClock":         {faults{fairNoClock: true}, "FairOrder"},
	"fairCrossesPriority": {faults{fairCrossesPriority: true}, "FairPriorityFirst"},
	"capIgnored":          {faults{capIgnored: true}, "TenantCapConcurrent"},
	"capLeaksOnRecovery":  {faults{capLeaksOnRecovery: true}, "TenantCapReleased"},
	"rateIgnored":         {faults{rateIgnored: true}, "RateLimit"},
	"tenantPauseIgnored":  {faults{tenantPauseIgnored: true}, "TenantPause"},
}

// TestMemory runs the suite against the in-memory reference broker, with
// no fault unless the parent test asked for one.
func TestMemory(t *testing.T) {
	var f faults
	if name := os.Getenv(faultEnv); name != "" {
		fc, ok := faultCases[name]
		if !ok {
			t.Fatalf("unknown fault %q", name)
		}
		f = fc.f
	}
	brokertest.Run(t, func(t *testing.T) broker.Broker { return newMemBroker(f) })
}

// TestSuiteCatchesFaults shows that each case fails when its rule is
// broken: it re-runs TestMemory in a child process per fault, limited to
// the case that must catch it, and expects that case to fail.
func TestSuiteCatchesFaults(t *testing.T) {
	if os.Getenv(faultEnv) != "" {
		t.Skip("running as a fault child")
	}
	for name, fc := range faultCases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestMemory$/^"+fc.want+"$", "-test.v", "-test.timeout=60s")
			cmd.Env = append(os.Environ(), faultEnv+"="+name)
			out, err := cmd.CombinedOutput()
			if err == nil || !strings.Contains(string(out), "--- FAIL: TestMemory/"+fc.want) {
				t.Fatalf("with fault %s, case %s did not fail (err %v):\n%s", name, fc.want, err, out)
			}
			t.Logf("case %s caught fault %s:\n%s", fc.want, name, firstFailure(string(out)))
		})
	}
}

// firstFailure returns the first failure message of a child's output.
func firstFailure(out string) string {
	for line := range strings.SplitSeq(out, "\n") {
		if strings.Contains(line, ".go:") {
			return strings.TrimSpace(line)
		}
	}
	return ""
}
