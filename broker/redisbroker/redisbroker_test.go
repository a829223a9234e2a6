package redisbroker_test

import (
	"flag"
	"fmt"
	"os"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/aibos/worker/broker/redisbroker"
	"github.com/aibos/worker/internal/redistest"
)

func TestMain(m *testing.M) {
	// ExampleOpen finds its server as the examples do, in REDIS_URL.
	if url, err := redistest.SharedURL(); err == nil {
		_ = os.Setenv("REDIS_URL", url)
		_ = os.Setenv("QUEUE_PREFIX", fmt.Sprintf("example-%d", os.Getpid()))
	} else if os.Getenv("CI") == "" {
		fmt.Fprintf(os.Stderr, "skipping ExampleOpen: %v\n", err)
		_ = flag.Set("test.skip", "^ExampleOpen$")
	}
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
	b, err := redisbroker.New(client, redisbroker.Config{Prefix: prefix})
	if err != nil {
		t.Fatalf("new broker: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b, client, prefix
}
