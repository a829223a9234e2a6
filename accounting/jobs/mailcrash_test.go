package jobs_test

import (
	"context"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/accounting/jobs"
	"github.com/aibos/worker/accounting/sqlitestore"
	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/internal/redistest"
	"github.com/aibos/worker/internal/smtptest"
	"github.com/aibos/worker/notify"
	"github.com/aibos/worker/service"
)

// mailChildEnv makes the test binary a worker process (mailChild).
const mailChildEnv = "ACCOUNTING_MAIL_CHILD"

// reminderAtEnv, when set, turns reminders on in the worker process, due
// at that time of day (a Go duration after midnight UTC).
const reminderAtEnv = "ACCOUNTING_REMINDER_AT"

// mailLease is the worker processes' lease: a killed worker's job runs
// again this long after the kill.
const mailLease = 2 * time.Second

// mailChild is a worker process: the service on Redis (the service's own
// configuration from the environment) with the accounting job types on
// the SQLite ledger in WORKER_DATA_DIR and email.notification sending to
// SMTP_HOST, until it is killed.
func mailChild() {
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, "mail child:", err)
		os.Exit(2)
	}
	ctx := context.Background()
	cfg, err := service.Load(service.LoadInput{LookupEnv: os.LookupEnv})
	if err != nil {
		fail(err)
	}
	cfg.LeaseDuration = mailLease
	cfg.Queues = append(cfg.Queues, worker.QueueConfig{Name: jobs.QueueNotifications, Concurrency: 4})
	svc, err := service.New(ctx, cfg, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})))
	if err != nil {
		fail(err)
	}
	st, err := sqlitestore.Open(ctx, filepath.Join(cfg.DataDir, "accounting.db"))
	if err != nil {
		fail(err)
	}
	var opts []jobs.Option
	if v := os.Getenv(reminderAtEnv); v != "" {
		at, err := time.ParseDuration(v)
		if err != nil {
			fail(err)
		}
		opts = append(opts, jobs.WithReminders(jobs.ReminderConfig{At: at}))
	}
	if err := jobs.Register(svc, st, opts...); err != nil {
		fail(err)
	}
	s, err := notify.NewSMTP(notify.SMTPConfig{Host: cfg.SMTPHost, Port: cfg.SMTPPort, StartTLS: cfg.SMTPStartTLS})
	if err != nil {
		fail(err)
	}
	ob, err := notify.NewOutbox(svc.Broker(), jobs.QueueNotifications)
	if err != nil {
		fail(err)
	}
	m, err := notify.NewMailer(s, ob)
	if err != nil {
		fail(err)
	}
	if err := jobs.RegisterMail(svc, st, jobs.MailConfig{Mailer: m, From: cfg.SMTPFrom, To: cfg.SMTPTo}); err != nil {
		fail(err)
	}
	if err := svc.Start(ctx); err != nil {
		fail(err)
	}
	select {} // until killed
}

// TestNotificationsSurviveSIGKILLDuringSending kills worker processes
// (SIGKILL) at random, most of them while the SMTP server holds a message
// unanswered, the window where a send cannot be recorded. Every
// notification arrives, and a Message-ID that arrives more than once
// arrives with the same content each time.
func TestNotificationsSurviveSIGKILLDuringSending(t *testing.T) {
	if testing.Short() {
		t.Skip("starts worker processes")
	}
	const n, kills = 30, 10
	ctx := context.Background()
	url, prefix := redistest.URL(t), redistest.Prefix(t)
	dir := t.TempDir()
	_ = openLedger(t, dir).Close()

	var mu sync.Mutex
	var child *exec.Cmd
	killed := 0
	rng := mrand.New(mrand.NewPCG(uint64(time.Now().UnixNano()), 7))
	srv := smtptest.Start(t, smtptest.Options{OnMessage: func(smtptest.Message) {
		// Before the server answers DATA: the client cannot know the
		// message was accepted.
		mu.Lock()
		defer mu.Unlock()
		if child != nil && killed < kills && rng.IntN(3) == 0 {
			_ = child.Process.Signal(syscall.SIGKILL)
			killed++
		}
	}})
	b, c := openRedis(t, url, prefix)
	for i := range n {
		if _, err := c.Add(ctx, jobs.QueueNotifications, worker.JobSpec{Type: jobs.TypeNotification, TenantID: tenant, CompanyID: company,
			MaxAttempts: 50, Data: map[string]any{"event": jobs.EventInvoicePosted, "documentId": fmt.Sprintf("inv_%d", i), "total": 100 + i, "currency": "EUR"}}); err != nil {
			t.Fatal(err)
		}
	}
	env := workerEnv(url, prefix, dir, srv)
	// completed counts the finished jobs, and fails the test for a dead
	// one: a notification that will never arrive.
	completed := func() int {
		l, err := b.JobList(ctx, &broker.JobListParams{Queue: jobs.QueueNotifications, State: broker.StateDead, Limit: 1})
		if err != nil {
			t.Fatal(err)
		}
		if len(l.Jobs) > 0 {
			t.Fatalf("notification job %s is dead: %s", l.Jobs[0].ID, l.Jobs[0].LastError)
		}
		if l, err = b.JobList(ctx, &broker.JobListParams{Queue: jobs.QueueNotifications, State: broker.StateCompleted, Limit: 1000}); err != nil {
			t.Fatal(err)
		}
		return len(l.Jobs)
	}
	// Start a worker, wait for it to die or for the work to be done, and
	// start another, with a timed kill too while kills remain (a kill
	// outside sending: between jobs, or while recording).
	deadline := time.Now().Add(3 * time.Minute)
	starts := 0
	for completed() < n {
		if time.Now().After(deadline) {
			for _, st := range []broker.State{broker.StatePending, broker.StateActive, broker.StateScheduled, broker.StateDead} {
				l, _ := b.JobList(ctx, &broker.JobListParams{Queue: jobs.QueueNotifications, State: st, Limit: 1})
				if l != nil && len(l.Jobs) > 0 {
					t.Logf("%s: e.g. %s attempt %d (%s)", st, l.Jobs[0].ID, l.Jobs[0].Attempt, l.Jobs[0].LastError)
				}
			}
			t.Fatalf("%d of %d notifications completed within 3 minutes (%d kills, %d starts)", completed(), n, killed, starts)
		}
		cmd, exited := startWorkerProcess(t, env)
		starts++
		mu.Lock()
		child = cmd
		mu.Unlock()
		timer := time.NewTimer(time.Duration(500+rng.IntN(2500)) * time.Millisecond)
		poll := time.NewTicker(100 * time.Millisecond)
	wait:
		for {
			select {
			case <-exited:
				break wait
			case <-timer.C:
				mu.Lock()
				if killed < kills {
					_ = cmd.Process.Signal(syscall.SIGKILL)
					killed++
				}
				mu.Unlock()
			case <-poll.C:
				if completed() == n || time.Now().After(deadline) {
					_ = cmd.Process.Signal(syscall.SIGKILL)
				}
			}
		}
		timer.Stop()
		poll.Stop()
		mu.Lock()
		child = nil
		mu.Unlock()
	}
	if killed == 0 {
		t.Fatal("no worker was killed: the test decided nothing")
	}

	// Every notification arrived; no Message-ID with two contents.
	msgs := srv.Messages()
	byID := map[string]string{}
	again := 0
	for _, m := range msgs {
		raw, seen := byID[m.MessageID]
		switch {
		case !seen:
			byID[m.MessageID] = string(m.Raw)
		case raw != string(m.Raw):
			t.Errorf("Message-ID %s arrived with two contents:\n%s\n---\n%s", m.MessageID, raw, m.Raw)
		default:
			again++
		}
	}
	if len(byID) != n {
		t.Fatalf("%d distinct Message-IDs arrived, want %d (one per notification)", len(byID), n)
	}
	ob, err := notify.NewOutbox(b, jobs.QueueNotifications)
	if err != nil {
		t.Fatal(err)
	}
	entries, err := ob.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	resends := 0
	for _, e := range entries {
		if e.State != notify.StateSent {
			t.Errorf("outbox entry %s is %s, want sent", e.MessageID, e.State)
		}
		resends += e.Sends - 1
	}
	t.Logf("%d notifications, %d worker processes, %d SIGKILLs: %d messages arrived, %d of them again with the same Message-ID and content; the outbox counted %d resends",
		n, starts, killed, len(msgs), again, resends)
	if again > resends {
		t.Errorf("%d repeated arrivals but the outbox counted %d resends: a repeat went unrecorded", again, resends)
	}
}
