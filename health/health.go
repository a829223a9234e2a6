// Package health runs named health checks (the seed's WorkerHealthChecker)
// and serves them as /livez and /readyz.
//
// /livez answers 200 while the process can serve HTTP: it runs no check
// and never touches the broker, so a broker outage does not get a healthy
// worker restarted. /readyz serves a Checker's report as JSON:
//
//	{"status":"degraded","checked_at":"...","checks":[
//	  {"name":"broker","status":"healthy","critical":true,"duration_ms":1},
//	  {"name":"queue:invoices","status":"degraded","critical":false,"error":"...","duration_ms":2}]}
//
// A check is critical (the default) or a warning (Check.Warning). A failing
// critical check makes it "unhealthy" and the report unhealthy: /readyz
// answers 503 and the pod leaves the load balancer. A failing warning makes
// it "degraded" and the report degraded unless something is unhealthy:
// /readyz still answers 200. QueueLength is a warning, because a backlog
// must not take every pod out of service (that would only make it grow).
//
// The checks run in one of two modes:
//
//   - Per request (the default): each /readyz request runs every check,
//     each bounded by its timeout. /readyz turns unhealthy on the first
//     request after the broker becomes unreachable, answering within the
//     broker check's timeout (Checker.Timeout, default 2s), and healthy
//     again on the first request after it is back.
//   - In the background (Checker.Start): the checks run every
//     Checker.Interval (the service's HEALTH_CHECK_INTERVAL, default 30s)
//     and /readyz serves the latest report, running the checks itself only
//     while none exists yet. However often probes come, the broker is
//     checked once per interval; a change shows in /readyz within Interval
//     plus the checks' timeout.
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

// The statuses. A report is unhealthy if any critical check fails, else
// degraded if any warning fails, else healthy.
const (
	Healthy   Status = "healthy"
	Degraded  Status = "degraded"
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
	// Warning makes the check a warning: when it fails (or panics, or
	// overruns its timeout) it is degraded, and the report degraded rather
	// than unhealthy, so /readyz stays 200. Defaults to false: the check is
	// critical.
	Warning bool
}

// Result is the outcome of one check.
type Result struct {
	Name   string `json:"name"`
	Status Status `json:"status"`
	// Critical is false for a warning (Check.Warning).
	Critical   bool   `json:"critical"`
	Error      string `json:"error,omitempty"`
	DurationMS int64  `json:"duration_ms"`
}

// Report is the outcome of every check.
type Report struct {
	Status Status `json:"status"`
	// CheckedAt is when the checks ran; zero in /livez's report.
	CheckedAt time.Time `json:"checked_at,omitzero"`
	Checks    []Result  `json:"checks"`
}

// Checker runs checks. The zero value has no checks and is healthy. Set its
// fields before its first use and do not copy it after.
type Checker struct {
	// Checks to run, reported in this order.
	Checks []Check
	// Timeout bounds each check without one of its own. Defaults to 2s.
	Timeout time.Duration
	// Interval is how often Start runs the checks in the background.
	// Defaults to 30s (the seed's HEALTH_CHECK_INTERVAL).
	Interval time.Duration

	refreshMu sync.Mutex // one run of the checks at a time, in background mode
	mu        sync.Mutex
	latest    *Report       // the last background-mode report; mu
	cancel    func()        // stops Start's loop; mu
	done      chan struct{} // closed when Start's loop returns; mu
}

// New returns a Checker with checks and the default timeout.
func New(checks ...Check) *Checker { return &Checker{Checks: checks} }

// Check runs every check now, concurrently, each under its timeout, and
// returns the report: the seed's checkHealth. A check that panics or
// overruns has failed. It does not change the report Start's loop keeps.
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
	rep.CheckedAt = time.Now()
	for _, r := range rep.Checks {
		switch {
		case r.Status == Unhealthy:
			rep.Status = Unhealthy
		case r.Status == Degraded && rep.Status == Healthy:
			rep.Status = Degraded
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
	res = Result{Name: ch.Name, Status: Healthy, Critical: !ch.Warning}
	failed := Unhealthy
	if ch.Warning {
		failed = Degraded
	}
	defer func() {
		if v := recover(); v != nil {
			res.Status, res.Error = failed, fmt.Sprintf("check panicked: %v", v)
		}
		res.DurationMS = time.Since(start).Milliseconds()
	}()
	if ch.Run == nil {
		res.Status, res.Error = failed, "check has no function"
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
		res.Status, res.Error = failed, err.Error()
	}
	return res
}

// ServeHTTP serves the report as JSON: 200 when healthy or degraded, 503
// when unhealthy. Mount it at /readyz. While Start's loop runs it serves
// the latest report (running the checks only if none exists yet);
// otherwise it runs the checks for each request.
func (c *Checker) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var rep Report
	if c.background() {
		rep = c.current(r.Context())
	} else {
		rep = c.Check(r.Context())
	}
	code := http.StatusOK
	if rep.Status == Unhealthy {
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, rep)
}

// Start runs the checks at once and then every Interval in the background
// until ctx is done or Stop, keeping the latest report for ServeHTTP and
// Latest. It returns an error if the loop already runs or Interval is
// negative.
func (c *Checker) Start(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cancel != nil {
		return errors.New("health: start checker: already started")
	}
	interval := c.Interval
	if interval == 0 {
		interval = 30 * time.Second
	}
	if interval < 0 {
		return fmt.Errorf("health: start checker: interval %v is negative", interval)
	}
	ctx, cancel := context.WithCancel(ctx)
	c.cancel, c.done = cancel, make(chan struct{})
	go c.loop(ctx, interval, c.done)
	return nil
}

func (c *Checker) loop(ctx context.Context, interval time.Duration, done chan struct{}) {
	defer close(done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		c.refresh(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Stop stops Start's loop and waits for it to return; ServeHTTP then runs
// the checks per request again. Stop is idempotent.
func (c *Checker) Stop() {
	c.mu.Lock()
	cancel, done := c.cancel, c.done
	c.cancel, c.done, c.latest = nil, nil, nil
	c.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
}

// Latest returns the report of the background loop's last run, and false
// if the loop is not running or has not finished a run yet.
func (c *Checker) Latest() (Report, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.latest == nil {
		return Report{}, false
	}
	return *c.latest, true
}

func (c *Checker) background() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cancel != nil
}

// current returns the latest report, running the checks first if there is
// none yet; concurrent first requests share one run.
func (c *Checker) current(ctx context.Context) Report {
	if rep, ok := c.Latest(); ok {
		return rep
	}
	c.refreshMu.Lock()
	defer c.refreshMu.Unlock()
	if rep, ok := c.Latest(); ok {
		return rep
	}
	// Not cancelled with the request: a probe that hangs up must not leave
	// a report of cancelled checks behind. The checks' timeouts bound it.
	return c.store(c.Check(context.WithoutCancel(ctx)))
}

// refresh runs the checks and keeps the report.
func (c *Checker) refresh(ctx context.Context) {
	c.refreshMu.Lock()
	defer c.refreshMu.Unlock()
	rep := c.Check(ctx)
	if ctx.Err() == nil { // a report cut short by Stop says nothing
		c.store(rep)
	}
}

func (c *Checker) store(rep Report) Report {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cancel != nil {
		c.latest = &rep
	}
	return rep
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

// DataLossUnready is how long Ping reports a broker unhealthy after it
// detected data loss (broker.DataLossReporter): long enough for an alert
// on /readyz to fire and for an operator to see the reason.
const DataLossUnready = 5 * time.Minute

// Ping checks that the broker answers: the seed's redis-connection check.
// A broker that detected data loss in the last DataLossUnready is
// unhealthy too, with the reason: the jobs it acknowledged may be gone or
// may run again.
func Ping(b broker.Broker) Check {
	return Check{Name: "broker", Run: func(ctx context.Context) error {
		if err := b.Ping(ctx); err != nil {
			return fmt.Errorf("ping broker: %w", err)
		}
		if r, ok := b.(broker.DataLossReporter); ok {
			if l := r.DataLoss(); l.Count > 0 && time.Since(l.At) < DataLossUnready {
				return fmt.Errorf("broker detected data loss %s ago in queue %q: %s",
					time.Since(l.At).Round(time.Second), l.Queue, l.Reason)
			}
		}
		return nil
	}}
}

// QueueLength is a warning (degraded, never unhealthy) when more than
// threshold jobs wait in queue: the seed's queue-health check, which the
// seed called unhealthy; a backlog must not fail readiness (see the package
// doc). Waiting jobs are pending plus scheduled
// ones (delayed, or waiting to retry), as Client.Length counts them;
// running (active) and finished jobs are not counted.
func QueueLength(b broker.Broker, queue string, threshold int64) Check {
	return Check{Name: "queue:" + queue, Warning: true, Run: func(ctx context.Context) error {
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
