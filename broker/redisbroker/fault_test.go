package redisbroker_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/broker/redisbroker"
	"github.com/aibos/worker/internal/redistest"
)

// Redis dies while 32 goroutines add jobs, most of them waiting in combined
// batches: every call returns (stored or an error, none hangs), and once
// Redis is back on the same address adds succeed again and every add begun
// after the restart that reported success is stored. (The server keeps no
// data across the kill; durability across a Redis crash is Redis's AOF.)
func TestCombinedInsertsSurviveRedisRestart(t *testing.T) {
	srv := redistest.Start(t)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond,
		ReadTimeout: time.Second, WriteTimeout: time.Second})
	defer client.Close()
	b, err := redisbroker.New(client, redisbroker.Config{Prefix: "fault"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()

	var stop atomic.Bool
	var ok, failed atomic.Int64
	var wg sync.WaitGroup
	var mu sync.Mutex
	var after []string // ids stored after the restart
	restarted := make(chan struct{})
	for g := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				id := fmt.Sprintf("g%d-%d", g, i)
				// Only a call begun after the restart surely wrote to the
				// new server (the old one kept nothing).
				late := false
				select {
				case <-restarted:
					late = true
				default:
				}
				callCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
				_, err := b.JobInsert(callCtx, job("q", id))
				cancel()
				switch {
				case err == nil:
					ok.Add(1)
					if late {
						mu.Lock()
						after = append(after, id)
						mu.Unlock()
					}
				case errors.Is(err, context.DeadlineExceeded):
					t.Errorf("insert %s hung until its deadline: %v", id, err)
					return
				default:
					failed.Add(1)
					time.Sleep(5 * time.Millisecond)
				}
			}
		}()
	}
	eventually(t, "inserts before the kill", func() bool { return ok.Load() > 500 })
	port := srv.Port()
	srv.Stop()
	eventually(t, "inserts to fail while Redis is down", func() bool { return failed.Load() > 32 })
	srv2 := redistest.StartOnPort(t, port)
	defer srv2.Stop()
	close(restarted)
	before := ok.Load()
	eventually(t, "inserts to succeed again", func() bool { return ok.Load() > before+500 })
	stop.Store(true)
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	for _, id := range after {
		if _, err := b.JobGet(ctx, &broker.JobGetParams{Queue: "q", ID: id}); err != nil {
			t.Fatalf("job %s was reported stored after the restart but is not: %v", id, err)
		}
	}
	t.Logf("%d adds stored, %d failed while Redis was down, %d checked after the restart", ok.Load(), failed.Load(), len(after))
}
