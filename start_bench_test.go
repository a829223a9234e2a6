package worker_test

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/broker/redisbroker"
	"github.com/aibos/worker/internal/cputime"
	"github.com/aibos/worker/internal/rediscount"
	"github.com/aibos/worker/internal/redistest"
)

// BenchmarkManagerStartRedis measures what starting a Manager costs on
// Redis, as a new worker process pays it (a pod scaled out, a deploy):
// each op opens a new client with no pooled connection, starts a Manager
// serving one queue that holds one job, waits for that job to run and
// shuts the Manager down. It reports, per start, this process's CPU from
// Start until the job ran (start-cpu-µs), and the commands sent
// (start-commands; a pipeline's one by one, connection handshakes left
// out) and connections dialled (start-dials) meanwhile. A fleet of many
// Managers sharing one backlog pays these once per process.
func BenchmarkManagerStartRedis(b *testing.B) {
	url := redistest.URL(b)
	prefix := redistest.Prefix(b)
	var cmds, dials atomic.Int64
	ctx := context.Background()
	pb, err := redisbroker.New(redistest.Client(b), redisbroker.Config{Prefix: prefix})
	if err != nil {
		b.Fatal(err)
	}
	defer pb.Close()
	producer, err := worker.NewClient(pb, worker.ClientConfig{})
	if err != nil {
		b.Fatal(err)
	}
	once := func() (cpu time.Duration, sent, dialled int64) {
		o, err := redisbroker.ParseURL(url)
		if err != nil {
			b.Fatal(err)
		}
		// Every connection, pub/sub included, is dialled here.
		var d net.Dialer
		o.Simple.Dialer = func(ctx context.Context, network, addr string) (net.Conn, error) {
			dials.Add(1)
			return d.DialContext(ctx, network, addr)
		}
		client := o.NewClient()
		defer client.Close()
		client.AddHook(rediscount.Hook(func(string) { cmds.Add(1) }))
		br, err := redisbroker.New(client, redisbroker.Config{Prefix: prefix})
		if err != nil {
			b.Fatal(err)
		}
		defer br.Close()
		if _, err := producer.Add(ctx, "start", worker.JobSpec{Type: "noop"}); err != nil {
			b.Fatal(err)
		}
		ran := make(chan struct{}, 1)
		m, err := worker.NewManager(br, worker.ManagerConfig{Queues: []worker.QueueConfig{{Name: "start"}}, Concurrency: 10, Logger: discardLogger})
		if err != nil {
			b.Fatal(err)
		}
		_ = m.HandleFunc("noop", func(context.Context, *worker.Job) error {
			ran <- struct{}{}
			return nil
		})
		cmd0, dial0 := cmds.Load(), dials.Load()
		cpu0, _ := cputime.Process()
		if err := m.Start(ctx); err != nil {
			b.Fatal(err)
		}
		select {
		case <-ran:
		case <-time.After(time.Minute):
			b.Fatal("the queue's job did not run within a minute of Start")
		}
		cpu1, _ := cputime.Process()
		sent, dialled = cmds.Load()-cmd0, dials.Load()-dial0
		if err := m.Shutdown(ctx); err != nil {
			b.Fatal(err)
		}
		return cpu1 - cpu0, sent, dialled
	}
	once() // the stored format and the scripts are in place from here on
	var cpu time.Duration
	var sent, dialled int64
	b.ResetTimer()
	for range b.N {
		c, s, d := once()
		cpu, sent, dialled = cpu+c, sent+s, dialled+d
	}
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "start-cpu-µs")
	b.ReportMetric(float64(sent)/float64(b.N), "start-commands")
	b.ReportMetric(float64(dialled)/float64(b.N), "start-dials")
}
