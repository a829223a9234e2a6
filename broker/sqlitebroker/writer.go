package sqlitebroker

import (
	"context"
	"database/sql"
	"fmt"
	"runtime"
	"sync"

	"github.com/aibos/worker/broker"
)

// txFunc is the work of one write call, run in tx with the broker clock's
// now. Its statements must use ctx, not the caller's context: a joined
// call's ctx is not cancelled with the caller's, because the driver
// interrupts a statement whose context ends, and SQLite rolls back the
// whole transaction, the other calls' writes included, when a writing
// statement is interrupted.
type txFunc func(ctx context.Context, tx *sql.Tx, now int64) error

// maxJoined bounds the calls that share one write transaction, so that
// the first of them is answered after at most that many others ran.
const maxJoined = 64

// writer is the store's group commit. Every write transaction goes
// through it: a call made while the connection is idle starts a
// transaction at once, and the calls that arrive while that transaction
// runs join it, each in a savepoint of its own, until none is waiting;
// then it commits and every call that joined is answered. A Manager's
// fetcher and acknowledger thus share commits instead of taking turns,
// and a commit costs the WAL writes of the pages it changed, which
// neighbouring jobs share. No call is answered before its commit.
type writer struct {
	mu      sync.Mutex
	busy    bool       // a transaction is running or about to
	waiting []*writeOp // calls that arrived meanwhile, in order
	// closed refuses calls that arrive after close began; idle, when not
	// nil, is closed once the transactions under way have ended.
	closed bool
	idle   chan struct{}
}

// close refuses new calls and waits until the calls already waiting, and
// the transaction running, are answered: the store's connections and
// file lock must outlive every write (Broker.Close), or a transaction
// would commit after Close returned, when another process may have the
// file.
func (w *writer) close() {
	w.mu.Lock()
	w.closed = true
	if !w.busy {
		w.mu.Unlock()
		return
	}
	w.idle = make(chan struct{})
	idle := w.idle
	w.mu.Unlock()
	<-idle
}

// writeOp is one call of inTxSync.
type writeOp struct {
	ctx  context.Context
	full bool // commit with synchronous=FULL
	fn   txFunc
	err  error
	// turn receives true when this call is to run the next transaction,
	// false when it has been answered (err is set).
	turn chan bool
}

// inTxSync runs fn in a write transaction, alone or together with the
// calls that join it, and returns fn's error or the commit's. With full,
// the transaction commits with synchronous=FULL (on disk when it
// returns), else with NORMAL (in the WAL). fn runs at most once; when it
// fails or panics, what it wrote is undone, the call returns an error, and
// the other calls of the transaction are not affected. Once fn runs in a
// transaction it shares, ctx no longer stops it (see txFunc).
func (b *Broker) inTxSync(ctx context.Context, full bool, fn txFunc) error {
	op := &writeOp{ctx: ctx, full: full, fn: fn, turn: make(chan bool, 1)}
	w := &b.writer
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return fmt.Errorf("begin transaction: %w", broker.ErrClosed)
	}
	if !w.busy {
		w.busy = true
		w.mu.Unlock()
		b.runTx(op)
		return op.err
	}
	w.waiting = append(w.waiting, op)
	w.mu.Unlock()
	select {
	case lead := <-op.turn:
		if lead {
			b.runTx(op)
		}
		return op.err
	case <-ctx.Done():
	}
	w.mu.Lock()
	for i, o := range w.waiting {
		if o == op { // not taken: nothing was written
			w.waiting = append(w.waiting[:i], w.waiting[i+1:]...)
			w.mu.Unlock()
			return fmt.Errorf("begin transaction: %w", ctx.Err())
		}
	}
	w.mu.Unlock()
	// Taken into a transaction, or about to run one: its outcome counts.
	if <-op.turn {
		b.runTx(op)
	}
	return op.err
}

// runTx runs first and the calls that join it in one transaction, answers
// them, and hands the connection to the next waiting call.
func (b *Broker) runTx(first *writeOp) {
	ops := b.runBatch(first)
	w := &b.writer
	w.mu.Lock()
	var next *writeOp
	if len(w.waiting) > 0 {
		next = w.waiting[0]
		w.waiting = w.waiting[1:]
	} else {
		w.busy = false
		if w.idle != nil {
			close(w.idle)
		}
	}
	w.mu.Unlock()
	for _, o := range ops[1:] {
		o.turn <- false
	}
	if next != nil {
		next.turn <- true
	}
}

// join takes the waiting calls that may share a transaction committed
// with full, at most n of them.
func (w *writer) join(full bool, n int) []*writeOp {
	w.mu.Lock()
	defer w.mu.Unlock()
	var took []*writeOp
	rest := w.waiting[:0]
	for _, o := range w.waiting {
		// A transaction's synchronous setting is fixed at its start: a
		// FULL call waits for a FULL transaction.
		if len(took) < n && (full || !o.full) {
			took = append(took, o)
		} else {
			rest = append(rest, o)
		}
	}
	clear(w.waiting[len(rest):])
	w.waiting = rest
	return took
}

// runBatch runs first's transaction and returns the calls it ran, first
// included, each with its outcome set.
func (b *Broker) runBatch(first *writeOp) []*writeOp {
	ops := []*writeOp{first}
	// The batch outlives any one caller: a caller that gives up does not
	// roll back the others' work.
	ctx := context.WithoutCancel(first.ctx)
	conn, err := b.write.Conn(ctx)
	if err != nil {
		first.err = fmt.Errorf("begin transaction: %w", err)
		return ops
	}
	defer conn.Close()
	if b.syncFull != first.full {
		d := durability[first.full]
		if _, err := conn.ExecContext(ctx, d.pragmas()); err != nil {
			first.err = fmt.Errorf("set synchronous=%s: %w", d.sync, err)
			return ops
		}
		b.syncFull = first.full
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		first.err = fmt.Errorf("begin transaction: %w", err)
		return ops
	}
	b.batchPlain = b.batchPlain[:0]
	if err := first.ctx.Err(); err != nil {
		first.err = err
	} else {
		// Alone in the transaction, the first call may be interrupted:
		// the rollback that follows undoes its writes only.
		first.err = b.call(first.ctx, tx, first)
	}
	if first.err != nil {
		// Alone in the transaction so far: undo it whole.
		tx.Rollback()
		return ops
	}
	yielded := false
	for {
		joined := b.writer.join(first.full, maxJoined-len(ops))
		if len(joined) == 0 {
			if yielded {
				break
			}
			// Before committing, let the goroutines this process has
			// ready run once: a Manager's acknowledger woken by the
			// jobs that just finished, or its fetcher by the slots they
			// freed, joins now rather than waiting for the next
			// transaction. Without it a Manager's fetches and
			// acknowledgements mostly took turns, one per commit
			// (1.2 calls per transaction; 1.75 with it, and at
			// Prefetch 10 less than half the transactions).
			yielded = true
			runtime.Gosched()
			continue
		}
		for _, o := range joined {
			if err := b.runJoined(ctx, tx, o); err != nil {
				tx.Rollback()
				ops = append(ops, joined...)
				for _, o := range ops {
					if o.err == nil {
						o.err = err
					}
				}
				return ops
			}
		}
		ops = append(ops, joined...)
	}
	if err := tx.Commit(); err != nil {
		for _, o := range ops {
			if o.err == nil {
				o.err = fmt.Errorf("commit: %w", err)
			}
		}
		return ops
	}
	for _, q := range b.batchPlain {
		b.plain[q] = struct{}{}
	}
	return ops
}

// durability is how the write connection commits a FULL (true) or a
// NORMAL (false) transaction: its synchronous setting, and after how many
// WAL pages the commit checkpoints (wal_autocheckpoint).
//
// A FULL commit has just fsynced the WAL, so its checkpoint costs the
// writes to the database file and their fsync; checkpointing at SQLite's
// 1,000 pages (4 MiB) keeps the WAL that small and a commit then
// overwrites blocks the WAL file already has, where a WAL growing to
// 64 MiB made each commit's pwrite and fsync allocate blocks (one by one
// from 32 goroutines: 31.1 µs per enqueue against 26.8 at 1,000 pages;
// bulk inserts of 1,000 jobs were not slower at 1,000 pages either).
// A NORMAL commit does not fsync, so a checkpoint after it costs two
// fsyncs (the WAL's and the database file's) while every caller waits
// for the write connection: at 1,000 pages lease traffic paid them every
// few hundred jobs, at 16,384 (64 MiB) rarely. A restart replays at most
// that much WAL.
var durability = map[bool]commitMode{
	true:  {"FULL", 1000},
	false: {"NORMAL", 16384},
}

// commitMode is one of durability's settings.
type commitMode struct {
	sync       string // PRAGMA synchronous
	checkpoint int    // PRAGMA wal_autocheckpoint, in pages
}

// pragmas returns the statements that switch the write connection to m,
// in one string: SQLite runs them in turn.
func (m commitMode) pragmas() string {
	return fmt.Sprintf("PRAGMA synchronous=%s; PRAGMA wal_autocheckpoint=%d", m.sync, m.checkpoint)
}

// The statements that isolate a joined call within the transaction.
const (
	sqlSavepoint  = `SAVEPOINT joined`
	sqlRelease    = `RELEASE joined`
	sqlRollbackTo = `ROLLBACK TO joined`
)

// runJoined runs o in a savepoint of tx: when o fails, what it wrote is
// undone and o.err says why. The error returned, if any, is the
// transaction's: it can no longer be used.
func (b *Broker) runJoined(ctx context.Context, tx *sql.Tx, o *writeOp) error {
	if err := o.ctx.Err(); err != nil {
		o.err = err
		return nil
	}
	if _, err := b.exec(ctx, tx, sqlSavepoint); err != nil {
		return fmt.Errorf("begin savepoint: %w", err)
	}
	found := len(b.batchPlain)
	if o.err = b.call(context.WithoutCancel(o.ctx), tx, o); o.err != nil {
		// What o read is undone too (a QueueFairSet may have shortened it).
		b.batchPlain = b.batchPlain[:min(found, len(b.batchPlain))]
		if _, err := b.exec(ctx, tx, sqlRollbackTo); err != nil {
			return fmt.Errorf("roll back to savepoint: %w", err)
		}
	}
	if _, err := b.exec(ctx, tx, sqlRelease); err != nil {
		return fmt.Errorf("release savepoint: %w", err)
	}
	return nil
}

// call runs o's function with ctx and returns its error, or its panic as
// one: a panic must not leave the transaction open and the writer busy,
// which would stop every later write.
func (b *Broker) call(ctx context.Context, tx *sql.Tx, o *writeOp) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("write transaction: panic: %v", r)
		}
	}()
	return o.fn(ctx, tx, b.now())
}
