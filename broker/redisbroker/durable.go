package redisbroker

import (
	"context"
	"errors"
	"fmt"
	"strings"
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
	FCall(ctx context.Context, function string, keys []string, args ...any) *redis.Cmd
	FunctionLoad(ctx context.Context, code string) *redis.StringCmd
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
	conn, err := b.queueConn(ctx, queue)
	if err != nil {
		return err
	}
	err = write(conn)
	if redis.HasErrorPrefix(err, "MOVED") {
		// The slot moved (a failover or a resharding) since the client
		// last read the slot map; nothing was written, so try once more
		// on the node the reply names, once the client's map has it.
		_ = conn.Close()
		if conn, err = b.movedConn(ctx, queue, err); err != nil {
			return err
		}
		err = write(conn)
	}
	defer conn.Close()
	if err != nil {
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

// queueConn returns a connection of its own to the master holding queue.
func (b *Broker) queueConn(ctx context.Context, queue string) (*redis.Conn, error) {
	switch c := b.client.(type) {
	case *redis.Client:
		return c.Conn(), nil
	case *redis.ClusterClient:
		node, err := c.MasterForKey(ctx, b.keys(queue).pending)
		if err != nil {
			return nil, fmt.Errorf("find the master of %q: %w", queue, err)
		}
		return node.Conn(), nil
	}
	return nil, fmt.Errorf("durable replicas need a *redis.Client or *redis.ClusterClient, not %T", b.client)
}

// movedConn returns a connection of its own to the node a MOVED reply
// names, once the Cluster client's slot map has it there (the reload is
// asynchronous): a second or the end of ctx at most.
func (b *Broker) movedConn(ctx context.Context, queue string, moved error) (*redis.Conn, error) {
	cc, ok := b.client.(*redis.ClusterClient)
	f := strings.Fields(moved.Error())
	if !ok || len(f) != 3 {
		return nil, moved
	}
	cc.ReloadState(ctx)
	deadline := time.Now().Add(time.Second)
	for {
		node, err := cc.MasterForKey(ctx, b.keys(queue).pending)
		if err == nil && node.Options().Addr == f[2] {
			return node.Conn(), nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return nil, fmt.Errorf("the slot of %q moved to %s, which the slot map does not show yet: %w", queue, f[2], moved)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
