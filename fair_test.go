package worker_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/broker"
)

// TestQueueFairTurnedOnAtStart: a Manager whose queue asks for fairness
// turns it on in the broker at Start, keeping the tenants' stored weights
// and caps, and a Manager started without it leaves it on (every worker
// agrees on what the broker stores).
func TestQueueFairTurnedOnAtStart(t *testing.T) {
	eachEngine(t, func(t *testing.T, b broker.Broker) {
		ctx := context.Background()
		c := newClient(t, b)
		stored := &broker.FairPolicy{Queue: "reports", MaxActive: 10, Tenants: map[string]broker.TenantShare{"acme": {Weight: 3}}}
		if err := c.SetFairPolicy(ctx, stored); err != nil {
			t.Fatal(err)
		}
		startManager(t, newManager(t, b, fastConfig(worker.QueueConfig{Name: "reports", Fair: true})))
		p, err := c.FairPolicy(ctx, "reports")
		if err != nil {
			t.Fatal(err)
		}
		if !p.Fair || p.MaxActive != 10 || p.WeightOf("acme") != 3 {
			t.Fatalf("policy after Start = %+v; want fair on with the stored cap 10 and acme's weight 3", p)
		}
		startManager(t, newManager(t, b, fastConfig(worker.QueueConfig{Name: "reports"})))
		if p, err := c.FairPolicy(ctx, "reports"); err != nil || !p.Fair {
			t.Fatalf("policy after a Manager without Fair started = %+v, %v; want fairness left on", p, err)
		}
	})
}

// TestSetFairPolicyRefusesBadInput: invalid policies and tenant-scoped
// clients are refused with an error naming what is wrong; nothing is
// stored.
func TestSetFairPolicyRefusesBadInput(t *testing.T) {
	eachEngine(t, func(t *testing.T, b broker.Broker) {
		ctx := context.Background()
		c := newClient(t, b)
		for _, tc := range []struct {
			p    *broker.FairPolicy
			want string
		}{
			{nil, "fair policy is nil"},
			{&broker.FairPolicy{Queue: "bad queue"}, "queue name"},
			{&broker.FairPolicy{Queue: "q", MaxActive: -1}, "max active -1"},
			{&broker.FairPolicy{Queue: "q", Tenants: map[string]broker.TenantShare{"acme": {Weight: broker.MaxWeight + 1}}}, `weight 1001 of tenant "acme"`},
			{&broker.FairPolicy{Queue: "q", Tenants: map[string]broker.TenantShare{"acme": {MaxActive: -2}}}, `max active -2 of tenant "acme"`},
		} {
			err := c.SetFairPolicy(ctx, tc.p)
			if !errors.Is(err, broker.ErrInvalidJob) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("SetFairPolicy(%+v) = %v; want ErrInvalidJob naming %q", tc.p, err, tc.want)
			}
		}
		if p, err := c.FairPolicy(ctx, "q"); err != nil || p.Fair || p.MaxActive != 0 || len(p.Tenants) != 0 {
			t.Errorf("policy of q after refused sets = %+v, %v; want the zero policy", p, err)
		}
		scoped, err := c.Tenant("acme")
		if err != nil {
			t.Fatal(err)
		}
		if err := scoped.SetFairPolicy(ctx, &broker.FairPolicy{Queue: "q", Fair: true}); err == nil || !strings.Contains(err.Error(), `scoped to tenant "acme"`) {
			t.Errorf("SetFairPolicy by a client scoped to acme = %v; want a refusal naming the scope", err)
		}
	})
}

// TestPauseTenant: a paused tenant's jobs wait while another tenant's run,
// and run once it is resumed; a scoped client may pause only its own
// tenant.
func TestPauseTenant(t *testing.T) {
	eachEngine(t, func(t *testing.T, b broker.Broker) {
		ctx := context.Background()
		c := newClient(t, b)
		if err := c.PauseTenant(ctx, "default", "t-a"); err != nil {
			t.Fatal(err)
		}
		ran := make(chan string, 4)
		m := newManager(t, b, fastConfig())
		_ = m.HandleFunc("work", func(_ context.Context, j *worker.Job) error { ran <- j.TenantID; return nil })
		startManager(t, m)
		for _, tn := range []string{"t-a", "t-b"} {
			if _, err := c.Add(ctx, "default", worker.JobSpec{Type: "work", TenantID: tn}); err != nil {
				t.Fatal(err)
			}
		}
		next := func() string {
			t.Helper()
			select {
			case tn := <-ran:
				return tn
			case <-time.After(10 * time.Second):
				t.Fatal("no job ran within 10s")
				return ""
			}
		}
		if tn := next(); tn != "t-b" {
			t.Fatalf("first job run was tenant %s's, want t-b's (t-a is paused)", tn)
		}
		st, err := c.Stats(ctx, "default")
		if err != nil {
			t.Fatal(err)
		}
		scoped, err := c.Tenant("t-a")
		if err != nil {
			t.Fatal(err)
		}
		sst, err := scoped.Stats(ctx, "default")
		if err != nil || !sst.TenantPaused || sst.Pending != 1 || st.Paused {
			t.Fatalf("stats of t-a = %+v, %v; want tenant paused, 1 pending, queue not paused", sst, err)
		}
		if err := scoped.PauseTenant(ctx, "default", "t-b"); err == nil || !strings.Contains(err.Error(), `cannot act on tenant "t-b"`) {
			t.Fatalf("a client scoped to t-a paused t-b: %v", err)
		}
		if err := scoped.ResumeTenant(ctx, "default", "t-a"); err != nil {
			t.Fatal(err)
		}
		if tn := next(); tn != "t-a" {
			t.Fatalf("after resuming ran tenant %s's job, want t-a's", tn)
		}
	})
}
