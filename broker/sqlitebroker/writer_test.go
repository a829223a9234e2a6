package sqlitebroker

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"modernc.org/sqlite"

	"github.com/aibos/worker/broker"
)

// TestJoinedCallsShareTheCommit holds a write transaction open while
// other calls queue up, then lets it go: the calls join it, each one's
// failure undoes its own writes only, a call that gave up while waiting
// runs nothing, and no call is answered before the commit: when the commit
// fails, every call of the transaction gets an error and nothing is
// written.
func TestJoinedCallsShareTheCommit(t *testing.T) {
	t.Parallel()
	b := openInternal(t)
	ctx := context.Background()
	// A deferred foreign key fails at COMMIT, after every statement ran.
	for _, q := range []string{
		`CREATE TABLE marks (name TEXT NOT NULL)`,
		`CREATE TABLE parent (id INTEGER PRIMARY KEY)`,
		`CREATE TABLE child (p INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)`,
	} {
		if _, err := b.write.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	mark := func(tx *sql.Tx, name string) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO marks (name) VALUES (?)`, name)
		return err
	}
	errBoom := errors.New("boom")
	for _, commitFails := range []bool{false, true} {
		t.Run(fmt.Sprintf("commitFails=%v", commitFails), func(t *testing.T) {
			if _, err := b.write.ExecContext(ctx, `DELETE FROM marks`); err != nil {
				t.Fatal(err)
			}
			started, hold := make(chan struct{}), make(chan struct{})
			first := make(chan error, 1)
			go func() {
				first <- b.inLeaseTx(ctx, func(_ context.Context, tx *sql.Tx, _ int64) error {
					close(started)
					<-hold
					if commitFails {
						if _, err := tx.ExecContext(ctx, `INSERT INTO child (p) VALUES (42)`); err != nil {
							return err
						}
					}
					return mark(tx, "first")
				})
			}()
			<-started
			joined := make([]chan error, 3)
			for i := range joined {
				joined[i] = make(chan error, 1)
				go func() {
					joined[i] <- b.inLeaseTx(ctx, func(_ context.Context, tx *sql.Tx, _ int64) error {
						if err := mark(tx, fmt.Sprint("joined-", i)); err != nil {
							return err
						}
						if i == 1 {
							return errBoom
						}
						return nil
					})
				}()
				waitWaiting(t, b, i+1)
			}
			gaveUp, cancel := context.WithCancel(ctx)
			quit := make(chan error, 1)
			go func() {
				quit <- b.inLeaseTx(gaveUp, func(_ context.Context, tx *sql.Tx, _ int64) error { return mark(tx, "gave-up") })
			}()
			waitWaiting(t, b, 4)
			cancel()
			if err := <-quit; !errors.Is(err, context.Canceled) {
				t.Errorf("call that gave up while waiting: %v, want context.Canceled", err)
			}
			waitWaiting(t, b, 3)
			close(hold)

			errs := []error{<-first, <-joined[0], <-joined[1], <-joined[2]}
			if !errors.Is(errs[2], errBoom) {
				t.Errorf("failing joined call: %v, want its own error", errs[2])
			}
			want := []string{"first", "joined-0", "joined-2"}
			for i, err := range slices.Delete(slices.Clone(errs), 2, 3) {
				if commitFails && err == nil {
					t.Errorf("call %s answered success though the commit failed", want[i])
				}
				if !commitFails && err != nil {
					t.Errorf("call %s: %v", want[i], err)
				}
			}
			if commitFails {
				want = nil
			}
			if got := readMarks(t, b); !slices.Equal(got, want) {
				t.Errorf("written: %q, want %q", got, want)
			}
		})
	}
}

// waitWaiting waits until n calls wait for b's write connection.
func waitWaiting(t *testing.T, b *Broker, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b.writer.mu.Lock()
		got := len(b.writer.waiting)
		b.writer.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d calls wait for the write connection, want %d", got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// readMarks returns the names written to table marks, sorted.
func readMarks(t *testing.T, b *Broker) []string {
	t.Helper()
	rows, err := b.read.Query(`SELECT name FROM marks ORDER BY name`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		names = append(names, n)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return names
}

// spinHook is what the SQL function test_spin calls on every row: the
// test that registers it decides when a statement stops.
var (
	spinOnce sync.Once
	spinHook atomic.Pointer[func(int64) bool]
)

// registerSpin registers test_spin(x), true while the current spinHook
// wants the statement to go on, on the connections opened from now on.
func registerSpin(t *testing.T) {
	t.Helper()
	spinOnce.Do(func() {
		sqlite.MustRegisterScalarFunction("test_spin", 1, func(_ *sqlite.FunctionContext, args []driver.Value) (driver.Value, error) {
			f := spinHook.Load()
			return f != nil && (*f)(args[0].(int64)), nil
		})
	})
}

// TestJoinedCallCancelledMidStatement cancels a joined call's context
// while its INSERT runs. SQLite rolls back the whole transaction when a
// writing statement is interrupted, and the driver interrupts on a done
// context: the calls that shared the transaction must still be applied
// and answered success.
func TestJoinedCallCancelledMidStatement(t *testing.T) {
	registerSpin(t)
	b := openInternal(t)
	ctx := context.Background()
	if _, err := b.write.ExecContext(ctx, `CREATE TABLE marks (name TEXT NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	mark := func(tx *sql.Tx, name string) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO marks (name) VALUES (?)`, name)
		return err
	}
	started, hold := make(chan struct{}), make(chan struct{})
	first := make(chan error, 1)
	go func() {
		first <- b.inLeaseTx(ctx, func(_ context.Context, tx *sql.Tx, _ int64) error {
			close(started)
			<-hold
			return mark(tx, "first")
		})
	}()
	<-started
	other := make(chan error, 1)
	go func() {
		other <- b.inLeaseTx(ctx, func(_ context.Context, tx *sql.Tx, _ int64) error { return mark(tx, "other") })
	}()
	waitWaiting(t, b, 1)
	slowCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The statement cancels its own context on its first row and then runs
	// for a second more, time enough for the driver's interrupt to land.
	var until time.Time
	hook := func(x int64) bool {
		if x == 1 {
			cancel()
			until = time.Now().Add(time.Second)
		}
		return time.Now().Before(until)
	}
	spinHook.Store(&hook)
	defer spinHook.Store(nil)
	slow := make(chan error, 1)
	go func() {
		slow <- b.inLeaseTx(slowCtx, func(ctx context.Context, tx *sql.Tx, _ int64) error {
			_, err := tx.ExecContext(ctx, `INSERT INTO marks (name)
				WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE test_spin(x))
				SELECT 'slow' FROM c WHERE x = 1`)
			return err
		})
	}()
	waitWaiting(t, b, 2)
	close(hold)
	if err := <-first; err != nil {
		t.Errorf("first call: %v", err)
	}
	if err := <-other; err != nil {
		t.Errorf("other joined call: %v", err)
	}
	slowErr := <-slow
	want := []string{"first", "other"}
	if slowErr == nil {
		want = []string{"first", "other", "slow"}
	}
	if got := readMarks(t, b); !slices.Equal(got, want) {
		t.Errorf("written: %q, want %q (cancelled call: %v)", got, want, slowErr)
	}
}

// TestPanickingCallLeavesTheWriterUsable makes a call's function panic,
// alone and joined: the call gets an error, the calls it shared a
// transaction with are applied, and later calls still get the connection.
func TestPanickingCallLeavesTheWriterUsable(t *testing.T) {
	t.Parallel()
	b := openInternal(t)
	ctx := context.Background()
	if _, err := b.write.ExecContext(ctx, `CREATE TABLE marks (name TEXT NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	mark := func(name string) func(_ context.Context, tx *sql.Tx, _ int64) error {
		return func(_ context.Context, tx *sql.Tx, _ int64) error {
			_, err := tx.ExecContext(ctx, `INSERT INTO marks (name) VALUES (?)`, name)
			return err
		}
	}
	panics := func(name string) func(_ context.Context, tx *sql.Tx, _ int64) error {
		return func(_ context.Context, tx *sql.Tx, now int64) error {
			if err := mark(name)(ctx, tx, now); err != nil {
				return err
			}
			panic("bug in " + name)
		}
	}
	// call runs fn in a goroutine and reports its error, or its panic as
	// an error, so that a panic that escapes does not end the test binary.
	call := func(fn func(_ context.Context, tx *sql.Tx, _ int64) error) chan error {
		done := make(chan error, 1)
		go func() {
			defer func() {
				if r := recover(); r != nil {
					done <- fmt.Errorf("panic escaped: %v", r)
				}
			}()
			done <- b.inLeaseTx(ctx, fn)
		}()
		return done
	}
	answer := func(what string, done chan error) error {
		t.Helper()
		select {
		case err := <-done:
			return err
		case <-time.After(30 * time.Second):
			t.Fatalf("%s not answered in 30s: the writer is stuck", what)
			return nil
		}
	}
	if err := answer("lone panicking call", call(panics("alone"))); err == nil || !strings.Contains(err.Error(), "bug in alone") {
		t.Errorf("lone panicking call: %v, want an error naming the panic", err)
	}

	started, hold := make(chan struct{}), make(chan struct{})
	first := call(func(_ context.Context, tx *sql.Tx, now int64) error {
		close(started)
		<-hold
		return mark("first")(ctx, tx, now)
	})
	<-started
	bad := call(panics("joined"))
	waitWaiting(t, b, 1)
	good := call(mark("after"))
	waitWaiting(t, b, 2)
	close(hold)
	if err := answer("first call", first); err != nil {
		t.Errorf("first call: %v", err)
	}
	if err := answer("joined panicking call", bad); err == nil || strings.Contains(err.Error(), "escaped") {
		t.Errorf("joined panicking call: %v, want an error naming the panic", err)
	}
	if err := answer("joined call after it", good); err != nil {
		t.Errorf("joined call after the panicking one: %v", err)
	}
	if err := answer("later call", call(mark("later"))); err != nil {
		t.Errorf("later call: %v", err)
	}
	if got, want := readMarks(t, b), []string{"after", "first", "later"}; !slices.Equal(got, want) {
		t.Errorf("written: %q, want %q", got, want)
	}
}

// TestCloseWhileCallsWait closes the store while one write call runs and
// others wait for the connection, some to join its transaction (NORMAL)
// and some to run their own after it (FULL). Close must not return while
// a transaction runs: it released the file's lock and returned while the
// transaction went on to commit, so a write landed after Close returned,
// when another process could have opened the file. Every call is
// answered, a call answered success is in the file when it is opened
// again, one answered an error is not, and a call made after Close is
// refused with ErrClosed.
func TestCloseWhileCallsWait(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "jobs.db")
	b, err := Open(path, Config{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := b.write.ExecContext(ctx, `CREATE TABLE marks (name TEXT NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	mark := func(name string) txFunc {
		return func(ctx context.Context, tx *sql.Tx, _ int64) error {
			_, err := tx.ExecContext(ctx, `INSERT INTO marks (name) VALUES (?)`, name)
			return err
		}
	}
	started, hold := make(chan struct{}), make(chan struct{})
	names := []string{"first", "w0", "w1", "w2"}
	done := make([]chan error, len(names))
	for i := range done {
		done[i] = make(chan error, 1)
	}
	go func() {
		done[0] <- b.inLeaseTx(ctx, func(ctx context.Context, tx *sql.Tx, now int64) error {
			close(started)
			<-hold
			return mark("first")(ctx, tx, now)
		})
	}()
	<-started
	for i := 1; i < len(names); i++ {
		go func() {
			if i == 1 {
				done[i] <- b.inLeaseTx(ctx, mark(names[i]))
			} else {
				done[i] <- b.inTx(ctx, mark(names[i]))
			}
		}()
		waitWaiting(t, b, i)
	}
	closed := make(chan error, 1)
	go func() { closed <- b.Close() }()
	for deadline := time.Now().Add(10 * time.Second); !b.closed.Load(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("Close did not start in 10 s")
		}
	}
	early := false
	select {
	case err := <-closed:
		t.Errorf("Close returned (%v) while a write transaction was still running", err)
		early = true
	case <-time.After(300 * time.Millisecond):
	}
	close(hold)
	if !early {
		select {
		case err := <-closed:
			if err != nil {
				t.Fatalf("close: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("Close did not return 30 s after the write it waited for ended")
		}
	}
	if err := b.inLeaseTx(ctx, mark("late")); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("a write call made after Close: %v; want ErrClosed", err)
	}
	var want []string
	for i, name := range names {
		select {
		case err := <-done[i]:
			if err == nil {
				want = append(want, name)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("call %s not answered in 30s after Close", name)
		}
	}
	slices.Sort(want)
	if !slices.Contains(want, "first") {
		t.Errorf("answered success: %q; want the call in flight when Close began among them", want)
	}
	b2 := openAt(t, path)
	if got := readMarks(t, b2); !slices.Equal(got, want) {
		t.Errorf("in the file: %q; the calls answered success: %q", got, want)
	}
}

// openAt opens the store at path for the test.
func openAt(t *testing.T, path string) *Broker {
	t.Helper()
	b, err := Open(path, Config{})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// TestCheckpointFollowsDurability checks the write connection's settings
// inside transactions of each kind, in turn: a FULL one (enqueues)
// checkpoints the WAL past 1,000 pages, so that its commits reuse the WAL
// file's blocks, and a NORMAL one (lease traffic) past 16,384, so that it
// checkpoints rarely (see durability). The settings are read rather than
// the WAL's size after writing past them: tens of MiB through the race
// detector took 40 s.
func TestCheckpointFollowsDurability(t *testing.T) {
	t.Parallel()
	b := openInternal(t)
	ctx := context.Background()
	for _, full := range []bool{false, true, false, true} {
		var sync, pages int
		err := b.inTxSync(ctx, full, func(ctx context.Context, tx *sql.Tx, _ int64) error {
			if err := tx.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&sync); err != nil {
				return err
			}
			return tx.QueryRowContext(ctx, "PRAGMA wal_autocheckpoint").Scan(&pages)
		})
		if err != nil {
			t.Fatal(err)
		}
		want := map[bool][2]int{true: {2, 1000}, false: {1, 16384}}[full] // synchronous FULL is 2, NORMAL 1
		if got := [2]int{sync, pages}; got != want {
			t.Errorf("transaction with full=%v: synchronous %d, wal_autocheckpoint %d; want %d, %d", full, sync, pages, want[0], want[1])
		}
	}
}
