package audit

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/aibos/worker/broker"
)

// Config configures a Trail. Key is required.
type Config struct {
	// Key is the HMAC key, at least MinKeyLen bytes. It must be the same
	// in every process writing one store's trail, and is never stored.
	Key []byte
	// HeadFile, when set, is a file outside the store that receives the
	// newest entry's number and chain value after appends, at most every
	// HeadFileInterval (replaced atomically), so that Verify can tell the
	// newest entries were cut off.
	HeadFile string
	// MaxBatch bounds how many entries one commit appends. Defaults to
	// 256.
	MaxBatch int
	// CommitTimeout bounds one batch's commit, retries included. Defaults
	// to 10s.
	CommitTimeout time.Duration
	// HeadFileInterval is the least time between two writes of the head
	// file: the entries of the batches committed meanwhile are covered by
	// the next write (or by Sync, which writes at once). Cutting off the
	// newest entries goes unnoticed only for those committed since the
	// last write, so this bounds that window; writing a file (create,
	// fsync, rename) after every batch cost as much as committing the
	// batches. Defaults to 100ms.
	HeadFileInterval time.Duration
	// Logger receives the failures of writing the head file. Defaults to
	// slog.Default().
	Logger *slog.Logger
}

// Trail appends entries to the audit trail of one store. Its methods are
// safe for concurrent use by many goroutines; any number of processes may
// append to one store's trail at once (they must share the key).
type Trail struct {
	cm  broker.Committer
	cfg Config

	mu       sync.Mutex
	pending  []*waiter
	flushing bool // a caller is committing batches (the leader)

	// Only the leader touches what follows.
	known   bool  // head and version are the store's as last seen
	head    head  // the head document's body
	version int64 // its version (0: none yet)

	// The head file is written by a goroutine of its own, started when
	// there is a newer head to write and ended when it has caught up, so
	// that no request waits for its fsync and one write covers every
	// batch committed while the one before it ran.
	fileMu      sync.Mutex
	fileLatest  head          // the newest head committed by this Trail
	fileWritten int64         // the seq the head file holds
	fileDone    chan struct{} // closed when the running writer ends; nil if none runs
	fileErr     error         // the last write's failure, nil once one succeeds
	fileLast    time.Time     // when the head file was last written
	fileNow     chan struct{} // Sync's request to write without waiting out HeadFileInterval
}

// waiter is one Record call waiting for its entry's batch.
type waiter struct {
	e    *Entry
	done chan error // the batch's outcome, or errLead
}

// errLead tells a waiter to lead: commit the batches still pending.
var errLead = errors.New("lead")

// New returns the trail of b's store, which must implement
// broker.Committer.
func New(b broker.Broker, cfg Config) (*Trail, error) {
	cm, err := committer(b)
	if err != nil {
		return nil, fmt.Errorf("audit: new trail: %w", err)
	}
	if len(cfg.Key) < MinKeyLen {
		return nil, fmt.Errorf("audit: new trail: the key is %d bytes; want at least %d", len(cfg.Key), MinKeyLen)
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 256
	}
	if cfg.CommitTimeout <= 0 {
		cfg.CommitTimeout = 10 * time.Second
	}
	if cfg.HeadFileInterval <= 0 {
		cfg.HeadFileInterval = 100 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cfg.Key = append([]byte(nil), cfg.Key...)
	return &Trail{cm: cm, cfg: cfg, fileNow: make(chan struct{}, 1)}, nil
}

// Record appends e to the trail and returns it as stored (Seq, Time and
// Chain filled in); e itself is not changed. It returns once the entry is
// in the store, or with the error that kept it out. The entries of
// concurrent calls are committed together. A cancelled ctx does not stop
// the recording: the action it records happened anyway, so the entry is
// written within Config.CommitTimeout or the call fails.
func (t *Trail) Record(ctx context.Context, e *Entry) (*Entry, error) {
	if err := e.validate(); err != nil {
		return nil, fmt.Errorf("audit: record: %w", err)
	}
	cp := *e
	w := &waiter{e: &cp, done: make(chan error, 1)}
	t.mu.Lock()
	t.pending = append(t.pending, w)
	lead := !t.flushing
	t.flushing = true
	t.mu.Unlock()
	if !lead {
		if err := <-w.done; err != errLead {
			return t.result(w.e, err)
		}
	}
	return t.result(w.e, t.lead(ctx, w))
}

func (t *Trail) result(e *Entry, err error) (*Entry, error) {
	if err != nil {
		return nil, fmt.Errorf("audit: record %s: %w", e.Action, err)
	}
	return e, nil
}

// lead commits the pending entries a batch at a time until w's is done,
// then hands the lead to the next waiter, if any.
func (t *Trail) lead(ctx context.Context, w *waiter) error {
	for {
		t.mu.Lock()
		n := min(len(t.pending), t.cfg.MaxBatch)
		batch := t.pending[:n:n]
		t.pending = append([]*waiter(nil), t.pending[n:]...)
		t.mu.Unlock()
		err := t.commitBatch(ctx, batch)
		mine := false
		for _, x := range batch {
			if x == w {
				mine = true
				continue
			}
			x.done <- err
		}
		if mine {
			t.mu.Lock()
			if len(t.pending) > 0 {
				t.pending[0].done <- errLead
			} else {
				t.flushing = false
			}
			t.mu.Unlock()
			return err
		}
	}
}

// commitBatch appends a batch in one commit, retrying while other
// processes move the head.
func (t *Trail) commitBatch(ctx context.Context, batch []*waiter) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), t.cfg.CommitTimeout)
	defer cancel()
	for attempt := 0; ; attempt++ {
		err := t.tryCommit(ctx, batch)
		if !errors.Is(err, broker.ErrConflict) {
			return err
		}
		// Another process appended: read its head and chain after it. The
		// pause spreads processes that keep colliding.
		t.known = false
		pause := time.NewTimer(time.Duration(rand.Int64N(int64(time.Millisecond) << min(attempt, 6))))
		select {
		case <-ctx.Done():
			pause.Stop()
			return fmt.Errorf("append to the chain: gave up after %d conflicts with other appenders: %w", attempt+1, ctx.Err())
		case <-pause.C:
		}
	}
}

// tryCommit chains the batch after the head as last seen and commits it
// with the head's compare-and-set.
func (t *Trail) tryCommit(ctx context.Context, batch []*waiter) error {
	if !t.known {
		var h head
		v, err := readDoc(ctx, t.cm, headKind, headKey, &h)
		if err != nil {
			return err
		}
		t.head, t.version, t.known = h, v, true
	}
	now, err := t.cm.Now(ctx)
	if err != nil {
		return fmt.Errorf("read the store's clock: %w", err)
	}
	ms := max(now.UnixMilli(), t.head.TimeMs)
	prev := make([]byte, chainSize)
	if t.head.Seq > 0 {
		if prev, err = decodeChain(t.head.Chain); err != nil {
			return fmt.Errorf("audit head: %w", err)
		}
	}
	docs := make([]*broker.DocWrite, 0, len(batch)+1)
	docs = append(docs, nil) // the head, once the chain is known
	nh := t.head
	for i, w := range batch {
		e := w.e
		e.Seq, e.Time, e.Chain = t.head.Seq+int64(i)+1, time.UnixMilli(ms).UTC(), ""
		c, err := link(t.cfg.Key, prev, e)
		if err != nil {
			return err
		}
		e.Chain, prev = hex.EncodeToString(c), c
		body, err := json.Marshal(e)
		if err != nil {
			return fmt.Errorf("encode entry %d: %w", e.Seq, err)
		}
		docs = append(docs, &broker.DocWrite{Kind: entryKind, Key: entryKey(e.Seq), Body: body, Index: entryIndex(e)})
		nh = head{Seq: e.Seq, Chain: e.Chain, TimeMs: ms}
	}
	hb, err := json.Marshal(nh)
	if err != nil {
		return fmt.Errorf("encode audit head: %w", err)
	}
	docs[0] = &broker.DocWrite{Kind: headKind, Key: headKey, Version: t.version, Body: hb}
	res, err := t.cm.Commit(ctx, &broker.CommitParams{Scope: Scope, Docs: docs})
	if err != nil {
		return fmt.Errorf("append %d audit entries: %w", len(batch), err)
	}
	t.head, t.version = nh, res.Versions[0]
	t.headCommitted(nh)
	return nil
}

// entryIndex lists an entry in "all" and in the index of each tenant it
// concerns.
func entryIndex(e *Entry) []broker.IndexEntry {
	ix := []broker.IndexEntry{{Name: indexAll, Score: e.Seq}}
	if e.Scope != "" {
		ix = append(ix, broker.IndexEntry{Name: tenantIndex(e.Scope), Score: e.Seq})
	}
	if e.Tenant != "" && e.Tenant != e.Scope {
		ix = append(ix, broker.IndexEntry{Name: tenantIndex(e.Tenant), Score: e.Seq})
	}
	return ix
}

// headCommitted has the head file catch up with h.
func (t *Trail) headCommitted(h head) {
	if t.cfg.HeadFile == "" {
		return
	}
	t.fileMu.Lock()
	defer t.fileMu.Unlock()
	if h.Seq > t.fileLatest.Seq {
		t.fileLatest = h
	}
	if t.fileDone == nil {
		t.fileDone = make(chan struct{})
		go t.writeHeadFile(t.fileDone)
	}
}

// writeHeadFile writes the newest head to the head file until it holds
// it, then ends, closing done. Writes are HeadFileInterval apart at least
// (Sync cuts the wait short). A failure is logged and retried at the next
// commit: the entries are stored, and a head file that lags behind the
// trail is no fault for Verify, only a shorter part of the trail protected
// from being cut off.
func (t *Trail) writeHeadFile(done chan struct{}) {
	defer close(done)
	for {
		t.fileMu.Lock()
		if t.fileLatest.Seq <= t.fileWritten {
			t.fileDone = nil
			t.fileMu.Unlock()
			return
		}
		wait := t.cfg.HeadFileInterval - time.Since(t.fileLast)
		t.fileMu.Unlock()
		if wait > 0 {
			timer := time.NewTimer(wait)
			select {
			case <-timer.C:
			case <-t.fileNow:
				timer.Stop()
			}
		}
		t.fileMu.Lock()
		h := t.fileLatest // the newest, after the wait
		t.fileMu.Unlock()
		err := WriteHeadFile(t.cfg.HeadFile, t.cfg.Key, h.Seq, h.Chain)
		t.fileMu.Lock()
		t.fileErr, t.fileLast = err, time.Now()
		if err != nil {
			t.fileDone = nil
			t.fileMu.Unlock()
			t.cfg.Logger.Error("audit: write the head file; until it is written, verify cannot tell the newest entries were cut off", "file", t.cfg.HeadFile, "err", err)
			return
		}
		t.fileWritten = h.Seq
		t.fileMu.Unlock()
	}
}

// Sync waits until the head file holds the newest entry this Trail
// appended, and returns the error of the last attempt to write it. Call it
// before the process exits (the service does at shutdown), and before
// reading the head file.
func (t *Trail) Sync() error {
	for {
		t.fileMu.Lock()
		done, err := t.fileDone, t.fileErr
		t.fileMu.Unlock()
		if done != nil {
			select {
			case t.fileNow <- struct{}{}:
			default: // a request is already pending
			}
			<-done
			continue
		}
		if err != nil {
			return fmt.Errorf("audit: write the head file: %w", err)
		}
		return nil
	}
}
