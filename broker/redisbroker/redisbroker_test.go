package redisbroker_test

import (
	"os"
	"testing"

	"github.com/aibos/worker/broker/redisbroker"
	"github.com/aibos/worker/internal/redistest"
)

func TestMain(m *testing.M) {
	os.Exit(redistest.Main(m))
}

// newBroker returns a broker on the shared test server with a key prefix of
// its own, closed when the test ends.
func newBroker(t testing.TB) *redisbroker.Broker {
	t.Helper()
	b, err := redisbroker.New(redistest.Client(t), redisbroker.Options{Prefix: redistest.Prefix(t)})
	if err != nil {
		t.Fatalf("new broker: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}
