package worker_test

import (
	"context"
	"strings"
	"testing"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/broker"
)

// TestAddErrorMessagesSayEachThingOnce: a refused Add says what was being
// done (add, the caller's id if it chose one, the type, the queue) once,
// then why, with no broker wrapping in between and no generated id (it was
// never stored).
func TestAddErrorMessagesSayEachThingOnce(t *testing.T) {
	eachEngine(t, func(t *testing.T, b broker.Broker) {
		ctx := context.Background()
		c := newClient(t, b)
		full, err := worker.NewClient(b, worker.ClientConfig{MaxQueueLength: 1})
		if err != nil {
			t.Fatal(err)
		}
		first := add(t, c, "invoices", worker.JobSpec{ID: "inv-1", Type: "invoice.send", UniqueKey: "inv-1-send"})
		add(t, full, "small", worker.JobSpec{Type: "report"})

		for _, tc := range []struct {
			name   string
			client *worker.Client
			queue  string
			spec   worker.JobSpec
			want   string // the whole message, or its start when prefix is set
			prefix bool
		}{
			{"duplicate id", c, "invoices", worker.JobSpec{ID: "inv-1", Type: "invoice.send"},
				`worker: add job inv-1 (invoice.send) to "invoices": duplicate: job id inv-1 already exists`, false},
			{"duplicate unique key, generated id", c, "invoices", worker.JobSpec{Type: "invoice.send", UniqueKey: "inv-1-send"},
				`worker: add job of type "invoice.send" to "invoices": duplicate: unique key "inv-1-send" is held by job ` + first.ID, false},
			{"invalid field", c, "invoices", worker.JobSpec{Type: "invoice.send", MaxAttempts: -1},
				`worker: add job of type "invoice.send" to "invoices": invalid job: max_attempts: -1 is below 1`, false},
			{"queue full", full, "small", worker.JobSpec{Type: "report"},
				`worker: add job of type "report" to "small": queue is full: `, true},
		} {
			_, err := tc.client.Add(ctx, tc.queue, tc.spec)
			if err == nil {
				t.Errorf("%s: Add succeeded", tc.name)
				continue
			}
			msg := err.Error()
			if tc.prefix && !strings.HasPrefix(msg, tc.want) || !tc.prefix && msg != tc.want {
				t.Errorf("%s:\n got  %s\n want %s", tc.name, msg, tc.want)
			}
			if n := strings.Count(msg, `"`+tc.queue+`"`); n != 1 {
				t.Errorf("%s: %q names the queue %d times, want once", tc.name, msg, n)
			}
			if strings.Contains(msg, "redisbroker") || strings.Contains(msg, "insert") {
				t.Errorf("%s: %q repeats the broker's account of the insert", tc.name, msg)
			}
		}
	})
}

// TestAddManyAndQueueErrorMessagesSayEachThingOnce: the same for a refused
// AddMany (the rejection names the job by index, id or unique key) and for
// a queue name that is not valid (the reason quotes it; nothing else does).
func TestAddManyAndQueueErrorMessagesSayEachThingOnce(t *testing.T) {
	eachEngine(t, func(t *testing.T, b broker.Broker) {
		ctx := context.Background()
		c := newClient(t, b)
		add(t, c, "q", worker.JobSpec{ID: "x1", Type: "t", UniqueKey: "k"})
		for _, tc := range []struct {
			name  string
			specs []worker.JobSpec
			want  string
		}{
			{"duplicate id", []worker.JobSpec{{Type: "t"}, {ID: "x1", Type: "t"}},
				`worker: add to queue "q": duplicate: job id x1 already exists`},
			{"duplicate unique key", []worker.JobSpec{{Type: "t"}, {Type: "t", UniqueKey: "k"}},
				`worker: add to queue "q": duplicate: unique key "k" is held by job x1`},
			{"invalid field", []worker.JobSpec{{Type: "t"}, {Type: "t", MaxAttempts: -1}},
				`worker: add to queue "q": invalid job at index 1: max_attempts: -1 is below 1`},
		} {
			_, err := c.AddMany(ctx, "q", tc.specs)
			if err == nil || err.Error() != tc.want {
				t.Errorf("AddMany with a %s:\n got  %v\n want %s", tc.name, err, tc.want)
			}
		}
		_, err := c.Add(ctx, "bad{", worker.JobSpec{Type: "t"})
		want := `worker: add to queue: invalid job: queue name "bad{" has '{' at byte 3 (allowed: letters, digits and . _ - :)`
		if err == nil || err.Error() != want {
			t.Errorf("Add to an invalid queue name:\n got  %v\n want %s", err, want)
		}
	})
}
