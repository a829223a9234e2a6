package health_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/broker/sqlitebroker"
	"github.com/aibos/worker/health"
)

// Serve a Checker as /readyz and Live as /livez. A queue over its threshold
// is a warning: the report is degraded and /readyz still answers 200. A
// critical check failing (here the Manager shutting down) makes it 503.
func ExampleChecker() {
	dir, err := os.MkdirTemp("", "aibos-health-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	b, err := sqlitebroker.Open(filepath.Join(dir, "worker.db"), sqlitebroker.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()

	m, err := worker.NewManager(b, worker.ManagerConfig{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		log.Fatal(err)
	}
	if err := m.Start(ctx); err != nil {
		log.Fatal(err)
	}

	checker := health.New(
		health.Ping(b),
		health.QueueLength(b, "invoices", 2),
		health.NotDraining(m),
	)
	mux := http.NewServeMux()
	mux.Handle("/readyz", checker)
	mux.Handle("/livez", health.Live())
	srv := httptest.NewServer(mux)
	defer srv.Close()

	get := func(path string) {
		resp, err := srv.Client().Get(srv.URL + path)
		if err != nil {
			log.Fatal(err)
		}
		defer resp.Body.Close()
		var rep health.Report
		if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil {
			log.Fatal(err)
		}
		fmt.Println(path, resp.StatusCode, rep.Status)
		for _, c := range rep.Checks {
			if c.Error != "" {
				fmt.Printf("  %s: %s (%s)\n", c.Name, c.Status, c.Error)
			} else {
				fmt.Printf("  %s: %s\n", c.Name, c.Status)
			}
		}
	}
	get("/readyz")

	client, err := worker.NewClient(b, worker.ClientConfig{})
	if err != nil {
		log.Fatal(err)
	}
	for range 3 {
		if _, err := client.Add(ctx, "invoices", worker.JobSpec{Type: "invoice.processing"}); err != nil {
			log.Fatal(err)
		}
	}
	get("/readyz")

	if err := m.Shutdown(ctx); err != nil {
		log.Fatal(err)
	}
	get("/readyz")
	get("/livez")
	// Output:
	// /readyz 200 healthy
	//   broker: healthy
	//   queue:invoices: healthy
	//   manager: healthy
	// /readyz 200 degraded
	//   broker: healthy
	//   queue:invoices: degraded (queue "invoices" holds 3 waiting jobs, over the threshold of 2)
	//   manager: healthy
	// /readyz 503 unhealthy
	//   broker: healthy
	//   queue:invoices: degraded (queue "invoices" holds 3 waiting jobs, over the threshold of 2)
	//   manager: unhealthy (manager is draining: shutting down, fetching no jobs)
	// /livez 200 healthy
}
