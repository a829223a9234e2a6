package redisbroker_test

import (
	"os"
	"testing"

	"github.com/redis/go-redis/v9"

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
	b, _, _ := newBrokerKeys(t)
	return b
}

// newBrokerKeys is newBroker that also returns a client of the server and
// the broker's key prefix, for tests that look at the keys themselves.
func newBrokerKeys(t testing.TB) (*redisbroker.Broker, *redis.Client, string) {
	t.Helper()
	client, prefix := redistest.Client(t), redistest.Prefix(t)
	b, err := redisbroker.New(client, redisbroker.Options{Prefix: prefix})
	if err != nil {
		t.Fatalf("new broker: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b, client, prefix
}
