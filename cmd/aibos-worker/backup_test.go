package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aibos/worker/accounting"
	"github.com/aibos/worker/accounting/accountingtest"
	"github.com/aibos/worker/accounting/sqlitestore"
	"github.com/aibos/worker/admin"
	"github.com/aibos/worker/audit"
	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/broker/sqlitebroker"
	"github.com/aibos/worker/internal/testwait"
	"github.com/aibos/worker/ops"
	"github.com/aibos/worker/service"
)

// cut is what a store held: the ledger of one company and the job counts
// per queue.
type cut struct {
	entries int
	trial   []accounting.AccountBalance
	jobs    map[string]int64 // queue -> jobs in any state
	done    map[string]int64 // queue -> completed
}

// readLedger reads the company's books and checks they balance.
func readLedger(t *testing.T, path string, books accounting.Books, c *cut) {
	t.Helper()
	st, err := sqlitestore.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	accountingtest.CheckBooks(t, st)
	if c.entries, err = st.JournalCount(context.Background(), books); err != nil {
		t.Fatal(err)
	}
	if c.trial, err = st.TrialBalance(context.Background(), books); err != nil {
		t.Fatal(err)
	}
}

// backupContents reads what the backup in dir holds, from copies of its
// files (opening a store may migrate it; the backup stays as made).
func backupContents(t *testing.T, dir string, books accounting.Books) *cut {
	t.Helper()
	scratch := t.TempDir()
	c := &cut{jobs: map[string]int64{}, done: map[string]int64{}}
	for _, f := range []string{LedgerFile, service.StoreFile} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatalf("the backup lacks %s: %v", f, err)
		}
		if err := os.WriteFile(filepath.Join(scratch, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	readLedger(t, filepath.Join(scratch, LedgerFile), books, c)
	b, err := sqlitebroker.Open(filepath.Join(scratch, service.StoreFile), sqlitebroker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	queues, err := b.QueueList(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range queues {
		s, err := b.QueueStats(context.Background(), &broker.QueueStatsParams{Queue: q})
		if err != nil {
			t.Fatal(err)
		}
		c.jobs[q] = s.Total()
		c.done[q] = s.Completed
	}
	return c
}

// TestBackupUnderLoadRestoreAndServe backs up a running service while
// invoices are created, their jobs processed and posted; restores the
// backup into a new data directory with `aibos-worker restore`; starts the
// service there (its queues paused, so that nothing changes while the
// test compares) and finds the ledger and the job counts the backup
// contained, through the same token; then lets the restored service work
// on, and the books still balance.
func TestBackupUnderLoadRestoreAndServe(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	root := t.TempDir()
	dir := filepath.Join(root, "data")
	books := accounting.Books{Tenant: "tenant-a", Company: "acme"}
	st, err := sqlitestore.Open(ctx, filepath.Join(dir, LedgerFile))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.CompanyCreate(ctx, accounting.Company{Tenant: books.Tenant, ID: books.Company, Name: "Acme", Currency: "EUR"}); err != nil {
		t.Fatal(err)
	}
	if err := st.PartyCreate(ctx, books, accounting.Party{Kind: accounting.Customer, ID: "cust-1", Name: "C"}); err != nil {
		t.Fatal(err)
	}
	env := []string{"WORKER_DATA_DIR=" + dir, "WORKER_HTTP_ADDR=127.0.0.1:0", "LOG_LEVEL=warn"}
	tok := adminToken(t, env)
	p := start(t, append(env, "LOG_LEVEL=info"), "serve")
	c := apiClient(t, p.addr(), tok)

	// The load: invoices written to the ledger and their jobs enqueued, as
	// the application does, while the service processes and posts them.
	var made atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	loadErr := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			id := fmt.Sprintf("inv-%d", i)
			_, err := st.DocumentCreate(ctx, books, accounting.DocumentParams{Kind: accounting.Invoice, ID: id, PartyID: "cust-1", Currency: "EUR",
				IssueDate: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), Lines: []accounting.Line{{Description: "x", Quantity: 1, UnitPrice: 1000, TaxRate: 2000}}})
			if err == nil {
				data, _ := json.Marshal(map[string]string{"invoiceId": id, "tenantId": books.Tenant, "companyId": books.Company})
				_, err = c.Enqueue(ctx, "invoices", admin.EnqueueRequest{Type: "invoice.processing", Data: data, TenantID: books.Tenant, CompanyID: books.Company}, "")
			}
			if err != nil {
				loadErr <- err
				return
			}
			made.Add(1)
			// Paced, so the backlog stays a few dozen workflows deep: an
			// unpaced loop queues thousands on a slow machine, and the
			// restored service then works through all of them before it
			// posts one the backup had not.
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	stopLoad := func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
	}
	defer stopLoad()
	posted := func() int {
		n, err := st.JournalCount(ctx, books)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	testwait.For(t, 60*time.Second, "invoices posted", func() bool { return posted() >= 5 })
	madeBefore, postedBefore := made.Load(), posted()
	// `backup now` adds a backup job through the API and waits for it.
	code, out, errOut := cliRun(t, env, "backup", "now", "--url", p.addr(), "--token", tok, "-o", "json")
	if code != 0 {
		t.Fatalf("backup now: exit %d: %s", code, errOut)
	}
	var m ops.Manifest
	if err := json.Unmarshal([]byte(out), &m); err != nil || m.Dir == "" {
		t.Fatalf("backup now printed %s: %v", out, err)
	}
	// The job store is copied before the ledger (ops.BackupConfig.First):
	// the other order restores jobs that are done in the job store but
	// whose postings the older ledger copy lacks.
	if len(m.Files) < 2 || m.Files[0].Name != audit.HeadFileName || m.Files[1].Name != service.StoreFile {
		t.Errorf("backup copied %+v, want the audit head, then the job store %s, first", m.Files, service.StoreFile)
	}
	// Under load: work went on across the backup.
	testwait.For(t, 60*time.Second, "more invoices made and posted after the backup", func() bool {
		return made.Load() > madeBefore+3 && posted() > postedBefore+3
	})
	stopLoad()
	select {
	case err := <-loadErr:
		t.Fatalf("load: %v", err)
	default:
	}
	p.signal(syscall.SIGTERM)
	if code := p.wait(60 * time.Second); code != 0 {
		t.Fatalf("serve exited %d after SIGTERM", code)
	}
	if filepath.Dir(m.Dir) != filepath.Join(root, "backups") {
		t.Errorf("backup written to %s, want under %s (beside the data directory)", m.Dir, filepath.Join(root, "backups"))
	}
	want := backupContents(t, m.Dir, books)
	if want.entries == 0 || want.jobs["invoices"] == 0 {
		t.Fatalf("the backup holds %d entries and %d invoice jobs: it missed the load", want.entries, want.jobs["invoices"])
	}

	fresh := filepath.Join(root, "restored")
	freshEnv := []string{"WORKER_DATA_DIR=" + fresh, "WORKER_HTTP_ADDR=127.0.0.1:0", "LOG_LEVEL=warn"}
	if code, out, errOut := cliRun(t, freshEnv, "restore", m.Dir); code != 0 {
		t.Fatalf("restore: exit %d: %s%s", code, out, errOut)
	}
	if code, _, errOut := cliRun(t, freshEnv, "restore", m.Dir); code != exitConflict {
		t.Errorf("restore into the restored, non-empty directory: exit %d (%s), want %d", code, errOut, exitConflict)
	}
	// Pause every queue before the service starts, so the counts hold
	// still while they are compared.
	b, err := sqlitebroker.Open(filepath.Join(fresh, service.StoreFile), sqlitebroker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	queues, err := b.QueueList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range queues {
		if err := b.QueuePause(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	_ = b.Close()

	p = start(t, append(freshEnv, "LOG_LEVEL=info"), "serve")
	c = apiClient(t, p.addr(), tok) // the token came back with the store
	if code, _, errOut := cliRun(t, freshEnv, "restore", "--force", m.Dir); code != exitConflict {
		t.Errorf("restore --force while the service runs: exit %d (%s), want %d", code, errOut, exitConflict)
	}
	qs, err := c.Queues(ctx)
	if err != nil {
		t.Fatalf("list queues on the restored service: %v", err)
	}
	got := map[string]int64{}
	for _, q := range qs {
		for _, n := range q.Counts {
			got[q.Name] += int64(n)
		}
		if int64(q.Counts["completed"]) != want.done[q.Name] {
			t.Errorf("restored queue %s: %d completed, the backup holds %d", q.Name, q.Counts["completed"], want.done[q.Name])
		}
	}
	for q, n := range want.jobs {
		if got[q] != n {
			t.Errorf("restored queue %s holds %d jobs, the backup %d", q, got[q], n)
		}
	}
	restored := &cut{}
	readLedger(t, filepath.Join(fresh, LedgerFile), books, restored)
	if restored.entries != want.entries || !slices.Equal(restored.trial, want.trial) {
		t.Errorf("restored ledger: %d entries, trial balance %+v; the backup: %d, %+v", restored.entries, restored.trial, want.entries, want.trial)
	}
	t.Logf("backup under load: %d entries and %d invoice jobs in the backup (%d invoices made in all)", want.entries, want.jobs["invoices"], made.Load())

	// The restored service works on from the cut.
	for _, q := range queues {
		if err := c.ResumeQueue(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	// Every job the backup held finishes, none of them dead: with the job
	// store copied first, each names a document the ledger copy has.
	testwait.For(t, 120*time.Second, "the restored service finishes the jobs the backup held", func() bool {
		qs, err := c.Queues(ctx)
		if err != nil {
			return false
		}
		for _, q := range qs {
			// Not "scheduled": the seed's cron ticks wait there; and not
			// notifications, which serve serves only with SMTP_HOST set.
			if q.Name != "notifications" && q.Counts["pending"]+q.Counts["active"] > 0 {
				return false
			}
		}
		return true
	})
	if qs, err := c.Queues(ctx); err == nil {
		for _, q := range qs {
			if q.Counts["dead"] > 0 {
				t.Errorf("restored queue %s: %d dead jobs after the restore", q.Name, q.Counts["dead"])
			}
		}
	}
	// And it takes new work: an invoice written after the restore is posted.
	rst, err := sqlitestore.Open(ctx, filepath.Join(fresh, LedgerFile))
	if err != nil {
		t.Fatal(err)
	}
	defer rst.Close()
	before, err := countPosted(filepath.Join(fresh, LedgerFile), books)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rst.DocumentCreate(ctx, books, accounting.DocumentParams{Kind: accounting.Invoice, ID: "inv-after-restore", PartyID: "cust-1", Currency: "EUR",
		IssueDate: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), Lines: []accounting.Line{{Description: "x", Quantity: 1, UnitPrice: 1000, TaxRate: 2000}}}); err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(map[string]string{"invoiceId": "inv-after-restore", "tenantId": books.Tenant, "companyId": books.Company})
	if _, err := c.Enqueue(ctx, "invoices", admin.EnqueueRequest{Type: "invoice.processing", Data: data, TenantID: books.Tenant, CompanyID: books.Company}, ""); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, 120*time.Second, "the restored service posts an invoice made after the restore", func() bool {
		n, err := countPosted(filepath.Join(fresh, LedgerFile), books)
		return err == nil && n > before
	})
	// The seed's monthly cleanup runs the built-in data.cleanup: nothing
	// here is a day old, so it removes nothing; a payload outside its
	// schema is refused at enqueue.
	j, err := c.Enqueue(ctx, "reports", admin.EnqueueRequest{Type: ops.TypeCleanup, Data: json.RawMessage(`{"retentionDays": 1}`)}, "")
	if err != nil {
		t.Fatalf("enqueue data.cleanup: %v", err)
	}
	if done := waitJob(t, c, j.ID, "reports", 60*time.Second); done.State != "completed" || string(done.Result) != `{"completed":0,"dead":0,"audit":0,"reports":0}` {
		t.Errorf("data.cleanup on the restored service: %s, result %s", done.State, done.Result)
	}
	var apiErr *admin.Error
	if _, err := c.Enqueue(ctx, "reports", admin.EnqueueRequest{Type: ops.TypeCleanup, Data: json.RawMessage(`{"retentionDays": 0}`)}, ""); !errors.As(err, &apiErr) || apiErr.Code != admin.CodeSchema {
		t.Errorf("enqueue data.cleanup with retentionDays 0: %v, want the schema's refusal", err)
	}
	p.signal(syscall.SIGTERM)
	if code := p.wait(60 * time.Second); code != 0 {
		t.Errorf("restored serve exited %d after SIGTERM", code)
	}
	final := &cut{}
	readLedger(t, filepath.Join(fresh, LedgerFile), books, final)
}

func countPosted(path string, books accounting.Books) (int, error) {
	st, err := sqlitestore.Open(context.Background(), path)
	if err != nil {
		return 0, err
	}
	defer st.Close()
	return st.JournalCount(context.Background(), books)
}
