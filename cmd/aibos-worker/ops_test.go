package main

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aibos/worker/accounting"
	"github.com/aibos/worker/accounting/sqlitestore"
	"github.com/aibos/worker/admin"
	"github.com/aibos/worker/admin/adminclient"
	"github.com/aibos/worker/internal/testwait"
	"github.com/aibos/worker/ops"
)

// apiClient is an admin API client of the service at base.
func apiClient(t *testing.T, base, token string) *adminclient.Client {
	t.Helper()
	c, err := adminclient.New(adminclient.Config{URLs: []string{base}, Token: token})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// adminToken makes an admin token in the (stopped) service's store.
func adminToken(t *testing.T, env []string) string {
	t.Helper()
	code, out, errOut := tokensRun(t, env, "create", "--name", "root", "--role", "admin")
	if code != 0 {
		t.Fatalf("create token: exit %d: %s", code, errOut)
	}
	return lastLine(out)
}

// waitJob waits until job id reaches a final state and returns it.
func waitJob(t *testing.T, c *adminclient.Client, id, queue string, timeout time.Duration) *admin.Job {
	t.Helper()
	var j *admin.Job
	testwait.For(t, timeout, "job "+id+" finished", func() bool {
		var err error
		if j, err = c.Job(context.Background(), id, queue); err != nil {
			t.Fatal(err)
		}
		return j.State == "completed" || j.State == "dead"
	})
	return j
}

// syncSink is the application's end of data.sync: a real listener that
// verifies every push (ops.SyncHandler) and keeps entries by id, counting
// repeats. Each push takes a little while, as a real receiver's would, so
// that a sync of many pages is still running when the test kills it.
type syncSink struct {
	*httptest.Server
	mu       sync.Mutex
	ids      map[int64]bool
	repeats  int
	refused  int
	lastSeq  int64
	outOfSeq int
}

func newSyncSink(t *testing.T, secret string) *syncSink {
	s := &syncSink{ids: map[int64]bool{}}
	h := ops.SyncHandler(secret, func(ctx context.Context, m *ops.SyncMessage) error {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(15 * time.Millisecond):
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, e := range m.Entries {
			if s.ids[e.ID] {
				s.repeats++
				continue
			}
			if e.Seq != s.lastSeq+1 {
				s.outOfSeq++
			}
			s.ids[e.ID], s.lastSeq = true, e.Seq
		}
		return nil
	})
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		if rec.Code == http.StatusUnauthorized {
			s.mu.Lock()
			s.refused++
			s.mu.Unlock()
		}
		w.WriteHeader(rec.Code)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *syncSink) count() (distinct, repeats, refused, outOfSeq int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.ids), s.repeats, s.refused, s.outOfSeq
}

// TestSyncSurvivesKill pushes a ledger's entries to a webhook, SIGKILLs
// the worker mid-sync, restarts it and syncs again: every entry arrives,
// each push verified, and at most the one page in flight at the kill
// arrives twice (the receiver drops it by entry id).
func TestSyncSurvivesKill(t *testing.T) {
	t.Parallel()
	const entries, page = 400, 10
	dir := t.TempDir()
	books := accounting.Books{Tenant: "tenant-a", Company: "acme"}
	st, err := sqlitestore.Open(context.Background(), filepath.Join(dir, LedgerFile))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.CompanyCreate(context.Background(), accounting.Company{Tenant: books.Tenant, ID: books.Company, Name: "Acme", Currency: "EUR"}); err != nil {
		t.Fatal(err)
	}
	for i := range entries {
		if _, err := st.JournalPost(context.Background(), books, accounting.JournalEntry{Date: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), Memo: fmt.Sprint(i),
			Lines: []accounting.EntryLine{{Account: accounting.AccountCash, Debit: 1, Currency: "EUR"}, {Account: accounting.AccountEquity, Credit: 1, Currency: "EUR"}}}); err != nil {
			t.Fatal(err)
		}
	}
	_ = st.Close()

	secret := "whsec_" + base64.StdEncoding.EncodeToString([]byte("sync-e2e-secret-0123456789abcdef"))
	sink := newSyncSink(t, secret)
	cfgFile := filepath.Join(t.TempDir(), "aibos-worker.yaml")
	if err := os.WriteFile(cfgFile, []byte(fmt.Sprintf("sync:\n  url: %s\n  secret_env: SYNC_SECRET\n  page_size: %d\n", sink.URL, page)), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"WORKER_DATA_DIR=" + dir, "WORKER_HTTP_ADDR=127.0.0.1:0", "SYNC_SECRET=" + secret, "LOG_LEVEL=warn"}
	tok := adminToken(t, env)
	args := []string{"serve", "--config", cfgFile}

	p := start(t, append(env, "LOG_LEVEL=info"), args...)
	c := apiClient(t, p.addr(), tok)
	if _, err := c.Enqueue(context.Background(), "reports", admin.EnqueueRequest{Type: ops.TypeSync}, ""); err != nil {
		t.Fatalf("enqueue data.sync: %v", err)
	}
	testwait.For(t, 60*time.Second, "a quarter of the entries pushed", func() bool {
		n, _, _, _ := sink.count()
		return n >= entries/4
	})
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p.wait(30 * time.Second)
	if n, _, _, _ := sink.count(); n >= entries {
		t.Fatalf("the sync had pushed all %d entries before the kill: this run cannot tell a resumed sync from a finished one", n)
	}

	p = start(t, append(env, "LOG_LEVEL=info"), args...)
	c = apiClient(t, p.addr(), tok)
	j, err := c.Enqueue(context.Background(), "reports", admin.EnqueueRequest{Type: ops.TypeSync}, "")
	if err != nil {
		t.Fatalf("enqueue data.sync after the restart: %v", err)
	}
	if done := waitJob(t, c, j.ID, "reports", 120*time.Second); done.State != "completed" {
		t.Fatalf("data.sync after the restart ended %s: %+v", done.State, done)
	}
	n, repeats, refused, outOfSeq := sink.count()
	if n != entries || refused != 0 || outOfSeq != 0 {
		t.Errorf("receiver: %d of %d entries, %d pushes refused, %d out of sequence", n, entries, refused, outOfSeq)
	}
	if repeats > page {
		t.Errorf("%d entries arrived twice; at most the page in flight at the kill (%d) may", repeats, page)
	}
	t.Logf("after the kill and restart: %d entries, %d repeated (dropped by id)", n, repeats)
	p.signal(syscall.SIGTERM)
	if code := p.wait(60 * time.Second); code != 0 {
		t.Errorf("serve exited %d after SIGTERM", code)
	}
}
