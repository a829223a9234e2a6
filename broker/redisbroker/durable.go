package redisbroker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrNotReplicated: a write was applied by the Redis master, but fewer
// replicas than Config.DurableReplicas confirmed it within
// Config.DurableTimeout (WAIT). The write is on the master and may or may
// not survive a failover: retry it if it must, knowing that the jobs may
// exist (a retry with the same job ids returns broker.ErrDuplicate for
// those that do).
var ErrNotReplicated = errors.New("write not confirmed by enough replicas")

// defaultDurableTimeout is Config.DurableTimeout's default.
const defaultDurableTimeout = time.Second

// scriptRunner is what scripts run on: the broker's client, or one
// connection of it (durably).
type scriptRunner interface {
	redis.Scripter
	Pipelined(ctx context.Context, fn func(redis.Pipeliner) error) ([]redis.Cmder, error)
}

// durably runs write, which sends the writes of one call on queue through
// via, and with Config.DurableReplicas returns only once that many replicas
// confirmed them. WAIT counts the writes of the connection it is sent on,
// so then write runs on a connection of its own, to queue's master on a
// Cluster, and WAIT follows on it. A WAIT that times out with fewer
// replicas is ErrNotReplicated, never a silent success.
func (b *Broker) durably(ctx context.Context, queue string, write func(via scriptRunner) error) error {
	if b.durable == 0 {
		return write(b.client)
	}
	var node *redis.Client
	switch c := b.client.(type) {
	case *redis.Client:
		node = c
	case *redis.ClusterClient:
		var err error
		if node, err = c.MasterForKey(ctx, b.keys(queue).pending); err != nil {
			return fmt.Errorf("find the master of %q: %w", queue, err)
		}
	default:
		return fmt.Errorf("durable replicas need a *redis.Client or *redis.ClusterClient, not %T", b.client)
	}
	conn := node.Conn()
	defer conn.Close()
	if err := write(conn); err != nil {
		return err
	}
	n, err := conn.Wait(ctx, b.durable, b.durableTimeout).Result()
	if err != nil {
		return fmt.Errorf("wait for %d replicas to confirm: %w", b.durable, err)
	}
	if n < int64(b.durable) {
		return fmt.Errorf("%w: %d of %d replicas confirmed within %v", ErrNotReplicated, n, b.durable, b.durableTimeout)
	}
	return nil
}
