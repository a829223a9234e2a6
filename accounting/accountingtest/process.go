package accountingtest

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aibos/worker/accounting"
)

// Environment of a child process of Processes.
const (
	envLocation = "ACCOUNTINGTEST_CHILD_LOCATION" // the database
	envDir      = "ACCOUNTINGTEST_CHILD_DIR"      // where ready and go files are
	envName     = "ACCOUNTINGTEST_CHILD_NAME"
)

// processInvoices is how many invoices the processes of Processes post.
const processInvoices = 20

// Connect opens a store on the database at location (a file path, a URL).
type Connect func(ctx context.Context, location string) (accounting.Store, error)

// ChildMain makes the test binary serve as a child process of Processes:
// call it first in TestMain. In a child it posts the invoices and exits; in
// the test process it returns at once.
func ChildMain(connect Connect) {
	loc := os.Getenv(envLocation)
	if loc == "" {
		return
	}
	if err := child(connect, loc, os.Getenv(envDir), os.Getenv(envName)); err != nil {
		fmt.Fprintf(os.Stderr, "accountingtest child: %v\n", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// child says it is ready, waits for the go file so that all children start
// together, and posts every invoice.
func child(connect Connect, loc, dir, name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := connect(ctx, loc)
	if err != nil {
		return err
	}
	defer s.Close()
	if err := os.WriteFile(filepath.Join(dir, "ready-"+name), nil, 0o644); err != nil {
		return err
	}
	if err := waitFor(ctx, filepath.Join(dir, "go")); err != nil {
		return err
	}
	books := accounting.Books{Tenant: tenant, Company: company}
	for i := range processInvoices {
		if _, err := s.DocumentPost(ctx, books, accounting.Invoice, fmt.Sprintf("inv-%d", i), 1); err != nil {
			return err
		}
	}
	return nil
}

func waitFor(ctx context.Context, path string) error {
	for {
		_, err := os.Stat(path)
		if err == nil {
			return nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %s: %w", path, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// Processes starts two processes (this test binary, through ChildMain)
// that post the same invoice versions at once on the database at location,
// then checks that each version was posted once.
func Processes(t *testing.T, connect Connect, location string) {
	ctx := context.Background()
	s, err := connect(ctx, location)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	defer s.Close()
	b := &bundle{s: s, ctx: ctx, books: accounting.Books{Tenant: tenant, Company: company}}
	b.company(t, b.books, "EUR")
	for i := range processInvoices {
		b.create(t, doc(accounting.Invoice, fmt.Sprintf("inv-%d", i), i, 1000))
	}
	dir := t.TempDir()
	var cmds []*exec.Cmd
	var outs []*strings.Builder
	for i := range 2 {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), envLocation+"="+location, envDir+"="+dir, fmt.Sprintf("%s=%d", envName, i))
		out := &strings.Builder{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatalf("start child process: %v", err)
		}
		cmds, outs = append(cmds, cmd), append(outs, out)
	}
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for i := range cmds {
		if err := waitFor(wctx, filepath.Join(dir, fmt.Sprintf("ready-%d", i))); err != nil {
			for _, c := range cmds {
				_ = c.Process.Kill()
				_ = c.Wait()
			}
			t.Fatalf("child %d: %v", i, err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for i, c := range cmds {
		if err := c.Wait(); err != nil {
			t.Errorf("child %d: %v; output: %s", i, err, outs[i])
		}
	}
	if n := b.count(t); n != processInvoices {
		t.Errorf("two processes posting %d invoices at once made %d entries, want %d", processInvoices, n, processInvoices)
	}
	CheckBooks(t, s)
}
