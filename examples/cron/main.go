// Command cron runs the seed's cron schedules with a worker processing their
// jobs, for a few seconds, then shuts down cleanly.
//
//	go run ./examples/cron                           # embedded SQLite store
//	go run ./examples/cron -for 20s                  # run longer
//	REDIS_URL=redis://localhost:6379/2 go run ./examples/cron
//
// The seed's schedules, daily-reports (02:00 every day, New York time) and
// monthly-cleanup (midnight on the 1st), will not fire in a few seconds, so a
// heartbeat schedule ticks every two seconds to show the scheduler enqueueing
// jobs and the Manager processing them. Any number of schedulers may run on
// one broker: each tick is claimed atomically, so it enqueues one job.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"sync/atomic"
	"time"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/broker"
	_ "github.com/aibos/worker/broker/redisbroker"  // redis:// URLs
	_ "github.com/aibos/worker/broker/sqlitebroker" // the embedded store
	"github.com/aibos/worker/schedule"
)

func main() {
	runFor := flag.Duration("for", 7*time.Second, "how long to run before shutting down")
	flag.Parse()
	if err := run(*runFor); err != nil {
		log.Fatal(err)
	}
}

// entries are the seed's cron schedules plus a heartbeat.
var entries = []schedule.Entry{
	{
		Name: "daily-reports", Spec: "0 2 * * *", TimeZone: "America/New_York",
		Job: schedule.JobTemplate{
			Queue: "reports", Type: "report.daily", MaxAttempts: 3,
			UniqueKey: "daily-reports", // no overlapping runs
		},
	},
	{
		Name: "monthly-cleanup", Spec: "0 0 1 * *",
		Job: schedule.JobTemplate{Queue: "maintenance", Type: "cleanup.monthly", MaxAttempts: 3},
	},
	{
		Name: "heartbeat", Spec: "@every 2s",
		Job:     schedule.JobTemplate{Queue: "maintenance", Type: "heartbeat", MaxAttempts: 1},
		CatchUp: schedule.CatchUpSkip,
	},
}

func run(runFor time.Duration) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	dir, err := os.MkdirTemp("", "aibos-cron-example-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	// REDIS_URL (e.g. redis://localhost:6379/2?prefix=aibos:worker) selects
	// Redis; without it the jobs live in an embedded store in dir.
	url, where := os.Getenv("REDIS_URL"), "redis"
	if url == "" {
		url, where = "sqlite:"+filepath.Join(dir, "worker.db"), "embedded sqlite store"
	}
	b, err := broker.Open(ctx, url)
	if err != nil {
		return err
	}
	defer b.Close()
	fmt.Println("broker:", where)
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))

	cron, err := schedule.New(b, schedule.Config{Logger: logger})
	if err != nil {
		return err
	}
	for _, e := range entries {
		if _, err := cron.Upsert(ctx, e); err != nil {
			return fmt.Errorf("store schedule %s: %w", e.Name, err)
		}
	}
	// On a shared Redis the schedules would outlive this demo; remove them.
	defer removeSchedules(cron)
	if err := printSchedules(ctx, cron); err != nil {
		return err
	}

	m, processed, err := newManager(b, logger)
	if err != nil {
		return err
	}
	if err := m.Start(ctx); err != nil {
		return err
	}
	defer m.Shutdown(context.Background())

	runCtx, cancelRun := context.WithTimeout(ctx, runFor)
	defer cancelRun()
	cronDone := make(chan error, 1)
	go func() { cronDone <- cron.Run(runCtx) }()
	fmt.Printf("running for %v (Ctrl-C stops sooner)\n", runFor)

	<-runCtx.Done()
	if err := <-cronDone; err != nil {
		return fmt.Errorf("run scheduler: %w", err)
	}
	fmt.Println("shutting down: scheduler stopped, waiting for running jobs")
	if err := m.Shutdown(context.Background()); err != nil {
		return fmt.Errorf("shut down manager: %w", err)
	}
	fmt.Printf("done: %d scheduled jobs processed\n", processed.Load())
	return nil
}

// printSchedules lists every schedule with its next three fire times.
func printSchedules(ctx context.Context, cron *schedule.Cron) error {
	infos, err := cron.List(ctx, 3)
	if err != nil {
		return fmt.Errorf("list schedules: %w", err)
	}
	for _, in := range infos {
		zone := in.TimeZone
		if zone == "" {
			zone = "UTC"
		}
		fmt.Printf("schedule %-15s %-10q %-16s -> %s on %s\n", in.Name, in.Spec, zone, in.Job.Type, in.Job.Queue)
		for _, t := range in.Next {
			fmt.Println("    next:", t.Format("Mon 2006-01-02 15:04:05 MST"))
		}
	}
	return nil
}

// newManager returns a Manager serving the schedules' queues and a counter
// of the jobs it processed.
func newManager(b broker.Broker, logger *slog.Logger) (*worker.Manager, *atomic.Int64, error) {
	m, err := worker.NewManager(b, worker.ManagerConfig{
		Queues: []worker.QueueConfig{
			{Name: "reports", Priority: 1, Concurrency: 1},
			{Name: "maintenance", Priority: 1, Concurrency: 2},
		},
		Concurrency:     3,
		ShutdownTimeout: 5 * time.Second,
		Logger:          logger,
	})
	if err != nil {
		return nil, nil, err
	}
	var processed atomic.Int64
	handle := func(ctx context.Context, job *worker.Job) error {
		tick, err := time.Parse(time.RFC3339, job.Headers["schedule-tick"])
		if err != nil {
			tick = job.RunAt
		}
		fmt.Printf("%s  %-15s tick %s, processed %v after it\n", time.Now().Format("15:04:05.000"),
			job.Type, tick.Local().Format("15:04:05"), time.Since(tick).Round(time.Millisecond))
		processed.Add(1)
		return nil
	}
	for _, typ := range []string{"report.daily", "cleanup.monthly", "heartbeat"} {
		if err := m.HandleFunc(typ, handle); err != nil {
			return nil, nil, err
		}
	}
	return m, &processed, nil
}

// removeSchedules deletes the example's schedules from the broker.
func removeSchedules(cron *schedule.Cron) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, e := range entries {
		if err := cron.Remove(ctx, e.Name); err != nil && !errors.Is(err, broker.ErrScheduleNotFound) {
			log.Printf("remove schedule %s: %v", e.Name, err)
		}
	}
}
