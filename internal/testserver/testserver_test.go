package testserver

import (
	"errors"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

// process is a real child process (sleep), stopped by pid like the
// helpers' servers.
type process struct{ cmd *exec.Cmd }

func (p *process) Stop() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	_ = p.cmd.Wait()
}

func TestSharedStartsOnceAndStopsByPid(t *testing.T) {
	starts := 0
	sh := NewShared(func() (*process, error) {
		starts++
		cmd := exec.Command("sleep", "60")
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		return &process{cmd}, nil
	})
	sh.Stop() // nothing started yet: nothing to stop
	var wg sync.WaitGroup
	got := make([]*process, 8)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, err := sh.Get()
			if err != nil {
				t.Errorf("get the shared server: %v", err)
			}
			got[i] = p
		}()
	}
	wg.Wait()
	if starts != 1 {
		t.Fatalf("8 concurrent Gets started %d servers, want 1", starts)
	}
	for _, p := range got[1:] {
		if p != got[0] {
			t.Fatal("Gets returned different servers")
		}
	}
	sh.Stop()
	if got[0].cmd.ProcessState == nil {
		t.Fatal("Stop did not end the server process")
	}
}

func TestSharedReturnsTheStartErrorToEveryGet(t *testing.T) {
	errNoServer := errors.New("no server here")
	sh := NewShared(func() (*process, error) { return nil, errNoServer })
	for range 2 {
		if _, err := sh.Get(); !errors.Is(err, errNoServer) {
			t.Fatalf("get after a failed start: %v, want %v", err, errNoServer)
		}
	}
	sh.Stop() // must not call Stop on the nil server
}
