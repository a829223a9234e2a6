package admin_test

import (
	"net/url"
	"testing"
	"time"

	"github.com/aibos/worker"
	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/internal/series"
	"github.com/aibos/worker/internal/testbroker"
)

func TestSeriesAPI(t *testing.T) {
	testbroker.Each(t, func(t *testing.T, b broker.Broker) {
		api := newRegistryAPI(t, b)
		r, err := series.NewRecorder(b, series.Config{})
		if err != nil {
			t.Fatal(err)
		}
		minute := time.Now().Truncate(time.Minute).Add(-5 * time.Minute)
		job := &worker.Job{Queue: "invoices", ID: "j"}
		for i := range 10 {
			r.Observe(worker.Event{Kind: worker.EventCompleted, Job: job, Time: minute, Duration: time.Duration(i+1) * time.Millisecond})
		}
		r.Observe(worker.Event{Kind: worker.EventDead, Job: job, Time: minute, Duration: time.Second})
		if err := r.Flush(t.Context()); err != nil {
			t.Fatal(err)
		}
		q := url.Values{"queue": {"invoices"}, "from": {minute.Add(-time.Minute).Format(time.RFC3339)},
			"to": {minute.Add(time.Minute).Format(time.RFC3339)}}
		got := api.expect(200, "", "GET", "/api/v1/series?"+q.Encode(), "viewer", nil)
		ss := got["series"].([]any)
		if len(ss) != 1 {
			t.Fatalf("series: %v", got)
		}
		ms := ss[0].(map[string]any)["minutes"].([]any)
		if len(ms) != 1 {
			t.Fatalf("minutes: %v, want one", ms)
		}
		m := ms[0].(map[string]any)
		lat := m["latency"].(map[string]any)
		if m["completed"] != 10.0 || m["failed"] != 1.0 || m["dead"] != 1.0 || lat["count"] != 11.0 ||
			lat["sumMs"] != 1055.0 || lat["p50Ms"] != 10.0 || lat["p95Ms"] != 1000.0 {
			t.Fatalf("minute: %v", m)
		}
		// Without a queue, every queue; the default range is the last hour.
		if all := api.expect(200, "", "GET", "/api/v1/series", "viewer", nil); len(all["series"].([]any)) != 1 {
			t.Fatalf("every queue: %v", all)
		}
		api.expect(400, "from", "GET", "/api/v1/series?from=yesterday", "viewer", nil)
		api.expect(400, "from", "GET", "/api/v1/series?from=2026-01-01T00:00:00Z&to=2026-01-03T00:00:00Z", "viewer", nil)
		api.expect(400, "from", "GET", "/api/v1/series?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z", "viewer", nil)
		api.expect(400, "queue", "GET", "/api/v1/series?queue=%7Bbad%7D", "viewer", nil)
		api.expect(403, "", "GET", "/api/v1/series", "viewer-a", nil)
	})
}
