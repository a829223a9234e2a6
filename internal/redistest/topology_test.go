package redistest_test

import (
	"context"
	"errors"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/aibos/worker/internal/redistest"
)

func TestMain(m *testing.M) { os.Exit(redistest.Main(m)) }

// alive reports whether a process with pid exists (signal 0 only checks).
func alive(pid int) bool {
	return pid != 0 && !errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}

func TestStartCluster(t *testing.T) {
	var pids []int
	t.Run("up", func(t *testing.T) {
		c := redistest.StartCluster(t, 3, 1)
		for _, n := range c.Nodes {
			pids = append(pids, n.Pid())
		}
		if len(pids) != 6 {
			t.Fatalf("cluster has %d nodes, want 6", len(pids))
		}
		masters := c.Masters(t)
		if len(masters) != 3 {
			t.Fatalf("cluster has masters %v, want 3", masters)
		}
		ctx := context.Background()
		cl := c.Client(t)
		if err := cl.Set(ctx, "{a}", "1", 0).Err(); err != nil {
			t.Fatalf("set through the cluster client: %v", err)
		}
		if got := cl.Get(ctx, "{a}").Val(); got != "1" {
			t.Fatalf("get {a} = %q, want 1", got)
		}

		// A failover that loses nothing: the key is still there on the
		// new master, and the old one is a replica now.
		m := c.MasterOf(t, "{a}")
		next := c.Failover(t, m)
		if next == m || c.MasterOf(t, "{a}") != next {
			t.Fatalf("after failover of %s the slot of {a} is on %s, want %s", m, c.MasterOf(t, "{a}"), next)
		}
		if got, err := cl.Get(ctx, "{a}").Result(); err != nil || got != "1" {
			t.Fatalf("get {a} after failover = %q, %v; want 1", got, err)
		}

		// A master killed: its replica takes its slots.
		c.KillNode(t, next)
		if got := c.MasterOf(t, "{a}"); got != m {
			t.Fatalf("after killing %s the slot of {a} is on %s, want the old master %s", next, got, m)
		}
		// The client learns the new slot map after its first failed call.
		var got string
		var err error
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if got, err = cl.Get(ctx, "{a}").Result(); err == nil {
				break
			}
		}
		if err != nil || got != "1" {
			t.Fatalf("get {a} after the kill = %q, %v; want 1", got, err)
		}
	})
	for _, pid := range pids {
		if alive(pid) {
			t.Errorf("cluster node pid %d still runs after the test ended", pid)
		}
	}
}

func TestStartSentinel(t *testing.T) {
	var pids []int
	t.Run("up", func(t *testing.T) {
		s := redistest.StartSentinel(t)
		pids = append(pids, s.Master.Pid(), s.Replica.Pid())
		for _, n := range s.Sentinels {
			pids = append(pids, n.Pid())
		}
		if got := s.MasterAddr(t); got != s.Master.Addr {
			t.Fatalf("sentinels name master %s, want %s", got, s.Master.Addr)
		}
		ctx := context.Background()
		cl := s.Client(t)
		if err := cl.Set(ctx, "k", "1", 0).Err(); err != nil {
			t.Fatalf("set through sentinel: %v", err)
		}
		if err := cl.Do(ctx, "WAIT", 1, 5000).Err(); err != nil {
			t.Fatalf("wait for the replica: %v", err)
		}
		promoted := s.Replica.Addr
		took := s.KillMaster(t)
		t.Logf("promotion seen %v after the kill", took)
		if got := s.MasterAddr(t); got != promoted || s.Master.Addr != promoted {
			t.Fatalf("sentinels name master %s after the kill, Master is %s; want %s", got, s.Master.Addr, promoted)
		}
		if got, err := cl.Get(ctx, "k").Result(); err != nil || got != "1" {
			t.Fatalf("get k after failover = %q, %v; want 1", got, err)
		}
		s.RestartReplica(t)
		pids = append(pids, s.Replica.Pid())
		if err := cl.Set(ctx, "k2", "2", 0).Err(); err != nil {
			t.Fatalf("set after the restart: %v", err)
		}
		if n, err := cl.Do(ctx, "WAIT", 1, 5000).Int(); err != nil || n != 1 {
			t.Fatalf("WAIT for the restarted replica: %d, %v; want 1", n, err)
		}
	})
	if len(pids) != 6 {
		t.Fatalf("setup had %d processes, want 6 (one restarted)", len(pids))
	}
	for _, pid := range pids {
		if alive(pid) {
			t.Errorf("sentinel setup pid %d still runs after the test ended", pid)
		}
	}
}
