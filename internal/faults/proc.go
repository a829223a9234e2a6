package faults

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Proc is one worker process the harness started. The harness keeps every
// Proc it starts and kills the ones still running by pid when the scenario
// ends, whatever way it ends.
type Proc struct {
	Name    string // the worker's name in the run files: slot.incarnation
	Started time.Time

	cmd  *exec.Cmd
	log  *os.File
	done chan struct{} // closed when the process has exited and its output is read

	mu       sync.Mutex
	addr     string // HTTP address, from the "http listening" line
	addrSeen chan struct{}
	exitCode int
	exitedAt time.Time
	lossAt   time.Time // first "DATA LOSS DETECTED" line
}

// Pid returns the process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// startProc starts bin with env, logging its stderr to logPath.
func startProc(bin, name, logPath string, env []string) (*Proc, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("create the log of worker %s: %w", name, err)
	}
	p := &Proc{Name: name, cmd: exec.Command(bin), log: f, done: make(chan struct{}), addrSeen: make(chan struct{})}
	p.cmd.Env = env
	p.cmd.Stdout = f
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("start worker %s: %w", name, err)
	}
	if err := p.cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start worker %s: %w", name, err)
	}
	p.Started = time.Now()
	go p.read(stderr)
	return p, nil
}

// read copies the log to the file, noting the lines the harness waits on,
// then reaps the process.
func (p *Proc) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		_, _ = p.log.Write(append(line, '\n'))
		var m struct {
			Msg  string `json:"msg"`
			Addr string `json:"addr"`
		}
		if json.Unmarshal(line, &m) != nil {
			continue
		}
		p.mu.Lock()
		switch {
		case m.Msg == "http listening" && p.addr == "":
			p.addr = m.Addr
			close(p.addrSeen)
		case strings.Contains(m.Msg, "DATA LOSS DETECTED") && p.lossAt.IsZero():
			p.lossAt = time.Now()
		}
		p.mu.Unlock()
	}
	_, _ = io.Copy(p.log, r)
	err := p.cmd.Wait()
	p.mu.Lock()
	p.exitedAt = time.Now()
	p.exitCode = p.cmd.ProcessState.ExitCode()
	if err != nil && p.exitCode == 0 {
		p.exitCode = -1
	}
	p.mu.Unlock()
	_ = p.log.Close()
	close(p.done)
}

// Signal sends sig to the process, if it still runs.
func (p *Proc) Signal(sig syscall.Signal) error {
	select {
	case <-p.done:
		return fmt.Errorf("signal worker %s: it has exited", p.Name)
	default:
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("signal worker %s: %w", p.Name, err)
	}
	return nil
}

// Wait waits for the process to exit, up to ctx, and returns its exit code
// and when it exited.
func (p *Proc) Wait(ctx context.Context) (int, time.Time, error) {
	select {
	case <-p.done:
	case <-ctx.Done():
		return 0, time.Time{}, fmt.Errorf("wait for worker %s to exit: %w", p.Name, ctx.Err())
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exitCode, p.exitedAt, nil
}

// Exited reports whether the process has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Kill SIGKILLs the process (after SIGCONT, in case it is stopped) and
// waits for it. Safe on an exited process.
func (p *Proc) Kill() {
	if p.Exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	_ = p.cmd.Process.Signal(syscall.SIGCONT)
	<-p.done
}

// LossLogged returns when the process logged "DATA LOSS DETECTED", or zero.
func (p *Proc) LossLogged() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lossAt
}

// Addr waits for the process's HTTP address.
func (p *Proc) Addr(ctx context.Context) (string, error) {
	select {
	case <-p.addrSeen:
	case <-p.done:
		return "", fmt.Errorf("worker %s exited before listening (log: %s)", p.Name, p.log.Name())
	case <-ctx.Done():
		return "", fmt.Errorf("wait for worker %s to listen: %w", p.Name, ctx.Err())
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.addr, nil
}

// Ready asks the process's /readyz once: true on 200.
func (p *Proc) Ready(ctx context.Context) (bool, error) {
	addr, err := p.Addr(ctx)
	if err != nil {
		return false, err
	}
	rctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, "http://"+addr+"/readyz", nil)
	if err != nil {
		return false, fmt.Errorf("ask worker %s for readiness: %w", p.Name, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false, fmt.Errorf("ask worker %s for readiness: %w", p.Name, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK, nil
}

// Metric returns the value of one unlabelled (or first labelled) sample of
// name from the process's /metrics, or an error if it is not there.
func (p *Proc) Metric(ctx context.Context, name string) (float64, error) {
	addr, err := p.Addr(ctx)
	if err != nil {
		return 0, err
	}
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return 0, fmt.Errorf("read the metrics of worker %s: %w", p.Name, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("read the metrics of worker %s: %w", p.Name, err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var sum float64
	found := false
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		metric, value, ok := strings.Cut(line, " ")
		if !ok || (metric != name && !strings.HasPrefix(metric, name+"{")) {
			continue
		}
		var v float64
		if _, err := fmt.Sscan(value, &v); err == nil {
			sum += v
			found = true
		}
	}
	if !found {
		return 0, fmt.Errorf("worker %s has no metric %s", p.Name, name)
	}
	return sum, nil
}

// RSS returns the process's resident memory in bytes, from /proc.
func (p *Proc) RSS() (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.Pid()))
	if err != nil {
		return 0, fmt.Errorf("read the memory of worker %s: %w", p.Name, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			var kb int64
			if _, err := fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), &kb); err != nil {
				return 0, fmt.Errorf("read the memory of worker %s: %w", p.Name, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("read the memory of worker %s: no VmRSS line", p.Name)
}
