package dashboard_test

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/aibos/worker/admin"
)

// screenshotDir returns where the browser test writes each page at a
// laptop and a phone size: docs/screenshots/, which the README links, when
// DASHBOARD_SCREENSHOTS=1 (make screenshots); otherwise a temporary
// directory, so that the capture still runs but a test run leaves the
// tree as it was.
func screenshotDir(t *testing.T) string {
	if os.Getenv("DASHBOARD_SCREENSHOTS") == "1" {
		return "../../docs/screenshots"
	}
	return t.TempDir()
}

// chromium returns the path of a Chromium or Chrome binary. Without one
// the browser tests skip, or fail under CI=true:
// scripts/ensure-chromium.sh installs it.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "no chromium on PATH: run scripts/ensure-chromium.sh (apt-get install chromium)"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// tab is a headless Chromium tab that records what went wrong on its
// pages: console errors, uncaught exceptions, failed or refused requests,
// and error statuses.
type tab struct {
	t   *testing.T
	b   *bundle
	ctx context.Context

	mu       sync.Mutex
	problems []string
}

func newTab(t *testing.T, b *bundle) *tab {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium(t)),
		chromedp.NoSandbox, chromedp.Flag("disable-gpu", true), chromedp.Flag("disable-dev-shm-usage", true))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	tb := &tab{t: t, b: b, ctx: ctx}
	if err := chromedp.Listen(ctx, tb.record); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return tb
}

func (tb *tab) record(ev any) {
	var p string
	switch e := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		if e.Type == runtime.ConsoleAPICalledTypeError || e.Type == runtime.ConsoleAPICalledTypeAssert {
			var args []string
			for _, a := range e.Args {
				args = append(args, string(a.Value)+a.Description)
			}
			p = "console error: " + strings.Join(args, " ")
		}
	case *runtime.EventExceptionThrown:
		p = "uncaught exception: " + e.ExceptionDetails.Text
		if e.ExceptionDetails.Exception != nil {
			p += " " + e.ExceptionDetails.Exception.Description
		}
	case *log.EventEntryAdded:
		if e.Entry.Level == log.EntryLevelError {
			p = "browser log error: " + e.Entry.Text + " " + e.Entry.URL
		}
	case *network.EventLoadingFailed:
		// A poll cut short by a navigation is not a failure of the page.
		if !e.Canceled || e.BlockedReason != "" {
			p = fmt.Sprintf("request failed: %s %s", e.ErrorText, e.BlockedReason)
		}
	case *network.EventResponseReceived:
		if e.Response.Status >= 400 {
			p = fmt.Sprintf("status %d for %s", e.Response.Status, e.Response.URL)
		}
	}
	if p != "" {
		tb.mu.Lock()
		tb.problems = append(tb.problems, p)
		tb.mu.Unlock()
	}
}

// do runs actions with a time limit, failing the test on an error.
func (tb *tab) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		tb.t.Fatalf("%s: %v", what, err)
	}
}

func run[T any](tb *tab, what string, a chromedp.Action[T]) T {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 20*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		tb.t.Fatalf("%s: %v", what, err)
	}
	return v
}

// open loads path and waits for its main part.
func (tb *tab) open(path string) {
	tb.t.Helper()
	tb.do("open "+path, chromedp.Navigate(tb.b.base+path), chromedp.WaitReady(chromedp.CSS("main")))
}

// clean fails the test if anything went wrong since the last call.
func (tb *tab) clean(where string) {
	tb.t.Helper()
	tb.mu.Lock()
	defer tb.mu.Unlock()
	for _, p := range tb.problems {
		tb.t.Errorf("%s: %s", where, p)
	}
	tb.problems = nil
}

// html returns the rendered page.
func (tb *tab) html() string {
	tb.t.Helper()
	return run(tb, "read the page", chromedp.OuterHTML(chromedp.CSS("html")))
}

// login logs in through the form as the named token.
func (tb *tab) login(token string) {
	tb.t.Helper()
	tb.open("/login")
	tb.do("log in as "+token,
		chromedp.SendKeys(chromedp.ID("token"), tb.b.tok[token]),
		chromedp.Click(chromedp.CSS(`form.login button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`nav[aria-label=Main]`)))
	tb.clean("login")
}

// timezone makes the tab's clock read in zone (none: the machine's).
func timezone(zone string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, emulation.SetTimezoneOverride, emulation.SetTimezoneOverrideParams{TimezoneID: zone})
		return err
	})
}

var jobLink = regexp.MustCompile(`href="/jobs/([^"?]+)\?queue=`)

// filterJobs fills the jobs page's filter (field id to value), submits it
// and returns the ids the page then lists. The page refreshes itself: if
// a refresh wiped the fields before the submit, it tries again.
func (tb *tab) filterJobs(fields map[string]string) []string {
	tb.t.Helper()
	for try := 0; ; try++ {
		tb.open("/jobs")
		var steps []chromedp.Action[chromedp.Void]
		for id, v := range fields {
			steps = append(steps, chromedp.SetValue(chromedp.ID(id), v))
		}
		steps = append(steps, chromedp.Click(chromedp.CSS(`form.filter button[type=submit]`)))
		tb.do("filter the jobs", steps...)
		var loc string
		waitFor(tb.t, "the filtered jobs page", func() (bool, string) {
			loc = run(tb, "read the location", chromedp.Location())
			return strings.Contains(loc, "?"), loc
		})
		u, err := url.Parse(loc)
		if err != nil {
			tb.t.Fatal(err)
		}
		if u.Query().Get("queue") != fields["filter-queue"] {
			if try < 3 {
				continue
			}
			tb.t.Fatalf("the filter was sent as %s", loc)
		}
		tb.do("wait for the jobs", chromedp.WaitReady(chromedp.CSS("table.jobs")))
		var ids []string
		for _, m := range jobLink.FindAllStringSubmatch(run(tb, "read the jobs", chromedp.OuterHTML(chromedp.CSS("table.jobs"))), -1) {
			ids = append(ids, m[1])
		}
		return ids
	}
}

// unlabelled lists the page's form controls a screen reader could not
// name (no label, no aria-label), and wide says whether the page is wider
// than the window (tables scroll inside their own box instead).
const usabilityScript = `(() => {
  const unlabelled = [...document.querySelectorAll("input:not([type=hidden]), select, textarea")]
    .filter(e => !(e.labels && e.labels.length) && !e.getAttribute("aria-label"))
    .map(e => e.name || e.id || e.outerHTML);
  return {unlabelled, wide: document.documentElement.scrollWidth > window.innerWidth + 1};
})()`

// usable fails the test if the open page has a form control without a
// label or is wider than the window, and checks that the keyboard reaches
// the skip link first and the main navigation after it.
func (tb *tab) usable(where string) {
	tb.t.Helper()
	got := run(tb, "check "+where, chromedp.Evaluate[struct {
		Unlabelled []string `json:"unlabelled"`
		Wide       bool     `json:"wide"`
	}](usabilityScript))
	if len(got.Unlabelled) > 0 {
		tb.t.Errorf("%s: form controls without a label: %v", where, got.Unlabelled)
	}
	if got.Wide {
		tb.t.Errorf("%s: the page is wider than the window", where)
	}
	tb.do("press Tab", chromedp.KeyEvent("\t"))
	focused := run(tb, "read the focused element", chromedp.Evaluate[string](`document.activeElement.className + "|" + document.activeElement.getAttribute("href")`))
	if focused != "skip|#main" {
		tb.t.Errorf("%s: the first Tab focuses %q, want the skip link", where, focused)
	}
}

// forget drops what went wrong so far, on pages not the dashboard's (the
// identity provider's).
func (tb *tab) forget() {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	tb.problems = nil
}

// waitText reloads path until the element sel's text contains want.
func (tb *tab) waitText(path string, sel chromedp.CSS, want string) {
	tb.t.Helper()
	waitFor(tb.t, path+" "+string(sel)+" shows "+want, func() (bool, string) {
		tb.open(path)
		got := run(tb, "read "+string(sel), chromedp.Text(sel))
		return strings.Contains(got, want), got
	})
}

func TestBrowser(t *testing.T) {
	bin := chromium(t)
	t.Logf("chromium: %s", bin)
	b := setup(t)
	b.api(t, "admin", "POST", "/api/v1/schedules", map[string]any{"name": "nightly-report", "cron": "0 3 * * *",
		"timeZone": "Europe/Berlin", "job": map[string]any{"queue": "reports", "type": "ok", "tenantId": "A"}}, nil)
	tb := newTab(t, b)
	tb.login("admin")

	t.Run("EveryPageLoadsCleanly", func(t *testing.T) {
		tb.t = t
		pages := []struct{ name, path string }{
			{"overview", "/"}, {"queues", "/queues"}, {"jobs", "/jobs"},
			{"job", "/jobs/" + b.ids["A"][1] + "?queue=invoices"}, {"dead", "/dead"},
			{"schedules", "/schedules"}, {"runs", "/runs?workflow=" + payFlow}, {"run", "/runs/" + b.ids["A"][2]},
			{"workers", "/workers"}, {"tenants", "/tenants"}, {"audit", "/audit"},
		}
		dir := screenshotDir(t)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, size := range []struct{ w, h int64 }{{1280, 800}, {390, 844}} {
			tb.do("set the viewport", chromedp.EmulateViewport(size.w, size.h))
			for _, p := range pages {
				tb.open(p.path)
				png := run(tb, "screenshot "+p.name, chromedp.CaptureScreenshot())
				if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%s-%d.png", p.name, size.w)), png, 0o644); err != nil {
					t.Fatal(err)
				}
				tb.usable(fmt.Sprintf("%s at %dpx", p.path, size.w))
				tb.clean(fmt.Sprintf("%s at %dpx", p.path, size.w))
			}
		}
		// The script ran: times are shown in the browser's zone with UTC
		// on hover.
		tb.open("/jobs")
		title := run(tb, "read a time's title", chromedp.AttributeValue(chromedp.CSS("main time"), "title"))
		if !strings.HasSuffix(title.Value, "UTC") {
			t.Errorf("a time's title is %q, want the UTC time", title.Value)
		}
	})

	t.Run("LiveJobsPage", func(t *testing.T) {
		tb.t = t
		tb.open("/jobs?queue=bills")
		var j admin.Job
		b.api(t, "admin", "POST", "/api/v1/queues/bills/jobs", map[string]any{"type": "ok"}, &j)
		// No navigation: the page's script refreshes it.
		waitFor(t, "job "+j.ID+" on the open jobs page", func() (bool, string) {
			return strings.Contains(run(tb, "read the page", chromedp.OuterHTML(chromedp.CSS("main"))), j.ID), "absent"
		})
		tb.clean("live jobs page")
	})

	t.Run("FilterJobs", func(t *testing.T) {
		tb.t = t
		// The browser is in a zone far from UTC, so that a filter time
		// read in the wrong zone misses the jobs.
		const zone = "Asia/Kolkata"
		loc, err := time.LoadLocation(zone)
		if err != nil {
			t.Fatalf("load %s: %v", zone, err)
		}
		tb.do("set the browser's zone", timezone(zone))
		defer tb.do("reset the browser's zone", timezone(""))
		var dead admin.Job
		b.api(t, "admin", "GET", "/api/v1/jobs/"+b.ids["A"][1], nil, &dead)
		local := func(d time.Duration) string { return dead.CreatedAt.Add(d).In(loc).Format("2006-01-02T15:04") }
		utc := func(s string) string {
			v, err := time.ParseInLocation("2006-01-02T15:04", s, loc)
			if err != nil {
				t.Fatal(err)
			}
			return v.UTC().Format(time.RFC3339)
		}
		fields := map[string]string{"filter-queue": "invoices", "filter-state": "dead", "filter-type": "flaky",
			"filter-tenant": "A", "filter-from": local(-time.Minute), "filter-to": local(2 * time.Minute)}
		got := tb.filterJobs(fields)
		var page admin.JobPage
		b.api(t, "admin", "GET", "/api/v1/jobs?"+url.Values{"queue": {"invoices"}, "state": {"dead"}, "type": {"flaky"}, "tenant": {"A"},
			"from": {utc(fields["filter-from"])}, "to": {utc(fields["filter-to"])}}.Encode(), nil, &page)
		var want []string
		for _, j := range page.Jobs {
			want = append(want, j.ID)
		}
		if strings.Join(got, ",") != strings.Join(want, ",") || !slices.Contains(got, dead.ID) {
			t.Fatalf("the filtered page lists %v, the API %v; want both to hold tenant A's dead job %s", got, want, dead.ID)
		}
		// The form shows the filter it was sent with, times in the
		// browser's zone.
		for id, v := range fields {
			if got := run(tb, "read "+id, chromedp.Value(chromedp.ID(id))); got != v {
				t.Errorf("after filtering, %s shows %q, want %q", id, got, v)
			}
		}
		// A window that ends before the jobs were made lists none of them.
		fields["filter-from"], fields["filter-to"] = local(-2*time.Hour), local(-time.Hour)
		if got := tb.filterJobs(fields); len(got) != 0 {
			t.Errorf("a window before the jobs lists %v", got)
		}
		tb.clean("filter jobs")
	})

	t.Run("RunsListWorkflows", func(t *testing.T) {
		tb.t = t
		tb.open("/runs")
		if got := run(tb, "read the workflow choice", chromedp.Value(chromedp.ID("workflow"))); got != payFlow {
			t.Fatalf("the runs page offers workflow %q first, want the registered %s", got, payFlow)
		}
		tb.do("filter runs", chromedp.SetValue(chromedp.ID("run-state"), "failed"), chromedp.SetValue(chromedp.ID("run-tenant"), "B"),
			chromedp.Click(chromedp.CSS(`form.filter button[type=submit]`)))
		waitFor(t, "the filtered runs page", func() (bool, string) {
			loc := run(tb, "read the location", chromedp.Location())
			return strings.Contains(loc, "tenant=B"), loc
		})
		page := run(tb, "read the runs", chromedp.OuterHTML(chromedp.CSS("main")))
		if !strings.Contains(page, b.ids["B"][2]) || strings.Contains(page, b.ids["A"][2]) {
			t.Errorf("runs filtered to tenant B's failed ones: want B's run %s and not A's %s", b.ids["B"][2], b.ids["A"][2])
		}
		tb.clean("runs")
	})

	t.Run("RetryDeadJob", func(t *testing.T) {
		tb.t = t
		id := b.ids["A"][1]
		b.flaky.Store(false)
		tb.open("/jobs/" + id + "?queue=invoices")
		tb.do("retry", chromedp.Click(chromedp.ID("retry")), chromedp.WaitVisible(chromedp.CSS(".notice")))
		b.waitJob(t, id, "completed")
		tb.waitText("/jobs/"+id+"?queue=invoices", "#job-state", "completed")
		tb.clean("retry")
	})

	t.Run("BulkRetryAfterCount", func(t *testing.T) {
		tb.t = t
		b.flaky.Store(true)
		var ids []string
		for range 3 {
			var j admin.Job
			b.api(t, "admin", "POST", "/api/v1/queues/payments/jobs", map[string]any{"type": "flaky", "attempts": 1, "tenantId": "A"}, &j)
			ids = append(ids, j.ID)
		}
		for _, id := range ids {
			b.waitJob(t, id, "dead")
		}
		b.flaky.Store(false)
		tb.open("/dead?queue=payments")
		tb.do("count", chromedp.SetValue(chromedp.ID("bulk-action"), "retry"), chromedp.Click(chromedp.ID("bulk-count-button")),
			chromedp.WaitVisible(chromedp.ID("bulk-count")))
		if got := run(tb, "read the count", chromedp.Text(chromedp.ID("bulk-count"))); !strings.HasPrefix(got, "3 dead jobs match") {
			t.Fatalf("the dry run says %q, want 3 dead jobs", got)
		}
		for _, id := range ids {
			var j admin.Job
			b.api(t, "admin", "GET", "/api/v1/jobs/"+id, nil, &j)
			if j.State != "dead" {
				t.Fatalf("the dry run changed job %s to %s", id, j.State)
			}
		}
		tb.do("confirm", chromedp.Click(chromedp.ID("bulk-confirm")), chromedp.WaitVisible(chromedp.ID("bulk-done")))
		for _, id := range ids {
			b.waitJob(t, id, "completed")
		}
		// Tenant B's dead job in another queue was outside the filter.
		b.waitJob(t, b.ids["B"][1], "dead")
		tb.clean("bulk retry")
	})

	t.Run("PauseResumeQueue", func(t *testing.T) {
		tb.t = t
		tb.open("/queues")
		tb.do("pause", chromedp.Click(chromedp.ID("pause-invoices")), chromedp.WaitVisible(chromedp.ID("resume-invoices")))
		if !b.paused(t, "invoices") {
			t.Fatal("the page says paused, the API does not")
		}
		tb.do("resume", chromedp.Click(chromedp.ID("resume-invoices")), chromedp.WaitVisible(chromedp.ID("pause-invoices")))
		if b.paused(t, "invoices") {
			t.Fatal("the page says resumed, the API does not")
		}
		// Both actions are in the audit trail as the logged-in token's, as
		// the API reads it and as the audit page shows it.
		var trail struct {
			Entries []struct {
				TokenName string `json:"tokenName"`
				Target    string `json:"target"`
			} `json:"entries"`
		}
		for _, action := range []string{"queue.pause", "queue.resume"} {
			b.api(t, "admin", "GET", "/api/v1/audit?action="+action, nil, &trail)
			if len(trail.Entries) == 0 || trail.Entries[0].TokenName != "admin" {
				t.Fatalf("the audit trail's latest %s is %+v, want the dashboard's, by token admin", action, trail.Entries)
			}
		}
		tb.open("/audit?action=queue")
		if page := tb.html(); !strings.Contains(page, "queue.pause") || !strings.Contains(page, "queue.resume") {
			t.Error("the audit page does not show the pause and the resume")
		}
		tb.clean("pause and resume")
	})

	t.Run("PauseResumeTenant", func(t *testing.T) {
		tb.t = t
		tb.open("/tenants")
		row := run(tb, "read tenant B's invoices row", chromedp.Text(chromedp.ID("tq-invoices-B")))
		if !strings.Contains(row, "invoices") || !strings.Contains(row, "no") {
			t.Fatalf("tenant B's invoices row says %q, want its counts and not paused", row)
		}
		tb.do("pause B", chromedp.Click(chromedp.ID("pause-invoices-B")), chromedp.WaitVisible(chromedp.ID("resume-invoices-B")))
		if !b.tenantPaused(t, "invoices", "B") || b.tenantPaused(t, "invoices", "A") {
			t.Fatal("after the page paused tenant B in invoices, the API does not say B alone is paused")
		}
		tb.do("resume B", chromedp.Click(chromedp.ID("resume-invoices-B")), chromedp.WaitVisible(chromedp.ID("pause-invoices-B")))
		if b.tenantPaused(t, "invoices", "B") {
			t.Fatal("the page says tenant B resumed, the API does not")
		}
		tb.clean("pause and resume a tenant")
	})

	t.Run("TriggerSchedule", func(t *testing.T) {
		tb.t = t
		tb.open("/schedules")
		if page := tb.html(); !strings.Contains(page, "nightly-report") || !strings.Contains(page, "03:00") {
			t.Fatal("the schedules page does not show nightly-report's next fire time at 03:00 in its zone")
		}
		tb.do("trigger", chromedp.Click(chromedp.ID("trigger-nightly-report")), chromedp.WaitVisible(chromedp.ID("job-state")))
		loc := run(tb, "read the location", chromedp.Location())
		u, err := url.Parse(loc)
		if err != nil || !strings.HasPrefix(u.Path, "/jobs/") {
			t.Fatalf("after the trigger the browser is at %q, want the job's page", loc)
		}
		id := strings.TrimPrefix(u.Path, "/jobs/")
		b.waitJob(t, id, "completed")
		var j admin.Job
		b.api(t, "admin", "GET", "/api/v1/jobs/"+id, nil, &j)
		if j.Queue != "reports" || j.Type != "ok" {
			t.Fatalf("the triggered job is %s/%s, want reports/ok", j.Queue, j.Type)
		}
		tb.clean("trigger")
	})

	t.Run("FailedRunShowsFailingStep", func(t *testing.T) {
		tb.t = t
		id := b.ids["A"][2]
		var r struct {
			State      string `json:"state"`
			FailedStep string `json:"failedStep"`
		}
		b.api(t, "admin", "GET", "/api/v1/workflows/runs/"+id, nil, &r)
		if r.State != "failed" || r.FailedStep != "charge" {
			t.Fatalf("the API says run %s is %s at %q, want failed at charge", id, r.State, r.FailedStep)
		}
		tb.open("/runs/" + id)
		nodes := run(tb, "find the failing step", chromedp.Nodes(chromedp.CSSAll(`svg.graph g.step.failing[data-step="charge"]`)))
		if len(nodes) != 1 {
			t.Fatalf("%d failing charge steps drawn, want 1", len(nodes))
		}
		if others := run(tb, "find other failing steps", chromedp.Nodes(chromedp.CSSAll(`svg.graph g.step.failing`))); len(others) != 1 {
			t.Fatalf("%d steps drawn as failing, want only charge", len(others))
		}
		if sub := run(tb, "read reserve's state", chromedp.TextContent(chromedp.CSS(`g.step[data-step="reserve"] text.sub`))); !strings.Contains(sub, "compensation") {
			t.Errorf("reserve's box says %q, want its compensation shown", sub)
		}
		tb.clean("failed run")
	})

	t.Run("TenantLoginSeesOnlyItsTenant", func(t *testing.T) {
		tb.t = t
		tb.open("/")
		tb.do("log out", chromedp.Click(chromedp.CSS(`form.who button`)), chromedp.WaitVisible(chromedp.ID("token")))
		tb.login("operator-A")
		for _, path := range []string{"/", "/queues", "/jobs", "/dead", "/runs?workflow=" + payFlow, "/schedules", "/workers", "/tenants"} {
			tb.open(path)
			page := tb.html()
			for _, id := range b.ids["B"] {
				if strings.Contains(page, id) {
					t.Errorf("%s shows tenant A's login tenant B's id %s", path, id)
				}
			}
			tb.clean(path + " as tenant A")
		}
	})
}
