package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/accounting"
	"github.com/aibos/worker/accounting/accountingtest"
	"github.com/aibos/worker/accounting/jobs"
	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/broker/redisbroker"
	"github.com/aibos/worker/internal/pgtest"
	"github.com/aibos/worker/internal/redistest"
	"github.com/aibos/worker/service"
	"github.com/aibos/worker/workflow"
)

// The accounting crash test (issue 20): real serve processes on one Redis
// and one ledger, one of them SIGKILLed again and again, several times
// while it posts to the ledger. Every invoice must be posted exactly once
// and the books must balance.
const (
	crashInvoices = 200
	crashKills    = 10
	crashLease    = 2 * time.Second
	crashRedisDB  = 5
	// crashDrain bounds the wait for the last jobs after the last kill: a
	// killed worker's jobs come back after crashLease plus a maintenance
	// round, so anything much later is a stall.
	crashDrain = 60 * time.Second
	// crashRecovery bounds the wait for a killed worker's jobs to run
	// again: its lease, a maintenance round and a fetch, with room for a
	// loaded machine.
	crashRecovery = 30 * time.Second
)

var crashBuild struct {
	once sync.Once
	path string
	err  error
}

// crashBin returns aibos-worker built with a crashLease job lease (see
// testLease), built once.
func crashBin(t *testing.T) string {
	t.Helper()
	crashBuild.once.Do(func() {
		crashBuild.path = filepath.Join(binDir, "aibos-worker-crash")
		out, err := exec.Command("go", "build", "-ldflags", "-X main.testLease="+crashLease.String(), "-o", crashBuild.path, ".").CombinedOutput()
		if err != nil {
			crashBuild.err = fmt.Errorf("build aibos-worker with a short lease: %v\n%s", err, out)
		}
	})
	if crashBuild.err != nil {
		t.Fatal(crashBuild.err)
	}
	return crashBuild.path
}

func TestAccountingCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills a dozen worker processes")
	}
	t.Run("SQLiteLedger", func(t *testing.T) { crashTest(t, "") })
	t.Run("PostgresLedger", func(t *testing.T) { crashTest(t, pgtest.DatabaseURL(t)) })
}

// crashWorld is one run of the crash test: the ledger, the Redis broker
// the workers share, and what the test saw.
type crashWorld struct {
	t      *testing.T
	ctx    context.Context
	bin    string
	env    []string
	ledger accounting.Store
	b      *redisbroker.Broker
	client *worker.Client
	books  accounting.Books
	added  int
}

func crashTest(t *testing.T, databaseURL string) {
	ctx := context.Background()
	dataDir := t.TempDir()
	ledger, _, err := openLedger(ctx, &service.Config{DataDir: dataDir, DatabaseURL: databaseURL})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ledger.Close() })
	url, prefix := redistest.URL(t), redistest.Prefix(t)
	redisURL := fmt.Sprintf("%s/%d", url, crashRedisDB)
	b, err := redisbroker.Open(redisURL, redisbroker.Config{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	client, err := worker.NewClient(b, worker.ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	w := &crashWorld{t: t, ctx: ctx, bin: crashBin(t), ledger: ledger, b: b, client: client,
		books: accounting.Books{Tenant: "crash-tenant", Company: "crash-co"},
		env: []string{"REDIS_URL=" + redisURL, "QUEUE_PREFIX=" + prefix, "WORKER_DATA_DIR=" + dataDir,
			"DATABASE_URL=" + databaseURL, "WORKER_AUDIT_KEY=" + testAuditKey, "WORKER_ENCRYPTED_QUEUES=none",
			"WORKER_HTTP_ADDR=127.0.0.1:0", "WORKER_API_ENABLED=false", "WORKER_CONCURRENCY=8",
			"WORKER_RETRY_DELAY=50", "WORKER_DRAIN_TIMEOUT=1000", "HEALTH_CHECK_INTERVAL=1000"}}
	w.seed()

	survivor := w.startWorker()
	var recoveries []time.Duration
	start := time.Now()
	for k := range crashKills {
		victim := w.startWorker()
		w.addInvoices(crashInvoices / crashKills)
		// Half the kills wait for the victim to be posting; the others
		// land at a random moment.
		if k%2 == 0 {
			w.waitPosting(victim, 10*time.Second)
		} else {
			time.Sleep(time.Duration(100+rand.IntN(700)) * time.Millisecond)
		}
		victim.signal(syscall.SIGKILL)
		victim.wait(10 * time.Second)
		recoveries = append(recoveries, w.awaitRecovery(victim))
	}
	w.waitDone(survivor)
	t.Logf("%d invoices, %d kills, done %v after the first start; the killed worker's jobs ran again within %v",
		w.added, crashKills, time.Since(start).Round(time.Millisecond), slices.Max(recoveries).Round(time.Millisecond))

	runs := w.checkRuns()
	landed := w.killsInPosting(runs)
	t.Logf("kills that landed inside post-to-ledger (cut one of its attempts short): %d of %d (%d aimed at it)", landed, crashKills, crashKills/2)
	if landed == 0 {
		t.Errorf("no kill landed inside post-to-ledger: the test did not exercise a crash during posting")
	}
	w.checkPostedOnce()
	w.checkNotified()
	accountingtest.CheckBooks(t, ledger)
	if t.Failed() {
		w.logDead()
	}
}

// logDead logs the jobs that ended dead, with their attempts.
func (w *crashWorld) logDead() {
	for _, q := range crashQueues {
		res, err := w.b.JobList(w.ctx, &broker.JobListParams{Queue: q, State: broker.StateDead, Limit: 1000})
		if err != nil {
			w.t.Errorf("list dead jobs of %s: %v", q, err)
			continue
		}
		for _, j := range res.Jobs {
			full, err := w.b.JobGet(w.ctx, &broker.JobGetParams{Queue: q, ID: j.ID})
			if err != nil {
				w.t.Errorf("get dead job %s: %v", j.ID, err)
				continue
			}
			var as []string
			for _, a := range full.Attempts {
				as = append(as, fmt.Sprintf("#%d %s by %s %s", a.Attempt, a.Outcome, a.WorkerID, a.Error))
			}
			w.t.Logf("dead in %s: %s (last error %q); attempts:\n  %s", q, j.ID, full.LastError, strings.Join(as, "\n  "))
		}
	}
}

// seed creates the company and its customer.
func (w *crashWorld) seed() {
	w.t.Helper()
	if _, err := w.ledger.CompanyCreate(w.ctx, accounting.Company{Tenant: w.books.Tenant, ID: w.books.Company, Name: "Crash Ltd", Currency: "EUR"}); err != nil {
		w.t.Fatal(err)
	}
	if err := w.ledger.PartyCreate(w.ctx, w.books, accounting.Party{Kind: accounting.Customer, ID: "cust-1", Name: "Customer"}); err != nil {
		w.t.Fatal(err)
	}
}

// startWorker starts a serve process and waits until it listens.
func (w *crashWorld) startWorker() *proc {
	w.t.Helper()
	p := startBin(w.t, w.bin, w.env, "serve")
	p.addr()
	return p
}

// addInvoices creates n invoices in the ledger and enqueues the job that
// processes each.
func (w *crashWorld) addInvoices(n int) {
	w.t.Helper()
	day := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	specs := make([]worker.JobSpec, 0, n)
	for range n {
		i := w.added
		w.added++
		id := fmt.Sprintf("INV-%04d", i)
		p := accounting.DocumentParams{Kind: accounting.Invoice, ID: id, PartyID: "cust-1", Currency: "EUR",
			IssueDate: day, DueDate: day.AddDate(0, 0, 30)}
		for l := range 1 + i%3 {
			p.Lines = append(p.Lines, accounting.Line{Description: fmt.Sprintf("item %d", l+1),
				Quantity: int64(1 + (i+l)%4), UnitPrice: int64(1000 + 333*l + i), TaxRate: 1900})
		}
		if _, err := w.ledger.DocumentCreate(w.ctx, w.books, p); err != nil {
			w.t.Fatalf("create invoice %s: %v", id, err)
		}
		specs = append(specs, worker.JobSpec{Type: jobs.TypeInvoice, TenantID: w.books.Tenant, CompanyID: w.books.Company,
			Data: map[string]any{"invoiceId": id, "tenantId": w.books.Tenant, "companyId": w.books.Company}})
	}
	if _, err := w.client.AddMany(w.ctx, jobs.QueueInvoices, specs); err != nil {
		w.t.Fatalf("enqueue invoices: %v", err)
	}
}

// postStep ends the id of a run's post-to-ledger step job.
const postStep = ":step:post-to-ledger"

// crashQueues are the queues the invoices' work runs in: the
// invoice.processing jobs and the workflow steps they start.
var crashQueues = []string{jobs.QueueInvoices, workflow.DefaultQueue}

// active returns the active jobs of the crash queues.
func (w *crashWorld) active() []*broker.Job {
	w.t.Helper()
	var out []*broker.Job
	for _, q := range crashQueues {
		res, err := w.b.JobList(w.ctx, &broker.JobListParams{Queue: q, State: broker.StateActive, Limit: 1000})
		if err != nil {
			w.t.Fatalf("list active jobs of %s: %v", q, err)
		}
		out = append(out, res.Jobs...)
	}
	return out
}

// leasedBy reports whether worker id names process p: the Manager's
// default worker id is host:pid:random.
func leasedBy(id string, p *proc) bool {
	return strings.Contains(id, fmt.Sprintf(":%d:", p.cmd.Process.Pid))
}

// waitPosting polls the broker until a post-to-ledger step is leased by p,
// or timeout passes.
func (w *crashWorld) waitPosting(p *proc, timeout time.Duration) {
	w.t.Helper()
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		for _, j := range w.active() {
			if strings.HasSuffix(j.ID, postStep) && leasedBy(j.WorkerID, p) {
				return
			}
		}
	}
}

// awaitRecovery waits until every job the killed process p held has been
// leased again by another worker (or has finished), polling the broker, and
// returns how long that took. Another victim started earlier could take a
// job the last one died holding and die with it too, using up the
// attempts of a step the seed gives only two: each kill must cost each job
// one attempt at most.
func (w *crashWorld) awaitRecovery(p *proc) time.Duration {
	w.t.Helper()
	start := time.Now()
	held := map[string]string{} // job id -> queue
	for _, j := range w.active() {
		if leasedBy(j.WorkerID, p) {
			held[j.ID] = j.Queue
		}
	}
	deadline := start.Add(crashRecovery)
	for len(held) > 0 {
		for id, q := range held {
			j, err := w.b.JobGet(w.ctx, &broker.JobGetParams{Queue: q, ID: id})
			if err != nil {
				w.t.Fatalf("get job %s: %v", id, err)
			}
			if j.State != broker.StatePending && !(j.State == broker.StateActive && leasedBy(j.WorkerID, p)) {
				delete(held, id)
				continue
			}
			if time.Now().After(deadline) {
				w.t.Fatalf("job %s of the worker killed %v ago is still %s (worker %s, lease until %s): its lease was not recovered",
					id, time.Since(start).Round(time.Millisecond), j.State, j.WorkerID, j.LeaseUntil.Format(time.RFC3339Nano))
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

// waitDone waits until every invoice job and workflow step has finished,
// polling the broker; on a stall it fails with the jobs still active.
func (w *crashWorld) waitDone(survivor *proc) {
	w.t.Helper()
	deadline := time.Now().Add(crashDrain)
	for {
		left := int64(0)
		for _, q := range crashQueues {
			st, err := w.b.QueueStats(w.ctx, &broker.QueueStatsParams{Queue: q})
			if err != nil {
				w.t.Fatal(err)
			}
			left += st.Pending + st.Active + st.Scheduled
		}
		if left == 0 {
			return
		}
		if time.Now().After(deadline) {
			var stuck []string
			for _, j := range w.active() {
				stuck = append(stuck, fmt.Sprintf("%s (worker %s, attempt %d, lease until %s)", j.ID, j.WorkerID, j.Attempt, j.LeaseUntil.Format(time.RFC3339Nano)))
			}
			w.t.Fatalf("%d jobs unfinished %v after the last kill (survivor pid %d); active jobs:\n%s",
				left, crashDrain, survivor.cmd.Process.Pid, strings.Join(stuck, "\n"))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// killsInPosting returns how many kills cut an attempt of a post-to-ledger
// step short, from the step jobs' attempt histories: the broker records
// the attempt of a worker that died holding the job as lease expired, and
// each worker process has its own id.
func (w *crashWorld) killsInPosting(runs []*workflow.Run) int {
	w.t.Helper()
	killed := map[string]bool{}
	for _, r := range runs {
		j, err := w.b.JobGet(w.ctx, &broker.JobGetParams{Queue: workflow.DefaultQueue, ID: r.ID + postStep})
		if err != nil {
			w.t.Fatalf("get the post-to-ledger step of run %s: %v", r.ID, err)
		}
		for _, a := range j.Attempts {
			if a.Outcome == broker.AttemptLeaseExpired {
				killed[a.WorkerID] = true
			}
		}
	}
	return len(killed)
}

// checkRuns checks that every invoice's workflow run finished, and
// succeeded, and returns the runs.
func (w *crashWorld) checkRuns() []*workflow.Run {
	w.t.Helper()
	eng, err := workflow.NewEngine(w.b, workflow.Config{})
	if err != nil {
		w.t.Fatal(err)
	}
	states := map[broker.WorkflowState]int{}
	var all []*workflow.Run
	var unfinished []string
	for offset := 0; offset >= 0; {
		res, err := eng.List(w.ctx, workflow.ListParams{Workflow: jobs.TypeInvoice, Offset: offset, Limit: 1000})
		if err != nil {
			w.t.Fatal(err)
		}
		all = append(all, res.Runs...)
		for _, r := range res.Runs {
			states[r.State]++
			if r.State != broker.WorkflowSucceeded {
				var steps []string
				for _, st := range r.Steps {
					steps = append(steps, fmt.Sprintf("%s %s", st.Name, st.State))
				}
				unfinished = append(unfinished, fmt.Sprintf("run %s %s: %s", r.ID, r.State, strings.Join(steps, ", ")))
			}
		}
		offset = res.NextOffset
	}
	if states[broker.WorkflowSucceeded] != w.added {
		w.t.Errorf("invoice runs by state: %v; want all %d succeeded:\n%s", states, w.added, strings.Join(unfinished, "\n"))
	}
	return all
}

// checkNotified checks that send-notifications recorded one notification
// per invoice, however often it ran.
func (w *crashWorld) checkNotified() {
	w.t.Helper()
	st, err := w.b.QueueStats(w.ctx, &broker.QueueStatsParams{Queue: jobs.QueueNotifications})
	if err != nil {
		w.t.Fatal(err)
	}
	if n := st.Scheduled + st.Pending + st.Active + st.Completed + st.Dead; n != int64(w.added) {
		w.t.Errorf("%d notification jobs recorded, want %d (one per invoice)", n, w.added)
	}
}

// checkPostedOnce counts the journal entries of every invoice version from
// the ledger: each invoice has exactly one, and nothing else was posted.
func (w *crashWorld) checkPostedOnce() {
	w.t.Helper()
	lines, err := w.ledger.AccountActivity(w.ctx, w.books, accounting.AccountReceivable)
	if err != nil {
		w.t.Fatal(err)
	}
	entries := map[string]map[int64]bool{} // memo -> entry ids
	for _, l := range lines {
		if entries[l.Memo] == nil {
			entries[l.Memo] = map[int64]bool{}
		}
		entries[l.Memo][l.EntryID] = true
	}
	for i := range w.added {
		memo := fmt.Sprintf("invoice INV-%04d version 1", i)
		if n := len(entries[memo]); n != 1 {
			w.t.Errorf("invoice INV-%04d version 1 has %d journal entries, want exactly 1", i, n)
		}
		delete(entries, memo)
	}
	for memo, ids := range entries {
		w.t.Errorf("unexpected journal entries %q: %d", memo, len(ids))
	}
	total, err := w.ledger.JournalCount(w.ctx, w.books)
	if err != nil {
		w.t.Fatal(err)
	}
	if total != w.added {
		w.t.Errorf("the journal holds %d entries, want %d (one per invoice)", total, w.added)
	}
}
