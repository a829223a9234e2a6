package redistest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// SentinelMaster is the master name a test Sentinel setup monitors.
const SentinelMaster = "mymaster"

// sentinelDownAfter is how long Sentinel waits before it calls a silent
// master down: short, so a failover test waits seconds, not Redis's 30.
const sentinelDownAfter = 1000 * time.Millisecond

// Sentinel is a master, its replica and three sentinels monitoring them
// under SentinelMaster, all private redis-server processes on loopback,
// started by StartSentinel.
type Sentinel struct {
	// Master and Replica are the data nodes in their current roles:
	// KillMaster makes the replica the Master and leaves the killed node
	// as Replica, stopped until RestartReplica.
	Master, Replica *Server
	// Sentinels are the three sentinel processes.
	Sentinels []*Server
}

// StartSentinel starts a master, a replica of it and three sentinels
// (quorum 2) on free loopback ports and waits until the replica is in sync
// and every sentinel knows the replica and the other two sentinels. Every
// process is stopped by pid when the test ends.
func StartSentinel(t testing.TB) *Sentinel {
	t.Helper()
	return startGroup(t, "redis sentinel setup", startSentinel)
}

func startSentinel() (*Sentinel, error) {
	ports, err := freePorts(5)
	if err != nil {
		return nil, err
	}
	s := &Sentinel{}
	if s.Master, err = startWith(ports[0], Options{Args: []string{"--repl-diskless-sync-delay", "0"}}); err != nil {
		return nil, err
	}
	if s.Replica, err = startWith(ports[1], Options{Args: []string{"--repl-diskless-sync-delay", "0", "--replicaof", "127.0.0.1", strconv.Itoa(ports[0])}}); err != nil {
		s.Stop()
		return nil, err
	}
	for _, port := range ports[2:] {
		dir, err := os.MkdirTemp("", "redistest-sentinel-")
		if err != nil {
			s.Stop()
			return nil, err
		}
		conf := filepath.Join(dir, "sentinel.conf")
		text := fmt.Sprintf("sentinel monitor %s 127.0.0.1 %d 2\n"+
			"sentinel down-after-milliseconds %[1]s %[3]d\n"+
			"sentinel failover-timeout %[1]s 10000\n", SentinelMaster, ports[0], sentinelDownAfter/time.Millisecond)
		if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
			s.Stop()
			return nil, err
		}
		n, err := startWith(port, Options{Dir: dir, ConfigFile: conf, Args: []string{"--sentinel"}})
		if err != nil {
			_ = os.RemoveAll(dir)
			s.Stop()
			return nil, err
		}
		n.opts.Dir = "" // so Stop removes the directory made here
		s.Sentinels = append(s.Sentinels, n)
	}
	if err := waitFor(30*time.Second, s.ready); err != nil {
		s.Stop()
		return nil, fmt.Errorf("sentinel setup not ready: %w", err)
	}
	return s, nil
}

// ready reports whether every sentinel sees the master with one replica
// and two other sentinels, and the replica's link to the master is up.
func (s *Sentinel) ready() error {
	ctx := context.Background()
	for _, n := range s.Sentinels {
		sc := redis.NewSentinelClient(&redis.Options{Addr: n.Addr, MaxRetries: -1})
		m, err := sc.Master(ctx, SentinelMaster).Result()
		_ = sc.Close()
		if err != nil {
			return fmt.Errorf("sentinel %s: %w", n.Addr, err)
		}
		if m["num-slaves"] != "1" || m["num-other-sentinels"] != "2" || m["flags"] != "master" {
			return fmt.Errorf("sentinel %s sees %s with flags %s, %s replicas, %s other sentinels", n.Addr,
				m["ip"]+":"+m["port"], m["flags"], m["num-slaves"], m["num-other-sentinels"])
		}
	}
	cl := redis.NewClient(&redis.Options{Addr: s.Replica.Addr, MaxRetries: -1})
	defer cl.Close()
	info, err := cl.Info(ctx, "replication").Result()
	if err != nil {
		return fmt.Errorf("replica %s: %w", s.Replica.Addr, err)
	}
	if !strings.Contains(info, "master_link_status:up") {
		return fmt.Errorf("replica %s is not in sync", s.Replica.Addr)
	}
	return nil
}

// Addrs returns the sentinels' addresses.
func (s *Sentinel) Addrs() []string {
	out := make([]string, len(s.Sentinels))
	for i, n := range s.Sentinels {
		out[i] = n.Addr
	}
	return out
}

// URL returns a redis+sentinel:// URL naming every sentinel and the master.
func (s *Sentinel) URL() string {
	return "redis+sentinel://" + strings.Join(s.Addrs(), ",") + "/" + SentinelMaster
}

// Client returns a failover client through the sentinels, closed when the
// test ends.
func (s *Sentinel) Client(t testing.TB) *redis.Client {
	t.Helper()
	cl := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: SentinelMaster, SentinelAddrs: s.Addrs()})
	t.Cleanup(func() { _ = cl.Close() })
	return cl
}

// MasterAddr returns the master's address as a majority of the sentinels
// report it now.
func (s *Sentinel) MasterAddr(t testing.TB) string {
	t.Helper()
	addr, err := s.masterAddr()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// unanimous reports an error unless every running sentinel names addr as
// the master.
func (s *Sentinel) unanimous(addr string) error {
	for _, n := range s.Sentinels {
		if n.Pid() == 0 {
			continue
		}
		sc := redis.NewSentinelClient(&redis.Options{Addr: n.Addr, MaxRetries: -1})
		a, err := sc.GetMasterAddrByName(context.Background(), SentinelMaster).Result()
		_ = sc.Close()
		if err != nil {
			return fmt.Errorf("sentinel %s: %w", n.Addr, err)
		}
		if len(a) != 2 || a[0]+":"+a[1] != addr {
			return fmt.Errorf("sentinel %s still names %v", n.Addr, a)
		}
	}
	return nil
}

func (s *Sentinel) masterAddr() (string, error) {
	votes := map[string]int{}
	for _, n := range s.Sentinels {
		if n.Pid() == 0 {
			continue
		}
		sc := redis.NewSentinelClient(&redis.Options{Addr: n.Addr, MaxRetries: -1})
		a, err := sc.GetMasterAddrByName(context.Background(), SentinelMaster).Result()
		_ = sc.Close()
		if err == nil && len(a) == 2 {
			votes[a[0]+":"+a[1]]++
		}
	}
	for a, v := range votes {
		if v*2 > len(s.Sentinels) {
			return a, nil
		}
	}
	return "", fmt.Errorf("no master address reported by a majority of sentinels: %v", votes)
}

// KillMaster SIGKILLs the master and waits until a majority of the
// sentinels name the replica as master and the replica says it is one;
// then the replica is Master and the killed node Replica. It returns the
// time from the kill to the promotion being seen.
func (s *Sentinel) KillMaster(t testing.TB) time.Duration {
	t.Helper()
	old := s.Master
	start := time.Now()
	old.Kill()
	err := waitFor(60*time.Second, func() error {
		addr, err := s.masterAddr()
		if err != nil {
			return err
		}
		if addr != s.Replica.Addr {
			return fmt.Errorf("sentinels still name %s", addr)
		}
		// Every sentinel, not only a majority: one that has not heard of
		// the promotion yet still takes the killed node, once it is back,
		// for the master, and a restart of it races that view.
		if err := s.unanimous(addr); err != nil {
			return err
		}
		if r, err := nodeRole(s.Replica.Addr); err != nil || r != "master" {
			return fmt.Errorf("replica %s is %q (%v)", s.Replica.Addr, r, err)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("promotion of %s after killing %s: %v", s.Replica.Addr, old.Addr, err)
	}
	took := time.Since(start)
	s.Master, s.Replica = s.Replica, old
	return took
}

// RestartReplica starts the stopped Replica (the master KillMaster killed)
// again on its port, empty and configured as a replica of the Master (as
// Sentinel would reconfigure it, but without waiting for Sentinel's next
// check of it), and waits until it is in sync.
func (s *Sentinel) RestartReplica(t testing.TB) {
	t.Helper()
	n, err := startWith(s.Replica.Port(), Options{Args: []string{"--repl-diskless-sync-delay", "0",
		"--replicaof", "127.0.0.1", strconv.Itoa(s.Master.Port())}})
	if err != nil {
		t.Fatalf("restart %s as a replica: %v", s.Replica.Addr, err)
	}
	t.Cleanup(n.Stop)
	s.Replica = n
	err = waitFor(60*time.Second, func() error {
		cl := redis.NewClient(&redis.Options{Addr: s.Replica.Addr, MaxRetries: -1})
		defer cl.Close()
		info, err := cl.Info(context.Background(), "replication").Result()
		if err != nil {
			return err
		}
		if !strings.Contains(info, "role:slave") || !strings.Contains(info, "master_port:"+strconv.Itoa(s.Master.Port())+"\r") ||
			!strings.Contains(info, "master_link_status:up") {
			return fmt.Errorf("%s is not an in-sync replica of %s yet; its replication info: %s", s.Replica.Addr, s.Master.Addr, replicationSummary(info))
		}
		return nil
	})
	if err != nil {
		// What the master and the sentinels say, for the next time this
		// fails (it has, rarely, under CI's load, for reasons not found).
		var seen []string
		for _, n := range append([]*Server{s.Master}, s.Sentinels...) {
			cl := redis.NewClient(&redis.Options{Addr: n.Addr, MaxRetries: -1})
			var v string
			if n == s.Master {
				info, ierr := cl.Info(context.Background(), "replication").Result()
				v = replicationSummary(info) + fmt.Sprint(" ", ierr)
			} else {
				addr, aerr := cl.Do(context.Background(), "SENTINEL", "get-master-addr-by-name", SentinelMaster).Result()
				v = fmt.Sprint("names master ", addr, " ", aerr)
			}
			_ = cl.Close()
			seen = append(seen, n.Addr+": "+v)
		}
		t.Fatalf("restart %s as a replica: %v\n%s", s.Replica.Addr, err, strings.Join(seen, "\n"))
	}
}

// Stop kills every process by pid and waits for each. Safe to call twice.
func (s *Sentinel) Stop() {
	for _, n := range append([]*Server{s.Master, s.Replica}, s.Sentinels...) {
		if n != nil {
			n.Stop()
		}
	}
}

// replicationSummary keeps the lines of INFO replication that say a
// node's role and link.
func replicationSummary(info string) string {
	var keep []string
	for l := range strings.SplitSeq(info, "\r\n") {
		for _, k := range []string{"role:", "master_host:", "master_port:", "master_link_status:", "master_sync_in_progress:", "connected_slaves:", "slave0:"} {
			if strings.HasPrefix(l, k) {
				keep = append(keep, l)
			}
		}
	}
	return strings.Join(keep, " ")
}
