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

// recompiles returns how often SQLite recompiled each of the statements
// prepared on b's write connection (SQLITE_STMTSTATUS_REPREPARE), by SQL
// text. database/sql hides the connection's handle, so it is read from
// the modernc.org/sqlite connection's first two fields.
func recompiles(t *testing.T, b *Broker) map[string]int {
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
			counts[q] += int(sqlite3.Xsqlite3_stmt_status(tls, s, sqlite3.SQLITE_STMTSTATUS_REPREPARE, 0))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return counts
}
