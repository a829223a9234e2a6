package redisbroker_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/broker/redisbroker"
)

// A completion writes no attempt history list (the job's hash keeps the
// attempt and JobGet derives it), and jobs completed by earlier releases
// show what they showed: one completed attempt when format 7 listed it,
// none before.
func TestCompletedAttemptDerivedOnRead(t *testing.T) {
	t.Parallel()
	b, client, prefix := newBrokerKeys(t)
	ctx := context.Background()
	complete := func(id string) *broker.Job {
		t.Helper()
		mustInsert(t, b, job("q", id))
		f := fetch(t, b, "q", 1, time.Minute)[0]
		if errs, err := b.JobComplete(ctx, []*broker.JobCompleteParams{{JobLeaseParams: leaseOf(f)}}); err != nil || errs[0] != nil {
			t.Fatalf("complete %s: %v, %v", id, errs, err)
		}
		return f
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
	if n, err := client.Exists(ctx, prefix+":{q}:h:new").Result(); err != nil || n != 0 {
		t.Fatalf("history list after a first-attempt completion: exists %d, %v; want none written", n, err)
	}
	if h := history("new"); len(h) != 1 || h[0].Outcome != broker.AttemptCompleted || h[0].Attempt != 1 ||
		h[0].WorkerID != f.WorkerID || !h[0].StartedAt.Equal(f.StartedAt) || h[0].FinishedAt.Before(h[0].StartedAt) {
		t.Fatalf("history of a completed job = %+v; want its one completed attempt by %q started %v", h, f.WorkerID, f.StartedAt)
	}

	// As format 7 left a completed job: a state hash with no 'la', the
	// attempt in the list.
	f = complete("listed")
	asStateHash(t, client, prefix, "q", "listed")
	entry := fmt.Sprintf(`[1,%q,%d,%d,"completed"]`, f.WorkerID, f.StartedAt.UnixMilli(), f.StartedAt.UnixMilli()+5)
	if err := client.HDel(ctx, prefix+":{q}:j:listed", "la").Err(); err != nil {
		t.Fatal(err)
	}
	if err := client.RPush(ctx, prefix+":{q}:h:listed", entry).Err(); err != nil {
		t.Fatal(err)
	}
	if h := history("listed"); len(h) != 1 || h[0].Outcome != broker.AttemptCompleted {
		t.Fatalf("history of a job whose completion format 7 listed = %+v; want that one attempt", h)
	}

	// As formats before 7 left it: no 'la', no list.
	complete("older")
	asStateHash(t, client, prefix, "q", "older")
	if err := client.HDel(ctx, prefix+":{q}:j:older", "la").Err(); err != nil {
		t.Fatal(err)
	}
	if h := history("older"); len(h) != 0 {
		t.Fatalf("history of a job completed before attempts were kept = %+v; want none", h)
	}
}

// asStateHash turns the done entry of a job completed with no state hash
// into the state hash format 8 left such a job with, so that a test can
// then make it look like older data.
func asStateHash(t *testing.T, client *redis.Client, prefix, queue, id string) {
	t.Helper()
	ctx := context.Background()
	done := redisbroker.DoneKey(prefix, queue)
	e, err := client.HGet(ctx, done, id).Result()
	if err != nil {
		t.Fatalf("done entry of %s: %v", id, err)
	}
	// tk|q|st|f|<len of w>|w then tn
	parts := strings.SplitN(e, "|", 6)
	lw, err := strconv.Atoi(parts[4])
	if len(parts) != 6 || err != nil || lw > len(parts[5]) {
		t.Fatalf("done entry of %s = %q: not tk|q|st|f|lw|w tn", id, e)
	}
	h := []any{"s", "completed", "a", "1", "tk", parts[0], "q", parts[1], "st", parts[2], "f", parts[3], "la", "1",
		"w", parts[5][:lw]}
	if tn := parts[5][lw:]; tn != "" {
		h = append(h, "tn", tn)
	}
	if err := client.HSet(ctx, prefix+":{"+queue+"}:j:"+id, h...).Err(); err != nil {
		t.Fatal(err)
	}
	if err := client.HDel(ctx, done, id).Err(); err != nil {
		t.Fatal(err)
	}
}
