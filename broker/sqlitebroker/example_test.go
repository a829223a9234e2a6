package sqlitebroker_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/broker/sqlitebroker"
)

// Open a store in a file (its directory is created), enqueue a job, lease it
// and acknowledge it. Share the one *Broker within a process: a second Open
// of the file fails with ErrInUse while this one is open. Applications use the store through worker.Client and worker.Manager; this
// shows the broker seam underneath.
func ExampleOpen() {
	dir, err := os.MkdirTemp("", "aibos-sqlitebroker-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "data", "worker.db")
	b, err := sqlitebroker.Open(path, sqlitebroker.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()

	_, err = b.JobInsert(ctx, &broker.JobInsertParams{
		ID: "inv-42", Queue: "invoices", Type: "invoice.processing", MaxAttempts: 3,
		TenantID: "tenant-1", Data: []byte(`{"invoice":"INV-42"}`),
	})
	if err != nil {
		log.Fatal(err)
	}
	jobs, err := b.JobFetch(ctx, &broker.JobFetchParams{Queue: "invoices", Limit: 10, LeaseDuration: 30 * time.Second, WorkerID: "w1"})
	if err != nil {
		log.Fatal(err)
	}
	for _, j := range jobs {
		fmt.Println("leased", j.ID, j.State, "attempt", j.Attempt)
		errs, err := b.JobComplete(ctx, []*broker.JobCompleteParams{{
			JobLeaseParams: broker.JobLeaseParams{Queue: j.Queue, ID: j.ID, Token: j.LeaseToken},
			Result:         []byte(`{"posted":true}`),
		}})
		if err != nil {
			log.Fatal(err)
		}
		if errs[0] != nil {
			log.Fatal(errs[0])
		}
	}
	j, err := b.JobGet(ctx, &broker.JobGetParams{Queue: "invoices", ID: "inv-42"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(j.ID, j.State, string(j.Result))
	// Output:
	// leased inv-42 active attempt 1
	// inv-42 completed {"posted":true}
}
