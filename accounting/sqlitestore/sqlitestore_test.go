package sqlitestore_test

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/aibos/worker/accounting"
	"github.com/aibos/worker/accounting/accountingtest"
	"github.com/aibos/worker/accounting/sqlitestore"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	accountingtest.ChildMain(connect)
	goleak.VerifyTestMain(m)
}

func connect(ctx context.Context, path string) (accounting.Store, error) {
	return sqlitestore.Open(ctx, path)
}

// TestTwoProcesses posts the same invoice versions from two processes at
// once.
func TestTwoProcesses(t *testing.T) {
	accountingtest.Processes(t, connect, filepath.Join(t.TempDir(), "books.db"))
}

func TestConformance(t *testing.T) {
	var paths sync.Map // test name + "/" + database name → file
	accountingtest.Run(t, func(t *testing.T, name string) accounting.Store {
		p, _ := paths.LoadOrStore(t.Name()+"/"+name, filepath.Join(t.TempDir(), name+".db"))
		s, err := sqlitestore.Open(context.Background(), p.(string))
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	})
}

// TestOpenRefusesDirectory checks that a path naming a directory is a
// clear error.
func TestOpenRefusesDirectory(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "books.db"), 0o755); err != nil {
		t.Fatal(err)
	}
	if s, err := sqlitestore.Open(context.Background(), filepath.Join(dir, "books.db")); err == nil {
		_ = s.Close()
		t.Fatal("opened a directory as the books file")
	}
}
