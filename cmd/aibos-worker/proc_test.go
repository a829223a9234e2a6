package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aibos/worker/internal/pgtest"
	"github.com/aibos/worker/internal/redistest"
)

// bin is the aibos-worker binary, built once by TestMain in binDir.
var bin, binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "aibos-worker-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = filepath.Join(dir, "aibos-worker")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build aibos-worker: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	binDir = dir
	code := redistest.Main(m, pgtest.StopShared)
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a running aibos-worker whose JSON log lines (stderr) are
// collected as they come.
type proc struct {
	t    *testing.T
	cmd  *exec.Cmd
	done chan struct{} // closed when the process exited and its output is read
	code int           // exit code, once done

	mu    sync.Mutex
	lines []map[string]any
	raw   []string
	news  chan struct{} // closed and replaced at each new line
}

// testEnv is the environment the binary runs with: only what a process
// needs plus env, so the test machine's own settings cannot leak in.
func testEnv(env ...string) []string {
	base := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "TMPDIR=" + os.TempDir()}
	return append(base, env...)
}

// start runs the binary with args and env; the process is killed at the
// end of the test if it still runs.
func start(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	return startBin(t, bin, env, args...)
}

// startBin is start with another build of the binary (see crashBin).
func startBin(t *testing.T, bin string, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, cmd: exec.Command(bin, args...), done: make(chan struct{}), news: make(chan struct{})}
	p.cmd.Env = testEnv(env...)
	// A fresh working directory: the default WORKER_DATA_DIR (./data,
	// where the accounting ledger lives even on Redis) stays out of the
	// source tree.
	p.cmd.Dir = t.TempDir()
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	go p.read(stderr)
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("aibos-worker output:\n%s", p.output())
		}
	})
	return p
}

func (p *proc) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		var m map[string]any
		_ = json.Unmarshal([]byte(line), &m)
		p.mu.Lock()
		p.raw = append(p.raw, line)
		if m != nil {
			p.lines = append(p.lines, m)
		}
		close(p.news)
		p.news = make(chan struct{})
		p.mu.Unlock()
	}
	err := p.cmd.Wait()
	p.code = 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		p.code = ee.ExitCode()
	} else if err != nil {
		p.code = -1
	}
	close(p.done)
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.raw, "\n")
}

// waitLog waits for a JSON log line with msg and returns it.
func (p *proc) waitLog(msg string, timeout time.Duration) map[string]any {
	p.t.Helper()
	return p.waitLogMatch(msg, timeout, func(map[string]any) bool { return true })
}

// waitLogMatch waits for a JSON log line with msg (any, if msg is "") for
// which match holds.
func (p *proc) waitLogMatch(msg string, timeout time.Duration, match func(map[string]any) bool) map[string]any {
	p.t.Helper()
	deadline := time.After(timeout)
	for i := 0; ; {
		p.mu.Lock()
		for ; i < len(p.lines); i++ {
			if (msg == "" || p.lines[i]["msg"] == msg) && match(p.lines[i]) {
				l := p.lines[i]
				p.mu.Unlock()
				return l
			}
		}
		news := p.news
		p.mu.Unlock()
		select {
		case <-news:
		case <-p.done:
			// Read what came with the exit, then give up.
			p.mu.Lock()
			n := len(p.lines)
			p.mu.Unlock()
			if i == n {
				p.t.Fatalf("aibos-worker exited (code %d) before logging %q", p.code, msg)
			}
		case <-deadline:
			p.t.Fatalf("aibos-worker did not log %q within %v", msg, timeout)
		}
	}
}

// addr waits for the "http listening" line and returns its address as a
// base URL.
func (p *proc) addr() string {
	p.t.Helper()
	l := p.waitLog("http listening", 60*time.Second)
	a, _ := l["addr"].(string)
	if a == "" {
		p.t.Fatalf("http listening line has no addr: %v", l)
	}
	return "http://" + a
}

// signal sends sig to the process.
func (p *proc) signal(sig syscall.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("signal aibos-worker: %v", err)
	}
}

// wait waits for the process to exit and returns its exit code.
func (p *proc) wait(timeout time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
		return p.code
	case <-time.After(timeout):
		p.t.Fatalf("aibos-worker did not exit within %v", timeout)
		return 0
	}
}

// get fetches url and returns the status and body.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read GET %s: %v", url, err)
	}
	return resp.StatusCode, string(b)
}
