package admin_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aibos/worker/admin"
	"github.com/aibos/worker/admin/apitest"
	"github.com/aibos/worker/audit"
	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/broker/sqlitebroker"
	"github.com/aibos/worker/internal/testbroker"
)

// failingTrailStore is a real store whose audit commits fail while fail
// is set, as a full disk would make them: the jobs and every other
// document are written as usual.
type failingTrailStore struct {
	broker.Broker
	cm   broker.Committer
	fail atomic.Bool
}

var errDiskFull = errors.New("disk full")

// quiet drops the logs of the failures these tests cause on purpose.
var quiet = slog.New(slog.DiscardHandler)

func (s *failingTrailStore) Commit(ctx context.Context, p *broker.CommitParams) (*broker.CommitResult, error) {
	if p.Scope == audit.Scope && s.fail.Load() {
		return nil, errDiskFull
	}
	return s.cm.Commit(ctx, p)
}

func (s *failingTrailStore) DocGet(ctx context.Context, scope, kind, key string) (*broker.Doc, error) {
	return s.cm.DocGet(ctx, scope, kind, key)
}

func (s *failingTrailStore) DocList(ctx context.Context, p *broker.DocListParams) (*broker.DocListResult, error) {
	return s.cm.DocList(ctx, p)
}

func (s *failingTrailStore) Now(ctx context.Context) (time.Time, error) { return s.cm.Now(ctx) }

// startFailingTrail serves the API over b with a trail whose store fails
// while the returned switch is on.
func startFailingTrail(t *testing.T, b broker.Broker) (*apitest.Server, *atomic.Bool) {
	t.Helper()
	fs := &failingTrailStore{Broker: b, cm: b.(broker.Committer)}
	tr, err := audit.New(fs, audit.Config{Key: auditKey, HeadFile: filepath.Join(t.TempDir(), audit.HeadFileName)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Sync() })
	return apitest.Start(t, admin.Config{Broker: b, Audit: tr, Logger: quiet}), &fs.fail
}

// queueLength returns how many jobs wait in queue.
func queueLength(t *testing.T, srv *apitest.Server, queue string) int64 {
	t.Helper()
	n, err := srv.Config.Client.Length(context.Background(), queue)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestUnrecordedActionIsNotAcknowledged: while the trail cannot record,
// a mutating request that succeeded is answered 503 not_audited, saying
// honestly that it was carried out, with its request id; never a 2xx. A
// request that was denied or failed is still answered as it was, and a
// read is not affected. Once the trail records again, so does the API.
func TestUnrecordedActionIsNotAcknowledged(t *testing.T) {
	testbroker.Each(t, func(t *testing.T, b broker.Broker) {
		srv, fail := startFailingTrail(t, b)
		fail.Store(true)

		r := srv.Do(t, "POST", "/api/v1/queues/invoices/jobs", apitest.Operator, `{"type":"t"}`, admin.RequestIDHeader, "req-enqueue")
		e := r.WantError(t, http.StatusServiceUnavailable, admin.CodeNotAudited)
		for _, want := range []string{"job.enqueue", "carried out", "req-enqueue", "would do it again"} {
			if !strings.Contains(e.Message, want) {
				t.Errorf("the error %q does not say %q", e.Message, want)
			}
		}
		if r.Header.Get("Location") != "" || r.Header.Get(admin.RequestIDHeader) != "req-enqueue" {
			t.Errorf("the withheld answer's headers leaked or the request id is missing: %v", r.Header)
		}
		// The error is honest: the job was enqueued.
		if n := queueLength(t, srv, "invoices"); n != 1 {
			t.Fatalf("%d jobs in the queue; the error says the enqueue was carried out", n)
		}
		srv.Do(t, "POST", "/api/v1/queues/invoices/pause", apitest.Operator, nil).WantError(t, http.StatusServiceUnavailable, admin.CodeNotAudited)

		// Refusals stay refusals; a read is not recorded, so not held.
		srv.Do(t, "POST", "/api/v1/queues/invoices/resume", apitest.Viewer, nil).WantError(t, http.StatusForbidden, admin.CodeForbidden)
		srv.Do(t, "POST", "/api/v1/queues/invoices/resume", "", nil).WantError(t, http.StatusUnauthorized, admin.CodeUnauthenticated)
		srv.Do(t, "GET", "/api/v1/jobs", "", nil).WantError(t, http.StatusUnauthorized, admin.CodeUnauthenticated)
		srv.Do(t, "POST", "/api/v1/jobs/nothing/retry", apitest.Operator, nil).WantError(t, http.StatusNotFound, admin.CodeNotFound)
		srv.Do(t, "GET", "/api/v1/queues", apitest.Viewer, nil).Want(t, http.StatusOK)

		fail.Store(false)
		srv.Do(t, "POST", "/api/v1/queues/invoices/jobs", apitest.Operator, `{"type":"t"}`).Want(t, http.StatusCreated)
		got := newest(t, b, 0)
		if len(got) != 1 || got[0].Action != "job.enqueue" || got[0].Outcome != audit.OK {
			t.Fatalf("entries once the trail records again: %+v; want the one enqueue", got)
		}
		if _, err := audit.Verify(context.Background(), b, auditKey, audit.VerifyOptions{}); err != nil {
			t.Fatal(err)
		}
	})
}

// TestUnrecordedEnqueueRetriesWithItsKey: an enqueue with an
// Idempotency-Key answered 503 not_audited says a retry with the key is
// safe, and it is: the retry, once the trail records, answers the first
// request's job and adds none.
func TestUnrecordedEnqueueRetriesWithItsKey(t *testing.T) {
	b := testbroker.SQLite(t)
	srv, fail := startFailingTrail(t, b)
	fail.Store(true)
	e := srv.Do(t, "POST", "/api/v1/queues/invoices/jobs", apitest.Operator, `{"type":"t"}`, admin.IdempotencyHeader, "k1").
		WantError(t, http.StatusServiceUnavailable, admin.CodeNotAudited)
	if !strings.Contains(e.Message, "same "+admin.IdempotencyHeader) {
		t.Fatalf("the error %q does not say a retry with the key is safe", e.Message)
	}
	fail.Store(false)
	var job admin.Job
	srv.Do(t, "POST", "/api/v1/queues/invoices/jobs", apitest.Operator, `{"type":"t"}`, admin.IdempotencyHeader, "k1").
		Want(t, http.StatusCreated).JSON(t, &job)
	if n := queueLength(t, srv, "invoices"); n != 1 || job.ID == "" {
		t.Fatalf("after the retry: %d jobs, answered job %q; want the first request's one job", n, job.ID)
	}
}

// TestClosedTrailStoreWithholdsAnswers: the same rule with nothing
// injected: the trail's store (an SQLite store of its own here, as
// stores cannot share a file between handles) is closed under it, and an
// enqueue is not acknowledged while a denial is still a denial.
func TestClosedTrailStoreWithholdsAnswers(t *testing.T) {
	jobs := testbroker.SQLite(t)
	trailStore, err := sqlitebroker.Open(filepath.Join(t.TempDir(), "audit.db"), sqlitebroker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	tr, err := audit.New(trailStore, audit.Config{Key: auditKey})
	if err != nil {
		t.Fatal(err)
	}
	srv := apitest.Start(t, admin.Config{Broker: jobs, Audit: tr, Logger: quiet})
	srv.Do(t, "POST", "/api/v1/queues/invoices/jobs", apitest.Operator, `{"type":"t"}`).Want(t, http.StatusCreated)
	if err := trailStore.Close(); err != nil {
		t.Fatal(err)
	}
	srv.Do(t, "POST", "/api/v1/queues/invoices/jobs", apitest.Operator, `{"type":"t"}`).WantError(t, http.StatusServiceUnavailable, admin.CodeNotAudited)
	srv.Do(t, "POST", "/api/v1/queues/invoices/jobs", apitest.Viewer, `{"type":"t"}`).WantError(t, http.StatusForbidden, admin.CodeForbidden)
	if n := queueLength(t, srv, "invoices"); n != 2 {
		t.Fatalf("%d jobs; want both enqueues carried out", n)
	}
}

// TestUnrecordedSilentSuccessIsNotAcknowledged: a mutating handler that
// succeeds without writing an answer is answered 200 by net/http; while
// the trail cannot record, that 200 must be withheld like any other. No
// route of the API answers that way, so the test adds one (and sends its
// requests itself: the route is not in the OpenAPI document Do checks).
func TestUnrecordedSilentSuccessIsNotAcknowledged(t *testing.T) {
	srv, fail := startFailingTrail(t, testbroker.SQLite(t))
	var ran atomic.Int32
	srv.API.HandleForTest("POST /api/v1/queues/{queue}/silent", admin.RoleOperator,
		func(http.ResponseWriter, *http.Request, *admin.Principal) error {
			ran.Add(1)
			return nil
		})
	post := func() int {
		t.Helper()
		req, err := http.NewRequest("POST", srv.URL+"/api/v1/queues/invoices/silent", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+apitest.Operator)
		resp, err := srv.HTTP.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := post(); got != http.StatusOK {
		t.Fatalf("recorded: status %d, want 200", got)
	}
	fail.Store(true)
	if got := post(); got != http.StatusServiceUnavailable {
		t.Errorf("unrecorded: status %d, want 503 not_audited", got)
	}
	if n := ran.Load(); n != 2 {
		t.Fatalf("the handler ran %d times, want 2", n)
	}
}
