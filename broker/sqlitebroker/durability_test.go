package sqlitebroker_test

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/broker/sqlitebroker"
)

const killRounds = 20

// killAfterFirstLine waits for the child's first line, lets it run a random
// while longer, SIGKILLs it and returns every complete line it printed.
func killAfterFirstLine(t *testing.T, role, path string, env ...string) []string {
	t.Helper()
	cmd, lines := startChild(t, role, path, env...)
	var got []string
	select {
	case l, ok := <-lines:
		if !ok {
			cmd.Wait()
			t.Fatalf("child %s exited before printing anything", role)
		}
		got = append(got, l)
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("child %s printed nothing within 20s", role)
	}
	time.Sleep(time.Duration(rand.IntN(40)) * time.Millisecond)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("kill child: %v", err)
	}
	for l := range lines { // ends when the pipe closes: the child is gone
		got = append(got, l)
	}
	cmd.Wait()
	return got
}

// reopenChecked opens path after a crash and checks the file's integrity.
func reopenChecked(t *testing.T, path string) *sqlitebroker.Broker {
	t.Helper()
	b, err := sqlitebroker.Open(path, sqlitebroker.Config{})
	if err != nil {
		t.Fatalf("reopen after SIGKILL: %v", err)
	}
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var res string
	if err := db.QueryRow("PRAGMA integrity_check").Scan(&res); err != nil || res != "ok" {
		t.Fatalf("integrity_check after SIGKILL = %q, %v; want ok", res, err)
	}
	return b
}

func TestDurableInsertSurvivesSIGKILL(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "jobs.db")
	ctx := context.Background()
	total := 0
	for round := range killRounds {
		acked := killAfterFirstLine(t, "insert", path, fmt.Sprintf("%s_PREFIX=r%d", childEnv, round))
		b := reopenChecked(t, path)
		for _, id := range acked {
			if _, err := b.JobGet(ctx, &broker.JobGetParams{Queue: "durable", ID: id}); err != nil {
				b.Close()
				t.Fatalf("round %d: job %s was acknowledged before SIGKILL but is lost: %v", round, id, err)
			}
		}
		total += len(acked)
		b.Close()
	}
	t.Logf("%d acknowledged inserts over %d SIGKILL rounds, none lost", total, killRounds)
}

func TestDurableCompleteSurvivesSIGKILL(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "jobs.db")
	ctx := context.Background()
	b, err := sqlitebroker.Open(path, sqlitebroker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	refill(t, b, 0)
	b.Close()
	total, dry := 0, 0
	for round := 0; round < killRounds; round++ {
		acked := killAfterFirstLine(t, "complete", path)
		b := reopenChecked(t, path)
		if slices.Contains(acked, "empty") {
			// The child completed every job before the kill reached it
			// (on a loaded machine the parent can wait seconds to run):
			// its completions are still checked, but the round killed
			// nothing mid-stream, so it is run again, a bounded number
			// of times.
			acked = slices.DeleteFunc(acked, func(id string) bool { return id == "empty" })
			t.Logf("round %d: the child ran dry before the kill; running it again", round)
			if dry++; dry > 5 {
				b.Close()
				t.Fatalf("round %d: the child ran out of %d+ jobs before the kill 6 times", round, 2000)
			}
			round--
		}
		for _, id := range acked {
			j, err := b.JobGet(ctx, &broker.JobGetParams{Queue: "durable", ID: id})
			if err != nil || j.State != broker.StateCompleted {
				b.Close()
				t.Fatalf("round %d: job %s was acknowledged completed before SIGKILL, after reopen: %+v, %v", round, id, j, err)
			}
		}
		total += len(acked)
		refill(t, b, round+1+dry) // dry rounds took their numbers too
		b.Close()
	}
	t.Logf("%d acknowledged completions over %d SIGKILL rounds, none lost", total, killRounds)
}

// refill tops the "durable" queue up to at least 2000 pending jobs, so the
// completing child never runs dry (a round can complete several hundred
// when the kill comes late on a loaded machine) while the file stays small
// enough for a quick integrity_check.
func refill(t *testing.T, b *sqlitebroker.Broker, round int) {
	t.Helper()
	ctx := context.Background()
	st, err := b.QueueStats(ctx, &broker.QueueStatsParams{Queue: "durable"})
	if err != nil {
		t.Fatal(err)
	}
	if st.Pending >= 2000 {
		return
	}
	ps := make([]*broker.JobInsertParams, 2000)
	for i := range ps {
		ps[i] = newJob("durable", fmt.Sprintf("j-%d-%d", round, i))
	}
	if _, err := b.JobInsertMany(ctx, ps); err != nil {
		t.Fatal(err)
	}
}
