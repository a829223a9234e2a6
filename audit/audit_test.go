package audit

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/internal/testbroker"
	"github.com/aibos/worker/internal/testwait"
)

// testKey is the trail's key in these tests; otherKey is an attacker's,
// who can write the store but does not hold testKey.
var (
	testKey  = []byte("0123456789abcdef0123456789abcdef")
	otherKey = []byte("attacker-key-attacker-key-attack")
)

// bundle is a trail on a fresh store with its head file.
type bundle struct {
	b     broker.Broker
	cm    broker.Committer
	trail *Trail
	file  string
}

func setup(t *testing.T, b broker.Broker) *bundle {
	t.Helper()
	file := filepath.Join(t.TempDir(), HeadFileName)
	tr, err := New(b, Config{Key: testKey, HeadFile: file})
	if err != nil {
		t.Fatal(err)
	}
	// The head file's writer ends before its directory is removed.
	t.Cleanup(func() { _ = tr.Sync() })
	return &bundle{b: b, cm: b.(broker.Committer), trail: tr, file: file}
}

// record appends n entries one after the other.
func (tb *bundle) record(t *testing.T, n int) []*Entry {
	t.Helper()
	out := make([]*Entry, n)
	for i := range out {
		e, err := tb.trail.Record(context.Background(), &Entry{TokenID: "t1", TokenName: "alice", Role: "operator",
			Action: "job.retry", Target: fmt.Sprintf("jobs/j%d", i), Outcome: OK, Status: 200, Changes: json.RawMessage(`{"ids":["j1"]}`)})
		if err != nil {
			t.Fatal(err)
		}
		out[i] = e
	}
	return out
}

func (tb *bundle) verify(t *testing.T) (*Report, error) {
	t.Helper()
	if err := tb.trail.Sync(); err != nil {
		t.Fatal(err)
	}
	return Verify(context.Background(), tb.b, testKey, VerifyOptions{HeadFile: tb.file})
}

// mustFail verifies and wants a *VerifyError whose message contains want.
func (tb *bundle) mustFail(t *testing.T, want string) {
	t.Helper()
	rep, err := tb.verify(t)
	var ve *VerifyError
	if !errors.As(err, &ve) {
		t.Fatalf("verify: got report %+v, error %v; want a VerifyError %q", rep, err, want)
	}
	if !strings.Contains(ve.Error(), want) {
		t.Fatalf("verify: %q; want it to say %q", ve.Error(), want)
	}
}

// doc reads an entry's document as the attacker sees it.
func (tb *bundle) doc(t *testing.T, kind, key string) *broker.Doc {
	t.Helper()
	d, err := tb.cm.DocGet(context.Background(), Scope, kind, key)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// write is the attacker writing the store directly.
func (tb *bundle) write(t *testing.T, ws ...*broker.DocWrite) {
	t.Helper()
	if _, err := tb.cm.Commit(context.Background(), &broker.CommitParams{Scope: Scope, Docs: ws}); err != nil {
		t.Fatal(err)
	}
}

func (tb *bundle) deleteEntry(t *testing.T, seq int64) {
	t.Helper()
	d := tb.doc(t, entryKind, entryKey(seq))
	tb.write(t, &broker.DocWrite{Kind: entryKind, Key: d.Key, Version: d.Version, Delete: true})
}

// setHead is the attacker pointing the store's head at entry seq.
func (tb *bundle) setHead(t *testing.T, seq int64, chain string) {
	t.Helper()
	d := tb.doc(t, headKind, headKey)
	body, _ := json.Marshal(head{Seq: seq, Chain: chain})
	tb.write(t, &broker.DocWrite{Kind: headKind, Key: headKey, Version: d.Version, Body: body})
}

// edit changes an entry's target, leaving its chain value as it was, and
// returns the edited entry.
func (tb *bundle) edit(t *testing.T, seq int64) *Entry {
	t.Helper()
	d := tb.doc(t, entryKind, entryKey(seq))
	var e Entry
	if err := json.Unmarshal(d.Body, &e); err != nil {
		t.Fatal(err)
	}
	e.Target = "jobs/someone-else"
	body, _ := json.Marshal(&e)
	tb.write(t, &broker.DocWrite{Kind: entryKind, Key: d.Key, Version: d.Version, Body: body, Index: entryIndex(&e)})
	return &e
}

func TestUntouchedTrailVerifies(t *testing.T) {
	testbroker.Each(t, func(t *testing.T, b broker.Broker) {
		tb := setup(t, b)
		rep, err := tb.verify(t)
		if err != nil || rep.Entries != 0 {
			t.Fatalf("empty trail: %+v, %v", rep, err)
		}
		got := tb.record(t, 5)
		for i, e := range got {
			if e.Seq != int64(i+1) || e.Chain == "" || e.Time.IsZero() {
				t.Fatalf("entry %d as stored: %+v", i, e)
			}
		}
		rep, err = tb.verify(t)
		if err != nil {
			t.Fatal(err)
		}
		if rep.First != 1 || rep.Last != 5 || rep.Entries != 5 || !rep.HeadFileChecked || rep.HeadFileSeq != 5 {
			t.Fatalf("report %+v; want entries 1..5 and the head file at 5", rep)
		}
	})
}

// TestTamperingIsNamed: each way someone who can write the store but does
// not hold the key may hide or change what happened makes Verify fail
// naming the place.
func TestTamperingIsNamed(t *testing.T) {
	cases := []struct {
		name   string
		tamper func(t *testing.T, tb *bundle, es []*Entry)
		want   string
	}{
		{"delete the first", func(t *testing.T, tb *bundle, _ []*Entry) { tb.deleteEntry(t, 1) }, "entry 1 missing"},
		{"delete a middle one", func(t *testing.T, tb *bundle, _ []*Entry) { tb.deleteEntry(t, 3) }, "entry 3 missing"},
		{"delete two in the middle", func(t *testing.T, tb *bundle, _ []*Entry) { tb.deleteEntry(t, 2); tb.deleteEntry(t, 3) }, "entries 2..3 missing"},
		{"delete the last", func(t *testing.T, tb *bundle, _ []*Entry) { tb.deleteEntry(t, 5) }, "trail ends at 4 but the store's head says 5"},
		{"delete the last and move the store's head back", func(t *testing.T, tb *bundle, es []*Entry) {
			tb.deleteEntry(t, 5)
			tb.setHead(t, 4, es[3].Chain)
		}, "trail ends at 4 but the head file says 5"},
		{"edit one", func(t *testing.T, tb *bundle, _ []*Entry) { tb.edit(t, 3) }, "entry 3: chain mismatch (edited or re-chained)"},
		{"edit one and re-chain it and the rest without the key", func(t *testing.T, tb *bundle, es []*Entry) {
			prev, _ := hex.DecodeString(es[1].Chain)
			for seq := int64(3); seq <= 5; seq++ {
				e := tb.edit(t, seq)
				c, err := link(otherKey, prev, e)
				if err != nil {
					t.Fatal(err)
				}
				e.Chain, prev = hex.EncodeToString(c), c
				d := tb.doc(t, entryKind, entryKey(seq))
				body, _ := json.Marshal(e)
				tb.write(t, &broker.DocWrite{Kind: entryKind, Key: d.Key, Version: d.Version, Body: body, Index: entryIndex(e)})
			}
			tb.setHead(t, 5, hex.EncodeToString(prev))
		}, "entry 3: chain mismatch (edited or re-chained)"},
		{"replace one with another trail's entry of the same number (same key)", func(t *testing.T, tb *bundle, _ []*Entry) {
			// Signed with the key, but after another trail's entry 2 (a
			// second store sharing the key, or this store before a wipe).
			foreign := &Entry{Seq: 3, Time: time.Now().UTC().Truncate(time.Millisecond), Action: "job.retry", Outcome: OK, Target: "jobs/other"}
			c, err := link(testKey, []byte("another trail's chain, 32 bytes"), foreign)
			if err != nil {
				t.Fatal(err)
			}
			foreign.Chain = hex.EncodeToString(c)
			d := tb.doc(t, entryKind, "3")
			body, _ := json.Marshal(foreign)
			tb.write(t, &broker.DocWrite{Kind: entryKind, Key: "3", Version: d.Version, Body: body, Index: entryIndex(foreign)})
		}, "entry 3: chain mismatch"},
		{"swap two entries' bodies", func(t *testing.T, tb *bundle, _ []*Entry) {
			d2, d3 := tb.doc(t, entryKind, "2"), tb.doc(t, entryKind, "3")
			tb.write(t, &broker.DocWrite{Kind: entryKind, Key: "2", Version: d2.Version, Body: d3.Body, Index: entryIndex(&Entry{Seq: 2})},
				&broker.DocWrite{Kind: entryKind, Key: "3", Version: d3.Version, Body: d2.Body, Index: entryIndex(&Entry{Seq: 3})})
		}, "entry 2: its body says it is entry 3"},
		{"forge a checkpoint to hide the first entries", func(t *testing.T, tb *bundle, es []*Entry) {
			body, _ := json.Marshal(checkpoint{Through: 2, Chain: es[1].Chain, Trimmed: 2})
			tb.deleteEntry(t, 1)
			tb.deleteEntry(t, 2)
			tb.write(t, &broker.DocWrite{Kind: checkKind, Key: checkpointKey, Body: body})
		}, "checkpoint (trimmed through entry 2): signature mismatch"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			testbroker.Each(t, func(t *testing.T, b broker.Broker) {
				tb := setup(t, b)
				es := tb.record(t, 5)
				c.tamper(t, tb, es)
				tb.mustFail(t, c.want)
			})
		})
	}
}

// TestHeadFileIsSigned: a head file edited to hide cut-off entries, or
// written with another key, does not verify.
func TestHeadFileIsSigned(t *testing.T) {
	tb := setup(t, testbroker.SQLite(t))
	es := tb.record(t, 3)
	if err := tb.trail.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := WriteHeadFile(tb.file, otherKey, 2, es[1].Chain); err != nil {
		t.Fatal(err)
	}
	tb.mustFail(t, "signature mismatch")
}

// waitStoreClockAfter waits until the store's clock has passed at, so
// that the next entry's time is after it.
func waitStoreClockAfter(t *testing.T, cm broker.Committer, at time.Time) {
	t.Helper()
	testwait.For(t, 5*time.Second, "the store's clock to pass "+at.String(), func() bool {
		now, err := cm.Now(context.Background())
		return err == nil && now.UnixMilli() > at.UnixMilli()
	})
}

func TestTrimThenVerify(t *testing.T) {
	testbroker.Each(t, func(t *testing.T, b broker.Broker) {
		tb := setup(t, b)
		old := tb.record(t, 3)
		waitStoreClockAfter(t, tb.cm, old[2].Time)
		kept := tb.record(t, 2)
		n, err := tb.trail.Trim(context.Background(), kept[0].Time)
		if err != nil || n != 3 {
			t.Fatalf("trim: removed %d, %v; want 3", n, err)
		}
		if _, err := tb.cm.DocGet(context.Background(), Scope, entryKind, "3"); !errors.Is(err, broker.ErrDocNotFound) {
			t.Fatalf("entry 3 after the trim: %v; want it gone", err)
		}
		rep, err := tb.verify(t)
		if err != nil {
			t.Fatal(err)
		}
		if rep.First != 4 || rep.Last != 5 || rep.Entries != 2 || rep.Trimmed != 3 || rep.TrimmedThrough != 3 {
			t.Fatalf("report after the trim: %+v", rep)
		}
		// Nothing older is left: a second trim removes nothing.
		if n, err := tb.trail.Trim(context.Background(), kept[0].Time); err != nil || n != 0 {
			t.Fatalf("second trim: %d, %v", n, err)
		}
		// After a trim, cutting off the entry after the checkpoint is
		// still seen.
		tb.deleteEntry(t, 4)
		tb.mustFail(t, "entry 4 missing")
	})
}

// TestTrimRefusesTamperedEntries: a trim does not erase the evidence.
func TestTrimRefusesTamperedEntries(t *testing.T) {
	tb := setup(t, testbroker.SQLite(t))
	es := tb.record(t, 3)
	tb.edit(t, 2)
	waitStoreClockAfter(t, tb.cm, es[2].Time)
	n, err := tb.trail.Trim(context.Background(), time.Now().Add(time.Hour))
	var ve *VerifyError
	if !errors.As(err, &ve) || !strings.Contains(err.Error(), "entry 2: chain mismatch") {
		t.Fatalf("trim over an edited entry: removed %d, %v; want a refusal naming entry 2", n, err)
	}
	if n != 0 {
		t.Fatalf("trim removed %d entries before refusing", n)
	}
	tb.mustFail(t, "entry 2: chain mismatch")
}

// TestConcurrentAppenders: two trails (as two processes would) append to
// one store at once, many goroutines each; the store holds one chain with
// every entry once.
func TestConcurrentAppenders(t *testing.T) {
	testbroker.Each(t, func(t *testing.T, b broker.Broker) {
		tb := setup(t, b)
		other, err := New(b, Config{Key: testKey, HeadFile: filepath.Join(t.TempDir(), HeadFileName)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = other.Sync() })
		const perTrail, goroutines = 40, 8
		var wg sync.WaitGroup
		errs := make(chan error, 2*perTrail)
		seqs := make(chan int64, 2*perTrail)
		for _, tr := range []*Trail{tb.trail, other} {
			for g := 0; g < goroutines; g++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < perTrail/goroutines; i++ {
						e, err := tr.Record(context.Background(), &Entry{Action: "job.enqueue", Outcome: OK, Target: fmt.Sprintf("g%d-%d", g, i)})
						if err != nil {
							errs <- err
							return
						}
						seqs <- e.Seq
					}
				}()
			}
		}
		wg.Wait()
		if err := other.Sync(); err != nil {
			t.Fatal(err)
		}
		close(errs)
		close(seqs)
		for err := range errs {
			t.Fatal(err)
		}
		seen := map[int64]bool{}
		for s := range seqs {
			if seen[s] {
				t.Fatalf("entry %d given to two records", s)
			}
			seen[s] = true
		}
		rep, err := tb.verify(t)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Entries != 2*perTrail || rep.Last != 2*perTrail {
			t.Fatalf("report %+v; want %d entries", rep, 2*perTrail)
		}
	})
}

func TestRecordRefusesBadEntries(t *testing.T) {
	tb := setup(t, testbroker.SQLite(t))
	for _, c := range []struct {
		e    *Entry
		want string
	}{
		{nil, "entry is nil"},
		{&Entry{Outcome: OK}, "no action"},
		{&Entry{Action: "x", Outcome: "maybe"}, `outcome "maybe"`},
		{&Entry{Action: "x", Outcome: OK, Target: "a\nb"}, "target must be"},
		{&Entry{Action: "x", Outcome: OK, Changes: json.RawMessage(`{`)}, "not valid JSON"},
	} {
		if _, err := tb.trail.Record(context.Background(), c.e); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("record %+v: %v; want %q", c.e, err, c.want)
		}
	}
	if _, err := New(tb.b, Config{Key: []byte("short")}); err == nil || !strings.Contains(err.Error(), "at least 32") {
		t.Errorf("new with a short key: %v", err)
	}
}

func TestList(t *testing.T) {
	testbroker.Each(t, func(t *testing.T, b broker.Broker) {
		tb := setup(t, b)
		ctx := context.Background()
		add := func(e Entry) *Entry {
			t.Helper()
			e.Outcome = OK
			got, err := tb.trail.Record(ctx, &e)
			if err != nil {
				t.Fatal(err)
			}
			// Each entry at a time of its own, for the time filters.
			waitStoreClockAfter(t, tb.cm, got.Time)
			return got
		}
		add(Entry{TokenID: "a1", TokenName: "alice", Scope: "A", Action: "job.retry"})
		add(Entry{TokenID: "b1", TokenName: "bob", Scope: "B", Action: "job.cancel"})
		third := add(Entry{TokenID: "root", TokenName: "admin", Tenant: "A", Action: "queue.pause"})
		seqs := func(p *Page) []int64 {
			var out []int64
			for _, e := range p.Entries {
				out = append(out, e.Seq)
			}
			return out
		}
		for _, c := range []struct {
			f    Filter
			want string
		}{
			{Filter{}, "[3 2 1]"},
			{Filter{Tenant: "A"}, "[3 1]"},
			{Filter{Tenant: "B"}, "[2]"},
			{Filter{Actor: "bob"}, "[2]"},
			{Filter{Actor: "a1"}, "[1]"},
			{Filter{Action: "job"}, "[2 1]"},
			{Filter{Action: "job.retry"}, "[1]"},
			{Filter{Action: "jo"}, "[]"},
			{Filter{Since: third.Time.Add(time.Millisecond)}, "[]"},
			{Filter{Until: third.Time}, "[2 1]"},
			{Filter{Before: 3}, "[2 1]"},
		} {
			p, err := List(ctx, b, c.f, 0)
			if err != nil {
				t.Fatal(err)
			}
			if got := fmt.Sprint(seqs(p)); got != c.want {
				t.Errorf("list %+v: %s; want %s", c.f, got, c.want)
			}
		}
		p, err := List(ctx, b, Filter{}, 2)
		if err != nil || fmt.Sprint(seqs(p)) != "[3 2]" || p.Next != 2 {
			t.Fatalf("first page of 2: %v next %d, %v", seqs(p), p.Next, err)
		}
		p, err = List(ctx, b, Filter{Before: p.Next}, 2)
		if err != nil || fmt.Sprint(seqs(p)) != "[1]" || p.Next != 0 {
			t.Fatalf("second page: %v next %d, %v", seqs(p), p.Next, err)
		}
	})
}

// TestHeadFileWritesAreSpaced: the head file is written at once after the
// first batch, then not again within HeadFileInterval however many
// batches follow; Sync writes the newest head at once.
func TestHeadFileWritesAreSpaced(t *testing.T) {
	b := testbroker.SQLite(t)
	file := filepath.Join(t.TempDir(), HeadFileName)
	tr, err := New(b, Config{Key: testKey, HeadFile: file, HeadFileInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Sync() })
	tb := &bundle{b: b, cm: b.(broker.Committer), trail: tr, file: file}
	tb.record(t, 1)
	testwait.For(t, 10*time.Second, "the first head file", func() bool {
		seq, _, ok, err := ReadHeadFile(file, testKey)
		return err == nil && ok && seq == 1
	})
	tb.record(t, 20)
	if seq, _, _, err := ReadHeadFile(file, testKey); err != nil || seq != 1 {
		t.Fatalf("head file at %d (%v) within the interval; want it still at 1", seq, err)
	}
	if err := tr.Sync(); err != nil {
		t.Fatal(err)
	}
	if seq, _, _, err := ReadHeadFile(file, testKey); err != nil || seq != 21 {
		t.Fatalf("head file at %d (%v) after Sync; want 21", seq, err)
	}
}
