package sqlitebroker_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/broker/sqlitebroker"
	"go.uber.org/goleak"
)

// childEnv switches the test binary into a child process role (see child).
const childEnv = "SQLITEBROKER_TEST_CHILD"

func TestMain(m *testing.M) {
	if role := os.Getenv(childEnv); role != "" {
		os.Exit(child(role, os.Getenv(childEnv+"_PATH")))
	}
	goleak.VerifyTestMain(m)
}

// child runs a role in a re-executed test binary and returns its exit code.
// It prints one line per acknowledged operation, written after the broker
// call returned, so that the parent knows exactly what was acknowledged.
func child(role, path string) int {
	b, err := sqlitebroker.Open(path, sqlitebroker.Config{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	defer b.Close()
	out := bufio.NewWriter(os.Stdout)
	emit := func(s string) {
		out.WriteString(s + "\n")
		out.Flush()
	}
	ctx := context.Background()
	switch role {
	case "insert": // enqueue forever; the parent kills us
		prefix := os.Getenv(childEnv + "_PREFIX")
		for i := 0; ; i++ {
			id := fmt.Sprintf("%s-%d", prefix, i)
			if _, err := b.JobInsert(ctx, newJob("durable", id)); err != nil {
				fmt.Fprintln(os.Stderr, "child insert:", err)
				return 1
			}
			emit(id)
		}
	case "complete": // complete forever; the parent kills us
		for {
			jobs, err := b.JobFetch(ctx, &broker.JobFetchParams{Queue: "durable", Limit: 8, LeaseDuration: time.Hour})
			if err != nil {
				fmt.Fprintln(os.Stderr, "child fetch:", err)
				return 1
			}
			if len(jobs) == 0 {
				emit("empty")
				select {} // wait to be killed
			}
			errs, err := b.JobComplete(ctx, completions(jobs))
			if err != nil {
				fmt.Fprintln(os.Stderr, "child complete:", err)
				return 1
			}
			for i, e := range errs {
				if e == nil {
					emit(jobs[i].ID)
				}
			}
		}
	case "hold": // keep the store open until killed
		emit(fmt.Sprintf("ready %d", os.Getpid()))
		select {}
	}
	fmt.Fprintln(os.Stderr, "child: unknown role", role)
	return 2
}

// startChild re-executes the test binary in role on path. The caller reads
// its stdout lines from the returned channel, closed when stdout ends.
func startChild(t *testing.T, role, path string, env ...string) (*exec.Cmd, <-chan string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+role, childEnv+"_PATH="+path)
	cmd.Env = append(cmd.Env, env...)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start child process: %v", err)
	}
	lines := make(chan string, 1<<16)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	return cmd, lines
}

// newJob returns insert params for a plain job.
func newJob(queue, id string) *broker.JobInsertParams {
	return &broker.JobInsertParams{ID: id, Queue: queue, Type: "test", Data: []byte(`{"n":1}`), MaxAttempts: 3}
}

// completions acknowledges jobs with no result.
func completions(jobs []*broker.Job) []*broker.JobCompleteParams {
	ps := make([]*broker.JobCompleteParams, len(jobs))
	for i, j := range jobs {
		ps[i] = &broker.JobCompleteParams{JobLeaseParams: broker.JobLeaseParams{Queue: j.Queue, ID: j.ID, Token: j.LeaseToken}}
	}
	return ps
}

// openT opens a store in a fresh temporary directory and closes it at the
// end of the test.
func openT(t *testing.T, opts sqlitebroker.Config) (*sqlitebroker.Broker, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "jobs.db")
	b, err := sqlitebroker.Open(path, opts)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b, path
}
