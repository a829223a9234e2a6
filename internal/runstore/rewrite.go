package runstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/aibos/worker/broker"
)

// RewriteIndexes are the indexes RewritePage walks, in order, to reach
// every run of a queue: every run written since the "runs" index
// existed, then the finished runs, which include those written before it
// and never since. A run may be in both: the second visit finds nothing
// left to change.
var RewriteIndexes = []string{indexRuns, indexFinish}

// rewriteTries bounds the re-reads of a run that changed between read and
// write (a step completed meanwhile).
const rewriteTries = 20

// RewritePage reads one page of the queue's runs from index (one of
// RewriteIndexes), oldest first from offset, and changes each in place
// with f, which reports whether it changed it; a changed run is written
// back only if it is still the version read, else it is read again and f
// called again, so a run that advanced meanwhile is never overwritten
// with what it was. It returns the runs read, the next page's offset (-1
// after the last) and the runs written. f sees the run as stored, not its
// jobs' live state.
func (s *Store) RewritePage(ctx context.Context, queue, index string, offset, limit int, f func(run *broker.WorkflowRun) (bool, error)) (read, next, wrote int, err error) {
	l, err := s.c.DocList(ctx, &broker.DocListParams{Scope: queue, Kind: kindRun, Index: index, Offset: offset, Limit: limit})
	if err != nil {
		return 0, -1, 0, fmt.Errorf("list runs: %w", err)
	}
	next = -1
	if offset+len(l.Docs) < l.Total {
		next = offset + len(l.Docs)
	}
	for _, d := range l.Docs {
		ok, err := s.rewrite(ctx, queue, d, f)
		if err != nil {
			return read, next, wrote, err
		}
		read++
		if ok {
			wrote++
		}
	}
	return read, next, wrote, nil
}

// rewrite applies f to the run of document d, re-reading it while it
// changes under the write.
func (s *Store) rewrite(ctx context.Context, queue string, d *broker.Doc, f func(run *broker.WorkflowRun) (bool, error)) (bool, error) {
	for try := 0; try < rewriteTries; try++ {
		r, err := decode(d)
		if err != nil {
			return false, err
		}
		changed, err := f(&r.WorkflowRun)
		if err != nil || !changed {
			return false, err
		}
		w, err := r.write()
		if err != nil {
			return false, err
		}
		_, err = s.commit(ctx, &broker.CommitParams{Scope: queue, Docs: []*broker.DocWrite{w}})
		if !errors.Is(err, broker.ErrConflict) {
			return err == nil, err
		}
		if d, err = s.c.DocGet(ctx, queue, kindRun, d.Key); errors.Is(err, broker.ErrDocNotFound) {
			return false, nil // removed meanwhile (retention)
		} else if err != nil {
			return false, err
		}
	}
	return false, fmt.Errorf("rewrite run %s: it changed under each of %d tries: %w", d.Key, rewriteTries, broker.ErrConflict)
}
