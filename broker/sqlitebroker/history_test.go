package sqlitebroker_test

import (
	"context"
	"database/sql"
	"fmt"
	"testing"
	"time"

	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/broker/sqlitebroker"
)

// A completion appends nothing to the attempts column (the row keeps the
// attempt and JobGet derives it), and jobs completed by earlier releases
// show what they showed: one completed attempt when the release listed it
// (migration 0012 on), none before.
func TestCompletedAttemptDerivedOnRead(t *testing.T) {
	b, path := openT(t, sqlitebroker.Config{})
	ctx := context.Background()
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	complete := func(id string) *broker.Job {
		t.Helper()
		if _, err := b.JobInsert(ctx, newJob("q", id)); err != nil {
			t.Fatal(err)
		}
		got, err := b.JobFetch(ctx, &broker.JobFetchParams{Queue: "q", Limit: 1, LeaseDuration: time.Minute, WorkerID: "w1"})
		if err != nil || len(got) != 1 || got[0].ID != id {
			t.Fatalf("fetch %s: %v, %v", id, got, err)
		}
		if errs, err := b.JobComplete(ctx, completions(got)); err != nil || errs[0] != nil {
			t.Fatalf("complete %s: %v, %v", id, errs, err)
		}
		return got[0]
	}
	history := func(id string) []broker.AttemptRecord {
		t.Helper()
		j, err := b.JobGet(ctx, &broker.JobGetParams{Queue: "q", ID: id})
		if err != nil {
			t.Fatalf("get %s: %v", id, err)
		}
		return j.Attempts
	}

	f := complete("new")
	var col sql.NullString
	if err := raw.QueryRow(`SELECT attempts FROM jobs WHERE id = 'new'`).Scan(&col); err != nil || col.String != "[]" {
		t.Fatalf("attempts column after a first-attempt completion = %v, %v; want [] (no entry written)", col, err)
	}
	if h := history("new"); len(h) != 1 || h[0].Outcome != broker.AttemptCompleted || h[0].Attempt != 1 ||
		h[0].WorkerID != "w1" || !h[0].StartedAt.Equal(f.StartedAt) || h[0].FinishedAt.Before(h[0].StartedAt) {
		t.Fatalf("history of a completed job = %+v; want its one completed attempt by w1 started %v", h, f.StartedAt)
	}

	f = complete("listed")
	entry := fmt.Sprintf(`[[1,"w1",%d,%d,"completed"]]`, f.StartedAt.UnixMilli(), f.StartedAt.UnixMilli()+5)
	if _, err := raw.Exec(`UPDATE jobs SET attempts = ? WHERE id = 'listed'`, entry); err != nil {
		t.Fatal(err)
	}
	if h := history("listed"); len(h) != 1 || h[0].Outcome != broker.AttemptCompleted {
		t.Fatalf("history of a job whose completion an earlier release listed = %+v; want that one attempt", h)
	}

	complete("older")
	if _, err := raw.Exec(`UPDATE jobs SET attempts = NULL WHERE id = 'older'`); err != nil {
		t.Fatal(err)
	}
	if h := history("older"); len(h) != 0 {
		t.Fatalf("history of a job completed before attempts were kept = %+v; want none", h)
	}
}
