// Package health runs named health checks (the seed's WorkerHealthChecker)
// and serves them as /livez and /readyz.
//
// /livez answers 200 while the process can serve HTTP: it runs no check
// and never touches the broker, so a broker outage does not get a healthy
// worker restarted. /readyz runs every check of a Checker on each request,
// each bounded by its timeout, and answers 200 when all pass, 503
// otherwise. Both bodies are JSON:
//
//	{"status":"unhealthy","checks":[{"name":"broker","status":"unhealthy","error":"...","duration_ms":3}]}
//
// Because the checks run per request, /readyz turns unhealthy on the first
// request after the broker becomes unreachable, answering within the
// broker check's timeout (Checker.Timeout, default 2s), and healthy again
// on the first request after it is back.
package health

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/aibos/worker/broker"
)

// Status is a check's or a report's verdict.
type Status string

// The statuses.
const (
	Healthy   Status = "healthy"
	Unhealthy Status = "unhealthy"
)

// Check is one named health check.
type Check struct {
	// Name identifies the check in reports, e.g. "broker".
	Name string
	// Run returns nil when healthy. It must honour ctx.
	Run func(ctx context.Context) error
	// Timeout bounds Run. Defaults to the Checker's Timeout.
	Timeout time.Duration
}

// Result is the outcome of one check.
type Result struct {
	Name       string `json:"name"`
	Status     Status `json:"status"`
	Error      string `json:"error,omitempty"`
	DurationMS int64  `json:"duration_ms"`
}

// Report is the outcome of every check: healthy only if all are.
type Report struct {
	Status Status   `json:"status"`
	Checks []Result `json:"checks"`
}

// Checker runs checks. The zero value has no checks and is healthy.
type Checker struct {
	// Checks to run, reported in this order.
	Checks []Check
	// Timeout bounds each check without one of its own. Defaults to 2s.
	Timeout time.Duration
}

// New returns a Checker with checks and the default timeout.
func New(checks ...Check) *Checker { return &Checker{Checks: checks} }

// Check runs every check concurrently, each under its timeout, and
// returns the report. A check that panics or overruns is unhealthy.
func (c *Checker) Check(ctx context.Context) Report {
	rep := Report{Status: Healthy, Checks: make([]Result, len(c.Checks))}
	var wg sync.WaitGroup
	for i, ch := range c.Checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rep.Checks[i] = c.run(ctx, ch)
		}()
	}
	wg.Wait()
	for _, r := range rep.Checks {
		if r.Status != Healthy {
			rep.Status = Unhealthy
		}
	}
	return rep
}

func (c *Checker) run(ctx context.Context, ch Check) (res Result) {
	timeout := ch.Timeout
	if timeout <= 0 {
		timeout = c.Timeout
	}
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	res = Result{Name: ch.Name, Status: Healthy}
	defer func() {
		if v := recover(); v != nil {
			res.Status, res.Error = Unhealthy, fmt.Sprintf("check panicked: %v", v)
		}
		res.DurationMS = time.Since(start).Milliseconds()
	}()
	if ch.Run == nil {
		res.Status, res.Error = Unhealthy, "check has no function"
		return res
	}
	// Run in its own goroutine so a check that ignores ctx still cannot
	// hold the report past its timeout.
	done := make(chan error, 1)
	go func() {
		defer func() {
			if v := recover(); v != nil {
				done <- fmt.Errorf("check panicked: %v", v)
			}
		}()
		done <- ch.Run(ctx)
	}()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		err = fmt.Errorf("check did not finish within %v: %w", timeout, ctx.Err())
	}
	if err != nil {
		res.Status, res.Error = Unhealthy, err.Error()
	}
	return res
}

// ServeHTTP serves the report as JSON: 200 when healthy, 503 otherwise.
// Mount it at /readyz.
func (c *Checker) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rep := c.Check(r.Context())
	code := http.StatusOK
	if rep.Status != Healthy {
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, rep)
}

// Live returns the /livez handler: 200 with {"status":"healthy"} while the
// process serves HTTP. It checks nothing else, by design.
func Live() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, Report{Status: Healthy, Checks: []Result{}})
	})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// Ping checks that the broker answers: the seed's redis-connection check.
func Ping(b broker.Broker) Check {
	return Check{Name: "broker", Run: func(ctx context.Context) error {
		if err := b.Ping(ctx); err != nil {
			return fmt.Errorf("ping broker: %w", err)
		}
		return nil
	}}
}

// QueueLength is unhealthy when more than threshold jobs wait in queue:
// the seed's queue-health check. Waiting jobs are pending plus scheduled
// ones (delayed, or waiting to retry), as Client.Length counts them;
// running (active) and finished jobs are not counted.
func QueueLength(b broker.Broker, queue string, threshold int64) Check {
	return Check{Name: "queue:" + queue, Run: func(ctx context.Context) error {
		st, err := b.QueueStats(ctx, &broker.QueueStatsParams{Queue: queue})
		if err != nil {
			return fmt.Errorf("read stats of queue %q: %w", queue, err)
		}
		if n := st.Pending + st.Scheduled; n > threshold {
			return fmt.Errorf("queue %q holds %d waiting jobs, over the threshold of %d", queue, n, threshold)
		}
		return nil
	}}
}

// Drainer is what NotDraining needs of a worker.Manager.
type Drainer interface {
	Draining() bool
}

// NotDraining is unhealthy once the Manager has begun shutting down.
func NotDraining(d Drainer) Check {
	return Check{Name: "manager", Run: func(context.Context) error {
		if d.Draining() {
			return errors.New("manager is draining: shutting down, fetching no jobs")
		}
		return nil
	}}
}

// Func makes a custom check.
func Func(name string, f func(ctx context.Context) error) Check {
	return Check{Name: name, Run: f}
}
