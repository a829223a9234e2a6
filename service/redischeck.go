package service

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisDurabilityWarnings reads the settings of the Redis server that can
// lose jobs and returns a warning for each: an eviction policy other than
// noeviction drops keys (jobs) when memory runs out, and a server with
// neither AOF nor RDB snapshots loses everything when it restarts. A
// server that refuses CONFIG (a managed Redis may) is reported as
// unchecked rather than as unsafe.
func redisDurabilityWarnings(ctx context.Context, c redis.UniversalClient) []string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	get := func(name string) (string, error) {
		m, err := c.ConfigGet(ctx, name).Result()
		if err != nil {
			return "", err
		}
		return m[name], nil
	}
	policy, err := get("maxmemory-policy")
	if err != nil {
		return []string{fmt.Sprintf("cannot check that Redis keeps jobs (CONFIG GET refused: %v): make sure maxmemory-policy is noeviction and persistence (AOF or RDB) is on", err)}
	}
	var out []string
	if policy != "noeviction" {
		out = append(out, fmt.Sprintf("Redis maxmemory-policy is %q: when memory runs out Redis deletes keys, jobs among them; set it to noeviction", policy))
	}
	aof, err1 := get("appendonly")
	save, err2 := get("save")
	if err1 == nil && err2 == nil && aof != "yes" && save == "" {
		out = append(out, "Redis has no persistence (appendonly no, no save points): a restart loses every job; turn on AOF (appendonly yes) or RDB snapshots")
	}
	return out
}

// logStoreWarnings logs what the store's check found.
func logStoreWarnings(log *slog.Logger, warnings []string) {
	for _, w := range warnings {
		log.Warn(w)
	}
}
