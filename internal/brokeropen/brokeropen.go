// Package brokeropen chooses a broker the way the examples and the service
// do: Redis when REDIS_URL is set, else the embedded SQLite store.
package brokeropen

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/broker/redisbroker"
	"github.com/aibos/worker/broker/sqlitebroker"
)

// FromEnv opens Redis at $REDIS_URL (keys under $QUEUE_PREFIX, default
// "aibos:worker") if it is set, else a SQLite store at dbPath. It returns a
// description of what it opened, for logs.
func FromEnv(dbPath string) (broker.Broker, string, error) {
	if url := os.Getenv("REDIS_URL"); url != "" {
		b, err := redisbroker.Open(url, redisbroker.Options{Prefix: os.Getenv("QUEUE_PREFIX")})
		if err != nil {
			return nil, "", fmt.Errorf("open redis broker: %w", err)
		}
		return b, "redis at " + url, nil
	}
	if err := os.MkdirAll(filepath.Dir(dbPath), 0o755); err != nil {
		return nil, "", fmt.Errorf("create data directory for %s: %w", dbPath, err)
	}
	b, err := sqlitebroker.Open(dbPath, sqlitebroker.Options{})
	if err != nil {
		return nil, "", err
	}
	return b, "embedded sqlite store at " + dbPath, nil
}
