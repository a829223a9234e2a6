package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"runtime/pprof"
	"sync"
	"time"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/broker/redisbroker"
)

func main() {
	b, err := redisbroker.Open("redis://127.0.0.1:6399", redisbroker.Options{})
	if err != nil {
		panic(err)
	}
	c, _ := worker.NewClient(b, worker.ClientConfig{})
	ctx := context.Background()
	f, _ := os.Create("/tmp/one.prof")
	pprof.StartCPUProfile(f)
	for r := 0; r < 3; r++ {
		start := time.Now()
		var wg sync.WaitGroup
		for g := 0; g < 32; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 50000/32; i++ {
					if _, err := c.Add(ctx, "default", worker.JobSpec{Type: "bench", Data: json.RawMessage(`{"invoice":"INV-0001","amount":1250}`)}); err != nil {
						panic(err)
					}
				}
			}()
		}
		wg.Wait()
		fmt.Printf("x32 %.0f jobs/s\n", 50000/time.Since(start).Seconds())
	}
	pprof.StopCPUProfile()
}
