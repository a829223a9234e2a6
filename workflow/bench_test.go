package workflow_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/internal/testbroker"
	"github.com/aibos/worker/workflow"
)

// benchRuns is how many runs one benchmark iteration starts and waits for.
const benchRuns = 1000

// BenchmarkRuns runs benchRuns runs of a four-step workflow with a fan-in
// (a → (b, c) → d) through a real Manager on each broker and reports
// runs/s and steps/s. Each iteration starts every run, then waits until
// the success hook of each has run (the hook counts; nothing polls).
func BenchmarkRuns(b *testing.B) {
	for _, eng := range testbroker.Engines {
		b.Run(eng.Name, func(b *testing.B) {
			br := eng.Open(b)
			e, err := workflow.NewEngine(br, workflow.Config{Logger: discardLogger, RetentionInterval: -1})
			if err != nil {
				b.Fatal(err)
			}
			noop := workflow.StepProcessorFunc(func(ctx context.Context, s *workflow.StepInfo, d workflow.Data) (workflow.Data, error) {
				d[s.Step.Name] = true
				return d, nil
			})
			if err := e.RegisterStepProcessor("noop", noop); err != nil {
				b.Fatal(err)
			}
			var succeeded atomic.Int64
			done := make(chan struct{}, 1)
			onSuccess := func(ctx context.Context, run *workflow.Run) error {
				if succeeded.Add(1)%benchRuns == 0 {
					done <- struct{}{}
				}
				return nil
			}
			if err := e.Register(workflow.Workflow{Name: "fan-in", OnSuccess: onSuccess, Steps: []workflow.Step{
				{Name: "a", Processor: "noop"},
				{Name: "b", Processor: "noop", DependsOn: []string{"a"}},
				{Name: "c", Processor: "noop", DependsOn: []string{"a"}},
				{Name: "d", Processor: "noop", DependsOn: []string{"b", "c"}},
			}}); err != nil {
				b.Fatal(err)
			}
			cfg := managerConfig(e.Queue(), 32)
			cfg.PollInterval = 50 * time.Millisecond
			cfg.LeaseDuration = 30 * time.Second
			cfg.HeartbeatInterval = 10 * time.Second
			m, err := worker.NewManager(br, cfg)
			if err != nil {
				b.Fatal(err)
			}
			if err := e.Attach(m); err != nil {
				b.Fatal(err)
			}
			if err := m.Start(context.Background()); err != nil {
				b.Fatal(err)
			}
			defer func() {
				if err := m.Shutdown(context.Background()); err != nil {
					b.Errorf("shutdown: %v", err)
				}
				_ = e.Close()
			}()
			ctx := context.Background()
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				for r := range benchRuns {
					if _, err := e.Execute(ctx, "fan-in", map[string]any{"n": r}, workflow.ExecuteOptions{}); err != nil {
						b.Fatal(err)
					}
				}
				select {
				case <-done:
				case <-time.After(5 * time.Minute):
					b.Fatalf("%d of %d runs succeeded after 5 minutes", succeeded.Load()%benchRuns, benchRuns)
				}
			}
			secs := time.Since(start).Seconds()
			b.StopTimer()
			b.ReportMetric(float64(b.N*benchRuns)/secs, "runs/s")
			b.ReportMetric(float64(b.N*benchRuns*4)/secs, "steps/s")
		})
	}
}
