package health_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/broker/redisbroker"
	"github.com/aibos/worker/health"
	"github.com/aibos/worker/internal/redistest"
)

func TestMain(m *testing.M) {
	os.Exit(redistest.Main(m))
}

// get fetches url and decodes the JSON report.
func get(t *testing.T, url string) (int, health.Report) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	var rep health.Report
	if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil {
		t.Fatalf("GET %s: decode body: %v", url, err)
	}
	return resp.StatusCode, rep
}

func check(rep health.Report, name string) health.Result {
	for _, r := range rep.Checks {
		if r.Name == name {
			return r
		}
	}
	return health.Result{}
}

// readyTimeout is the Checker's per-check timeout; the documented bound on
// how long /readyz takes to say unhealthy once the broker is gone.
const readyTimeout = 2 * time.Second

func TestReadyzFollowsRedisAndDraining(t *testing.T) {
	// Redis keeps its data across the restart (AOF, fsync always): a
	// restart that loses it is data loss, which keeps /readyz unhealthy on
	// purpose (see redisbroker's TestEmptiedDetected).
	srv := redistest.StartWith(t, redistest.Options{Dir: t.TempDir(), Args: []string{"--appendonly", "yes", "--appendfsync", "always"}})
	client := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { _ = client.Close() })
	b, err := redisbroker.New(client, redisbroker.Config{Prefix: redistest.Prefix(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	m, err := worker.NewManager(b, worker.ManagerConfig{PollInterval: 20 * time.Millisecond, ShutdownTimeout: time.Second,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	shut := false
	t.Cleanup(func() {
		if !shut {
			_ = m.Shutdown(context.Background())
		}
	})

	checker := &health.Checker{Timeout: readyTimeout, Checks: []health.Check{
		health.Ping(b), health.NotDraining(m), health.QueueLength(b, "default", 1000),
	}}
	mux := http.NewServeMux()
	mux.Handle("/livez", health.Live())
	mux.Handle("/readyz", checker)
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)

	if code, rep := get(t, hs.URL+"/readyz"); code != http.StatusOK || rep.Status != health.Healthy || len(rep.Checks) != 3 {
		t.Fatalf("/readyz with redis up: %d %+v, want 200 and 3 healthy checks", code, rep)
	}

	srv.Stop()
	start := time.Now()
	code, rep := get(t, hs.URL+"/readyz")
	took := time.Since(start)
	if code != http.StatusServiceUnavailable || check(rep, "broker").Status != health.Unhealthy || check(rep, "broker").Error == "" {
		t.Fatalf("/readyz after redis-server stopped: %d %+v, want 503 with the broker check unhealthy and its error", code, rep)
	}
	if took > readyTimeout+time.Second {
		t.Fatalf("/readyz took %v to answer with redis down; the documented bound is the check timeout %v", took, readyTimeout)
	}
	if check(rep, "manager").Status != health.Healthy {
		t.Fatalf("manager check %+v with redis down, want healthy (not draining)", check(rep, "manager"))
	}
	if code, rep := get(t, hs.URL+"/livez"); code != http.StatusOK || rep.Status != health.Healthy {
		t.Fatalf("/livez with redis down: %d %+v, want 200 healthy", code, rep)
	}

	srv.Restart(t)
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, rep := get(t, hs.URL+"/readyz")
		if code == http.StatusOK && rep.Status == health.Healthy {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz still %d %+v 10s after redis-server restarted", code, rep)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code, _ := get(t, hs.URL+"/livez"); code != http.StatusOK {
		t.Fatalf("/livez after restart: %d", code)
	}

	shut = true
	if err := m.Shutdown(context.Background()); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	code, rep = get(t, hs.URL+"/readyz")
	if code != http.StatusServiceUnavailable || check(rep, "manager").Status != health.Unhealthy || check(rep, "broker").Status != health.Healthy {
		t.Fatalf("/readyz after Shutdown: %d %+v, want 503 with only the manager check unhealthy", code, rep)
	}
}

func TestQueueLengthAndCustomChecks(t *testing.T) {
	b, err := redisbroker.New(redistest.Client(t), redisbroker.Config{Prefix: redistest.Prefix(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	c, err := worker.NewClient(b, worker.ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := c.Add(context.Background(), "invoices", worker.JobSpec{Type: "x"}); err != nil {
			t.Fatal(err)
		}
	}
	release := make(chan struct{})
	defer close(release)
	rep := (&health.Checker{Timeout: 200 * time.Millisecond, Checks: []health.Check{
		health.QueueLength(b, "invoices", 2),
		health.QueueLength(b, "invoices", 3),
		health.Func("custom-ok", func(context.Context) error { return nil }),
		health.Func("custom-bad", func(context.Context) error { return errors.New("disk full") }),
		health.Func("ignores-ctx", func(context.Context) error { <-release; return nil }),
		health.Func("panics", func(context.Context) error { panic("boom") }),
	}}).Check(context.Background())
	// QueueLength is a warning: over its threshold it is degraded (it was
	// unhealthy before warnings existed).
	want := []health.Status{health.Degraded, health.Healthy, health.Healthy, health.Unhealthy, health.Unhealthy, health.Unhealthy}
	if rep.Status != health.Unhealthy || len(rep.Checks) != len(want) {
		t.Fatalf("report %+v", rep)
	}
	for i, w := range want {
		if rep.Checks[i].Status != w {
			t.Errorf("check %s: %s (%s), want %s", rep.Checks[i].Name, rep.Checks[i].Status, rep.Checks[i].Error, w)
		}
	}
	if rep := (&health.Checker{}).Check(context.Background()); rep.Status != health.Healthy {
		t.Fatalf("empty checker: %+v, want healthy", rep)
	}
}
