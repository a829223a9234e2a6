package audit

import (
	"bytes"
	"context"
	"crypto/hmac"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/aibos/worker/broker"
)

// VerifyError is a trail that does not verify: the first place where it
// differs from what the key and the records beside it say it must be.
// Seq is the first bad entry's number (0 when the fault is not one
// entry's: the checkpoint, or the head file).
type VerifyError struct {
	Seq     int64
	Problem string
}

func (e *VerifyError) Error() string { return e.Problem }

// Report describes a trail that verified.
type Report struct {
	// First and Last are the numbers of the oldest and newest entries
	// present (0 and the checkpoint's number when there are none).
	First, Last int64
	// Entries counts them.
	Entries int64
	// Trimmed counts the entries retention removed, up to TrimmedThrough.
	Trimmed, TrimmedThrough int64
	// HeadFileSeq is the entry the head file names; HeadFileChecked is
	// false when no head file was given or there was none.
	HeadFileSeq     int64
	HeadFileChecked bool
}

// VerifyOptions are Verify's options.
type VerifyOptions struct {
	// HeadFile is the head file the trail's writers keep (Config.HeadFile);
	// "" checks none. A missing file is reported in Report, not an error:
	// a fresh data directory has none.
	HeadFile string
}

// Verify checks the trail of b's store with key: the checkpoint's
// signature, then every entry from the one after the checkpoint on (no
// number missing, each chain value the HMAC of the one before and the
// entry), then that the trail ends where the head document and the head
// file say it does. It returns a *VerifyError naming the first fault it
// finds, another error if the store cannot be read, and a Report if the
// trail verifies. Verify reads the store while others may append: entries
// appended meanwhile are verified or not, but never make it fail.
func Verify(ctx context.Context, b broker.Broker, key []byte, opt VerifyOptions) (*Report, error) {
	cm, err := committer(b)
	if err != nil {
		return nil, fmt.Errorf("audit: verify: %w", err)
	}
	if len(key) < MinKeyLen {
		return nil, fmt.Errorf("audit: verify: the key is %d bytes; want at least %d", len(key), MinKeyLen)
	}
	// A trim that runs while the walk does removes entries the walk
	// expects; a walk whose checkpoint moved meanwhile is done again.
	for attempt := 0; ; attempt++ {
		rep, cpVersion, err := verifyOnce(ctx, cm, key, opt)
		var ve *VerifyError
		if !errors.As(err, &ve) || attempt == 2 {
			return rep, err
		}
		var c checkpoint
		now, rerr := readDoc(ctx, cm, checkKind, checkpointKey, &c)
		if rerr != nil || now == cpVersion {
			return rep, err
		}
	}
}

// verifyOnce is one walk of Verify; it also returns the checkpoint's
// version it started from.
func verifyOnce(ctx context.Context, cm broker.Committer, key []byte, opt VerifyOptions) (*Report, int64, error) {
	v := &verifier{key: key, rep: &Report{}}
	if opt.HeadFile != "" {
		seq, chain, ok, err := ReadHeadFile(opt.HeadFile, key)
		if err != nil {
			return nil, 0, &VerifyError{Problem: err.Error()}
		}
		v.fileSeq, v.fileChain, v.rep.HeadFileChecked, v.rep.HeadFileSeq = seq, chain, ok, seq
	}
	// The head is read first: entries appended after this read may follow
	// the ones it names, never precede them.
	var h head
	if _, err := readDoc(ctx, cm, headKind, headKey, &h); err != nil {
		return nil, 0, fmt.Errorf("audit: verify: %w", err)
	}
	if err := v.checkpoint(ctx, cm); err != nil {
		return nil, v.cpVersion, err
	}
	if err := v.entries(ctx, cm); err != nil {
		return nil, v.cpVersion, err
	}
	if err := v.ends(h); err != nil {
		return nil, v.cpVersion, err
	}
	return v.rep, v.cpVersion, nil
}

// verifier walks the chain.
type verifier struct {
	key       []byte
	rep       *Report
	prev      []byte // the chain value of the entry before the next
	next      int64  // the number the next entry must have
	fileSeq   int64
	fileChain string
	fileSeen  bool // the head file's entry was reached and matched
	cpVersion int64
}

func bad(seq int64, format string, args ...any) *VerifyError {
	return &VerifyError{Seq: seq, Problem: fmt.Sprintf(format, args...)}
}

// checkpoint starts the walk after the checkpoint, if there is one.
func (v *verifier) checkpoint(ctx context.Context, cm broker.Committer) error {
	var c checkpoint
	ver, err := readDoc(ctx, cm, checkKind, checkpointKey, &c)
	if err != nil {
		return fmt.Errorf("audit: verify: %w", err)
	}
	v.prev, v.next, v.cpVersion = make([]byte, chainSize), 1, ver
	if ver == 0 {
		return nil
	}
	got, err := hex.DecodeString(c.MAC)
	if err != nil || !hmac.Equal(got, c.sum(v.key)) {
		return bad(0, "checkpoint (trimmed through entry %d): signature mismatch (edited or forged)", c.Through)
	}
	if v.prev, err = decodeChain(c.Chain); err != nil {
		return bad(0, "checkpoint: %v", err)
	}
	v.next = c.Through + 1
	v.rep.Trimmed, v.rep.TrimmedThrough, v.rep.Last = c.Trimmed, c.Through, c.Through
	if v.fileSeq == c.Through && c.Chain == v.fileChain {
		v.fileSeen = true
	}
	return nil
}

// verifyPage is how many entries one read returns.
const verifyPage = 1000

// entries walks the entries after the checkpoint in order.
func (v *verifier) entries(ctx context.Context, cm broker.Committer) error {
	for {
		page, err := cm.DocList(ctx, &broker.DocListParams{Scope: Scope, Kind: entryKind, Index: indexAll, Min: v.next, Limit: verifyPage})
		if err != nil {
			return fmt.Errorf("audit: verify: list entries: %w", err)
		}
		for _, d := range page.Docs {
			if err := v.entry(d); err != nil {
				return err
			}
		}
		if len(page.Docs) < verifyPage {
			return nil
		}
	}
}

// entry checks one entry against the one before it.
func (v *verifier) entry(d *broker.Doc) error {
	var e Entry
	dec := json.NewDecoder(bytes.NewReader(d.Body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		return bad(v.next, "entry %s: unreadable (%v)", d.Key, err)
	}
	if entryKey(e.Seq) != d.Key {
		return bad(e.Seq, "entry %s: its body says it is entry %d (moved or edited)", d.Key, e.Seq)
	}
	switch {
	case e.Seq == v.next+1:
		return bad(v.next, "entry %d missing", v.next)
	case e.Seq > v.next:
		return bad(v.next, "entries %d..%d missing", v.next, e.Seq-1)
	case e.Seq < v.next:
		return bad(e.Seq, "entry %d: listed out of order", e.Seq)
	}
	want, err := link(v.key, v.prev, &e)
	if err != nil {
		return bad(e.Seq, "entry %d: %v", e.Seq, err)
	}
	got, err := hex.DecodeString(e.Chain)
	if err != nil || !hmac.Equal(got, want) {
		return bad(e.Seq, "entry %d: chain mismatch (edited or re-chained)", e.Seq)
	}
	if v.rep.Entries == 0 {
		v.rep.First = e.Seq
	}
	v.rep.Entries++
	v.rep.Last = e.Seq
	if e.Seq == v.fileSeq {
		if e.Chain != v.fileChain {
			return bad(e.Seq, "entry %d: chain differs from the head file's (the trail was rewritten from there)", e.Seq)
		}
		v.fileSeen = true
	}
	v.prev, v.next = want, e.Seq+1
	return nil
}

// ends checks that the trail reaches the head document's and the head
// file's entry.
func (v *verifier) ends(h head) error {
	last := v.next - 1
	if h.Seq > last {
		return bad(last+1, "trail ends at %d but the store's head says %d", last, h.Seq)
	}
	if h.Seq == last && h.Seq > 0 && h.Chain != hex.EncodeToString(v.prev) {
		return bad(last, "entry %d: chain differs from the store's head", last)
	}
	if !v.rep.HeadFileChecked || v.fileSeq == 0 {
		return nil
	}
	if v.fileSeq > last {
		return bad(last+1, "trail ends at %d but the head file says %d", last, v.fileSeq)
	}
	if !v.fileSeen && v.fileSeq >= v.rep.TrimmedThrough {
		return bad(v.fileSeq, "entry %d: chain differs from the head file's", v.fileSeq)
	}
	return nil
}
