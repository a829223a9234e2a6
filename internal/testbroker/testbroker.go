// Package testbroker opens fresh, isolated brokers of every kind for tests,
// so a test of a package above the broker seam runs on each engine.
package testbroker

import (
	"path/filepath"
	"testing"

	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/broker/redisbroker"
	"github.com/aibos/worker/broker/sqlitebroker"
	"github.com/aibos/worker/internal/redistest"
)

// Engine names a kind of broker and opens fresh ones.
type Engine struct {
	Name string
	Open func(t testing.TB) broker.Broker
}

// Engines lists every broker kind.
var Engines = []Engine{{"redis", Redis}, {"sqlite", SQLite}}

// Redis returns a broker on the test's shared redis-server (see redistest)
// under a key prefix of its own, closed when the test ends.
func Redis(t testing.TB) broker.Broker {
	t.Helper()
	b, err := redisbroker.New(redistest.Client(t), redisbroker.Config{Prefix: redistest.Prefix(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// SQLite returns a broker on a new file in the test's temporary directory,
// closed when the test ends.
func SQLite(t testing.TB) broker.Broker {
	t.Helper()
	b, err := sqlitebroker.Open(filepath.Join(t.TempDir(), "worker.db"), sqlitebroker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// Each runs f against a fresh broker of every kind, as parallel subtests
// named after the kinds.
func Each(t *testing.T, f func(t *testing.T, b broker.Broker)) {
	t.Helper()
	for _, e := range Engines {
		t.Run(e.Name, func(t *testing.T) {
			t.Parallel()
			f(t, e.Open(t))
		})
	}
}
