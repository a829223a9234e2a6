package jobs_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/accounting"
	"github.com/aibos/worker/accounting/jobs"
	"github.com/aibos/worker/accounting/report"
	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/internal/testwait"
	"github.com/aibos/worker/service"
	tenants "github.com/aibos/worker/tenant"
)

// TestDailyDueOncePerLocalDayAt0200 walks a year of quarter-hour ticks:
// with the once-per-date rule of the fan-out, each tenant's reports run
// once per local day, at 02:00 on its wall clock, or at 03:00 on the day
// DST skips 02:00; on the day 02:00 happens twice, only at the first.
func TestDailyDueOncePerLocalDayAt0200(t *testing.T) {
	for _, zone := range []string{"Europe/Berlin", "America/New_York", "Asia/Kathmandu", "UTC"} {
		loc, err := time.LoadLocation(zone)
		if err != nil {
			t.Fatal(err)
		}
		last := ""
		fired := map[string]time.Time{}
		start := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
		for tick := start; tick.Before(start.AddDate(1, 0, 0)); tick = tick.Add(15 * time.Minute) {
			day, due := jobs.DailyDue(tick, loc, 120)
			if !due || day <= last {
				continue
			}
			last = day
			if _, dup := fired[day]; dup {
				t.Fatalf("%s: %s fired twice", zone, day)
			}
			fired[day] = tick
		}
		if len(fired) < 365 {
			t.Fatalf("%s: %d days fired in a year, want 365", zone, len(fired))
		}
		for day, tick := range fired {
			l := tick.In(loc)
			want := "02:00"
			if noon := time.Date(l.Year(), l.Month(), l.Day(), 12, 0, 0, 0, loc); skips0200(noon) {
				want = "03:00"
			}
			if got := l.Format("15:04"); got != want && day != start.In(loc).Format(time.DateOnly) {
				t.Errorf("%s: the reports of %s ran at %s local, want %s", zone, day, got, want)
			}
		}
	}
}

// skips0200 reports whether the local day of noon has no 02:00: the
// offset at 01:00 and at 03:00 differ by an hour forwards.
func skips0200(noon time.Time) bool {
	loc := noon.Location()
	y, m, d := noon.Date()
	midnight := time.Date(y, m, d, 0, 0, 0, 0, loc)
	for u := midnight; u.Before(midnight.Add(4 * time.Hour)); u = u.Add(15 * time.Minute) {
		if u.In(loc).Hour() == 3 && u.Add(-15*time.Minute).In(loc).Hour() == 1 {
			return true
		}
	}
	return false
}

// TestDailyReportsFanOutAt0200Local drives the fan-out with the ticks a
// cron schedule would stamp (the injected clock): a Berlin and a New York
// tenant get their reports at 02:00 on their own wall clocks, once a day,
// through a DST change each, and the report files appear in the data dir.
func TestDailyReportsFanOutAt0200Local(t *testing.T) {
	dir := t.TempDir()
	b := setupWith(t, nil, func(svc *service.Service, st accounting.Store) {
		reg, err := tenants.New(svc.Broker())
		if err != nil {
			t.Fatal(err)
		}
		for id, zone := range map[string]string{"berlin": "Europe/Berlin", "newyork": "America/New_York"} {
			if _, err := reg.Create(context.Background(), &tenants.Tenant{ID: id, Name: id, TimeZone: zone}); err != nil {
				t.Fatal(err)
			}
			if _, err := st.CompanyCreate(context.Background(), accounting.Company{Tenant: id, ID: "main", Name: id + " Ltd", Currency: "EUR"}); err != nil {
				t.Fatal(err)
			}
		}
		if err := jobs.RegisterReports(svc, st, jobs.ReportConfig{Dir: report.Dir{Root: dir}, Broker: svc.Broker(), Zones: jobs.RegistryZones(reg)}); err != nil {
			t.Fatal(err)
		}
	})
	// tick runs the fan-out for one tick and returns the per-company
	// report jobs it added, as "tenant date".
	seen := map[string]bool{}
	tick := func(at string) []string {
		t.Helper()
		ts, err := time.Parse(time.RFC3339, at)
		if err != nil {
			t.Fatal(err)
		}
		j, err := b.svc.Client().Add(b.ctx, jobs.QueueReports, worker.JobSpec{Type: jobs.TypeReport,
			Headers: map[string]string{"schedule-tick": ts.Format(time.RFC3339)},
			Data:    map[string]any{"reportType": "daily", "tenantId": jobs.AllTenants}})
		if err != nil {
			t.Fatal(err)
		}
		if got := b.finished(t, j); got.State != broker.StateCompleted {
			t.Fatalf("fan-out at %s: %s (%s)", at, got.State, got.LastError)
		}
		var added []string
		for _, st := range []broker.State{broker.StatePending, broker.StateActive, broker.StateCompleted} {
			l, err := b.svc.Client().List(b.ctx, worker.ListParams{Queue: jobs.QueueReports, State: st, Limit: 1000})
			if err != nil {
				t.Fatal(err)
			}
			for _, rj := range l.Jobs {
				if rj.TenantID != tenant && strings.HasPrefix(rj.ID, "report:daily:") && !seen[rj.ID] {
					seen[rj.ID] = true
					p := strings.Split(rj.ID, ":")
					added = append(added, p[2]+" "+p[4])
				}
			}
		}
		slices.Sort(added)
		return added
	}
	for _, c := range []struct{ tick, want string }{
		// The first tick catches up: both tenants are past 02:00 today.
		{"2026-03-15T12:00:00Z", "berlin 2026-03-15,newyork 2026-03-15"},
		{"2026-03-16T00:45:00Z", ""},                  // Berlin 01:45 CET
		{"2026-03-16T01:00:00Z", "berlin 2026-03-16"}, // Berlin 02:00 CET
		{"2026-03-16T01:15:00Z", ""},
		{"2026-03-16T05:45:00Z", ""},                   // New York 01:45 EDT
		{"2026-03-16T06:00:00Z", "newyork 2026-03-16"}, // New York 02:00 EDT
		// Berlin springs forward on 29 March: 02:00 does not exist.
		// New York, whose last run was 16 March, catches up at its first tick.
		{"2026-03-29T00:45:00Z", "newyork 2026-03-28"}, // Berlin 01:45 CET
		{"2026-03-29T01:00:00Z", "berlin 2026-03-29"},  // 03:00 CEST
		// New York falls back on 1 November: 01:00-02:00 twice, then 02:00 EST.
		// Berlin, whose last run was 29 March, catches up at its first tick.
		{"2026-11-01T05:45:00Z", "berlin 2026-11-01"},  // New York 01:45 EDT
		{"2026-11-01T06:45:00Z", ""},                   // 01:45 EST
		{"2026-11-01T07:00:00Z", "newyork 2026-11-01"}, // 02:00 EST
		{"2026-11-01T08:00:00Z", ""},
	} {
		if got := strings.Join(tick(c.tick), ","); got != c.want {
			t.Errorf("tick %s added reports %q, want %q", c.tick, got, c.want)
		}
	}
	// The per-company jobs write the files.
	testwait.For(t, 30*time.Second, "berlin's reports of 2026-03-16 on disk", func() bool {
		_, err := os.Stat(filepath.Join(dir, "berlin", "main", "2026-03-16", report.AgingPDF))
		return err == nil
	})
	l, err := (report.Dir{Root: dir}).List(accounting.Books{Tenant: "berlin", Company: "main"})
	if err != nil || len(l) < 4 {
		t.Fatalf("berlin's report files %+v, %v; want 4 per date", l, err)
	}
}
