// Package pgtest gives tests a real PostgreSQL server: a private one (one per
// test package) initialised into a temporary directory and started on a free
// loopback port, with its unix socket in that directory and fsync off, and
// stopped by pid when the package finishes; or the server named by
// WORKER_TEST_DATABASE_URL. Each test gets its own database, so tests run in
// parallel on one server.
//
// Without the server binaries (initdb, postgres on PATH or in Debian's
// /usr/lib/postgresql/<version>/bin) tests that ask for PostgreSQL are
// skipped with an install hint; when the CI environment variable is set they
// fail instead. PostgreSQL refuses to run as root, so when the tests run as
// root the server runs as the postgres user.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/aibos/worker/internal/logtest"
	"github.com/aibos/worker/internal/testserver"
)

// EnvURL names the variable that points tests at an existing server. Its
// user must be allowed to create databases.
const EnvURL = "WORKER_TEST_DATABASE_URL"

const installHint = "PostgreSQL server binaries (initdb, postgres) not found on PATH or in /usr/lib/postgresql/*/bin: " +
	"install them (Debian/Ubuntu: apt-get install postgresql; macOS: brew install postgresql) or set " + EnvURL

// shared is the package's server, started on first use.
var shared = testserver.NewShared(start)

// Server is a postgres process started by a test package.
type Server struct {
	// URL is the postgres:// URL of the server's postgres database.
	URL  string
	cmd  *exec.Cmd
	dir  string
	done chan struct{} // closed when the process has exited
}

// Main runs the package's tests, stops the shared server, and, if the tests
// passed, fails the run when goroutines leaked (goleak). Call it from
// TestMain in every package that uses this helper: os.Exit(pgtest.Main(m)).
func Main(m *testing.M) int { return testserver.Main(m, StopShared) }

// StopShared stops the shared server, if one was started. pgtest.Main does
// it; a TestMain that runs its tests through another helper's Main (such
// as redistest.Main) passes it there.
func StopShared() { shared.Stop() }

// DatabaseURL creates a database for this test on the shared server
// (starting it on first use) and returns its postgres:// URL. It skips (or,
// with CI set, fails) the test if no server can be had.
func DatabaseURL(t testing.TB) string {
	t.Helper()
	base := os.Getenv(EnvURL)
	if base == "" {
		s, err := shared.Get()
		if err != nil {
			testserver.Unavailable(t, "postgresql", err)
		}
		base = s.URL
	}
	u, err := createDatabase(base)
	if err != nil {
		t.Fatalf("create a test database: %v", err)
	}
	return u
}

// createDatabase creates a database with a random name on the server of
// base and returns base pointing at it.
func createDatabase(base string) (string, error) {
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "test_" + hex.EncodeToString(b[:])
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		return "", fmt.Errorf("connect to %s: %w", redact(base), err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", fmt.Errorf("create database %s: %w", name, err)
	}
	u, err := url.Parse(base)
	if err != nil {
		return "", fmt.Errorf("parse %s: %w", redact(base), err)
	}
	u.Path = "/" + name
	return u.String(), nil
}

// Stop stops the server by pid, waits for it and removes its directory.
// Safe to call twice.
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	s.kill()
	s.cmd = nil
	_ = os.RemoveAll(s.dir)
}

// binDir returns the directory holding initdb and postgres: PATH first, then
// the newest Debian version directory.
func binDir() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		if _, err := exec.LookPath("postgres"); err == nil {
			return filepath.Dir(p), nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if isExec(filepath.Join(d, "initdb")) && isExec(filepath.Join(d, "postgres")) {
			return d, nil
		}
	}
	return "", errors.New(installHint)
}

func version(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

func isExec(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

// runAs returns the credential to run the server with: none normally, the
// postgres user's when running as root.
func runAs() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root, and PostgreSQL refuses to: look up the postgres user to run it as: %w", err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("read the postgres user's ids: %w", err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// start initialises a cluster in a temporary directory and starts postgres
// on it, retrying on another port if the chosen one was taken meanwhile.
func start() (*Server, error) {
	bin, err := binDir()
	if err != nil {
		return nil, err
	}
	cred, err := runAs()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		return nil, fmt.Errorf("create the server directory: %w", err)
	}
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			_ = os.RemoveAll(dir)
			return nil, fmt.Errorf("give the server directory to the postgres user: %w", err)
		}
	}
	data := filepath.Join(dir, "data")
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres",
		"--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("initdb: %w; output: %s", err, out)
	}
	var lastErr error
	for range 5 { // a freed port can be taken before postgres binds it
		port, err := testserver.FreePort()
		if err != nil {
			_ = os.RemoveAll(dir)
			return nil, err
		}
		s, err := run(bin, dir, port, cred)
		if err == nil {
			return s, nil
		}
		lastErr = err
	}
	_ = os.RemoveAll(dir)
	return nil, lastErr
}

// run starts postgres on the cluster in dir and waits until it answers.
func run(bin, dir string, port int, cred *syscall.Credential) (*Server, error) {
	cmd := exec.Command(filepath.Join(bin, "postgres"), "-D", filepath.Join(dir, "data"),
		"-p", strconv.Itoa(port), "-k", dir,
		"-c", "listen_addresses=127.0.0.1",
		// Throwaway data: durability settings only slow the tests down.
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		"-c", "max_connections=200")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	// Written by exec's copying goroutines while the loop below reads it.
	var out logtest.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	s := &Server{
		URL: fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port),
		cmd: cmd, dir: dir, done: make(chan struct{}),
	}
	go func() { _ = cmd.Wait(); close(s.done) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		conn, err := pgx.Connect(ctx, s.URL)
		if err == nil {
			_ = conn.Close(ctx)
			cancel()
			return s, nil
		}
		cancel()
		select {
		case <-s.done: // e.g. the port was taken: the caller tries another
			return nil, fmt.Errorf("postgres on port %d exited: %v; output: %s", port, err, out.String())
		default:
		}
		if time.Now().After(deadline) {
			s.kill()
			return nil, fmt.Errorf("postgres on port %d did not answer within 30s: %v; output: %s", port, err, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kill stops the process (SIGQUIT, PostgreSQL's immediate shutdown, which
// also ends its child processes; SIGKILL if that takes over 10 s) and waits
// for it.
func (s *Server) kill() {
	_ = s.cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Signal(syscall.SIGKILL)
		<-s.done
	}
}

// redact hides a URL's password in messages.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable url)"
	}
	return u.Redacted()
}
