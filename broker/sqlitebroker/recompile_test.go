package sqlitebroker

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"
	"unsafe"

	"github.com/aibos/worker/broker"
	"modernc.org/libc"
	sqlite3 "modernc.org/sqlite/lib"
)

// TestFetchSizeDoesNotRecompile fetches with a different limit each time,
// as a Manager does when its free slots change, and maintains the queue in
// between: the cached statements keep their compiled form (SQLite
// recompiles a statement whose plan depended on a bound value whenever
// that value changes).
func TestFetchSizeDoesNotRecompile(t *testing.T) {
	t.Parallel()
	b := openInternal(t)
	ctx := context.Background()
	// q is plain; f is fair (one statement leases in fair order); c is
	// fair with a cap (its fetch picks among candidates).
	for _, p := range []*broker.FairPolicy{{Queue: "f", Fair: true}, {Queue: "c", Fair: true, MaxActive: 100}} {
		if err := b.QueueFairSet(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	queues := []string{"q", "f", "c"}
	for _, q := range queues {
		ps := make([]*broker.JobInsertParams, 200)
		for i := range ps {
			ps[i] = &broker.JobInsertParams{ID: fmt.Sprint(i), Queue: q, Type: "t", MaxAttempts: 1, TenantID: fmt.Sprint("t", i%3)}
		}
		if _, err := b.JobInsertMany(ctx, ps); err != nil {
			t.Fatal(err)
		}
	}
	fetch := func(limit int) {
		t.Helper()
		for _, q := range queues {
			if _, err := b.JobFetch(ctx, &broker.JobFetchParams{Queue: q, Limit: limit, LeaseDuration: time.Minute}); err != nil {
				t.Fatal(err)
			}
		}
	}
	fetch(1) // compiles what runs lazily
	before := recompiles(t, b)
	for i := range 20 {
		fetch(1 + i%7)
		if _, err := b.QueueMaintain(ctx, &broker.QueueMaintainParams{Queue: "q", Limit: 10 + i}); err != nil {
			t.Fatal(err)
		}
	}
	for q, n := range recompiles(t, b) {
		if n > before[q] {
			t.Errorf("statement recompiled %d times: %.80s", n-before[q], q)
		}
	}
}

// TestMaintenanceUsesCompiledStatements: a Manager maintains every queue
// it serves, a thousand calls a second with a thousand busy queues, and
// each of its idle ones at its first round; QueueMaintain and
// LeaderAcquire run the statements compiled at Open rather than compile
// their own (about 0.4 ms a call, on the one write connection), and keep
// them compiled whatever limits they are given.
func TestMaintenanceUsesCompiledStatements(t *testing.T) {
	t.Parallel()
	b := openInternal(t)
	ctx := context.Background()
	maintain := func(i int) {
		t.Helper()
		if _, err := b.LeaderAcquire(ctx, &broker.LeaderParams{Name: "maintain.q", Holder: "w", TTL: time.Minute}); err != nil {
			t.Fatal(err)
		}
		p := &broker.QueueMaintainParams{Queue: "q", Limit: 10 + i, CompletedMaxAge: time.Hour, CompletedMaxCount: 5 + i, DeadMaxAge: time.Hour}
		if _, err := b.QueueMaintain(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	maintain(0) // compiles what runs lazily
	runs0, recompiled0 := stmtStatus(t, b, sqlite3.SQLITE_STMTSTATUS_RUN), recompiles(t, b)
	const calls = 3
	for i := range calls {
		maintain(1 + i)
	}
	runs, recompiled := stmtStatus(t, b, sqlite3.SQLITE_STMTSTATUS_RUN), recompiles(t, b)
	for _, q := range maintainQueries {
		if n := runs[q] - runs0[q]; n != calls {
			t.Errorf("compiled statement ran %d times in %d calls: %.80s", n, calls, q)
		}
		if n := recompiled[q] - recompiled0[q]; n > 0 {
			t.Errorf("statement recompiled %d times: %.80s", n, q)
		}
	}
}

// recompiles returns how often SQLite recompiled each of the statements
// prepared on b's write connection (SQLITE_STMTSTATUS_REPREPARE), by SQL
// text.
func recompiles(t *testing.T, b *Broker) map[string]int {
	t.Helper()
	return stmtStatus(t, b, sqlite3.SQLITE_STMTSTATUS_REPREPARE)
}

// stmtStatus returns a counter (SQLITE_STMTSTATUS_*) of each of the
// statements prepared on b's write connection, by SQL text. database/sql
// hides the connection's handle, so it is read from the modernc.org/sqlite
// connection's first two fields.
func stmtStatus(t *testing.T, b *Broker, op int32) map[string]int {
	t.Helper()
	c, err := b.write.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	counts := map[string]int{}
	err = c.Raw(func(dc any) error {
		v := reflect.ValueOf(dc).Elem()
		if v.Kind() != reflect.Struct || v.NumField() < 2 || v.Type().Field(0).Name != "db" || v.Type().Field(1).Name != "tls" {
			return fmt.Errorf("driver connection %T has no db and tls fields: read the statement counters another way", dc)
		}
		db := uintptr(v.Field(0).Uint())
		tls := (*libc.TLS)(unsafe.Pointer(v.Field(1).Pointer()))
		for s := sqlite3.Xsqlite3_next_stmt(tls, db, 0); s != 0; s = sqlite3.Xsqlite3_next_stmt(tls, db, s) {
			q := libc.GoString(sqlite3.Xsqlite3_sql(tls, s))
			counts[q] += int(sqlite3.Xsqlite3_stmt_status(tls, s, op, 0))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return counts
}
