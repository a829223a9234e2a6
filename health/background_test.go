package health_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aibos/worker/health"
	"github.com/aibos/worker/internal/testwait"
)

// serve mounts c at /readyz of a test server and returns its URL.
func serve(t *testing.T, c *health.Checker) string {
	t.Helper()
	hs := httptest.NewServer(c)
	t.Cleanup(hs.Close)
	return hs.URL + "/readyz"
}

// TestWarningDegradesWithoutFailingReadiness: a failing warning makes its
// check and the report degraded while /readyz answers 200; a failing
// critical check makes the report unhealthy and /readyz 503 whatever the
// warnings say.
func TestWarningDegradesWithoutFailingReadiness(t *testing.T) {
	backlog := health.Check{Name: "backlog", Warning: true, Run: func(context.Context) error { return errors.New("queue too long") }}
	panicky := health.Check{Name: "panicky", Warning: true, Run: func(context.Context) error { panic("boom") }}
	ok := health.Func("broker", func(context.Context) error { return nil })
	down := health.Func("broker", func(context.Context) error { return errors.New("connection refused") })

	code, rep := get(t, serve(t, health.New(ok, backlog, panicky)))
	if code != http.StatusOK || rep.Status != health.Degraded {
		t.Fatalf("/readyz with failing warnings: %d %s, want 200 degraded", code, rep.Status)
	}
	for name, want := range map[string]health.Result{
		"broker":  {Name: "broker", Status: health.Healthy, Critical: true},
		"backlog": {Name: "backlog", Status: health.Degraded, Error: "queue too long"},
		"panicky": {Name: "panicky", Status: health.Degraded, Error: "check panicked: boom"},
	} {
		got := check(rep, name)
		got.DurationMS = 0
		if got != want {
			t.Errorf("check %s: %+v, want %+v", name, got, want)
		}
	}

	code, rep = get(t, serve(t, health.New(down, backlog)))
	if code != http.StatusServiceUnavailable || rep.Status != health.Unhealthy {
		t.Fatalf("/readyz with a failing critical check and a failing warning: %d %s, want 503 unhealthy", code, rep.Status)
	}
	if code, rep := get(t, serve(t, health.New(ok))); code != http.StatusOK || rep.Status != health.Healthy {
		t.Fatalf("/readyz with every check passing: %d %s, want 200 healthy", code, rep.Status)
	}
}

// TestBackgroundServesLatestReport: once started, the checks run every
// Interval however many probes come; /readyz serves the latest report.
// After Stop, each request runs the checks again.
func TestBackgroundServesLatestReport(t *testing.T) {
	var runs atomic.Int64
	c := &health.Checker{Interval: time.Hour, Checks: []health.Check{
		health.Func("counted", func(context.Context) error { runs.Add(1); return nil }),
	}}
	url := serve(t, c)
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	if err := c.Start(context.Background()); err == nil {
		t.Fatal("second Start succeeded")
	}
	testwait.For(t, 10*time.Second, "the first background report", func() bool { _, ok := c.Latest(); return ok })
	latest, _ := c.Latest()
	for range 20 {
		code, rep := get(t, url)
		if code != http.StatusOK || rep.Status != health.Healthy || !rep.CheckedAt.Equal(latest.CheckedAt) {
			t.Fatalf("/readyz: %d %+v, want 200 and the background report of %v", code, rep, latest.CheckedAt)
		}
	}
	if n := runs.Load(); n != 1 {
		t.Fatalf("checks ran %d times for 20 probes within one interval, want once", n)
	}
	c.Stop()
	if _, ok := c.Latest(); ok {
		t.Fatal("Latest reports a report after Stop")
	}
	get(t, url)
	if n := runs.Load(); n != 2 {
		t.Fatalf("checks ran %d times after Stop and one probe, want 2 (per request again)", n)
	}
}

// TestBackgroundFollowsChanges: a check that starts failing shows in
// /readyz within an interval or so, and so does its recovery.
func TestBackgroundFollowsChanges(t *testing.T) {
	var broken atomic.Bool
	c := &health.Checker{Interval: 20 * time.Millisecond, Checks: []health.Check{
		health.Func("broker", func(context.Context) error {
			if broken.Load() {
				return errors.New("connection refused")
			}
			return nil
		}),
	}}
	url := serve(t, c)
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	testwait.For(t, 10*time.Second, "/readyz 200", func() bool { code, _ := get(t, url); return code == http.StatusOK })
	broken.Store(true)
	testwait.For(t, 10*time.Second, "/readyz 503 after the check broke", func() bool { code, _ := get(t, url); return code == http.StatusServiceUnavailable })
	broken.Store(false)
	testwait.For(t, 10*time.Second, "/readyz 200 after the check recovered", func() bool { code, _ := get(t, url); return code == http.StatusOK })
}

// TestBackgroundFirstProbeWaitsForFirstRun: a probe that comes before the
// first background run finished gets that run's report, not a run of its
// own.
func TestBackgroundFirstProbeWaitsForFirstRun(t *testing.T) {
	var runs atomic.Int64
	release := make(chan struct{})
	c := &health.Checker{Interval: time.Hour, Checks: []health.Check{
		{Name: "slow", Timeout: 10 * time.Second, Run: func(ctx context.Context) error {
			runs.Add(1)
			select {
			case <-release:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}},
	}}
	url := serve(t, c)
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	testwait.For(t, 10*time.Second, "the first run to begin", func() bool { return runs.Load() == 1 })
	type answer struct {
		code int
		rep  health.Report
	}
	got := make(chan answer, 1)
	go func() {
		var a answer
		resp, err := http.Get(url)
		if err == nil {
			a.code = resp.StatusCode
			_ = json.NewDecoder(resp.Body).Decode(&a.rep)
			resp.Body.Close()
		}
		got <- a
	}()
	close(release)
	a := <-got
	if a.code != http.StatusOK || a.rep.Status != health.Healthy {
		t.Fatalf("first probe: %d %+v, want 200 healthy", a.code, a.rep)
	}
	if n := runs.Load(); n != 1 {
		t.Fatalf("checks ran %d times, want the first background run only", n)
	}
}

func TestStartRejectsNegativeInterval(t *testing.T) {
	c := &health.Checker{Interval: -time.Second}
	if err := c.Start(context.Background()); err == nil {
		c.Stop()
		t.Fatal("Start with a negative interval succeeded")
	}
}
