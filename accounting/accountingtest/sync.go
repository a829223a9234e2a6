package accountingtest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/aibos/worker/accounting"
)

// capital is a manual entry of amount (cash debit, equity credit).
func capital(amount int64) accounting.JournalEntry {
	return accounting.JournalEntry{Date: epoch, Memo: fmt.Sprintf("capital %d", amount), Lines: []accounting.EntryLine{
		{Account: accounting.AccountCash, Debit: amount, Currency: "EUR"},
		{Account: accounting.AccountEquity, Credit: amount, Currency: "EUR"},
	}}
}

// testEntrySequence posts entries from two handles at once while a reader
// pages through them by Seq, as a sync does: the reader must see every
// entry exactly once, and the Seqs must be 1..n in the books.
func testEntrySequence(t *testing.T, open Opener) {
	b := setup(t, open)
	other := accounting.Books{Tenant: "tenant-b", Company: company}
	b.company(t, other, "EUR")
	handles := []accounting.Store{b.s, open(t, "main")}
	const writers, each = 4, 15
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if _, err := handles[w%2].JournalPost(context.Background(), b.books, capital(int64(100*w+i+1))); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	// The other tenant's books have their own sequence.
	if e, err := b.s.JournalPost(b.ctx, other, capital(1)); err != nil || e.Seq != 1 {
		t.Errorf("first entry of tenant B: %+v, %v; want seq 1", e, err)
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	seen := map[int64]int{}
	var after int64
	var readErr error
	read := func() {
		page, err := handles[1].JournalSince(b.ctx, b.books, after, 7)
		if err != nil {
			readErr = err
			return
		}
		for _, e := range page {
			if e.Seq <= after {
				t.Errorf("entry %d has seq %d after the page started above %d", e.ID, e.Seq, after)
			}
			seen[e.ID]++
			after = e.Seq
		}
	}
	for running := true; running && readErr == nil; {
		select {
		case <-done:
			running = false
		default:
			read()
		}
	}
	<-done
	for before := int64(-1); before != after && readErr == nil; {
		before = after
		read()
	}
	if readErr != nil {
		t.Fatalf("read entries by seq: %v", readErr)
	}
	close(errs)
	for err := range errs {
		t.Fatalf("post or read: %v", err)
	}
	if n := b.count(t); len(seen) != n || n != writers*each {
		t.Errorf("the reader saw %d distinct entries, the books hold %d, %d were posted", len(seen), n, writers*each)
	}
	for id, k := range seen {
		if k != 1 {
			t.Errorf("entry %d read %d times", id, k)
		}
	}
	all, err := b.s.JournalSince(b.ctx, b.books, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range all {
		got, err := b.s.JournalGet(b.ctx, b.books, e.ID)
		if e.Seq != int64(i+1) || err != nil || got.Seq != e.Seq || len(e.Lines) != 2 || e.Lines[0] != got.Lines[0] || e.Lines[1] != got.Lines[1] {
			t.Errorf("entry %d of the sequence: %+v; JournalGet: %+v, %v", i+1, e, got, err)
		}
	}
	for _, bad := range []struct {
		after int64
		limit int
	}{{0, 0}, {0, 1001}, {-1, 10}} {
		if _, err := b.s.JournalSince(b.ctx, b.books, bad.after, bad.limit); !errors.Is(err, accounting.ErrInvalid) {
			t.Errorf("JournalSince(after %d, limit %d): %v, want ErrInvalid", bad.after, bad.limit, err)
		}
	}
	if page, err := b.s.JournalSince(b.ctx, accounting.Books{Tenant: "tenant-c", Company: company}, 0, 10); err != nil || len(page) != 0 {
		t.Errorf("another tenant's entries: %v, %v; want none", page, err)
	}
}

// testSyncCursor pins the cursor's compare-and-set: only forward, only
// from where it is, one winner among concurrent advances.
func testSyncCursor(t *testing.T, open Opener) {
	b := setup(t, open)
	const name = "webhook"
	if at, err := b.s.CursorGet(b.ctx, b.books, name); err != nil || at != 0 {
		t.Fatalf("new cursor: %d, %v; want 0", at, err)
	}
	if err := b.s.CursorAdvance(b.ctx, b.books, name, 0, 5); err != nil {
		t.Fatalf("advance 0 -> 5: %v", err)
	}
	if err := b.s.CursorAdvance(b.ctx, b.books, name, 0, 7); !errors.Is(err, accounting.ErrConflict) {
		t.Errorf("advance from 0 when at 5: %v, want ErrConflict", err)
	}
	for _, bad := range [][2]int64{{5, 5}, {5, 3}, {-1, 2}} {
		if err := b.s.CursorAdvance(b.ctx, b.books, name, bad[0], bad[1]); !errors.Is(err, accounting.ErrInvalid) {
			t.Errorf("advance %d -> %d: %v, want ErrInvalid", bad[0], bad[1], err)
		}
	}
	if err := b.s.CursorAdvance(b.ctx, b.books, "", 0, 1); !errors.Is(err, accounting.ErrInvalid) {
		t.Errorf("cursor without a name: %v, want ErrInvalid", err)
	}
	other := accounting.Books{Tenant: "tenant-b", Company: company}
	if at, err := b.s.CursorGet(b.ctx, other, name); err != nil || at != 0 {
		t.Errorf("tenant B's cursor of the same name: %d, %v; want 0", at, err)
	}
	handles := []accounting.Store{b.s, open(t, "main")}
	var wg sync.WaitGroup
	var mu sync.Mutex
	won, conflicts := 0, 0
	for g := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := handles[g%2].CursorAdvance(context.Background(), b.books, name, 5, int64(10+g))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				won++
			case errors.Is(err, accounting.ErrConflict):
				conflicts++
			default:
				t.Errorf("concurrent advance: %v", err)
			}
		}()
	}
	wg.Wait()
	if won != 1 || conflicts != 5 {
		t.Errorf("6 concurrent advances from 5: %d won, %d conflicted; want 1 and 5", won, conflicts)
	}
	if at, err := b.s.CursorGet(b.ctx, b.books, name); err != nil || at < 10 || at > 15 {
		t.Errorf("cursor after the race: %d, %v; want one advance's target", at, err)
	}
}
