package redistest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// clusterNodeTimeout is the cluster-node-timeout of a test cluster: how
// long a master may be silent before its replica takes over. Short, so a
// failover test waits about a second, not Redis's default 15.
const clusterNodeTimeout = 1000 * time.Millisecond

// Cluster is a Redis Cluster of private redis-server processes on
// loopback, started by StartCluster.
type Cluster struct {
	// Nodes are every node, masters and replicas, in start order.
	Nodes []*Server
	// Buses are the nodes' cluster bus ports, by node index.
	Buses []int
}

// StartCluster starts masters × (1 + replicasPerMaster) cluster-enabled
// redis-server processes on free loopback ports, joins them with
// redis-cli --cluster create, and waits until every node reports
// cluster_state:ok and knows every other. Every process is stopped by pid
// when the test ends. Without redis-server or redis-cli it skips (or, with
// CI set, fails) the test.
func StartCluster(t testing.TB, masters, replicasPerMaster int) *Cluster {
	t.Helper()
	if masters < 3 {
		t.Fatalf("start cluster: %d masters: redis-cli --cluster create needs at least 3", masters)
	}
	if replicasPerMaster < 0 {
		t.Fatalf("start cluster: %d replicas per master is negative", replicasPerMaster)
	}
	if _, err := exec.LookPath("redis-cli"); err != nil {
		unavailable(t, errors.New("redis-cli not found on PATH (it comes with redis-server): "+installHint))
	}
	return startGroup(t, "redis cluster", func() (*Cluster, error) {
		return startCluster(masters*(1+replicasPerMaster), replicasPerMaster)
	})
}

// startGroup runs start, which starts a group of processes, up to three
// times: a port picked free can be taken before the server binds it. The
// group is stopped when the test ends.
func startGroup[G interface{ Stop() }](t testing.TB, what string, start func() (G, error)) G {
	t.Helper()
	var errs []string
	for range 3 {
		g, err := start()
		if err == nil {
			t.Cleanup(g.Stop)
			return g
		}
		if strings.Contains(err.Error(), installHint) {
			unavailable(t, err)
		}
		errs = append(errs, err.Error())
	}
	t.Fatalf("start %s, 3 tries:\n%s", what, strings.Join(errs, "\n"))
	var zero G
	return zero
}

func startCluster(n, replicas int) (*Cluster, error) {
	ports, err := freePorts(2 * n)
	if err != nil {
		return nil, err
	}
	c := &Cluster{}
	for i := range n {
		args := []string{"--cluster-enabled", "yes", "--cluster-port", strconv.Itoa(ports[n+i]),
			"--cluster-config-file", "nodes.conf", "--cluster-node-timeout", strconv.Itoa(int(clusterNodeTimeout / time.Millisecond)),
			"--repl-diskless-sync-delay", "0"}
		s, err := startWith(ports[i], Options{Args: args})
		if err != nil {
			c.Stop()
			return nil, err
		}
		c.Nodes = append(c.Nodes, s)
		c.Buses = append(c.Buses, ports[n+i])
	}
	args := append([]string{"--cluster", "create"}, c.Addrs()...)
	args = append(args, "--cluster-replicas", strconv.Itoa(replicas), "--cluster-yes")
	out, err := exec.Command("redis-cli", args...).CombinedOutput()
	if err != nil {
		c.Stop()
		return nil, fmt.Errorf("redis-cli --cluster create: %w: %s", err, out)
	}
	if err := c.waitHealthy(20 * time.Second); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

// freePorts returns n distinct loopback ports that were free a moment ago.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		defer l.Close() // held until all are picked, so they differ
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// Addrs returns the address of every node, running or not.
func (c *Cluster) Addrs() []string {
	out := make([]string, len(c.Nodes))
	for i, s := range c.Nodes {
		out[i] = s.Addr
	}
	return out
}

// URL returns a redis+cluster:// URL naming every node.
func (c *Cluster) URL() string { return "redis+cluster://" + strings.Join(c.Addrs(), ",") }

// Client returns a ClusterClient on the cluster, closed when the test ends.
// It reloads the slot map at least every 200ms while in use: go-redis
// reloads it on MOVED but not when a master stops answering, so with its
// default (60s) a client keeps dialling a killed master for a minute.
func (c *Cluster) Client(t testing.TB) *redis.ClusterClient {
	t.Helper()
	cl := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs(), ClusterStateReloadInterval: 200 * time.Millisecond})
	t.Cleanup(func() { _ = cl.Close() })
	return cl
}

// node returns the running node at addr.
func (c *Cluster) node(t testing.TB, addr string) *Server {
	t.Helper()
	for _, s := range c.Nodes {
		if s.Addr == addr && s.Pid() != 0 {
			return s
		}
	}
	t.Fatalf("cluster has no running node at %s", addr)
	return nil
}

// Masters returns the addresses of the running nodes that are masters now.
func (c *Cluster) Masters(t testing.TB) []string {
	t.Helper()
	var out []string
	for _, s := range c.Nodes {
		if s.Pid() == 0 {
			continue
		}
		role, err := nodeRole(s.Addr)
		if err != nil {
			t.Fatalf("role of cluster node %s: %v", s.Addr, err)
		}
		if role == "master" {
			out = append(out, s.Addr)
		}
	}
	return out
}

// MasterOf returns the address of the master serving key's slot now.
func (c *Cluster) MasterOf(t testing.TB, key string) string {
	t.Helper()
	cl := redis.NewClient(&redis.Options{Addr: c.running()[0].Addr})
	defer cl.Close()
	ctx := context.Background()
	slot, err := cl.ClusterKeySlot(ctx, key).Result()
	if err != nil {
		t.Fatalf("slot of %q: %v", key, err)
	}
	shards, err := cl.ClusterShards(ctx).Result()
	if err != nil {
		t.Fatalf("cluster shards: %v", err)
	}
	for _, sh := range shards {
		for _, r := range sh.Slots {
			if r.Start <= slot && slot <= r.End {
				if m := shardMaster(sh); m != "" {
					return m
				}
			}
		}
	}
	t.Fatalf("no master serves slot %d of %q", slot, key)
	return ""
}

// shardMaster returns the address of the shard's master, "" if it has none
// online.
func shardMaster(sh redis.ClusterShard) string {
	for _, n := range sh.Nodes {
		if n.Role == "master" && n.Health == "online" {
			return net.JoinHostPort(n.IP, strconv.FormatInt(n.Port, 10))
		}
	}
	return ""
}

// KillNode SIGKILLs the node at addr and, if it was a master, waits until
// one of its replicas took its slots and every running node reports
// cluster_state:ok again.
func (c *Cluster) KillNode(t testing.TB, addr string) {
	t.Helper()
	c.node(t, addr).Kill()
	if err := c.waitHealthy(30 * time.Second); err != nil {
		t.Fatalf("cluster after killing %s: %v", addr, err)
	}
}

// Failover makes a replica of the master at addr take over (CLUSTER
// FAILOVER, no data lost) and waits until it is master and every node
// reports cluster_state:ok. It returns the new master's address.
func (c *Cluster) Failover(t testing.TB, addr string) string {
	t.Helper()
	ctx := context.Background()
	id, err := nodeID(addr)
	if err != nil {
		t.Fatalf("failover of %s: %v", addr, err)
	}
	for _, s := range c.running() {
		cl := redis.NewClient(&redis.Options{Addr: s.Addr})
		info, err := cl.Info(ctx, "replication").Result()
		if err == nil && strings.Contains(info, "role:slave") && masterIDOf(ctx, cl) == id {
			defer cl.Close()
			// A manual failover that does not complete in twice the node
			// timeout is abandoned by Redis: ask again.
			asked := time.Time{}
			if err := waitFor(30*time.Second, func() error {
				if r, err := nodeRole(s.Addr); err != nil || r != "master" {
					if time.Since(asked) > 3*clusterNodeTimeout {
						asked = time.Now()
						if err := cl.Do(ctx, "CLUSTER", "FAILOVER").Err(); err != nil {
							return fmt.Errorf("CLUSTER FAILOVER: %w", err)
						}
					}
					return fmt.Errorf("%s is %q (%v), not master yet", s.Addr, r, err)
				}
				if err := c.allSeeMaster(s.Addr); err != nil {
					return err
				}
				return c.healthy()
			}); err != nil {
				t.Fatalf("failover of %s to %s: %v", addr, s.Addr, err)
			}
			return s.Addr
		}
		_ = cl.Close()
	}
	t.Fatalf("failover of %s: it has no running replica", addr)
	return ""
}

// allSeeMaster reports an error until every running node's view of the
// cluster (CLUSTER SHARDS) has addr as the master of its shard: a node
// learns of a failover by gossip, later than the promoted node itself, and
// until then answers with the old master.
func (c *Cluster) allSeeMaster(addr string) error {
	ctx := context.Background()
	for _, s := range c.running() {
		cl := redis.NewClient(&redis.Options{Addr: s.Addr, MaxRetries: -1})
		shards, err := cl.ClusterShards(ctx).Result()
		_ = cl.Close()
		if err != nil {
			return fmt.Errorf("node %s: %w", s.Addr, err)
		}
		seen := false
		for _, sh := range shards {
			for _, n := range sh.Nodes {
				if net.JoinHostPort(n.IP, strconv.FormatInt(n.Port, 10)) == addr {
					if m := shardMaster(sh); m != addr {
						return fmt.Errorf("node %s still sees %q as the master of %s's shard", s.Addr, m, addr)
					}
					seen = true
				}
			}
		}
		if !seen {
			return fmt.Errorf("node %s does not list %s", s.Addr, addr)
		}
	}
	return nil
}

// masterIDOf returns the node id of the master the replica at addr follows.
func masterIDOf(ctx context.Context, cl *redis.Client) string {
	nodes, err := cl.ClusterNodes(ctx).Result()
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(nodes, "\n") {
		f := strings.Fields(line)
		if len(f) > 3 && strings.Contains(f[2], "myself") {
			return f[3]
		}
	}
	return ""
}

// Stop kills every node by pid and waits for each. Safe to call twice.
func (c *Cluster) Stop() {
	for _, s := range c.Nodes {
		s.Stop()
	}
}

func (c *Cluster) running() []*Server {
	var out []*Server
	for _, s := range c.Nodes {
		if s.Pid() != 0 {
			out = append(out, s)
		}
	}
	return out
}

// waitHealthy waits until healthy holds.
func (c *Cluster) waitHealthy(timeout time.Duration) error {
	return waitFor(timeout, c.healthy)
}

// healthy reports whether every running node says cluster_state:ok, knows
// every node and sees every slot served by a node that is not failing.
func (c *Cluster) healthy() error {
	ctx := context.Background()
	for _, s := range c.running() {
		cl := redis.NewClient(&redis.Options{Addr: s.Addr, MaxRetries: -1})
		info, err := cl.ClusterInfo(ctx).Result()
		var shards []redis.ClusterShard
		if err == nil {
			shards, err = cl.ClusterShards(ctx).Result()
		}
		var repl string
		if err == nil {
			repl, err = cl.Info(ctx, "replication").Result()
		}
		_ = cl.Close()
		if err != nil {
			return fmt.Errorf("node %s: %w", s.Addr, err)
		}
		// A replica still in its first sync cannot take part in a failover.
		if strings.Contains(repl, "role:slave") && !strings.Contains(repl, "master_link_status:up") {
			return fmt.Errorf("replica %s is not in sync with its master", s.Addr)
		}
		if !strings.Contains(info, "cluster_state:ok") ||
			!strings.Contains(info, "cluster_known_nodes:"+strconv.Itoa(len(c.Nodes))+"\r") {
			return fmt.Errorf("node %s is not ready: %s", s.Addr, strings.ReplaceAll(info, "\r\n", " "))
		}
		for _, sh := range shards {
			m := shardMaster(sh)
			if len(sh.Slots) > 0 && !slices.ContainsFunc(c.running(), func(n *Server) bool { return n.Addr == m }) {
				return fmt.Errorf("node %s sees slots %v with no running master (%q)", s.Addr, sh.Slots, m)
			}
		}
	}
	return nil
}

// nodeRole returns "master" or "slave": the role the node at addr reports.
func nodeRole(addr string) (string, error) {
	cl := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer cl.Close()
	info, err := cl.Info(context.Background(), "replication").Result()
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(info, "\r\n") {
		if r, ok := strings.CutPrefix(line, "role:"); ok {
			return r, nil
		}
	}
	return "", fmt.Errorf("INFO replication of %s has no role", addr)
}

// nodeID returns the cluster node id of the node at addr.
func nodeID(addr string) (string, error) {
	cl := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer cl.Close()
	return cl.Do(context.Background(), "CLUSTER", "MYID").Text()
}

// waitFor polls check every 50ms until it returns nil or timeout passes,
// and then returns its last error.
func waitFor(timeout time.Duration, check func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not so after %v: %w", timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
