package schedule_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/aibos/worker/broker/sqlitebroker"
	"github.com/aibos/worker/schedule"
)

// openStore opens an embedded SQLite store in a new temporary directory
// and returns it with a function that closes and removes it.
func openStore() (*sqlitebroker.Broker, func()) {
	dir, err := os.MkdirTemp("", "aibos-schedule-example-")
	if err != nil {
		log.Fatal(err)
	}
	b, err := sqlitebroker.Open(filepath.Join(dir, "worker.db"), sqlitebroker.Config{})
	if err != nil {
		log.Fatal(err)
	}
	return b, func() {
		_ = b.Close()
		_ = os.RemoveAll(dir)
	}
}

// Parse a spec in a time zone and list its next fire times. The seed's
// daily report at 02:00 Berlin time meets the spring-forward night, when
// 02:00 does not exist: it fires once, at the first instant after the gap,
// 03:00 CEST.
func ExampleParse() {
	spec, err := schedule.Parse("0 2 * * *", "Europe/Berlin", schedule.ParseOptions{})
	if err != nil {
		log.Fatal(err)
	}
	start := time.Date(2024, time.March, 29, 12, 0, 0, 0, time.UTC)
	for _, t := range spec.NextN(start, 4) {
		fmt.Println(t.Format("Mon 2006-01-02 15:04 MST"), "=", t.UTC().Format("15:04 UTC"))
	}
	// Output:
	// Sat 2024-03-30 02:00 CET = 01:00 UTC
	// Sun 2024-03-31 03:00 CEST = 01:00 UTC
	// Mon 2024-04-01 02:00 CEST = 00:00 UTC
	// Tue 2024-04-02 02:00 CEST = 00:00 UTC
}

// Descriptors and six-field specs (with seconds) work too. "@every d" ticks
// at multiples of d since the Unix epoch, so every scheduler agrees.
func ExampleSpec_NextN() {
	start := time.Date(2024, time.January, 15, 10, 7, 0, 0, time.UTC)
	for _, s := range []string{"0 0 1 * *", "@every 15m", "30 0 9 * * MON-FRI"} {
		spec, err := schedule.Parse(s, "America/New_York", schedule.ParseOptions{})
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s:\n", spec)
		for _, t := range spec.NextN(start, 2) {
			fmt.Println("  ", t.Format("Mon 2006-01-02 15:04:05 MST"))
		}
	}
	// Output:
	// 0 0 1 * *:
	//    Thu 2024-02-01 00:00:00 EST
	//    Fri 2024-03-01 00:00:00 EST
	// @every 15m:
	//    Mon 2024-01-15 05:15:00 EST
	//    Mon 2024-01-15 05:30:00 EST
	// 30 0 9 * * MON-FRI:
	//    Mon 2024-01-15 09:00:30 EST
	//    Tue 2024-01-16 09:00:30 EST
}

// Parse rejects a spec that can never fire, naming the field at fault.
func ExampleSpecError() {
	_, err := schedule.Parse("0 0 30 2 *", "UTC", schedule.ParseOptions{})
	var se *schedule.SpecError
	if errors.As(err, &se) {
		fmt.Printf("field %q: %s\n", se.Field, se.Reason)
	}
	_, err = schedule.Parse("0 2 * * *", "Mars/Olympus_Mons", schedule.ParseOptions{})
	if errors.As(err, &se) {
		fmt.Printf("field %q, value %q\n", se.Field, se.Value)
	}
	// Output:
	// field "day-of-month": never occurs in month "2", so the spec would never fire
	// field "time zone", value "Mars/Olympus_Mons"
}

// Schedule a job to run once at a given time. Scheduling the same name again
// changes nothing and returns the same job; Reschedule moves it, Cancel
// cancels it.
func ExampleOneTime() {
	b, cleanup := openStore()
	defer cleanup()
	ctx := context.Background()
	once, err := schedule.NewOneTime(b)
	if err != nil {
		log.Fatal(err)
	}

	at := time.Date(2099, time.December, 31, 23, 0, 0, 0, time.UTC)
	tmpl := schedule.JobTemplate{
		Queue:    "reports",
		Type:     "report.year-end",
		Data:     json.RawMessage(`{"year":2099}`),
		TenantID: "tenant_123",
	}
	job, err := once.Schedule(ctx, "year-end-close", at, tmpl)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(job.ID, job.State, job.RunAt.UTC().Format(time.DateTime))

	again, err := once.Schedule(ctx, "year-end-close", at.Add(time.Hour), tmpl)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("same job:", again.ID == job.ID, again.RunAt.UTC().Format(time.DateTime))

	moved, err := once.Reschedule(ctx, "reports", "year-end-close", at.Add(-2*time.Hour))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("rescheduled:", moved.RunAt.UTC().Format(time.DateTime))

	if _, err := once.Cancel(ctx, "reports", "year-end-close"); err != nil {
		log.Fatal(err)
	}
	waiting, err := once.List(ctx, "reports")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("waiting after cancel:", len(waiting))
	// Output:
	// once:year-end-close scheduled 2099-12-31 23:00:00
	// same job: true 2099-12-31 23:00:00
	// rescheduled: 2099-12-31 21:00:00
	// waiting after cancel: 0
}

// Store a recurring schedule in the broker. Run (not shown) enqueues one job
// per tick however many schedulers run; Upsert rejects a bad spec with a
// *SpecError.
func ExampleCron_Upsert() {
	b, cleanup := openStore()
	defer cleanup()
	ctx := context.Background()
	cron, err := schedule.New(b, schedule.Config{})
	if err != nil {
		log.Fatal(err)
	}

	info, err := cron.Upsert(ctx, schedule.Entry{
		Name:     "daily-reports",
		Spec:     "0 2 * * *",
		TimeZone: "Asia/Tokyo",
		Job:      schedule.JobTemplate{Queue: "reports", Type: "report.daily", UniqueKey: "daily-reports"},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s %q in %s -> %s jobs on queue %s; next fires at %s\n", info.Name, info.Spec, info.TimeZone,
		info.Job.Type, info.Job.Queue, info.Next[0].Format("15:04 MST"))

	_, err = cron.Upsert(ctx, schedule.Entry{
		Name: "broken",
		Spec: "0 25 * * *",
		Job:  schedule.JobTemplate{Queue: "reports", Type: "report.daily"},
	})
	var se *schedule.SpecError
	if errors.As(err, &se) {
		fmt.Printf("rejected: field %q, value %q\n", se.Field, se.Value)
	}

	all, err := cron.List(ctx, 1)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("stored schedules:", len(all))
	// Output:
	// daily-reports "0 2 * * *" in Asia/Tokyo -> report.daily jobs on queue reports; next fires at 02:00 JST
	// rejected: field "hour", value "25"
	// stored schedules: 1
}
