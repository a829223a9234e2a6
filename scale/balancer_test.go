package scale_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/aibos/worker/scale"
)

// noLeaks checks, after every other cleanup of t, that no goroutine is left.
func noLeaks(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
}

func nodes(addrs ...string) []scale.Node {
	out := make([]scale.Node, len(addrs))
	for i, a := range addrs {
		out[i] = scale.Node{Addr: a}
	}
	return out
}

// newBalancer returns a Balancer over cfg, quiet, with active checks off
// unless cfg sets an Interval.
func newBalancer(t *testing.T, cfg scale.BalancerConfig) *scale.Balancer {
	t.Helper()
	if cfg.HealthCheck.Interval == 0 {
		cfg.HealthCheck.Interval = -1
	}
	cfg.Logger = slog.New(slog.DiscardHandler)
	b, err := scale.NewBalancer(cfg)
	if err != nil {
		t.Fatalf("NewBalancer: %v", err)
	}
	t.Cleanup(b.Close)
	return b
}

func TestBalancerConfigErrors(t *testing.T) {
	ok := nodes("a:1")
	for _, tc := range []struct {
		name string
		cfg  scale.BalancerConfig
		want string
	}{
		{"no nodes", scale.BalancerConfig{}, "Nodes is empty"},
		{"unknown algorithm", scale.BalancerConfig{Nodes: ok, Algorithm: "random"}, `Algorithm "random" is not one of`},
		{"no port", scale.BalancerConfig{Nodes: nodes("worker-1")}, `Nodes[0].Addr "worker-1" is not host:port`},
		{"no host", scale.BalancerConfig{Nodes: nodes(":3001")}, `Nodes[0].Addr ":3001" has no host`},
		{"bad port", scale.BalancerConfig{Nodes: nodes("a:1", "b:http")}, `Nodes[1].Addr "b:http" has port "http", not a number`},
		{"port out of range", scale.BalancerConfig{Nodes: nodes("a:70000")}, `has port "70000", not a number from 1 to 65535`},
		{"duplicate", scale.BalancerConfig{Nodes: nodes("a:1", "b:1", "a:1")}, `Nodes[2].Addr "a:1" is listed twice`},
		{"negative weight", scale.BalancerConfig{Nodes: []scale.Node{{Addr: "a:1", Weight: -2}}}, "Nodes[0].Weight -2 is negative"},
		{"negative threshold", scale.BalancerConfig{Nodes: ok, FailureThreshold: -1}, "FailureThreshold -1 is negative"},
		{"negative cooldown", scale.BalancerConfig{Nodes: ok, Cooldown: -time.Second}, "Cooldown -1s is negative"},
		{"negative timeout", scale.BalancerConfig{Nodes: ok, HealthCheck: scale.HealthCheck{Timeout: -1}}, "HealthCheck.Timeout -1ns is negative"},
		{"relative path", scale.BalancerConfig{Nodes: ok, HealthCheck: scale.HealthCheck{Path: "healthz"}}, `HealthCheck.Path "healthz" does not start with /`},
		{"bad scheme", scale.BalancerConfig{Nodes: ok, HealthCheck: scale.HealthCheck{Scheme: "ftp"}}, `HealthCheck.Scheme "ftp" is not http or https`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := scale.NewBalancer(tc.cfg)
			if err == nil {
				b.Close()
				t.Fatalf("NewBalancer accepted the config")
			}
			if !strings.HasPrefix(err.Error(), "scale: new balancer: ") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q, want it to start with %q and contain %q", err, "scale: new balancer: ", tc.want)
			}
		})
	}
}

func TestBalancerConfigDefaults(t *testing.T) {
	in := nodes("a:1", "[::1]:2")
	b := newBalancer(t, scale.BalancerConfig{Nodes: in})
	for _, s := range b.Nodes() {
		if s.Weight != 1 || !s.Healthy {
			t.Errorf("node %s: weight %d healthy %v, want 1 and true", s.Addr, s.Weight, s.Healthy)
		}
	}
	if in[0].Weight != 0 {
		t.Errorf("NewBalancer changed the caller's Nodes")
	}
}

// picks counts the nodes Next returns over n calls.
func picks(t *testing.T, b *scale.Balancer, n int) map[string]int {
	t.Helper()
	got := map[string]int{}
	for range n {
		addr, err := b.Next()
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		got[addr]++
	}
	return got
}

func TestBalancerRoundRobinSkipsEjectedEvenly(t *testing.T) {
	clk := &clock{now: time.Unix(1e9, 0)}
	b := newBalancer(t, scale.BalancerConfig{Nodes: nodes("a:1", "b:1", "c:1", "d:1"), FailureThreshold: 1, Now: clk.Now})
	failOn(t, b, "b:1")
	// The nodes after b must not inherit b's turns: a, c, d stay even.
	if got := picks(t, b, 300); got["a:1"] != 100 || got["c:1"] != 100 || got["d:1"] != 100 || got["b:1"] != 0 {
		t.Fatalf("picks with b ejected: %v, want a, c, d 100 each", got)
	}
}

// failOn runs Do until node has failed once, failing over to the others.
func failOn(t *testing.T, b *scale.Balancer, node string) {
	t.Helper()
	for range 10 {
		failed := false
		err := b.Do(context.Background(), func(_ context.Context, n string) error {
			if n == node {
				failed = true
				return scale.NodeFailure(errors.New("connection refused"))
			}
			return nil
		})
		if err != nil {
			t.Fatalf("Do: %v", err)
		}
		if failed {
			return
		}
	}
	t.Fatalf("Do never picked %s", node)
}

func TestBalancerWeighted(t *testing.T) {
	clk := &clock{now: time.Unix(1e9, 0)}
	b := newBalancer(t, scale.BalancerConfig{
		Algorithm: scale.Weighted, FailureThreshold: 1, Now: clk.Now,
		Nodes: []scale.Node{{Addr: "a:1", Weight: 5}, {Addr: "b:1", Weight: 3}, {Addr: "c:1"}},
	})
	if got := picks(t, b, 900); got["a:1"] != 500 || got["b:1"] != 300 || got["c:1"] != 100 {
		t.Fatalf("picks: %v, want a 500, b 300, c 100", got)
	}
	// Smooth: the heavy node's picks interleave with the others'.
	var seq []string
	for range 9 {
		n, _ := b.Next()
		seq = append(seq, n[:1])
	}
	if s := strings.Join(seq, ""); strings.Contains(s, "aaa") {
		t.Errorf("sequence %s runs a three times in a row, want picks interleaved", s)
	}
	failOn(t, b, "a:1")
	if got := picks(t, b, 400); got["b:1"] != 300 || got["c:1"] != 100 {
		t.Fatalf("picks with a ejected: %v, want b 300, c 100", got)
	}
}

func TestBalancerLeastOutstanding(t *testing.T) {
	b := newBalancer(t, scale.BalancerConfig{Algorithm: scale.LeastOutstanding, Nodes: nodes("a:1", "b:1", "c:1")})
	// With nothing in flight, ties go in turn.
	if got := picks(t, b, 30); got["a:1"] != 10 || got["b:1"] != 10 || got["c:1"] != 10 {
		t.Fatalf("idle picks: %v, want 10 each", got)
	}

	type held struct {
		node    string
		release func()
		done    chan error
	}
	hold := func() held {
		ch := make(chan struct{})
		var once sync.Once
		h := held{release: func() { once.Do(func() { close(ch) }) }, done: make(chan error, 1)}
		t.Cleanup(h.release) // even when the test fails early
		started := make(chan string)
		go func() {
			h.done <- b.Do(context.Background(), func(_ context.Context, n string) error {
				started <- n
				<-ch
				return nil
			})
		}()
		h.node = <-started
		return h
	}
	h1, h2 := hold(), hold()
	if h1.node == h2.node {
		t.Fatalf("two held tries both went to %s", h1.node)
	}
	free := map[string]bool{"a:1": true, "b:1": true, "c:1": true}
	delete(free, h1.node)
	delete(free, h2.node)
	for range 5 {
		n, _ := b.Next()
		if !free[n] {
			t.Fatalf("Next = %s while %s and %s each have a try in flight, want the idle node", n, h1.node, h2.node)
		}
	}
	outstanding := map[string]int{}
	for _, s := range b.Nodes() {
		outstanding[s.Addr] = s.Outstanding
	}
	if outstanding[h1.node] != 1 || outstanding[h2.node] != 1 {
		t.Errorf("outstanding %v, want 1 on %s and %s", outstanding, h1.node, h2.node)
	}
	h1.release()
	if err := <-h1.done; err != nil {
		t.Fatalf("Do: %v", err)
	}
	if n, _ := b.Next(); n == h2.node {
		t.Errorf("Next = %s, the one node still busy", n)
	}
	h2.release()
	if err := <-h2.done; err != nil {
		t.Fatalf("Do: %v", err)
	}
	for _, s := range b.Nodes() {
		if s.Outstanding != 0 {
			t.Errorf("node %s: %d outstanding after every try returned", s.Addr, s.Outstanding)
		}
	}
}

// TestBalancerPassiveEjectionAndCooldown follows a node through the
// passive check on an injected clock, with active checks off.
func TestBalancerPassiveEjectionAndCooldown(t *testing.T) {
	noLeaks(t)
	clk := &clock{now: time.Unix(1e9, 0)}
	b := newBalancer(t, scale.BalancerConfig{Nodes: nodes("a:1", "b:1", "c:1"), FailureThreshold: 3, Cooldown: 10 * time.Second, Now: clk.Now})
	var mu sync.Mutex
	bDown := true
	tries := map[string]int{}
	run := func(n int) {
		t.Helper()
		for range n {
			err := b.Do(context.Background(), func(_ context.Context, node string) error {
				mu.Lock()
				defer mu.Unlock()
				tries[node]++
				if node == "b:1" && bDown {
					return scale.NodeFailure(errors.New("connection refused"))
				}
				return nil
			})
			if err != nil {
				t.Fatalf("Do: %v", err) // failover must hide b's failures
			}
		}
	}
	count := func() map[string]int {
		mu.Lock()
		defer mu.Unlock()
		c := tries
		tries = map[string]int{}
		return c
	}

	run(60)
	if got := count(); got["b:1"] != 3 {
		t.Fatalf("b was tried %d times while down, want exactly FailureThreshold=3 before ejection (tries %v)", got["b:1"], got)
	}
	clk.advance(10*time.Second - time.Nanosecond)
	run(60)
	if got := count(); got["b:1"] != 0 {
		t.Fatalf("b was tried %d times within its cooldown, want 0", got["b:1"])
	}
	clk.advance(time.Nanosecond)
	run(60)
	// Half-open: one trial after the cooldown, and its failure ejects b again at once.
	if got := count(); got["b:1"] != 1 {
		t.Fatalf("b was tried %d times after its cooldown while still down, want 1 trial", got["b:1"])
	}
	if s := b.Nodes()[1]; s.Healthy || !s.EjectedUntil.Equal(clk.Now().Add(10*time.Second)) {
		t.Fatalf("b after a failed trial: %+v, want ejected for another cooldown", s)
	}
	clk.advance(10 * time.Second)
	mu.Lock()
	bDown = false
	mu.Unlock()
	run(60)
	if got := count(); got["b:1"] != 20 {
		t.Fatalf("b got %d of 60 tries after recovering, want its third, 20", got["b:1"])
	}
}

func TestBalancerDo(t *testing.T) {
	noLeaks(t)
	ctx := context.Background()
	t.Run("other errors are no failover", func(t *testing.T) {
		b := newBalancer(t, scale.BalancerConfig{Nodes: nodes("a:1", "b:1")})
		declined := errors.New("invoice rejected: 422")
		calls := 0
		err := b.Do(ctx, func(context.Context, string) error { calls++; return declined })
		if err != declined || calls != 1 {
			t.Fatalf("Do = %v after %d tries, want the try's own error after 1", err, calls)
		}
	})
	t.Run("every node fails", func(t *testing.T) {
		b := newBalancer(t, scale.BalancerConfig{Nodes: nodes("a:1", "b:1", "c:1"), FailureThreshold: 5})
		refused := errors.New("connection refused")
		seen := map[string]int{}
		err := b.Do(ctx, func(_ context.Context, n string) error { seen[n]++; return scale.NodeFailure(refused) })
		if !errors.Is(err, scale.ErrNoHealthyNode) || !errors.Is(err, refused) {
			t.Fatalf("Do = %v, want ErrNoHealthyNode wrapping the last try's error", err)
		}
		if len(seen) != 3 || seen["a:1"] != 1 || seen["b:1"] != 1 || seen["c:1"] != 1 {
			t.Fatalf("tries %v, want each node once", seen)
		}
	})
	t.Run("caller gave up", func(t *testing.T) {
		b := newBalancer(t, scale.BalancerConfig{Nodes: nodes("a:1", "b:1"), FailureThreshold: 1})
		cctx, cancel := context.WithCancel(ctx)
		calls := 0
		err := b.Do(cctx, func(context.Context, string) error {
			calls++
			cancel()
			return scale.NodeFailure(context.Canceled)
		})
		if !errors.Is(err, context.Canceled) || calls != 1 {
			t.Fatalf("Do = %v after %d tries, want the canceled try's error and no failover", err, calls)
		}
		for _, s := range b.Nodes() {
			if !s.Healthy || s.Failures != 0 {
				t.Fatalf("node %+v: a try the caller gave up on counted against it", s)
			}
		}
	})
	t.Run("nil try", func(t *testing.T) {
		b := newBalancer(t, scale.BalancerConfig{Nodes: nodes("a:1")})
		if err := b.Do(ctx, nil); err == nil || !strings.Contains(err.Error(), "try is nil") {
			t.Fatalf("Do(nil) = %v, want an error naming try", err)
		}
	})
	t.Run("panicking try releases its node", func(t *testing.T) {
		b := newBalancer(t, scale.BalancerConfig{Nodes: nodes("a:1")})
		func() {
			defer func() { _ = recover() }()
			_ = b.Do(ctx, func(context.Context, string) error { panic("processor bug") })
		}()
		if s := b.Nodes()[0]; s.Outstanding != 0 || !s.Healthy {
			t.Fatalf("node after a panicking try: %+v, want healthy with nothing outstanding", s)
		}
	})
}

func TestBalancerNoHealthyNode(t *testing.T) {
	b := newBalancer(t, scale.BalancerConfig{Nodes: nodes("a:1"), FailureThreshold: 1})
	failed := b.Do(context.Background(), func(context.Context, string) error {
		return scale.NodeFailure(errors.New("connection refused"))
	})
	if !errors.Is(failed, scale.ErrNoHealthyNode) {
		t.Fatalf("Do on the only, failing node = %v, want ErrNoHealthyNode", failed)
	}
	if _, err := b.Next(); !errors.Is(err, scale.ErrNoHealthyNode) {
		t.Fatalf("Next with every node ejected = %v, want ErrNoHealthyNode", err)
	}
	calls := 0
	err := b.Do(context.Background(), func(context.Context, string) error { calls++; return nil })
	if !errors.Is(err, scale.ErrNoHealthyNode) || calls != 0 {
		t.Fatalf("Do with every node ejected = %v after %d tries, want ErrNoHealthyNode and no try", err, calls)
	}
}

type refusal struct{ node bool }

func (r refusal) Error() string     { return fmt.Sprintf("refusal(node=%v)", r.node) }
func (r refusal) NodeFailure() bool { return r.node }

func TestIsNodeFailure(t *testing.T) {
	base := errors.New("dial tcp: connection refused")
	if scale.NodeFailure(nil) != nil {
		t.Errorf("NodeFailure(nil) is not nil")
	}
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{base, false},
		{scale.NodeFailure(base), true},
		{fmt.Errorf("post job: %w", scale.NodeFailure(base)), true},
		{errors.Join(base, scale.NodeFailure(base)), true},
		{refusal{node: true}, true},
		{refusal{node: false}, false},
		{fmt.Errorf("outer: %w", fmt.Errorf("%w: %w", refusal{node: false}, refusal{node: true})), true},
	} {
		if got := scale.IsNodeFailure(tc.err); got != tc.want {
			t.Errorf("IsNodeFailure(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
	if wrapped := scale.NodeFailure(base); !errors.Is(wrapped, base) || wrapped.Error() != base.Error() {
		t.Errorf("NodeFailure(base) = %q, want base's message and errors.Is to find base", wrapped)
	}
}

func TestBalancerCheckHealth(t *testing.T) {
	noLeaks(t)
	var mu sync.Mutex
	status := http.StatusServiceUnavailable
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/ready" {
			http.NotFound(w, r)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		w.WriteHeader(status)
	}))
	defer srv.Close()
	addr := srv.Listener.Addr().String()
	client := &http.Client{}
	defer client.CloseIdleConnections()
	b := newBalancer(t, scale.BalancerConfig{Nodes: nodes(addr, "other:1"), Client: client,
		HealthCheck: scale.HealthCheck{Path: "/ready", Interval: -1}})
	ctx := context.Background()

	err := b.CheckHealth(ctx, addr)
	if err == nil || !strings.Contains(err.Error(), "GET /ready answered 503") {
		t.Fatalf("CheckHealth of a 503 node = %v, want an error naming the status", err)
	}
	if b.Nodes()[0].Healthy {
		t.Fatalf("a failed health check left the node in rotation")
	}
	mu.Lock()
	status = http.StatusNoContent
	mu.Unlock()
	if err := b.CheckHealth(ctx, addr); err != nil {
		t.Fatalf("CheckHealth of a 204 node: %v", err)
	}
	if !b.Nodes()[0].Healthy {
		t.Fatalf("a passed health check did not take the node back")
	}
	if err := b.CheckHealth(ctx, "stranger:1"); err == nil || !strings.Contains(err.Error(), `"stranger:1": not a node`) {
		t.Fatalf("CheckHealth of an unknown node = %v, want an error naming it", err)
	}
}

func TestBalancerMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	b := newBalancer(t, scale.BalancerConfig{Name: "invoices", Registerer: reg, Nodes: nodes("a:1", "b:1"), FailureThreshold: 1})
	failOn(t, b, "b:1") // a succeeds, b fails over to a
	_ = b.Do(context.Background(), func(context.Context, string) error { return nil })

	got := map[string]float64{}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["balancer"] != "invoices" {
				t.Errorf("%s has balancer label %q, want invoices", mf.GetName(), labels["balancer"])
			}
			v := m.GetCounter().GetValue() + m.GetGauge().GetValue()
			got[strings.TrimPrefix(mf.GetName(), "aibos_worker_balancer_")+"/"+labels["node"]] = v
		}
	}
	want := map[string]float64{
		"requests_total/a:1": 3, "requests_total/b:1": 1,
		"failures_total/a:1": 0, "failures_total/b:1": 1,
		"node_healthy/a:1": 1, "node_healthy/b:1": 0,
		"outstanding/a:1": 0, "outstanding/b:1": 0,
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
		}
	}

	_, err = scale.NewBalancer(scale.BalancerConfig{Name: "invoices", Registerer: reg, Nodes: nodes("c:1")})
	if err == nil || !strings.Contains(err.Error(), `register metrics of balancer "invoices"`) {
		t.Fatalf("a second balancer of the same name in one registry: %v, want an error naming it", err)
	}
	other, err := scale.NewBalancer(scale.BalancerConfig{Name: "bills", Registerer: reg, Nodes: nodes("c:1")})
	if err != nil {
		t.Fatalf("a second balancer of another name in one registry: %v", err)
	}
	other.Close()
}

// A health check that began before a passive ejection must not undo it:
// the failures it missed are newer evidence than its pass.
func TestBalancerCheckDoesNotUndoNewerEjection(t *testing.T) {
	noLeaks(t)
	probing, release := make(chan struct{}), make(chan struct{})
	var first sync.Once
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		first.Do(func() { close(probing) })
		<-release
	}))
	defer srv.Close()
	var released sync.Once
	unblock := func() { released.Do(func() { close(release) }) }
	defer unblock() // before srv.Close, which waits for the handler, even if the test fails early
	client := &http.Client{}
	defer client.CloseIdleConnections()
	addr := srv.Listener.Addr().String()
	b := newBalancer(t, scale.BalancerConfig{Nodes: nodes(addr, "other:1"), FailureThreshold: 1, Client: client})

	checked := make(chan error, 1)
	go func() { checked <- b.CheckHealth(context.Background(), addr) }()
	<-probing
	failOn(t, b, addr)
	unblock()
	if err := <-checked; err != nil {
		t.Fatalf("CheckHealth: %v", err)
	}
	if b.Nodes()[0].Healthy {
		t.Fatalf("a check begun before the node's ejection took it back")
	}
	if err := b.CheckHealth(context.Background(), addr); err != nil || !b.Nodes()[0].Healthy {
		t.Fatalf("a check begun after the ejection: %v, healthy %v; want it to take the node back", err, b.Nodes()[0].Healthy)
	}
}

// BenchmarkBalancerDo measures what Do adds around a try that does
// nothing: picking, counting outstanding and recording the outcome.
func BenchmarkBalancerDo(b *testing.B) {
	for _, alg := range []scale.Algorithm{scale.RoundRobin, scale.LeastOutstanding, scale.Weighted} {
		b.Run(string(alg), func(b *testing.B) {
			lb, err := scale.NewBalancer(scale.BalancerConfig{Algorithm: alg, Nodes: nodes("a:1", "b:1", "c:1"),
				HealthCheck: scale.HealthCheck{Interval: -1}})
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			try := func(context.Context, string) error { return nil }
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := lb.Do(ctx, try); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
