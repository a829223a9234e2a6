// Package rediscount tells which Redis commands a go-redis client sends,
// for the tests and benchmarks that pin or report what a piece of work
// costs in commands.
package rediscount

import (
	"context"

	"github.com/redis/go-redis/v9"
)

// Hook is a go-redis hook (Client.AddHook) that calls itself with the
// name of each command sent, in lower case, a pipeline's one by one, from
// the goroutine sending it. A new connection's handshake (HELLO, CLIENT
// SETINFO and the like) is left out: go-redis sends it once per pooled
// connection, not per unit of work.
type Hook func(name string)

// DialHook leaves dialling as it is.
func (Hook) DialHook(next redis.DialHook) redis.DialHook { return next }

// ProcessHook reports cmd, then sends it.
func (h Hook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.see(cmd)
		return next(ctx, cmd)
	}
}

// ProcessPipelineHook reports each of cmds, then sends them.
func (h Hook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, cmd := range cmds {
			h.see(cmd)
		}
		return next(ctx, cmds)
	}
}

func (h Hook) see(cmd redis.Cmder) {
	if name := cmd.Name(); name != "hello" && name != "client" {
		h(name)
	}
}
