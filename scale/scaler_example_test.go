package scale_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"os"
	"path/filepath"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/broker/sqlitebroker"
	"github.com/aibos/worker/scale"
)

// Scale a Manager's concurrency with the seed's defaults (1 to 10
// workers, thresholds 0.8 and 0.2, cooldowns 5 and 10 minutes). ScaleTo
// sets it by hand and starts the cooldowns; Evaluate is one step of what
// Start does every Interval.
func ExampleScaler() {
	dir, err := os.MkdirTemp("", "aibos-scaler-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	b, err := sqlitebroker.Open(filepath.Join(dir, "worker.db"), sqlitebroker.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()
	quiet := slog.New(slog.DiscardHandler)
	m, err := worker.NewManager(b, worker.ManagerConfig{Logger: quiet})
	if err != nil {
		log.Fatal(err)
	}
	s, err := scale.New(m, scale.Config{Stats: b, Logger: quiet})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("concurrency:", m.Concurrency())

	d, err := s.ScaleTo(3)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s (%s): %d → %d\n", d.Direction, d.Reason, d.From, d.To)

	// The Manager is idle and nothing is pending: the Scaler wants fewer
	// workers, but the scale-down cooldown from ScaleTo holds it back.
	d, err = s.Evaluate(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s (%s): stays %d, desired %d\n", d.Direction, d.Reason, d.To, d.Desired)

	if _, err := s.ScaleTo(20); err != nil {
		fmt.Println(err)
	}
	// Output:
	// concurrency: 5
	// down (manual): 5 → 3
	// none (cooldown): stays 3, desired 2
	// scale: scale to 20 workers: outside [1, 10] (MinWorkers, MaxWorkers)
}
