package redisbroker_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/broker/redisbroker"
)

// Open a broker on a Redis URL, enqueue a job, lease it and acknowledge it.
func ExampleOpen() {
	b, err := redisbroker.Open("redis://localhost:6379/0", redisbroker.Options{})
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
		errs, err := b.JobComplete(ctx, []*broker.JobCompleteParams{{
			JobLeaseParams: broker.JobLeaseParams{Queue: j.Queue, ID: j.ID, Token: j.LeaseToken},
		}})
		if err != nil || errs[0] != nil {
			log.Fatal(err, errs[0])
		}
		fmt.Println("processed", j.ID)
	}
}
