package admin_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aibos/worker/admin"
	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/internal/testbroker"
)

// TestPayloadRule checks, through a real listener and per role, that every
// read that can quote what a job carries (job get and list, a job action's
// answer, dead jobs, workflow runs and their step outputs, cron and
// one-time schedules) shows it to operators and admins and leaves it out
// for a viewer, with payloadRedacted set. Each payload holds a marker, so
// that a field the rule forgot shows up as the marker in the body.
func TestPayloadRule(t *testing.T) {
	const secret = "IBAN-DE89370400440532013000"
	b := testbroker.SQLite(t)
	a := newSchedAPI(t, b, invoiceEngine(t, b), nil)
	ctx := context.Background()
	data := map[string]any{"iban": secret}

	// A completed job with a result, a job with progress, a dead job.
	var ids []string
	for range 3 {
		r := want(t, "enqueue", a.do("POST", "/api/v1/queues/pay/jobs", "operator", map[string]any{"type": "pay", "data": data, "attempts": 1}), http.StatusCreated)
		ids = append(ids, jsonOf(t, r)["id"].(string))
	}
	leased, err := b.JobFetch(ctx, &broker.JobFetchParams{Queue: "pay", Limit: 3, LeaseDuration: time.Minute, WorkerID: "w"})
	if err != nil || len(leased) != 3 {
		t.Fatalf("fetch: %d jobs, %v", len(leased), err)
	}
	lease := func(i int) broker.JobLeaseParams {
		return broker.JobLeaseParams{Queue: "pay", ID: leased[i].ID, Token: leased[i].LeaseToken}
	}
	if errs, err := b.JobComplete(ctx, []*broker.JobCompleteParams{{JobLeaseParams: lease(0), Result: json.RawMessage(`{"paid":"` + secret + `"}`)}}); err != nil || errs[0] != nil {
		t.Fatalf("complete: %v %v", errs, err)
	}
	l1 := lease(1)
	if err := b.JobProgress(ctx, &l1, json.RawMessage(`{"at":"`+secret+`"}`)); err != nil {
		t.Fatalf("progress: %v", err)
	}
	if _, err := b.JobFail(ctx, &broker.JobFailParams{JobLeaseParams: lease(2), Error: "refused", Discard: true}); err != nil {
		t.Fatalf("fail: %v", err)
	}
	run := jsonOf(t, want(t, "start a run", a.do("POST", "/api/v1/workflows/invoice/runs", "operator", map[string]any{"data": data}), http.StatusCreated))
	runID := run["id"].(string)
	want(t, "create a schedule", a.do("POST", "/api/v1/schedules", "admin", map[string]any{"name": "nightly", "cron": "0 3 * * *",
		"job": map[string]any{"queue": "pay", "type": "pay", "data": data}}), http.StatusCreated)
	want(t, "create a one-time schedule", a.do("POST", "/api/v1/one-time-schedules", "admin", map[string]any{"name": "later",
		"runAt": time.Now().Add(time.Hour).UTC().Format(time.RFC3339), "job": map[string]any{"queue": "pay", "type": "pay", "data": data}}), http.StatusCreated)

	reads := []struct{ name, method, path string }{
		{"job with a result", "GET", "/api/v1/jobs/" + ids[0]},
		{"job with progress", "GET", "/api/v1/jobs/" + ids[1]},
		{"jobs list", "GET", "/api/v1/jobs?queue=pay"},
		{"dead jobs", "GET", "/api/v1/jobs?queue=pay&state=dead"},
		{"run", "GET", "/api/v1/workflows/runs/" + runID},
		{"runs list", "GET", "/api/v1/workflows/runs?workflow=invoice"},
		{"schedules", "GET", "/api/v1/schedules"},
		{"schedule", "GET", "/api/v1/schedules/nightly"},
		{"one-time schedules", "GET", "/api/v1/one-time-schedules?queue=pay"},
		{"one-time schedule", "GET", "/api/v1/one-time-schedules/pay/later"},
	}
	for _, role := range []string{"admin", "operator", "viewer"} {
		for _, rd := range reads {
			body := string(want(t, role+" reads "+rd.name, a.do(rd.method, rd.path, role, nil), http.StatusOK).Body)
			checkPayload(t, role+" reads "+rd.name, role != "viewer", body, secret)
		}
	}
	// An action's answer quotes the job too; it needs an operator anyway.
	body := string(want(t, "retry the dead job", a.do("POST", "/api/v1/jobs/"+ids[2]+"/retry", "operator", nil), http.StatusOK).Body)
	checkPayload(t, "operator retries", true, body, secret)
}

// checkPayload fails unless body quotes the secret (seen) or leaves it out
// and says so (not seen).
func checkPayload(t *testing.T, what string, seen bool, body, secret string) {
	t.Helper()
	quoted, marked := strings.Contains(body, secret), strings.Contains(body, `"payloadRedacted":true`)
	switch {
	case seen && (!quoted || marked):
		t.Errorf("%s: the payload is not shown (marker %v): %s", what, marked, body)
	case !seen && (quoted || !marked):
		t.Errorf("%s: the payload is shown or not marked redacted (marker %v): %s", what, marked, body)
	}
}

// TestPayloadRuleOpenAPI checks that the redaction marker is documented on
// each shape the rule applies to.
func TestPayloadRuleOpenAPI(t *testing.T) {
	raw, err := admin.OpenAPI()
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Components struct {
			Schemas map[string]struct {
				Properties map[string]any `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"JobsJob", "WorkflowsRun", "SchedulesSchedule", "SchedulesOneTime"} {
		if doc.Components.Schemas[name].Properties["payloadRedacted"] == nil {
			t.Errorf("schema %s does not document payloadRedacted", name)
		}
	}
}
