package admin_test

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/admin"
	"github.com/aibos/worker/admin/apitest"
	"github.com/aibos/worker/audit"
	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/envelope"
	"github.com/aibos/worker/internal/testbroker"
)

// TestKeysRotateAPI: only a cross-tenant admin may rotate; a rotation
// bounded by maxJobs is repeated until done, after which every job's
// stored data is under the newest key; each request is in the audit
// trail with what it did.
func TestKeysRotateAPI(t *testing.T) {
	testbroker.Each(t, func(t *testing.T, b broker.Broker) {
		ctx := context.Background()
		k1, _ := envelope.NewKey("k1")
		k2, _ := envelope.NewKey("k2")
		old, err := envelope.NewRing(k1)
		if err != nil {
			t.Fatal(err)
		}
		c1, err := worker.NewClient(b, worker.ClientConfig{Encryption: &worker.Encryption{Keys: old, Queues: []string{"invoices"}}})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for i := range 30 {
			j, err := c1.Add(ctx, "invoices", worker.JobSpec{Type: "x", Data: map[string]int{"amount": i}, TenantID: apitest.TenantA, Delay: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, j.ID)
		}
		ring, err := envelope.NewRing(k1, k2)
		if err != nil {
			t.Fatal(err)
		}
		c2, err := worker.NewClient(b, worker.ClientConfig{Encryption: &worker.Encryption{Keys: ring, Queues: []string{"invoices"}}})
		if err != nil {
			t.Fatal(err)
		}
		tr, err := audit.New(b, audit.Config{Key: bytes.Repeat([]byte{1}, 32), HeadFile: filepath.Join(t.TempDir(), audit.HeadFileName)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = tr.Sync() })
		srv := apitest.Start(t, admin.Config{Broker: b, Client: c2, Audit: tr})

		body := map[string]any{"maxJobs": 10, "batchSize": 10}
		srv.Do(t, "POST", "/api/v1/keys/rotate", "operator", body).WantError(t, 403, admin.CodeForbidden)
		srv.Do(t, "POST", "/api/v1/keys/rotate", apitest.Scoped(admin.RoleAdmin, apitest.TenantA), body).WantError(t, 403, admin.CodeForbidden)
		srv.Do(t, "POST", "/api/v1/keys/rotate", "admin", map[string]any{"maxJobs": 5000}).WantError(t, 422, admin.CodeInvalid)
		calls := 0
		for done := false; !done; calls++ {
			if calls == 10 {
				t.Fatal("rotation not done after 10 requests")
			}
			var res admin.RotateResult
			srv.Do(t, "POST", "/api/v1/keys/rotate", "admin", body).Want(t, 200).JSON(t, &res)
			done = res.Done
		}
		if calls < 3 {
			t.Errorf("30 jobs, 10 a request: done after %d requests, want at least 3", calls)
		}
		for _, id := range ids {
			j, err := b.JobGet(ctx, &broker.JobGetParams{Queue: "invoices", ID: id})
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(string(j.Data), `"`+envelope.Prefix+"k2:") {
				t.Fatalf("job %s data %s; want it under k2", id, j.Data)
			}
		}
		page, err := audit.List(ctx, b, audit.Filter{Action: "keys.rotate"}, audit.MaxList)
		if err != nil {
			t.Fatal(err)
		}
		var ok, denied int
		for _, e := range page.Entries {
			switch e.Outcome {
			case audit.OK:
				ok++
				if !strings.Contains(string(e.Changes), `"key":"k2"`) {
					t.Errorf("audit entry of a rotation records %s; want what it did", e.Changes)
				}
			case audit.Denied:
				denied++
			}
		}
		if ok != calls || denied != 2 {
			t.Fatalf("audit trail: %d rotations recorded ok, %d denied; want %d and 2", ok, denied, calls)
		}
	})
}
