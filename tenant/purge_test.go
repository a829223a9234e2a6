package tenant_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/internal/runstore"
	"github.com/aibos/worker/internal/schedstore"
	"github.com/aibos/worker/internal/testbroker"
	"github.com/aibos/worker/internal/testwait"
	"github.com/aibos/worker/tenant"
)

// seed puts one job of each tenant in every state, each state in its own
// queue (so that fetching leases exactly those jobs), and one schedule per
// tenant.
func seed(t *testing.T, b broker.Broker, tenants ...string) {
	t.Helper()
	ctx := context.Background()
	insert := func(queue, tn string, p broker.JobInsertParams) {
		p.ID, p.Queue, p.Type, p.TenantID, p.MaxAttempts = queue+"-"+tn, queue, "t", tn, 1
		if _, err := b.JobInsert(ctx, &p); err != nil {
			t.Fatal(err)
		}
	}
	fetch := func(queue string) []*broker.Job {
		js, err := b.JobFetch(ctx, &broker.JobFetchParams{Queue: queue, Limit: 10, LeaseDuration: time.Hour})
		if err != nil || len(js) != len(tenants) {
			t.Fatalf("fetch %s: %d jobs, %v", queue, len(js), err)
		}
		return js
	}
	for _, tn := range tenants {
		insert("pending", tn, broker.JobInsertParams{})
		insert("scheduled", tn, broker.JobInsertParams{Delay: time.Hour})
		insert("active", tn, broker.JobInsertParams{})
		insert("completed", tn, broker.JobInsertParams{})
		insert("dead", tn, broker.JobInsertParams{})
		insert("cancelled", tn, broker.JobInsertParams{})
		insert("expired", tn, broker.JobInsertParams{TTL: time.Millisecond})
		if _, err := b.JobCancel(ctx, &broker.JobCancelParams{Queue: "cancelled", ID: "cancelled-" + tn}); err != nil {
			t.Fatal(err)
		}
		st, err := schedstore.New(b)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.ScheduleUpsert(ctx, &broker.Schedule{Name: "nightly-" + tn, Spec: "0 3 * * *",
			Job: broker.JobInsertParams{Queue: "reports", Type: "report", TenantID: tn, MaxAttempts: 1}}); err != nil {
			t.Fatal(err)
		}
	}
	rs, err := runstore.New(b)
	if err != nil {
		t.Fatal(err)
	}
	for _, tn := range tenants {
		// One running run (its step pending) and one cancelled (its step
		// cancelled).
		for _, run := range []string{"run-" + tn, "stopped-" + tn} {
			if _, _, err := rs.WorkflowRunCreate(ctx, &broker.WorkflowRunCreateParams{ID: run, Queue: "flows", Workflow: "wf", TenantID: tn,
				Steps: []broker.WorkflowStepDef{{Name: "s1", Job: broker.WorkflowJob{ID: run + "-s1", Type: "t", MaxAttempts: 1}}}}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := rs.WorkflowRunCancel(ctx, "flows", "stopped-"+tn); err != nil {
			t.Fatal(err)
		}
	}
	fetch("active")
	for _, j := range fetch("completed") {
		if errs, err := b.JobComplete(ctx, []*broker.JobCompleteParams{{JobLeaseParams: broker.JobLeaseParams{Queue: j.Queue, ID: j.ID, Token: j.LeaseToken}}}); err != nil || errs[0] != nil {
			t.Fatal(err, errs)
		}
	}
	for _, j := range fetch("dead") {
		if _, err := b.JobFail(ctx, &broker.JobFailParams{JobLeaseParams: broker.JobLeaseParams{Queue: j.Queue, ID: j.ID, Token: j.LeaseToken}, Discard: true}); err != nil {
			t.Fatal(err)
		}
	}
	testwait.For(t, 10*time.Second, "the TTL jobs to expire", func() bool {
		if _, err := b.QueueMaintain(ctx, &broker.QueueMaintainParams{Queue: "expired"}); err != nil {
			t.Fatal(err)
		}
		s, err := b.QueueStats(ctx, &broker.QueueStatsParams{Queue: "expired"})
		return err == nil && s.Expired == int64(len(tenants))
	})
}

// jobsOf returns the ids of tenant tn's jobs in every queue and state.
func jobsOf(t *testing.T, b broker.Broker, tn string) []string {
	t.Helper()
	ctx := context.Background()
	qs, err := b.QueueList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, q := range qs {
		for _, s := range broker.States {
			l, err := b.JobList(ctx, &broker.JobListParams{Queue: q, State: s, TenantID: tn, Limit: 1000})
			if err != nil {
				t.Fatal(err)
			}
			for _, j := range l.Jobs {
				ids = append(ids, fmt.Sprintf("%s/%s", s, j.ID))
			}
		}
	}
	slices.Sort(ids)
	return ids
}

func schedulesOf(t *testing.T, b broker.Broker) []string {
	t.Helper()
	st, err := schedstore.New(b)
	if err != nil {
		t.Fatal(err)
	}
	l, err := st.ScheduleList(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range l.Schedules {
		names = append(names, s.Name)
	}
	slices.Sort(names)
	return names
}

func TestPurge(t *testing.T) {
	testbroker.Each(t, func(t *testing.T, b broker.Broker) {
		ctx := context.Background()
		seed(t, b, "a", "b")
		beforeB := jobsOf(t, b, "b")
		if len(beforeB) != len(broker.States)+2 {
			t.Fatalf("tenant b has %v, want one job per state and two of runs", beforeB)
		}

		dry, err := tenant.Purge(ctx, b, "a", true)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range broker.States {
			want := 1
			if s == broker.StatePending || s == broker.StateCancelled {
				want = 2 // a run's step
			}
			if dry.Jobs[s] != want {
				t.Errorf("dry run counts %d %s jobs, want %d", dry.Jobs[s], s, want)
			}
		}
		if dry.Runs != 2 {
			t.Errorf("dry run counts %d runs, want 2", dry.Runs)
		}
		if !slices.Equal(dry.Schedules, []string{"nightly-a"}) {
			t.Errorf("dry run names schedules %v, want nightly-a", dry.Schedules)
		}
		if got := jobsOf(t, b, "a"); len(got) != len(broker.States)+2 {
			t.Fatalf("the dry run removed jobs: %v left", got)
		}

		res, err := tenant.Purge(ctx, b, "a", false)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(res.Jobs) != fmt.Sprint(dry.Jobs) {
			t.Errorf("purge removed %v, the dry run counted %v", res.Jobs, dry.Jobs)
		}
		if left := jobsOf(t, b, "a"); len(left) != 0 {
			t.Errorf("tenant a still has jobs after the purge: %v", left)
		}
		if got := schedulesOf(t, b); !slices.Equal(got, []string{"nightly-b"}) {
			t.Errorf("schedules after the purge: %v, want only nightly-b", got)
		}
		if res.Runs != 2 {
			t.Errorf("purge removed %d runs, want 2", res.Runs)
		}
		rs, err := runstore.New(b)
		if err != nil {
			t.Fatal(err)
		}
		for _, run := range []string{"run-a", "stopped-a"} {
			if r, err := rs.WorkflowRunGet(ctx, "flows", run); !errors.Is(err, broker.ErrNotFound) {
				t.Errorf("run %s after the purge: %v, %v; want ErrNotFound", run, r, err)
			}
		}
		for _, run := range []string{"run-b", "stopped-b"} {
			if _, err := rs.WorkflowRunGet(ctx, "flows", run); err != nil {
				t.Errorf("tenant b's run %s after tenant a's purge: %v", run, err)
			}
		}
		if got := jobsOf(t, b, "b"); !slices.Equal(got, beforeB) {
			t.Errorf("tenant b's jobs changed: %v, want %v", got, beforeB)
		}
		// The active job's lease was revoked: its worker cannot complete it.
		errs, err := b.JobComplete(ctx, []*broker.JobCompleteParams{{JobLeaseParams: broker.JobLeaseParams{Queue: "active", ID: "active-a", Token: 1}}})
		if err != nil || errs[0] == nil {
			t.Errorf("completing the purged active job: %v, %v; want an error", err, errs)
		}
	})
}
