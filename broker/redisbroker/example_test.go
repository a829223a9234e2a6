package redisbroker_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/broker/redisbroker"
)

// Open a broker on a Redis URL, enqueue a job, lease it and acknowledge it.
// The job asks to be removed as soon as it completes, so nothing of it is
// left in Redis afterwards.
func ExampleOpen() {
	url := os.Getenv("REDIS_URL")
	if url == "" {
		url = "redis://localhost:6379/0"
	}
	b, err := redisbroker.Open(url, redisbroker.Config{Prefix: os.Getenv("QUEUE_PREFIX")})
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()
	_, err = b.JobInsert(ctx, &broker.JobInsertParams{
		ID: "inv-42", Queue: "invoices", Type: "invoice.processing", MaxAttempts: 3,
		TenantID: "tenant-1", Data: []byte(`{"invoice":"INV-42"}`), DeleteOnComplete: true,
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
		if err != nil {
			log.Fatal(err)
		}
		if errs[0] != nil {
			log.Fatal(errs[0])
		}
		fmt.Println("processed", j.ID, "priority", j.Priority)
	}
	_, err = b.JobGet(ctx, &broker.JobGetParams{Queue: "invoices", ID: "inv-42"})
	fmt.Println("removed on completion:", errors.Is(err, broker.ErrNotFound))
	// Output:
	// processed inv-42 priority 3
	// removed on completion: true
}
