// Package redistest gives tests a real redis-server: a private one started on
// a free loopback port (one per test package, stopped by pid when the package
// finishes), or the server named by WORKER_TEST_REDIS_URL. Each test gets its
// own key prefix, so tests run in parallel on one server.
//
// StartCluster and StartSentinel start the other topologies the same way:
// a Redis Cluster (masters with replicas) and a Sentinel setup (a master, a
// replica and three sentinels), with helpers to kill or fail over a master.
//
// Without redis-server on PATH, tests that ask for Redis are skipped with an
// install hint; when the CI environment variable is set they fail instead.
package redistest

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/aibos/worker/internal/testserver"
)

// EnvURL names the variable that points tests at an existing Redis.
const EnvURL = "WORKER_TEST_REDIS_URL"

const installHint = "redis-server not found on PATH: install it (Debian/Ubuntu: apt-get install redis-server; macOS: brew install redis) or set " + EnvURL

// shared is the package's server, started on first use.
var shared = testserver.NewShared(start)

// Server is a redis-server process started by a test.
type Server struct {
	Addr string
	cmd  *exec.Cmd
	dir  string
	opts Options // how it was started, for Restart
}

// Options configures a server of StartWith.
type Options struct {
	// Dir is the data directory (dump.rdb, the AOF). It is kept when the
	// server stops, so that a test can restart the server on it. Empty: a
	// temporary directory, removed when the server stops.
	Dir string
	// Args are extra redis-server arguments, after the defaults (no
	// snapshots, no AOF), which they can override: e.g. "--appendonly",
	// "yes", "--appendfsync", "everysec".
	Args []string
	// ConfigFile, if set, is passed to redis-server before everything
	// else, as it requires (Sentinel needs a config file it can rewrite).
	ConfigFile string
	// TLS, if set, makes the server speak only TLS on its port (--port 0,
	// --tls-port), with the certificates of TLS, requiring every client
	// to present a certificate signed by its authority. URL is then
	// rediss://.
	TLS *Certs
	// TLSNoClientAuth makes a TLS server take clients that present no
	// certificate (--tls-auth-clients no).
	TLSNoClientAuth bool
	// ACL are users created once the server answers, each the arguments
	// of one ACL SETUSER separated by spaces, e.g.
	// "worker on >secret ~app:* +@all". The default user stays as it is.
	ACL []string
}

// Main runs the package's tests, stops the shared server, and, if the
// tests passed, fails the run when goroutines leaked (goleak). Call it from
// TestMain in every package that uses this helper: os.Exit(redistest.Main(m)).
// A package that also uses other servers passes their stop functions
// (e.g. pgtest.StopShared), run after the tests and before goleak.
func Main(m *testing.M, stops ...func()) int {
	return testserver.Main(m, append([]func(){shared.Stop}, stops...)...)
}

// URL returns the redis:// URL of the shared server, starting it on first
// use. It skips (or, with CI set, fails) the test if no server can be had.
func URL(t testing.TB) string {
	t.Helper()
	u, err := SharedURL()
	if err != nil {
		unavailable(t, err)
	}
	return u
}

// SharedURL is URL for code that has no testing.TB, such as a TestMain
// preparing a server for Example functions: it returns the error instead
// of skipping.
func SharedURL() (string, error) {
	if u := os.Getenv(EnvURL); u != "" {
		return u, nil
	}
	s, err := shared.Get()
	if err != nil {
		return "", err
	}
	return "redis://" + s.Addr, nil
}

// Client returns a go-redis client on the shared server, closed when the
// test ends.
func Client(t testing.TB) *redis.Client {
	t.Helper()
	opt, err := redis.ParseURL(URL(t))
	if err != nil {
		t.Fatalf("parse redis url: %v", err)
	}
	c := redis.NewClient(opt)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// Prefix returns a key prefix unique to this test.
func Prefix(t testing.TB) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "test:" + hex.EncodeToString(b[:])
}

// Start starts a dedicated redis-server for one test (for tests that stop
// and restart it). It is stopped when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	s, err := start()
	if err != nil {
		unavailable(t, err)
	}
	t.Cleanup(s.Stop)
	return s
}

// StartOnPort starts a redis-server on a given loopback port, e.g. to bring
// a stopped server back on the same address.
func StartOnPort(t testing.TB, port int) *Server {
	t.Helper()
	s, err := startOn(port)
	if err != nil {
		t.Fatalf("start redis-server on port %d: %v", port, err)
	}
	t.Cleanup(s.Stop)
	return s
}

// StartWith starts a dedicated redis-server for one test, with the data
// directory and persistence options of o, on a free loopback port. It is
// stopped (by pid) when the test ends.
func StartWith(t testing.TB, o Options) *Server {
	t.Helper()
	var s *Server
	var err error
	for range 5 { // a freed port can be taken before redis binds it
		var port int
		if port, err = testserver.FreePort(); err != nil {
			break
		}
		if s, err = startWith(port, o); err == nil {
			break
		}
	}
	if err != nil {
		unavailable(t, err)
	}
	t.Cleanup(s.Stop)
	return s
}

// Save makes the server write its snapshot (dump.rdb) now.
func (s *Server) Save(t testing.TB) {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: s.Addr})
	defer c.Close()
	if err := c.Save(context.Background()).Err(); err != nil {
		t.Fatalf("redis SAVE: %v", err)
	}
}

// Kill SIGKILLs the server and waits for it to exit: nothing is saved.
// A Dir given to StartWith is kept.
func (s *Server) Kill() { s.Stop() }

// Restart starts the server again on the same port, directory and options
// (after Kill), so it loads whatever its directory holds then.
func (s *Server) Restart(t testing.TB) *Server {
	t.Helper()
	n, err := startWith(s.Port(), s.opts)
	if err != nil {
		t.Fatalf("restart redis-server on port %d: %v", s.Port(), err)
	}
	t.Cleanup(n.Stop)
	return n
}

// Freeze SIGSTOPs the server: connections stay open and nothing answers,
// as with a hung or partitioned Redis. Thaw resumes it; Stop kills it
// frozen or not.
func (s *Server) Freeze(t testing.TB) { s.signal(t, syscall.SIGSTOP) }

// Thaw SIGCONTs a frozen server.
func (s *Server) Thaw(t testing.TB) { s.signal(t, syscall.SIGCONT) }

func (s *Server) signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	if s.cmd == nil || s.cmd.Process == nil {
		t.Fatalf("signal redis-server: it is not running")
	}
	if err := s.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal redis-server: %v", err)
	}
}

// Dir returns the server's data directory.
func (s *Server) Dir() string { return s.dir }

// Port returns the server's TCP port.
func (s *Server) Port() int {
	_, p, _ := net.SplitHostPort(s.Addr)
	n, _ := strconv.Atoi(p)
	return n
}

// Pid returns the server's process id, or 0 once it was stopped.
func (s *Server) Pid() int {
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// URL returns the server's redis:// URL, or rediss:// when it was started
// with TLS.
func (s *Server) URL() string {
	if s.opts.TLS != nil {
		return "rediss://" + s.Addr
	}
	return "redis://" + s.Addr
}

// Stop kills the server by pid and waits for it. Safe to call twice.
func (s *Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	_ = s.cmd.Wait()
	s.cmd = nil
	if s.opts.Dir == "" {
		_ = os.RemoveAll(s.dir)
	}
}

// setUsers runs ACL SETUSER for each rule list.
func setUsers(c *redis.Client, rules []string) error {
	for _, r := range rules {
		fields := strings.Fields(r)
		if len(fields) == 0 {
			return fmt.Errorf("ACL rule %q names no user", r)
		}
		args := []any{"ACL", "SETUSER"}
		for _, f := range fields {
			args = append(args, f)
		}
		if err := c.Do(context.Background(), args...).Err(); err != nil {
			return fmt.Errorf("ACL SETUSER %s: %w", fields[0], err)
		}
	}
	return nil
}

func unavailable(t testing.TB, err error) {
	t.Helper()
	testserver.Unavailable(t, "redis", err)
}

func start() (*Server, error) {
	var lastErr error
	for range 5 { // a freed port can be taken before redis binds it
		port, err := testserver.FreePort()
		if err != nil {
			return nil, err
		}
		s, err := startOn(port)
		if err == nil {
			return s, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

func startOn(port int) (*Server, error) { return startWith(port, Options{}) }

func startWith(port int, o Options) (*Server, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("%s", installHint)
	}
	dir := o.Dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "redistest-"); err != nil {
			return nil, err
		}
	}
	args := append([]string{
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", dir,
		"--daemonize", "no", "--loglevel", "warning"}, o.Args...)
	var tlsConf *tls.Config
	if o.TLS != nil {
		args = append(args, o.TLS.tlsArgs(port, !o.TLSNoClientAuth)...)
		tlsConf = o.TLS.ClientConfig()
	}
	if o.ConfigFile != "" {
		// redis-server reads a config file only as its first argument.
		args = append([]string{o.ConfigFile}, args...)
	}
	cmd := exec.Command(bin, args...)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		if o.Dir == "" {
			_ = os.RemoveAll(dir)
		}
		return nil, fmt.Errorf("start redis-server: %w", err)
	}
	s := &Server{Addr: fmt.Sprintf("127.0.0.1:%d", port), cmd: cmd, dir: dir, opts: o}
	c := redis.NewClient(&redis.Options{Addr: s.Addr, MaxRetries: -1, TLSConfig: tlsConf})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			if err := setUsers(c, o.ACL); err != nil {
				s.Stop()
				return nil, err
			}
			return s, nil
		}
		if time.Now().After(deadline) || cmd.ProcessState != nil {
			s.Stop()
			return nil, fmt.Errorf("redis-server on port %d did not answer: %v; output: %s", port, err, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
