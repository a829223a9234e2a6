package redisbroker_test

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/aibos/worker/broker/redisbroker"
	"github.com/aibos/worker/internal/redistest"
)

func TestMain(m *testing.M) {
	code := redistest.Main(m)
	if code == 0 {
		// Clients are closed by test cleanups; none may leave a goroutine.
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
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
