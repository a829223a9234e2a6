package sqlitebroker

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/broker/internal/combine"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// Config configures a Broker. The zero value works.
type Config struct {
	// BusyTimeout is how long a write waits for another process holding the
	// file's write lock before failing. Defaults to 5s.
	BusyTimeout time.Duration
	// ReadConns is the number of connections that serve reads (JobGet,
	// JobList, QueueStats, QueueList) alongside the single write connection.
	// Defaults to 4.
	ReadConns int
	// Now is the broker's clock. Tests may replace it. Defaults to time.Now.
	Now func() time.Time
}

func (o Config) withDefaults() Config {
	if o.BusyTimeout <= 0 {
		o.BusyTimeout = 5 * time.Second
	}
	if o.ReadConns <= 0 {
		o.ReadConns = 4
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Broker is a broker.Broker stored in one SQLite file. It is safe for
// concurrent use; see the package documentation for sharing between
// processes.
type Broker struct {
	path   string
	opts   Config
	lock   *os.File // holds the flock that keeps other processes out; nil where unsupported
	write  *sql.DB  // exactly one connection: SQLite has one writer
	read   *sql.DB  // query_only connections
	closed atomic.Bool
	stmts  map[string]*sql.Stmt // cachedQueries, prepared at Open; read-only after
	wake   waker                // JobWait's waiters, woken by inserts
	// syncFull mirrors the write connection's synchronous and
	// wal_autocheckpoint pragmas (durability); it is read and written only
	// while that connection is held (runBatch).
	syncFull bool
	// plain holds the queues whose row is committed with fair off, so that
	// their inserts read and write nothing of it (fairInserts), and
	// batchPlain the ones the running write transaction found so, which
	// join plain once it commits. Only QueueFairSet turns a queue fair, and
	// no one deletes a queue's row; the store is this Broker's alone
	// (Open's lock; plain is nil where the platform has no lock). Both are
	// read and written only while the write connection is held (runBatch),
	// like syncFull.
	plain      map[string]struct{}
	batchPlain []string
	writer     writer // the group commit of write transactions (writer.go)
	// inserts combines concurrent JobInsert calls per queue into one
	// transaction, one fsync (insert.go).
	inserts *combine.Group[*broker.JobInsertParams, *broker.Job]
}

var _ broker.Broker = (*Broker)(nil)

// InProcess reports true: the store is a file this process holds (see
// broker.InProcess).
func (b *Broker) InProcess() bool { return true }

// dsn builds a modernc.org/sqlite data source name for path.
func dsn(path string, busy time.Duration, readOnly bool) string {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busy.Milliseconds()))
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "synchronous(FULL)")
	if readOnly {
		q.Add("_pragma", "query_only(1)")
	} else {
		q.Add("_pragma", "journal_mode(WAL)")
		// Statement journals (a multi-row UPDATE inside a transaction keeps
		// one, to undo that statement alone) stay in memory: beyond 64 KiB
		// SQLite would spill each to a temporary file it creates and
		// removes per statement, which a lease of a few dozen jobs over
		// several indexes reaches. Temporary tables and sorts of the write
		// connection's statements are bounded by their LIMITs.
		q.Add("_pragma", "temp_store(MEMORY)")
		// The write connection starts in FULL mode; see durability.
		q.Add("_pragma", fmt.Sprintf("wal_autocheckpoint(%d)", durability[true].checkpoint))
		// A fair queue serves its tenants in turn, so each job fetched
		// and completed is on pages of its own tenant's range (its row,
		// its entries in the pending and finished indexes): with 100
		// tenants that is more pages than SQLite's default 2 MiB cache
		// holds, and they were read again from the file on every turn
		// (BenchmarkFairFetchComplete/on-100-tenants: 5.8 read-KiB/job;
		// 0.9 with 8 MiB, as with 32; fairness off 0.4).
		q.Add("_pragma", "cache_size(-8192)")
		q.Set("_txlock", "immediate")
	}
	return "file:" + escapePath(path) + "?" + q.Encode()
}

// escapePath escapes path for a SQLite URI filename.
func escapePath(path string) string { return (&url.URL{Path: path}).EscapedPath() }

// Open opens the store at path, creating the file and its directory if
// needed, and applies pending schema migrations. It fails, naming the file,
// if path cannot be written, is not a SQLite database, belongs to another
// application or was written by a newer version of this package; in those
// cases the file is left untouched. It fails with ErrInUse while another
// Broker, in this process or another, has the file open.
func Open(path string, opts Config) (*Broker, error) {
	opts = opts.withDefaults()
	if err := checkFile(path, opts.BusyTimeout); err != nil {
		return nil, err
	}
	lock, err := lockFile(path)
	if err != nil {
		return nil, err
	}
	b, err := open(path, opts)
	if err != nil {
		unlock(lock)
		return nil, err
	}
	b.lock = lock
	if lock == nil {
		// No lock here (lockFile): another process may write the store,
		// and turn a queue fair behind plain.
		b.plain = nil
	}
	return b, nil
}

// unlock releases the lock taken by lockFile.
func unlock(f *os.File) error {
	if f == nil {
		return nil
	}
	return f.Close()
}

// open opens the connection pools and migrates the schema.
func open(path string, opts Config) (*Broker, error) {
	write, err := sql.Open("sqlite", dsn(path, opts.BusyTimeout, false))
	if err != nil {
		return nil, fmt.Errorf("open sqlite store %s: %w", path, err)
	}
	write.SetMaxOpenConns(1)
	write.SetMaxIdleConns(1)
	write.SetConnMaxLifetime(0)
	write.SetConnMaxIdleTime(0)
	if err := migrate(write, path); err != nil {
		write.Close()
		return nil, err
	}
	read, err := sql.Open("sqlite", dsn(path, opts.BusyTimeout, true))
	if err != nil {
		write.Close()
		return nil, fmt.Errorf("open sqlite store %s: %w", path, err)
	}
	read.SetMaxOpenConns(opts.ReadConns)
	read.SetMaxIdleConns(opts.ReadConns)
	if err := read.Ping(); err != nil {
		write.Close()
		read.Close()
		return nil, fmt.Errorf("open sqlite store %s for reading: %w", path, err)
	}
	b := &Broker{path: path, opts: opts, write: write, read: read, syncFull: true, plain: map[string]struct{}{}}
	b.inserts = combine.New(maxCombined, fmt.Errorf("insert job: %w: the store closed before the job was written", broker.ErrClosed), b.insertEach)
	if err := b.prepare(); err != nil {
		write.Close()
		read.Close()
		return nil, err
	}
	return b, nil
}

// Path returns the file the broker stores its jobs in.
func (b *Broker) Path() string { return b.path }

// Close closes the file. Jobs stay stored. Calls made after Close, including
// a second Close, return broker.ErrClosed.
func (b *Broker) Close() error {
	if !b.closed.CompareAndSwap(false, true) {
		return fmt.Errorf("close sqlite store %s: %w", b.path, broker.ErrClosed)
	}
	b.waker().Close()
	b.inserts.Close()
	b.writer.close()
	for _, s := range b.stmts {
		s.Close()
	}
	err := errors.Join(b.read.Close(), b.write.Close(), unlock(b.lock))
	if err != nil {
		return fmt.Errorf("close sqlite store %s: %w", b.path, err)
	}
	return nil
}

// Ping checks the file can be read.
func (b *Broker) Ping(ctx context.Context) error {
	if b.closed.Load() {
		return fmt.Errorf("ping: %w", broker.ErrClosed)
	}
	var one int
	if err := b.read.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return b.fail("ping", err)
	}
	return nil
}

// now reads the broker clock in unix milliseconds.
func (b *Broker) now() int64 { return b.opts.Now().UnixMilli() }

// fail wraps err with what was being done, reporting ErrClosed when the
// broker was closed underneath the call.
func (b *Broker) fail(op string, err error) error {
	if b.closed.Load() {
		return fmt.Errorf("%s: %w", op, broker.ErrClosed)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// checkOpen returns ErrClosed wrapped with op once the broker is closed.
func (b *Broker) checkOpen(op string) error {
	if b.closed.Load() {
		return fmt.Errorf("%s: %w", op, broker.ErrClosed)
	}
	return nil
}

// stmt returns query bound to tx. The hot statements (cachedQueries) are
// compiled once, at Open; compiling was a large part of the cost of a small
// transaction. Others are compiled for tx alone.
func (b *Broker) stmt(ctx context.Context, tx *sql.Tx, query string) (*sql.Stmt, error) {
	if s, ok := b.stmts[query]; ok {
		return tx.StmtContext(ctx, s), nil
	}
	s, err := tx.PrepareContext(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("prepare statement: %w", err)
	}
	return s, nil
}

// prepare compiles cachedQueries on the write connection.
func (b *Broker) prepare() error {
	b.stmts = make(map[string]*sql.Stmt, len(cachedQueries))
	for _, q := range cachedQueries {
		s, err := b.write.Prepare(q)
		if err != nil {
			return fmt.Errorf("open sqlite store %s: prepare statement: %w", b.path, err)
		}
		b.stmts[q] = s
	}
	return nil
}

// exec runs a cached statement in tx.
func (b *Broker) exec(ctx context.Context, tx *sql.Tx, query string, args ...any) (sql.Result, error) {
	s, err := b.stmt(ctx, tx, query)
	if err != nil {
		return nil, err
	}
	return s.ExecContext(ctx, args...)
}

// queryRow runs a cached single-row statement in tx.
func (b *Broker) queryRow(ctx context.Context, tx *sql.Tx, query string, args ...any) (*sql.Row, error) {
	s, err := b.stmt(ctx, tx, query)
	if err != nil {
		return nil, err
	}
	return s.QueryRowContext(ctx, args...), nil
}

// query runs a cached statement in tx.
func (b *Broker) query(ctx context.Context, tx *sql.Tx, query string, args ...any) (*sql.Rows, error) {
	s, err := b.stmt(ctx, tx, query)
	if err != nil {
		return nil, err
	}
	return s.QueryContext(ctx, args...)
}

// inTx runs fn in an IMMEDIATE write transaction, which calls made
// meanwhile may share (writer.go), and commits it with synchronous=FULL:
// when it returns, the change is on disk.
func (b *Broker) inTx(ctx context.Context, fn txFunc) error {
	return b.inTxSync(ctx, true, fn)
}

// inLeaseTx is inTx for lease traffic (fetch, complete, extend, fail,
// maintenance), committed with synchronous=NORMAL: the WAL is written
// before it returns, so the change survives a crash of this process, but it
// is fsynced with the next FULL commit or checkpoint rather than at once.
// A power loss can therefore undo the last lease transitions, which only
// makes jobs run again: delivery stays at least once and no enqueued job is
// lost (inserts use inTx). This saves an fsync per fetch and per
// acknowledgement batch, the dominant cost of processing on this store.
func (b *Broker) inLeaseTx(ctx context.Context, fn txFunc) error {
	return b.inTxSync(ctx, false, fn)
}

func init() { broker.Register("sqlite", openURL) }

// openURL opens a store for broker.Open: sqlite:path or sqlite:///path,
// with the optional query parameters busy_timeout (a Go duration) and
// read_conns. The file's directory is created if it does not exist.
func openURL(_ context.Context, u *url.URL) (broker.Broker, error) {
	path, err := broker.SQLitePath(u)
	if err != nil {
		return nil, err
	}
	var opts Config
	for k, vs := range u.Query() {
		v := vs[len(vs)-1]
		switch k {
		case "busy_timeout":
			if opts.BusyTimeout, err = time.ParseDuration(v); err != nil || opts.BusyTimeout <= 0 {
				return nil, fmt.Errorf("query parameter busy_timeout=%q: want a positive duration such as 5s", v)
			}
		case "read_conns":
			if opts.ReadConns, err = strconv.Atoi(v); err != nil || opts.ReadConns <= 0 {
				return nil, fmt.Errorf("query parameter read_conns=%q: want a positive integer", v)
			}
		default:
			return nil, fmt.Errorf("unknown query parameter %q (known: busy_timeout, read_conns)", k)
		}
	}
	if dir := filepath.Dir(path); dir != "." {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("create directory of %s: %w", path, err)
		}
	}
	return Open(path, opts)
}
