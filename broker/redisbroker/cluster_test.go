package redisbroker_test

import (
	"context"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/broker/brokertest"
	"github.com/aibos/worker/broker/redisbroker"
)

// TestConformanceCluster runs the conformance suite through a ClusterClient
// on a one-node Redis Cluster that owns every slot. Cluster mode makes Redis
// reject any script or transaction whose keys span slots, so this proves
// the hash tags of keys.go and the per-queue pipelines.
func TestConformanceCluster(t *testing.T) {
	addr := startCluster(t)
	client := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{addr}})
	t.Cleanup(func() { _ = client.Close() })
	var mu sync.Mutex
	n := 0
	brokertest.Run(t, func(t *testing.T) broker.Broker {
		mu.Lock()
		n++
		prefix := "cluster:" + strconv.Itoa(n)
		mu.Unlock()
		b, err := redisbroker.New(client, redisbroker.Options{Prefix: prefix})
		if err != nil {
			t.Fatalf("new broker: %v", err)
		}
		t.Cleanup(func() { _ = b.Close() })
		return b
	})
}

// startCluster starts a one-node cluster-enabled redis-server, stopped by
// pid when the test ends, and returns its address once every slot is served.
func startCluster(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("redis-server is required in CI")
		}
		t.Skip("skipping: redis-server not found on PATH")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	if port > 55535 { // the cluster bus listens on port + 10000
		t.Skipf("skipping: free port %d leaves no room for the cluster bus", port)
	}
	dir := t.TempDir()
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--cluster-enabled", "yes", "--cluster-config-file", dir+"/nodes.conf",
		"--save", "", "--appendonly", "no", "--dir", dir, "--loglevel", "warning")
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start redis-server: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	addr := "127.0.0.1:" + strconv.Itoa(port)
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer c.Close()
	ctx := context.Background()
	deadline := time.Now().Add(10 * time.Second)
	slotsAdded := false
	for {
		if !slotsAdded {
			slotsAdded = c.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", 0, 16383).Err() == nil
		}
		info, err := c.ClusterInfo(ctx).Result()
		if err == nil && strings.Contains(info, "cluster_state:ok") {
			return addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("cluster on %s not ready: %v; output: %s", addr, err, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
