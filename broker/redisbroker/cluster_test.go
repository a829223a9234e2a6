package redisbroker_test

import (
	"context"
	"fmt"
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
		b, err := redisbroker.New(client, redisbroker.Config{Prefix: prefix})
		if err != nil {
			t.Fatalf("new broker: %v", err)
		}
		t.Cleanup(func() { _ = b.Close() })
		return b
	})
}

// startCluster starts a one-node cluster-enabled redis-server, stopped by
// pid when the test ends, and returns its address once every slot is served.
// Its client port and cluster bus port are two free ports the system picks
// (--cluster-port), so no port it is given makes the test skip; a port
// taken by someone else before the server binds it is retried with others.
func startCluster(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("redis-server is required in CI")
		}
		t.Skip("skipping: redis-server not found on PATH")
	}
	var errs []string
	for range 5 {
		ports, err := freePorts(2)
		if err != nil {
			t.Fatalf("find free ports: %v", err)
		}
		addr, err := startClusterOn(t, bin, ports[0], ports[1])
		if err == nil {
			return addr
		}
		errs = append(errs, err.Error())
	}
	t.Fatalf("start a cluster-enabled redis-server, 5 tries:\n%s", strings.Join(errs, "\n"))
	return ""
}

// freePorts returns n distinct loopback ports that were free a moment ago.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close() // held until all are picked, so they differ
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// startClusterOn starts the server on port with its cluster bus on busPort
// and waits until every slot is served. The server is stopped when the test
// ends, or at once if it does not come up.
func startClusterOn(t *testing.T, bin string, port, busPort int) (string, error) {
	dir := t.TempDir()
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--cluster-port", strconv.Itoa(busPort), "--bind", "127.0.0.1",
		"--cluster-enabled", "yes", "--cluster-config-file", dir+"/nodes.conf",
		"--save", "", "--appendonly", "no", "--dir", dir, "--loglevel", "warning")
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("start redis-server: %w", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	stop := func() {
		_ = cmd.Process.Kill()
		<-exited
	}
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
			t.Cleanup(stop)
			return addr, nil
		}
		select {
		case <-exited:
			return "", fmt.Errorf("redis-server on ports %d and %d exited: %s", port, busPort, out.String())
		default:
		}
		if time.Now().After(deadline) {
			stop()
			return "", fmt.Errorf("cluster on %s (bus %d) not ready: %v; output: %s", addr, busPort, err, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
