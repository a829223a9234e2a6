package scale_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/aibos/worker/scale"
)

// Spread requests over three instances of an application round-robin.
// When one is down, Do fails over to the next: the try marks connection
// errors and 5xx answers as node failures with scale.NodeFailure.
func ExampleBalancer() {
	var addrs []scale.Node
	var servers []*httptest.Server
	for _, name := range []string{"worker-1", "worker-2", "worker-3"} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, name)
		}))
		defer srv.Close()
		servers = append(servers, srv)
		addrs = append(addrs, scale.Node{Addr: srv.Listener.Addr().String()})
	}
	servers[1].Close() // worker-2 is down

	lb, err := scale.NewBalancer(scale.BalancerConfig{
		Algorithm: scale.RoundRobin,
		Nodes:     addrs,
		// The seed's checks: GET /healthz every 30s with a 5s timeout.
		HealthCheck:      scale.HealthCheck{Interval: 30 * time.Second, Timeout: 5 * time.Second},
		FailureThreshold: 1,
		Logger:           slog.New(slog.DiscardHandler),
	})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	lb.Start(ctx)
	defer lb.Close()

	var served []string
	for range 4 {
		err := lb.Do(ctx, func(ctx context.Context, node string) error {
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+node+"/work", nil)
			if err != nil {
				return err
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return scale.NodeFailure(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode >= 500 {
				return scale.NodeFailure(fmt.Errorf("post to %s: %s", node, resp.Status))
			}
			body, err := io.ReadAll(resp.Body)
			served = append(served, string(body))
			return err
		})
		if err != nil {
			log.Fatal(err)
		}
	}
	fmt.Println(strings.Join(served, " "))
	fmt.Println("worker-2 healthy:", lb.Nodes()[1].Healthy)
	// Output:
	// worker-1 worker-3 worker-1 worker-3
	// worker-2 healthy: false
}
