package pgstore_test

import (
	"context"
	"os"
	"sync"
	"testing"

	"github.com/aibos/worker/accounting"
	"github.com/aibos/worker/accounting/accountingtest"
	"github.com/aibos/worker/accounting/pgstore"
	"github.com/aibos/worker/internal/pgtest"
)

func TestMain(m *testing.M) {
	accountingtest.ChildMain(connect)
	os.Exit(pgtest.Main(m))
}

func connect(ctx context.Context, url string) (accounting.Store, error) {
	return pgstore.Open(ctx, url)
}

// TestTwoProcesses posts the same invoice versions from two processes at
// once.
func TestTwoProcesses(t *testing.T) {
	accountingtest.Processes(t, connect, pgtest.DatabaseURL(t))
}

func TestConformance(t *testing.T) {
	var urls sync.Map // test name + "/" + database name → database URL
	accountingtest.Run(t, func(t *testing.T, name string) accounting.Store {
		key := t.Name() + "/" + name
		u, ok := urls.Load(key)
		if !ok {
			u, _ = urls.LoadOrStore(key, pgtest.DatabaseURL(t))
		}
		s, err := pgstore.Open(context.Background(), u.(string))
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	})
}

func TestOpenBadURL(t *testing.T) {
	if _, err := pgstore.Open(context.Background(), "mysql://x"); err == nil {
		t.Fatal("opened a mysql:// url")
	}
}
