package pgtest_test

import (
	"context"
	"os"
	"testing"

	"github.com/aibos/worker/internal/pgtest"
	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// TestDatabasePerTest checks that two tests get different, usable databases:
// a table made in one is absent from the other.
func TestDatabasePerTest(t *testing.T) {
	ctx := context.Background()
	a, b := pgtest.DatabaseURL(t), pgtest.DatabaseURL(t)
	if a == b {
		t.Fatalf("two calls returned the same database %s", a)
	}
	ca, err := pgx.Connect(ctx, a)
	if err != nil {
		t.Fatalf("connect to %s: %v", a, err)
	}
	defer ca.Close(ctx)
	if _, err := ca.Exec(ctx, "CREATE TABLE only_in_a (x int)"); err != nil {
		t.Fatalf("create table: %v", err)
	}
	cb, err := pgx.Connect(ctx, b)
	if err != nil {
		t.Fatalf("connect to %s: %v", b, err)
	}
	defer cb.Close(ctx)
	var n int
	if err := cb.QueryRow(ctx, "SELECT count(*) FROM pg_tables WHERE tablename = 'only_in_a'").Scan(&n); err != nil {
		t.Fatalf("query: %v", err)
	}
	if n != 0 {
		t.Fatalf("the table made in one test's database is visible in another's")
	}
	var fsync string
	if err := cb.QueryRow(ctx, "SHOW fsync").Scan(&fsync); err != nil {
		t.Fatalf("show fsync: %v", err)
	}
	if os.Getenv(pgtest.EnvURL) == "" && fsync != "off" {
		t.Fatalf("private server runs with fsync=%s, want off", fsync)
	}
}
