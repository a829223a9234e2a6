package admin_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/aibos/worker"
	"github.com/aibos/worker/admin"
	"github.com/aibos/worker/admin/apitest"
	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/internal/testbroker"
	"github.com/aibos/worker/internal/testwait"
)

func TestQueues(t *testing.T) {
	testbroker.Each(t, func(t *testing.T, b broker.Broker) {
		srv := start(t, b)
		srv.Do(t, "POST", "/api/v1/queues/mail/jobs", apitest.Operator, `{"type":"x"}`).Want(t, http.StatusCreated)
		srv.Do(t, "POST", "/api/v1/queues/mail/pause", apitest.Operator, nil).Want(t, http.StatusOK)
		var list admin.QueueList
		srv.Do(t, "GET", "/api/v1/queues", apitest.Viewer, nil).Want(t, http.StatusOK).JSON(t, &list)
		if len(list.Queues) != 1 || !list.Queues[0].Paused || list.Queues[0].Counts["pending"] != 1 {
			t.Fatalf("queues %+v", list.Queues[0])
		}
		srv.Do(t, "POST", "/api/v1/queues/mail/resume", apitest.Operator, nil).Want(t, http.StatusOK)
		srv.Do(t, "POST", "/api/v1/queues/mail/resume", apitest.Viewer, nil).WantError(t, http.StatusForbidden, admin.CodeForbidden)
		srv.Do(t, "POST", "/api/v1/queues/a%20b/pause", apitest.Operator, nil).WantError(t, http.StatusBadRequest, admin.CodeBadRequest)
		srv.Do(t, "GET", "/api/v1/queues", apitest.Viewer, nil).Want(t, http.StatusOK).JSON(t, &list)
		if list.Queues[0].Paused {
			t.Fatal("queue still paused after resume")
		}
		// A tenant sees its own counts only.
		var scoped admin.QueueList
		srv.Do(t, "GET", "/api/v1/queues", apitest.Scoped(admin.RoleViewer, apitest.TenantA), nil).Want(t, http.StatusOK).JSON(t, &scoped)
		if scoped.Queues[0].Counts["pending"] != 0 {
			t.Fatalf("tenant A counts another's jobs: %+v", scoped.Queues[0].Counts)
		}
		srv.Do(t, "GET", "/api/v1/health", apitest.Viewer, nil).Want(t, http.StatusOK)
		srv.Do(t, "GET", "/api/v1/health", "", nil).WantError(t, http.StatusUnauthorized, admin.CodeUnauthenticated)
	})
}

func TestQueueConcurrencyReachesManagers(t *testing.T) {
	testbroker.Each(t, func(t *testing.T, b broker.Broker) {
		srv := start(t, b)
		m, err := worker.NewManager(b, worker.ManagerConfig{Concurrency: 8, Queues: []worker.QueueConfig{{Name: "mail"}}})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- admin.WatchQueueSettings(ctx, b, m, 20*time.Millisecond) }()
		t.Cleanup(func() { cancel(); <-done })

		srv.Do(t, "POST", "/api/v1/queues/mail/jobs", apitest.Operator, `{"type":"x"}`).Want(t, http.StatusCreated)
		srv.Do(t, "PUT", "/api/v1/queues/mail/concurrency", apitest.Admin, `{"concurrency":3}`).Want(t, http.StatusOK)
		testwait.For(t, 10*time.Second, "the manager applies concurrency 3", func() bool {
			n, _ := m.QueueConcurrency("mail")
			return n == 3
		})
		var list admin.QueueList
		srv.Do(t, "GET", "/api/v1/queues", apitest.Viewer, nil).Want(t, http.StatusOK).JSON(t, &list)
		if list.Queues[0].Concurrency != 3 {
			t.Fatalf("queue shows concurrency %d", list.Queues[0].Concurrency)
		}
		srv.Do(t, "PUT", "/api/v1/queues/mail/concurrency", apitest.Operator, `{"concurrency":3}`).WantError(t, http.StatusForbidden, admin.CodeForbidden)
		srv.Do(t, "PUT", "/api/v1/queues/mail/concurrency", apitest.Admin, `{"concurrency":-1}`).WantError(t, http.StatusUnprocessableEntity, admin.CodeInvalid)
		srv.Do(t, "PUT", "/api/v1/queues/mail/concurrency", apitest.Scoped(admin.RoleAdmin, apitest.TenantA), `{"concurrency":1}`).WantError(t, http.StatusForbidden, admin.CodeForbidden)
	})
}

// TestClosedStoreIs503: every route that reads the store answers 503,
// not 500, when the store does not answer.
func TestClosedStoreIs503(t *testing.T) {
	testbroker.Each(t, func(t *testing.T, b broker.Broker) {
		srv := start(t, b)
		var j admin.Job
		srv.Do(t, "POST", "/api/v1/queues/q/jobs", apitest.Operator, `{"type":"x"}`).Want(t, http.StatusCreated).JSON(t, &j)
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		srv.Do(t, "POST", "/api/v1/queues/q/jobs", apitest.Operator, `{"type":"x"}`).WantError(t, http.StatusServiceUnavailable, admin.CodeUnavailable)
		srv.Do(t, "POST", "/api/v1/queues/q/jobs", apitest.Operator, `{"type":"x"}`, "Idempotency-Key", "k").WantError(t, http.StatusServiceUnavailable, admin.CodeUnavailable)
		srv.Do(t, "GET", "/api/v1/jobs/"+j.ID, apitest.Viewer, nil).WantError(t, http.StatusServiceUnavailable, admin.CodeUnavailable)
		srv.Do(t, "GET", "/api/v1/jobs", apitest.Viewer, nil).WantError(t, http.StatusServiceUnavailable, admin.CodeUnavailable)
		srv.Do(t, "GET", "/api/v1/queues", apitest.Viewer, nil).WantError(t, http.StatusServiceUnavailable, admin.CodeUnavailable)
		srv.Do(t, "POST", "/api/v1/queues/q/pause", apitest.Operator, nil).WantError(t, http.StatusServiceUnavailable, admin.CodeUnavailable)
		srv.Do(t, "GET", "/api/v1/health", apitest.Viewer, nil).WantError(t, http.StatusServiceUnavailable, admin.CodeUnavailable)
	})
}
