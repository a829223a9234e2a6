package ops_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/accounting"
	"github.com/aibos/worker/accounting/accountingtest"
	"github.com/aibos/worker/accounting/sqlitestore"
	"github.com/aibos/worker/ops"
	"github.com/aibos/worker/retry"
)

var (
	secret      = "whsec_" + base64.StdEncoding.EncodeToString([]byte("sync-secret-0123456789abcdef0123"))
	wrongSecret = "whsec_" + base64.StdEncoding.EncodeToString([]byte("wrong-secret-0123456789abcdef012"))
)

// receiver is a real HTTP listener that verifies every push (through
// ops.SyncHandler) and keeps the entries by id, counting repeats.
type receiver struct {
	*httptest.Server
	mu       sync.Mutex
	entries  map[string]map[int64]ops.SyncEntry // by "tenant/company", then id
	order    map[string][]int64                 // seqs as they first arrived
	repeats  int
	pushes   int
	rejected atomic.Int64 // pushes answered 401 (signature)
	// fail, when it returns true for the push number n (from 1), answers
	// 503 instead of taking the push.
	fail func(n int) bool
}

func newReceiver(t *testing.T, verifyWith string) *receiver {
	r := &receiver{entries: map[string]map[int64]ops.SyncEntry{}, order: map[string][]int64{}}
	h := ops.SyncHandler(verifyWith, func(_ context.Context, m *ops.SyncMessage) error {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.pushes++
		if r.fail != nil && r.fail(r.pushes) {
			return errors.New("receiver unavailable")
		}
		k := m.TenantID + "/" + m.CompanyID
		if r.entries[k] == nil {
			r.entries[k] = map[int64]ops.SyncEntry{}
		}
		for _, e := range m.Entries {
			if _, dup := r.entries[k][e.ID]; dup {
				r.repeats++
				continue
			}
			r.entries[k][e.ID] = e
			r.order[k] = append(r.order[k], e.Seq)
		}
		return nil
	})
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code == http.StatusUnauthorized {
			r.rejected.Add(1)
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	}))
	t.Cleanup(r.Close)
	return r
}

// got returns the distinct entries received for b and the seqs in arrival
// order.
func (r *receiver) got(b accounting.Books) (map[int64]ops.SyncEntry, []int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.entries[b.Tenant+"/"+b.Company], append([]int64(nil), r.order[b.Tenant+"/"+b.Company]...)
}

func openLedger(t *testing.T) accounting.Store {
	t.Helper()
	st, err := sqlitestore.Open(context.Background(), filepath.Join(t.TempDir(), "accounting.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		accountingtest.CheckBooks(t, st)
		_ = st.Close()
	})
	return st
}

// seedEntries creates the company of b and posts n balanced entries.
func seedEntries(t *testing.T, st accounting.Store, b accounting.Books, n int) {
	t.Helper()
	ctx := context.Background()
	if _, err := st.CompanyCreate(ctx, accounting.Company{Tenant: b.Tenant, ID: b.Company, Name: b.Company, Currency: "EUR"}); err != nil && !errors.Is(err, accounting.ErrDuplicate) {
		t.Fatal(err)
	}
	postEntries(t, st, b, n)
}

func postEntries(t *testing.T, st accounting.Store, b accounting.Books, n int) {
	t.Helper()
	for i := range n {
		_, err := st.JournalPost(context.Background(), b, accounting.JournalEntry{Date: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC),
			Memo: fmt.Sprintf("entry %d", i), Lines: []accounting.EntryLine{
				{Account: accounting.AccountCash, Debit: int64(i + 1), Currency: "EUR"},
				{Account: accounting.AccountEquity, Credit: int64(i + 1), Currency: "EUR"},
			}})
		if err != nil {
			t.Fatalf("post entry %d: %v", i, err)
		}
	}
}

// checkAll fails unless the receiver holds every entry of b exactly as the
// ledger does, first received in seq order.
func checkAll(t *testing.T, st accounting.Store, r *receiver, b accounting.Books) {
	t.Helper()
	got, order := r.got(b)
	var want []accounting.JournalEntry
	for after := int64(0); ; {
		page, err := st.JournalSince(context.Background(), b, after, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		want = append(want, page...)
		after = page[len(page)-1].Seq
	}
	if len(got) != len(want) {
		t.Fatalf("%s/%s: the receiver holds %d distinct entries, the ledger %d", b.Tenant, b.Company, len(got), len(want))
	}
	for _, e := range want {
		g, ok := got[e.ID]
		if !ok || g.Seq != e.Seq || g.Memo != e.Memo || len(g.Lines) != len(e.Lines) || g.Lines[0] != e.Lines[0] {
			t.Errorf("%s/%s entry %d: received %+v, ledger %+v", b.Tenant, b.Company, e.ID, g, e)
		}
	}
	for i := 1; i < len(order); i++ {
		if order[i] <= order[i-1] {
			t.Fatalf("%s/%s: entries arrived out of order: seq %d after %d", b.Tenant, b.Company, order[i], order[i-1])
		}
	}
}

func TestSyncPushesEveryEntrySignedInOrder(t *testing.T) {
	st := openLedger(t)
	a := accounting.Books{Tenant: "tenant-a", Company: "acme"}
	a2 := accounting.Books{Tenant: "tenant-a", Company: "acme-uk"}
	bb := accounting.Books{Tenant: "tenant-b", Company: "acme"}
	seedEntries(t, st, a, 230)
	seedEntries(t, st, a2, 3)
	seedEntries(t, st, bb, 5)
	global, own := newReceiver(t, secret), newReceiver(t, secret)
	s, err := ops.NewSync(ops.SyncConfig{Store: st, PageSize: 50, Targets: map[string]ops.SyncTarget{
		"": {URL: global.URL, Secret: secret}, "tenant-b": {URL: own.URL, Secret: secret},
	}})
	if err != nil {
		t.Fatal(err)
	}
	n, err := s.Run(context.Background(), "", "")
	if err != nil || n != 238 {
		t.Fatalf("sync: pushed %d, %v; want 238", n, err)
	}
	checkAll(t, st, global, a)
	checkAll(t, st, global, a2)
	checkAll(t, st, own, bb)
	if got, _ := global.got(bb); len(got) != 0 {
		t.Errorf("tenant B's entries went to the global target too: %d", len(got))
	}
	if global.pushes != 5+1 || global.repeats != 0 {
		t.Errorf("global target: %d pushes, %d repeats; want 6 pages of at most 50 and none repeated", global.pushes, global.repeats)
	}
	// Nothing new: nothing is pushed again.
	if n, err := s.Run(context.Background(), "tenant-a", ""); err != nil || n != 0 {
		t.Errorf("second sync: pushed %d, %v; want 0", n, err)
	}
	postEntries(t, st, a, 4)
	if n, err := s.Run(context.Background(), "tenant-a", "acme"); err != nil || n != 4 {
		t.Errorf("sync of 4 new entries: pushed %d, %v", n, err)
	}
	checkAll(t, st, global, a)
	if global.repeats != 0 {
		t.Errorf("%d entries pushed twice", global.repeats)
	}
}

func TestSyncResumesFromTheLastAcknowledgedPush(t *testing.T) {
	st := openLedger(t)
	a := accounting.Books{Tenant: "tenant-a", Company: "acme"}
	seedEntries(t, st, a, 120)
	r := newReceiver(t, secret)
	r.fail = func(n int) bool { return n == 2 } // the second page fails once
	s, err := ops.NewSync(ops.SyncConfig{Store: st, PageSize: 40, Targets: map[string]ops.SyncTarget{"": {URL: r.URL, Secret: secret}}})
	if err != nil {
		t.Fatal(err)
	}
	n, err := s.Run(context.Background(), "tenant-a", "")
	if err == nil || n != 40 {
		t.Fatalf("sync with the receiver failing the second push: pushed %d, %v; want 40 and an error", n, err)
	}
	if at, err := st.CursorGet(context.Background(), a, ops.CursorName(r.URL)); err != nil || at != 40 {
		t.Fatalf("cursor after the failed push: %d, %v; want 40 (the last acknowledged entry)", at, err)
	}
	if n, err := s.Run(context.Background(), "tenant-a", ""); err != nil || n != 80 {
		t.Fatalf("resumed sync: pushed %d, %v; want the 80 left", n, err)
	}
	checkAll(t, st, r, a)
	if r.repeats != 0 {
		t.Errorf("%d entries pushed twice after a refused push", r.repeats)
	}
}

func TestSyncUnverifiedPushIsNotAcknowledged(t *testing.T) {
	st := openLedger(t)
	a := accounting.Books{Tenant: "tenant-a", Company: "acme"}
	seedEntries(t, st, a, 3)
	r := newReceiver(t, wrongSecret) // the receiver knows another secret
	s, err := ops.NewSync(ops.SyncConfig{Store: st, Targets: map[string]ops.SyncTarget{"": {URL: r.URL, Secret: secret}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Run(context.Background(), "", ""); err == nil {
		t.Fatal("sync to a receiver that cannot verify it succeeded")
	}
	if r.rejected.Load() != 1 {
		t.Errorf("receiver rejected %d pushes, want 1", r.rejected.Load())
	}
	if at, _ := st.CursorGet(context.Background(), a, ops.CursorName(r.URL)); at != 0 {
		t.Errorf("cursor moved to %d on a refused push", at)
	}
}

func TestNewSyncRefusesBadConfig(t *testing.T) {
	st := openLedger(t)
	for _, c := range []ops.SyncConfig{
		{},
		{Store: st, Targets: map[string]ops.SyncTarget{"": {Secret: secret}}},
		{Store: st, Targets: map[string]ops.SyncTarget{"": {URL: "http://x", Secret: "not base64!"}}},
		{Store: st, PageSize: 5000},
	} {
		if _, err := ops.NewSync(c); err == nil {
			t.Errorf("NewSync(%+v) accepted a bad config", c)
		}
	}
}

func TestSyncRefusesBadJobs(t *testing.T) {
	st := openLedger(t)
	s, err := ops.NewSync(ops.SyncConfig{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range []*worker.Job{
		{ID: "1", Data: json.RawMessage(`{"tenantId": "tenant-b"}`), TenantID: "tenant-a"},
		{ID: "2", Data: json.RawMessage(`{"companyId": "acme"}`)},
		{ID: "3", Data: json.RawMessage(`[1]`), TenantID: "tenant-a"},
	} {
		if err := s.Process(context.Background(), j); err == nil || !retry.IsNoRetry(err) {
			t.Errorf("sync job %s (%s, tenant %q): %v, want a failure without retry", j.ID, j.Data, j.TenantID, err)
		}
	}
}
