package admin_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/aibos/worker/admin"
	"github.com/aibos/worker/admin/apitest"
	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/internal/testbroker"
)

// TestQueuesManagedByConfig: queues the configuration file declares show
// as managed by it and refuse a concurrency set through the API, naming
// the file; released when the file no longer declares them.
func TestQueuesManagedByConfig(t *testing.T) {
	testbroker.Each(t, func(t *testing.T, b broker.Broker) {
		ctx := context.Background()
		srv := start(t, b)
		for _, q := range []string{"mail", "pdf"} {
			srv.Do(t, "POST", "/api/v1/queues/"+q+"/jobs", apitest.Operator, `{"type":"x"}`).Want(t, http.StatusCreated)
		}
		// A concurrency set through the API before the file declares the
		// queue is dropped: the file wins.
		srv.Do(t, "PUT", "/api/v1/queues/mail/concurrency", apitest.Admin, `{"concurrency":3}`).Want(t, http.StatusOK)
		if err := admin.ReconcileQueues(ctx, b, "/etc/aibos/worker.yaml", []string{"mail"}); err != nil {
			t.Fatal(err)
		}
		byName := func() map[string]*admin.Queue {
			var list admin.QueueList
			srv.Do(t, "GET", "/api/v1/queues", apitest.Viewer, nil).Want(t, http.StatusOK).JSON(t, &list)
			m := map[string]*admin.Queue{}
			for _, q := range list.Queues {
				m[q.Name] = q
			}
			return m
		}
		qs := byName()
		if q := qs["mail"]; q.ManagedBy != "config" || q.ConfigFile != "/etc/aibos/worker.yaml" || q.Concurrency != 0 {
			t.Fatalf("declared queue shows %+v", q)
		}
		if q := qs["pdf"]; q.ManagedBy != "api" || q.ConfigFile != "" {
			t.Fatalf("undeclared queue shows %+v", q)
		}
		e := srv.Do(t, "PUT", "/api/v1/queues/mail/concurrency", apitest.Admin, `{"concurrency":2}`).WantError(t, http.StatusConflict, admin.CodeConflict)
		if !strings.Contains(e.Message, "/etc/aibos/worker.yaml") {
			t.Fatalf("the refusal does not name the file: %q", e.Message)
		}
		srv.Do(t, "PUT", "/api/v1/queues/pdf/concurrency", apitest.Admin, `{"concurrency":2}`).Want(t, http.StatusOK)
		// Reconciling again changes nothing; a file no longer declaring
		// the queue releases it to the API.
		if err := admin.ReconcileQueues(ctx, b, "/etc/aibos/worker.yaml", []string{"mail"}); err != nil {
			t.Fatal(err)
		}
		if q := byName()["pdf"]; q.Concurrency != 2 || q.ManagedBy != "api" {
			t.Fatalf("reconcile touched an undeclared queue: %+v", q)
		}
		if err := admin.ReconcileQueues(ctx, b, "/etc/aibos/worker.yaml", nil); err != nil {
			t.Fatal(err)
		}
		if q := byName()["mail"]; q.ManagedBy != "api" {
			t.Fatalf("released queue shows %+v", q)
		}
		srv.Do(t, "PUT", "/api/v1/queues/mail/concurrency", apitest.Admin, `{"concurrency":2}`).Want(t, http.StatusOK)
		// Bad input names what is wrong.
		if err := admin.ReconcileQueues(ctx, b, "w.yaml", []string{"a b"}); err == nil || !strings.Contains(err.Error(), "w.yaml") {
			t.Fatalf("reconcile of a bad queue name: %v", err)
		}
	})
}
