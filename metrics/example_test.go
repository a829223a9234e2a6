package metrics_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/broker/sqlitebroker"
	"github.com/aibos/worker/metrics"
	"github.com/aibos/worker/retry"
)

// Register the collector, process a few jobs (one retried once, one
// failing for good) and read the counters back with GetMetrics.
func ExampleWorkerMetrics_GetMetrics() {
	dir, err := os.MkdirTemp("", "aibos-metrics-example-")
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

	wm := metrics.New(metrics.Config{Broker: b})
	reg := prometheus.NewRegistry()
	reg.MustRegister(wm) // serve reg with promhttp.HandlerFor in a real worker

	finished := make(chan struct{}, 16)
	m, err := worker.NewManager(b, worker.ManagerConfig{
		Queues:      []worker.QueueConfig{{Name: "invoices"}},
		Concurrency: 4,
		Retry:       retry.Policy{BaseDelay: 10 * time.Millisecond},
		Logger:      slog.New(slog.DiscardHandler),
		OnEvent: func(e worker.Event) {
			wm.Observe(e)
			if e.Kind == worker.EventCompleted || e.Kind == worker.EventDead {
				finished <- struct{}{}
			}
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	wm.Attach(m)
	var flaked atomic.Bool
	err = m.HandleFunc("invoice.processing", func(ctx context.Context, job *worker.Job) error {
		switch job.Headers["case"] {
		case "flaky":
			if flaked.CompareAndSwap(false, true) {
				return errors.New("ledger temporarily unavailable")
			}
		case "broken":
			return worker.NoRetry(errors.New("malformed invoice"))
		}
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}

	client, err := worker.NewClient(b, worker.ClientConfig{})
	if err != nil {
		log.Fatal(err)
	}
	cases := []string{"ok", "ok", "ok", "flaky", "broken"}
	var specs []worker.JobSpec
	for _, c := range cases {
		specs = append(specs, worker.JobSpec{Type: "invoice.processing", Headers: map[string]string{"case": c}})
	}
	if _, err := client.AddMany(ctx, "invoices", specs); err != nil {
		log.Fatal(err)
	}
	if err := m.Start(ctx); err != nil {
		log.Fatal(err)
	}
	timeout := time.After(5 * time.Second)
	for range cases {
		select {
		case <-finished:
		case <-timeout:
			log.Fatal("timed out waiting for the jobs")
		}
	}
	if err := m.Shutdown(ctx); err != nil {
		log.Fatal(err)
	}

	s, err := wm.GetMetrics(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("processed:", s.JobsProcessed)
	fmt.Println("completed:", s.JobsCompleted)
	fmt.Println("failed:   ", s.JobsFailed)
	fmt.Println("retried:  ", s.JobsRetried)
	fmt.Println("dead:     ", s.JobsDead)
	fmt.Println("waiting:  ", s.QueueLength)
	for _, q := range s.Queues {
		fmt.Printf("queue %s: %d completed, %d dead\n", q.Queue, q.Completed, q.Dead)
	}
	fmt.Println("concurrency:", s.Concurrency)
	// Output:
	// processed: 6
	// completed: 4
	// failed:    2
	// retried:   1
	// dead:      1
	// waiting:   0
	// queue invoices: 4 completed, 1 dead
	// concurrency: 4
}
