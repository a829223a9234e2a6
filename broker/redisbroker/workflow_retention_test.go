package redisbroker_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/broker/redisbroker"
	"github.com/aibos/worker/internal/redistest"
	"github.com/aibos/worker/internal/runstore"
)

// TestWorkflowRetentionLeavesNoKey drives runs (package workflow's rules,
// internal/runstore, on this broker's Commit) to every finished state
// (with compensations, hooks and an idempotency key), removes them by
// retention, and scans the whole prefix: no key, zset member, set member
// or string value of a removed run is left, and the running run is intact.
func TestWorkflowRetentionLeavesNoKey(t *testing.T) {
	ctx := context.Background()
	rdb, prefix := redistest.Client(t), redistest.Prefix(t)
	rb, err := redisbroker.New(rdb, redisbroker.Config{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rb.Close() })
	b, err := runstore.New(rb)
	if err != nil {
		t.Fatal(err)
	}
	const q = "wf-keys"
	tpl := func(id string) *broker.WorkflowJob {
		return &broker.WorkflowJob{ID: id, Type: "t", Data: []byte(`{"x":1}`), MaxAttempts: 1}
	}
	newRun := func(id string) {
		t.Helper()
		p := &broker.WorkflowRunCreateParams{ID: id, Queue: q, Workflow: "keys", TenantID: "t1", IdempotencyKey: "key-of-" + id,
			Steps: []broker.WorkflowStepDef{
				{Name: "A", Job: *tpl(id + "-A"), Compensation: tpl(id + "-undo-A")},
				{Name: "B", DependsOn: []string{"A"}, Job: *tpl(id + "-B")},
			},
			OnSuccess: tpl(id + "-ok"), OnFailure: tpl(id + "-fail"),
		}
		if _, created, err := b.WorkflowRunCreate(ctx, p); err != nil || !created {
			t.Fatalf("create %s: created %v, %v", id, created, err)
		}
	}
	next := func(run, want string) *broker.Job {
		t.Helper()
		jobs := fetch(t, rb, q, 1, time.Minute)
		if len(jobs) != 1 || jobs[0].ID != want {
			t.Fatalf("run %s: fetched %v, want %s", run, idsOf(jobs), want)
		}
		return jobs[0]
	}
	complete := func(run, want string) {
		t.Helper()
		j := next(run, want)
		err := b.WorkflowJobComplete(ctx, &broker.WorkflowJobCompleteParams{Run: run,
			JobCompleteParams: broker.JobCompleteParams{JobLeaseParams: leaseOf(j), Result: []byte(`{"done":true}`)}})
		if err != nil {
			t.Fatalf("complete %s: %v", want, err)
		}
	}
	failJob := func(run, want string) {
		t.Helper()
		j := next(run, want)
		_, err := b.WorkflowJobFail(ctx, &broker.WorkflowJobFailParams{Run: run,
			JobFailParams: broker.JobFailParams{JobLeaseParams: leaseOf(j), Error: "boom"}})
		if err != nil {
			t.Fatalf("fail %s: %v", want, err)
		}
	}

	newRun("gone-ok") // succeeded; its success hook completed
	complete("gone-ok", "gone-ok-A")
	complete("gone-ok", "gone-ok-B")
	complete("gone-ok", "gone-ok-ok")
	newRun("gone-failed") // failed; compensated; its failure hook dead
	complete("gone-failed", "gone-failed-A")
	failJob("gone-failed", "gone-failed-B")
	complete("gone-failed", "gone-failed-undo-A")
	failJob("gone-failed", "gone-failed-fail")
	newRun("gone-cancelled") // cancelled while its first step was active
	next("gone-cancelled", "gone-cancelled-A")
	if _, err := b.WorkflowRunCancel(ctx, q, "gone-cancelled"); err != nil {
		t.Fatal(err)
	}
	newRun("kept") // running: never removed
	removedIDs := []string{"gone-ok", "gone-failed", "gone-cancelled"}

	if leftovers := keysOf(t, rdb, prefix, removedIDs); len(leftovers) == 0 {
		t.Fatal("before retention the scan finds nothing of the finished runs: the scan checks nothing")
	}
	removed := 0
	eventually(t, "retention to remove the three finished runs", func() bool {
		n, err := b.WorkflowRunMaintain(ctx, &broker.WorkflowRunMaintainParams{Queue: q, FinishedMaxAge: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		removed += n
		return removed == 3
	})
	if leftovers := keysOf(t, rdb, prefix, removedIDs); len(leftovers) > 0 {
		t.Fatalf("after retention, Redis still holds traces of removed runs:\n%s", strings.Join(leftovers, "\n"))
	}
	if run, err := b.WorkflowRunGet(ctx, q, "kept"); err != nil || run.State != broker.WorkflowRunning {
		t.Fatalf("running run after retention: %+v, %v", run, err)
	}
	if run, created, err := b.WorkflowRunCreate(ctx, &broker.WorkflowRunCreateParams{ID: "other", Queue: q, Workflow: "keys",
		IdempotencyKey: "key-of-kept", Steps: []broker.WorkflowStepDef{{Name: "A", Job: *tpl("other-A")}}}); err != nil || created || run.ID != "kept" {
		t.Fatalf("the running run's idempotency key: run %v created %v, %v; want run kept, not created", run, created, err)
	}
	if n, err := b.WorkflowRunMaintain(ctx, &broker.WorkflowRunMaintainParams{Queue: q, FinishedMaxCount: 1}); err != nil || n != 0 {
		t.Fatalf("retention with nothing finished removed %d runs, %v", n, err)
	}
}

// keysOf scans every key under prefix and describes each trace of the
// given run ids: a key whose name holds one, or a zset member, set member,
// list element, hash value or string value that does.
func keysOf(t *testing.T, rdb *redis.Client, prefix string, runs []string) []string {
	t.Helper()
	ctx := context.Background()
	var traces []string
	has := func(where, s string) {
		for _, id := range runs {
			if strings.Contains(s, id) {
				traces = append(traces, where+": "+s)
				return
			}
		}
	}
	iter := rdb.Scan(ctx, 0, prefix+":*", 100).Iterator()
	for iter.Next(ctx) {
		key := iter.Val()
		has("key", key)
		var values []string
		var err error
		switch typ := rdb.Type(ctx, key).Val(); typ {
		case "zset":
			values, err = rdb.ZRange(ctx, key, 0, -1).Result()
		case "set":
			values, err = rdb.SMembers(ctx, key).Result()
		case "list": // a job's attempt history
			values, err = rdb.LRange(ctx, key, 0, -1).Result()
		case "hash":
			var h map[string]string
			h, err = rdb.HGetAll(ctx, key).Result()
			for _, v := range h {
				values = append(values, v)
			}
		case "string":
			var v string
			v, err = rdb.Get(ctx, key).Result()
			values = []string{v}
		default:
			t.Fatalf("key %s has unexpected type %q", key, typ)
		}
		if err != nil {
			t.Fatalf("read %s: %v", key, err)
		}
		for _, v := range values {
			has("value in "+key, v)
		}
	}
	if err := iter.Err(); err != nil {
		t.Fatalf("scan %s: %v", prefix, err)
	}
	return traces
}
