package httpproc_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/httpproc"
	"github.com/aibos/worker/internal/testbroker"
	"github.com/aibos/worker/internal/testwait"
)

// failover is the least Instances can be: try each node in order while
// the last one failed as a node. It records whether each failure said
// NodeFailure, which is what a real balancer acts on.
type failover struct {
	nodes []string
	mu    sync.Mutex
	seen  map[string]bool // node -> its last error was a node failure
}

func (f *failover) Do(ctx context.Context, try func(ctx context.Context, node string) error) error {
	var err error
	for _, n := range f.nodes {
		err = try(ctx, n)
		var nf interface{ NodeFailure() bool }
		down := errors.As(err, &nf) && nf.NodeFailure()
		f.mu.Lock()
		f.seen[n] = down
		f.mu.Unlock()
		if !down {
			return err
		}
	}
	return err
}

// TestInstancesFailOver: a call through Instances goes to host:port +
// Path; a node that refuses connections or answers 502/503/504 is a node
// failure (the balancer tries the next), other answers are not.
func TestInstancesFailOver(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadNode := ln.Addr().String()
	_ = ln.Close() // nothing listens there now: connections are refused
	status := map[string]int{"/503": 503, "/502": 502, "/504": 504, "/500": 500, "/404": 404, "/200": 200}
	srv := newServer(t, testSecret, func(_ int, _ []byte, w http.ResponseWriter, r *http.Request) {
		answer(w, status[r.URL.Path], "")
	})
	u, _ := url.Parse(srv.URL)
	for path, wantNodeFailure := range map[string]bool{"/503": true, "/502": true, "/504": true, "/500": false, "/404": false, "/200": false} {
		t.Run(path, func(t *testing.T) {
			inst := &failover{nodes: []string{deadNode, u.Host}, seen: map[string]bool{}}
			p, err := httpproc.New(httpproc.EndpointConfig{Instances: inst, Path: path, Secret: testSecret, Client: srv.Client()})
			if err != nil {
				t.Fatal(err)
			}
			err = p.Process(context.Background(), &worker.Job{ID: "j1", Queue: "q", Type: "t", Attempt: 1, MaxAttempts: 1})
			if path == "/200" && err != nil {
				t.Fatalf("Process: %v", err)
			}
			inst.mu.Lock()
			defer inst.mu.Unlock()
			if !inst.seen[deadNode] {
				t.Errorf("a refused connection was not a node failure")
			}
			if got, tried := inst.seen[u.Host]; !tried || got != wantNodeFailure {
				t.Errorf("answer %s: node failure %v (tried %v), want %v", path, got, tried, wantNodeFailure)
			}
		})
	}
}

// TestInstancesEndToEnd: on a real broker, a job bound to an endpoint with
// two instances, one of them down, completes through the live one.
func TestInstancesEndToEnd(t *testing.T) {
	b := testbroker.SQLite(t)
	srv := newServer(t, testSecret, func(_ int, _ []byte, w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/jobs/report" {
			answer(w, http.StatusNotFound, "")
			return
		}
		answer(w, http.StatusOK, `{"rows":3}`)
	})
	u, _ := url.Parse(srv.URL)
	inst := &failover{nodes: []string{"127.0.0.1:1", u.Host}, seen: map[string]bool{}}
	p, err := httpproc.New(httpproc.EndpointConfig{Instances: inst, Path: "/jobs/report", Secret: testSecret, Client: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	m, err := worker.NewManager(b, managerConfig("reports", discardLogger()))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Register("report.generate", p); err != nil {
		t.Fatal(err)
	}
	startManager(t, m)
	client, _ := worker.NewClient(b, worker.ClientConfig{})
	job, err := client.Add(context.Background(), "reports", worker.JobSpec{Type: "report.generate"})
	if err != nil {
		t.Fatal(err)
	}
	var got *worker.Job
	testwait.For(t, 10*time.Second, "the job to complete", func() bool {
		got, err = client.Get(context.Background(), "reports", job.ID)
		return err == nil && got.State == worker.StateCompleted
	})
	if string(got.Result) != `{"rows":3}` || got.Attempt != 1 {
		t.Errorf("result %s after %d attempts, want {\"rows\":3} after 1", got.Result, got.Attempt)
	}
}
