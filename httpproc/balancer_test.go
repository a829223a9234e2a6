package httpproc_test

import (
	"context"
	"net/http"
	"net/url"
	"testing"
	"time"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/httpproc"
	"github.com/aibos/worker/internal/testbroker"
	"github.com/aibos/worker/internal/testwait"
	"github.com/aibos/worker/scale"
)

// TestBalancedEndpoint: an endpoint with three instances behind a real
// scale.Balancer, one of them answering 503: every job completes on its
// first attempt (the balancer fails over within the call), and once
// FailureThreshold node failures eject the sick instance it gets no more
// calls.
func TestBalancedEndpoint(t *testing.T) {
	testbroker.Each(t, func(t *testing.T, b broker.Broker) {
		ok := func(_ int, _ []byte, w http.ResponseWriter, r *http.Request) { answer(w, http.StatusOK, `{"ok":true}`) }
		sick := newServer(t, testSecret, func(_ int, _ []byte, w http.ResponseWriter, r *http.Request) {
			answer(w, http.StatusServiceUnavailable, "")
		})
		servers := []*server{newServer(t, testSecret, ok), sick, newServer(t, testSecret, ok)}
		var nodes []scale.Node
		for _, s := range servers {
			u, _ := url.Parse(s.URL)
			nodes = append(nodes, scale.Node{Addr: u.Host})
		}
		bal, err := scale.NewBalancer(scale.BalancerConfig{Nodes: nodes, FailureThreshold: 2, Cooldown: time.Hour,
			HealthCheck: scale.HealthCheck{Interval: -1}, Logger: discardLogger()})
		if err != nil {
			t.Fatal(err)
		}
		p, err := httpproc.New(httpproc.EndpointConfig{Instances: bal, Path: "/jobs/payment", Secret: testSecret,
			Client: servers[0].Client()})
		if err != nil {
			t.Fatal(err)
		}
		m, err := worker.NewManager(b, managerConfig("payments", discardLogger()))
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Register("payment.processing", p); err != nil {
			t.Fatal(err)
		}
		startManager(t, m)
		client, _ := worker.NewClient(b, worker.ClientConfig{})
		const n = 30
		ids := make([]string, n)
		for i := range ids {
			j, err := client.Add(context.Background(), "payments", worker.JobSpec{Type: "payment.processing", MaxAttempts: 1,
				Data: map[string]int{"n": i}})
			if err != nil {
				t.Fatal(err)
			}
			ids[i] = j.ID
		}
		for _, id := range ids {
			var j *worker.Job
			testwait.For(t, 10*time.Second, "job "+id+" to finish", func() bool {
				j, err = client.Get(context.Background(), "payments", id)
				return err == nil && (j.State == worker.StateCompleted || j.State == worker.StateDead)
			})
			if j.State != worker.StateCompleted || string(j.Result) != `{"ok":true}` {
				t.Errorf("job %s: %s, result %s, last error %q; want completed on its only attempt", id, j.State, j.Result, j.LastError)
			}
		}
		got := make([]int, len(servers))
		for i, s := range servers {
			got[i] = len(s.received())
			for _, c := range s.received() {
				if c.verified != nil {
					t.Errorf("instance %d got a call that does not verify: %v", i, c.verified)
				}
			}
		}
		// Calls already under way when the sick instance is ejected still
		// reach it: at most one per other job running at the time.
		maxSick := 2 + m.Config().Concurrency - 1
		if got[1] < 2 || got[1] > maxSick || got[0]+got[2] != n || got[0] == 0 || got[2] == 0 {
			t.Errorf("calls per instance %v: want 2 to %d to the sick one (then ejected), %d over the others", got, maxSick, n)
		}
	})
}
