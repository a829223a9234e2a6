// Package oracle is the fault suite's independent record of what ran: the
// processors the suite's worker processes run, and the readers the harness
// counts with. Nothing here asks the broker what happened; the harness
// compares this record with the broker's.
//
// Every processor run appends a start line and, if it gets that far, an
// end line (job id, attempt, worker, lease token, start, end) to its
// process's own run file, each line written and fsynced before the run goes
// on, so a SIGKILL loses no line of a step already taken. The side effect of
// fault.work goes through an idempotency table in one SQLite file shared by
// every worker process: the first run of a job inserts its row; a later run
// that finds the row counts a key hit instead (the effect would have
// happened twice without the key). The table has no unique constraint, so
// that a broken check would show as two rows, not as an error.
package oracle

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	_ "modernc.org/sqlite" // the idempotency table's driver, as the embedded broker's

	worker "github.com/aibos/worker"
)

// The job types the suite's workers process.
const (
	// TypeWork sleeps Work.MS (honouring cancellation), applies its effect
	// through the idempotency table and stores its lease token as result.
	TypeWork = "fault.work"
	// TypePanic panics.
	TypePanic = "fault.panic"
	// TypeHang never returns, whatever its context says.
	TypeHang = "fault.hang"
	// TypeExit ends the worker process (exit status 1) mid-run.
	TypeExit = "fault.exit"
	// TypeNoop returns at once and records nothing: the retention scenario
	// measures the broker's memory over a million jobs, which the oracle's
	// fsyncs per run would make take too long.
	TypeNoop = "fault.noop"
)

// Work is the payload of TypeWork.
type Work struct {
	MS int `json:"ms"` // how long the run takes
	// IgnoreCancel makes the run finish and report success even when its
	// context ends, as a processor that does not watch its context does:
	// the fencing token alone must then stop its late completion.
	IgnoreCancel bool `json:"ignore_cancel,omitempty"`
}

// Result is what TypeWork stores as the job's result: which run's
// completion the broker accepted.
type Result struct {
	Token  int64  `json:"token"`
	Worker string `json:"worker"`
}

// Line is one line of a run file.
type Line struct {
	Kind    string `json:"k"` // "start" or "end"
	Job     string `json:"job"`
	Type    string `json:"type"`
	Attempt int    `json:"attempt"`
	Worker  string `json:"worker"`
	Token   int64  `json:"token"`
	Start   int64  `json:"start"`         // unix ns, the machine's clock
	End     int64  `json:"end,omitempty"` // unix ns, end lines only
	Err     string `json:"err,omitempty"`
	// Clock is the worker's own (service) clock at Start, unix ns: it
	// differs from Start only in the clock-skew scenario.
	Clock int64 `json:"clock"`
}

// Recorder appends a worker process's run lines and applies effects.
type Recorder struct {
	worker string
	mu     sync.Mutex
	f      *os.File
	db     *sql.DB
	now    func() time.Time
}

// EffectsFile is the idempotency table's file name in the oracle directory.
const EffectsFile = "effects.db"

// RunFile returns the run file of worker in dir.
func RunFile(dir, worker string) string { return filepath.Join(dir, "runs-"+worker+".jsonl") }

// CreateEffects creates the idempotency table in dir; the harness calls it
// once before starting workers.
func CreateEffects(dir string) error {
	db, err := openDB(dir)
	if err != nil {
		return err
	}
	defer db.Close()
	_, err = db.Exec(`CREATE TABLE IF NOT EXISTS effects (job TEXT NOT NULL, token INTEGER NOT NULL, worker TEXT NOT NULL, at INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS effects_job ON effects(job);
CREATE TABLE IF NOT EXISTS hits (job TEXT NOT NULL, token INTEGER NOT NULL, worker TEXT NOT NULL, at INTEGER NOT NULL);`)
	if err != nil {
		return fmt.Errorf("create the idempotency table: %w", err)
	}
	return nil
}

// openDB opens the idempotency table. synchronous(NORMAL) in WAL mode
// keeps every commit through a SIGKILL of the process (the WAL is written
// before the commit returns; only a machine crash can lose it, which the
// suite does not simulate) without an fsync per effect, which would make
// the table, shared by up to 50 processes, the bottleneck of the scenario.
func openDB(dir string) (*sql.DB, error) {
	dsn := "file:" + filepath.Join(dir, EffectsFile) +
		"?_pragma=busy_timeout(60000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open the idempotency table: %w", err)
	}
	db.SetMaxOpenConns(1) // one writer per process; processes queue on the file lock
	return db, nil
}

// Open opens the run file of worker in dir (created, appended to) and the
// idempotency table. now is the worker's own clock, recorded beside the
// machine's in each start line; nil means time.Now.
func Open(dir, workerName string, now func() time.Time) (*Recorder, error) {
	if workerName == "" || strings.ContainsAny(workerName, "/\\") {
		return nil, fmt.Errorf("open the oracle: worker name %q must be non-empty, without slashes", workerName)
	}
	f, err := os.OpenFile(RunFile(dir, workerName), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open the oracle's run file: %w", err)
	}
	db, err := openDB(dir)
	if err != nil {
		f.Close()
		return nil, err
	}
	if now == nil {
		now = time.Now
	}
	return &Recorder{worker: workerName, f: f, db: db, now: now}, nil
}

// Close closes the run file and the table.
func (r *Recorder) Close() error {
	return errors.Join(r.f.Close(), r.db.Close())
}

// Register registers the suite's processors on s (a service.Service or a
// worker.Manager).
func (r *Recorder) Register(s interface {
	Register(string, worker.Processor) error
}) error {
	for t, p := range map[string]worker.ProcessorFunc{
		TypeWork: r.work, TypePanic: r.panic, TypeHang: r.hang, TypeExit: r.exit,
		TypeNoop: func(context.Context, *worker.Job) error { return nil },
	} {
		if err := s.Register(t, p); err != nil {
			return err
		}
	}
	return nil
}

// write appends l to the run file and fsyncs it.
func (r *Recorder) write(l Line) error {
	b, err := json.Marshal(l)
	if err != nil {
		return fmt.Errorf("encode a run line: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, err := r.f.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("append to the run file: %w", err)
	}
	if err := r.f.Sync(); err != nil {
		return fmt.Errorf("fsync the run file: %w", err)
	}
	return nil
}

func (r *Recorder) start(job *worker.Job) (Line, error) {
	l := Line{Kind: "start", Job: job.ID, Type: job.Type, Attempt: job.Attempt, Worker: r.worker, Token: job.LeaseToken,
		Start: time.Now().UnixNano(), Clock: r.now().UnixNano()}
	return l, r.write(l)
}

func (r *Recorder) end(l Line, runErr error) error {
	l.Kind, l.End = "end", time.Now().UnixNano()
	if runErr != nil {
		l.Err = runErr.Error()
	}
	return errors.Join(runErr, r.write(l))
}

func (r *Recorder) work(ctx context.Context, job *worker.Job) error {
	var w Work
	if err := worker.Decode(job, &w); err != nil {
		return err
	}
	l, err := r.start(job)
	if err != nil {
		return err
	}
	t := time.NewTimer(time.Duration(w.MS) * time.Millisecond)
	defer t.Stop()
	if w.IgnoreCancel {
		ctx = context.WithoutCancel(ctx)
	}
	select {
	case <-ctx.Done():
		return r.end(l, ctx.Err())
	case <-t.C:
	}
	if err := r.effect(ctx, job); err != nil {
		return r.end(l, err)
	}
	if err := worker.SetResult(ctx, Result{Token: job.LeaseToken, Worker: r.worker}); err != nil {
		return r.end(l, err)
	}
	return r.end(l, nil)
}

// effect applies job's side effect once: a row in effects, or a key hit.
func (r *Recorder) effect(ctx context.Context, job *worker.Job) error {
	tx, err := r.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin the effect of %s: %w", job.ID, err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM effects WHERE job = ?`, job.ID).Scan(&n); err != nil {
		return fmt.Errorf("look up the effect of %s: %w", job.ID, err)
	}
	table := "effects"
	if n > 0 {
		table = "hits"
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO `+table+` (job, token, worker, at) VALUES (?, ?, ?, ?)`,
		job.ID, job.LeaseToken, r.worker, time.Now().UnixNano()); err != nil {
		return fmt.Errorf("apply the effect of %s: %w", job.ID, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit the effect of %s: %w", job.ID, err)
	}
	return nil
}

func (r *Recorder) panic(_ context.Context, job *worker.Job) error {
	if _, err := r.start(job); err != nil {
		return err
	}
	panic("fault.panic: a processor that panics")
}

func (r *Recorder) hang(_ context.Context, job *worker.Job) error {
	if _, err := r.start(job); err != nil {
		return err
	}
	select {} // never returns, even when cancelled: the worst processor
}

func (r *Recorder) exit(_ context.Context, job *worker.Job) error {
	if _, err := r.start(job); err != nil {
		return err
	}
	os.Exit(1)
	return nil
}

// ReadRuns reads every run file in dir.
func ReadRuns(dir string) ([]Line, error) {
	files, err := filepath.Glob(filepath.Join(dir, "runs-*.jsonl"))
	if err != nil {
		return nil, fmt.Errorf("list the run files: %w", err)
	}
	var out []Line
	for _, name := range files {
		ls, err := readFile(name)
		if err != nil {
			return nil, err
		}
		out = append(out, ls...)
	}
	return out, nil
}

func readFile(name string) ([]Line, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("read the run file: %w", err)
	}
	defer f.Close()
	var out []Line
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var l Line
		// A SIGKILL can cut the last line short; it was never fsynced
		// whole, so the step it records did not happen.
		if json.Unmarshal(sc.Bytes(), &l) == nil {
			out = append(out, l)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return out, nil
}

// Effects is what the idempotency table holds.
type Effects struct {
	Rows map[string]int // effect rows per job (more than 1 is a double effect)
	Hits int            // runs that found the key taken
}

// ReadEffects reads the idempotency table in dir.
func ReadEffects(dir string) (*Effects, error) {
	db, err := openDB(dir)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	e := &Effects{Rows: map[string]int{}}
	rows, err := db.Query(`SELECT job, count(*) FROM effects GROUP BY job`)
	if err != nil {
		return nil, fmt.Errorf("read the idempotency table: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var job string
		var n int
		if err := rows.Scan(&job, &n); err != nil {
			return nil, fmt.Errorf("read the idempotency table: %w", err)
		}
		e.Rows[job] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read the idempotency table: %w", err)
	}
	if err := db.QueryRow(`SELECT count(*) FROM hits`).Scan(&e.Hits); err != nil {
		return nil, fmt.Errorf("count the key hits: %w", err)
	}
	return e, nil
}

// ReadRunsOf reads one worker's run file in dir.
func ReadRunsOf(dir, workerName string) ([]Line, error) {
	return readFile(RunFile(dir, workerName))
}
