package adminclient_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"testing"

	"github.com/aibos/worker/admin"
	"github.com/aibos/worker/admin/adminclient"
	"github.com/aibos/worker/admin/apitest"
	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/internal/redistest"
	"github.com/aibos/worker/internal/testbroker"
)

func TestMain(m *testing.M) { os.Exit(redistest.Main(m)) }

// deadURL returns a URL where nothing listens.
func deadURL(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return "http://" + addr
}

func TestClientOverSeveralServices(t *testing.T) {
	testbroker.Each(t, func(t *testing.T, b broker.Broker) {
		s1 := apitest.Start(t, admin.Config{Broker: b})
		s2 := apitest.Start(t, admin.Config{Broker: b})
		c, err := adminclient.New(adminclient.Config{URLs: []string{deadURL(t), s1.URL, s2.URL}, Token: apitest.Operator})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		// Six calls round-robin over three nodes, one of them down: every
		// call still succeeds.
		var ids []string
		for range 6 {
			j, err := c.Enqueue(ctx, "q", admin.EnqueueRequest{Type: "x", Data: []byte(`{"a":1}`)}, "")
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, j.ID)
		}
		page, err := c.ListJobs(ctx, admin.JobFilter{Queue: "q"}, "", 0)
		if err != nil || len(page.Jobs) != 6 {
			t.Fatalf("list: %v, %d jobs, want 6", err, len(page.Jobs))
		}
		j, err := c.CancelJob(ctx, ids[0], "")
		if err != nil || j.State != "cancelled" {
			t.Fatalf("cancel: %v, %+v", err, j)
		}
		_, err = c.Job(ctx, "nope", "")
		var e *admin.Error
		if !errors.As(err, &e) || e.Status != http.StatusNotFound || e.Code != admin.CodeNotFound || e.Field != "id" {
			t.Fatalf("get a missing job: %#v", err)
		}
		if err := c.PauseQueue(ctx, "q"); err != nil {
			t.Fatal(err)
		}
		qs, err := c.Queues(ctx)
		if err != nil || len(qs) != 1 || !qs[0].Paused {
			t.Fatalf("queues: %v %+v", err, qs)
		}
		// The operator token may not set concurrency: the API's 403 comes
		// back as an *admin.Error.
		if err := c.SetQueueConcurrency(ctx, "q", 2); !errors.As(err, &e) || e.Status != http.StatusForbidden {
			t.Fatalf("set concurrency as operator: %v", err)
		}
		if h, err := c.Health(ctx); err != nil || h.Status != "ok" {
			t.Fatalf("health: %v %+v", err, h)
		}
	})
}

func TestClientNewRefusesBadConfig(t *testing.T) {
	for _, cfg := range []adminclient.Config{
		{Token: "t"},
		{URLs: []string{"http://a:1"}},
		{URLs: []string{"ftp://a:1"}, Token: "t"},
		{URLs: []string{"http://a:1/api"}, Token: "t"},
		{URLs: []string{"http://a:1", "https://b:2"}, Token: "t"},
		{URLs: []string{"http://a:1", "http://a:1"}, Token: "t"},
	} {
		if _, err := adminclient.New(cfg); err == nil {
			t.Errorf("New(%+v) accepted it", cfg)
		}
	}
}
