package audit

import (
	"context"
	"crypto/hmac"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/aibos/worker/broker"
)

// trimPage is how many entries one trim commit removes.
const trimPage = 500

// Trim removes the entries older than before, oldest first, a page per
// commit; each commit also replaces the checkpoint with one signed with
// the key that names the last entry removed and its chain value, so that
// Verify tells the trim from tampering. It checks the chain of what it
// removes first and refuses (a *VerifyError) to remove entries that do not
// verify: trimming must not erase the evidence of tampering. It returns
// how many entries it removed. Several processes may trim at once.
func (t *Trail) Trim(ctx context.Context, before time.Time) (int, error) {
	removed := 0
	for {
		n, err := t.trimPage(ctx, before)
		removed += n
		switch {
		case errors.Is(err, broker.ErrConflict):
			continue // another process trimmed: start from its checkpoint
		case err != nil:
			return removed, fmt.Errorf("audit: trim: %w", err)
		case n == 0:
			return removed, nil
		}
	}
}

// trimPage removes up to trimPage entries older than before in one
// commit and returns how many.
func (t *Trail) trimPage(ctx context.Context, before time.Time) (int, error) {
	key := t.cfg.Key
	var c checkpoint
	cv, err := readDoc(ctx, t.cm, checkKind, checkpointKey, &c)
	if err != nil {
		return 0, err
	}
	prev := make([]byte, chainSize)
	if cv > 0 {
		got, err := hex.DecodeString(c.MAC)
		if err != nil || !hmac.Equal(got, c.sum(key)) {
			return 0, bad(0, "checkpoint (trimmed through entry %d): signature mismatch (edited or forged)", c.Through)
		}
		if prev, err = decodeChain(c.Chain); err != nil {
			return 0, bad(0, "checkpoint: %v", err)
		}
	}
	page, err := t.cm.DocList(ctx, &broker.DocListParams{Scope: Scope, Kind: entryKind, Index: indexAll, Min: c.Through + 1, Limit: trimPage})
	if err != nil {
		return 0, fmt.Errorf("list entries: %w", err)
	}
	v := &verifier{key: key, rep: &Report{}, prev: prev, next: c.Through + 1}
	var docs []*broker.DocWrite
	for _, d := range page.Docs {
		var e Entry
		if err := json.Unmarshal(d.Body, &e); err != nil {
			return 0, bad(v.next, "entry %s: unreadable (%v)", d.Key, err)
		}
		if !e.Time.Before(before) {
			break
		}
		if err := v.entry(d); err != nil {
			return 0, err
		}
		docs = append(docs, &broker.DocWrite{Kind: entryKind, Key: d.Key, Version: d.Version, Delete: true})
	}
	if len(docs) == 0 {
		return 0, nil
	}
	now, err := t.cm.Now(ctx)
	if err != nil {
		return 0, fmt.Errorf("read the store's clock: %w", err)
	}
	nc := checkpoint{Through: v.next - 1, Chain: hex.EncodeToString(v.prev), Trimmed: c.Trimmed + int64(len(docs)), TimeMs: now.UnixMilli()}
	nc.MAC = hex.EncodeToString(nc.sum(key))
	body, err := json.Marshal(nc)
	if err != nil {
		return 0, fmt.Errorf("encode checkpoint: %w", err)
	}
	docs = append(docs, &broker.DocWrite{Kind: checkKind, Key: checkpointKey, Version: cv, Body: body})
	if _, err := t.cm.Commit(ctx, &broker.CommitParams{Scope: Scope, Docs: docs}); err != nil {
		return 0, err
	}
	return len(docs) - 1, nil
}

// TrimOlderThan trims the entries older than age by the store's clock, as
// Trim does.
func (t *Trail) TrimOlderThan(ctx context.Context, age time.Duration) (int, error) {
	now, err := t.cm.Now(ctx)
	if err != nil {
		return 0, fmt.Errorf("audit: trim: read the store's clock: %w", err)
	}
	return t.Trim(ctx, now.Add(-age))
}
