package ops

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// bgsave asks each Redis server behind c (every master of a Cluster) for
// a BGSAVE and waits until each reports a save that finished after the
// request, successfully.
func bgsave(ctx context.Context, c redis.UniversalClient, timeout time.Duration) (*RedisSave, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	out := &RedisSave{}
	var mu sync.Mutex
	save := func(ctx context.Context, node *redis.Client) error {
		s, err := saveNode(ctx, node)
		if err != nil {
			return fmt.Errorf("bgsave on %s: %w", node.Options().Addr, err)
		}
		mu.Lock()
		out.Nodes = append(out.Nodes, *s)
		mu.Unlock()
		return nil
	}
	var err error
	switch c := c.(type) {
	case *redis.ClusterClient:
		err = c.ForEachMaster(ctx, save)
	case *redis.Client:
		err = save(ctx, c)
	default:
		err = fmt.Errorf("a %T client is not supported: use a standalone, Sentinel or Cluster client", c)
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}

// saveNode runs one server's BGSAVE and waits until that save has
// finished. A save is known by INFO persistence's rdb_saves counter
// (Redis 7; LASTSAVE, which counts seconds, on older servers): the
// request is made while no save runs, so the next save to finish is its
// own.
func saveNode(ctx context.Context, c *redis.Client) (*RedisNodeSave, error) {
	var before map[string]string
	var lastBefore int64
	for {
		info, err := persistence(ctx, c)
		if err != nil {
			return nil, err
		}
		if info["rdb_bgsave_in_progress"] == "0" {
			if lastBefore, err = c.LastSave(ctx).Result(); err != nil {
				return nil, fmt.Errorf("read LASTSAVE: %w", err)
			}
			err = c.BgSave(ctx).Err()
			if err == nil {
				before = info
				break
			}
			if !strings.Contains(err.Error(), "in progress") {
				return nil, fmt.Errorf("BGSAVE: %w", err)
			}
		}
		// A save (BGSAVE or an AOF rewrite) runs: it started before the
		// request, so wait for it and ask again.
		if err := pause(ctx); err != nil {
			return nil, err
		}
	}
	for {
		info, err := persistence(ctx, c)
		if err != nil {
			return nil, err
		}
		last, err := c.LastSave(ctx).Result()
		if err != nil {
			return nil, fmt.Errorf("read LASTSAVE: %w", err)
		}
		done := last > lastBefore
		if n, ok := before["rdb_saves"]; ok {
			done = info["rdb_saves"] != n
		}
		if done && info["rdb_bgsave_in_progress"] == "0" {
			status := info["rdb_last_bgsave_status"]
			if status != "ok" {
				return nil, fmt.Errorf("the save failed: rdb_last_bgsave_status is %q", status)
			}
			s := &RedisNodeSave{Addr: c.Options().Addr, LastSave: time.Unix(last, 0).UTC(), Status: status}
			dir, derr := c.ConfigGet(ctx, "dir").Result()
			file, ferr := c.ConfigGet(ctx, "dbfilename").Result()
			if derr == nil && ferr == nil && dir["dir"] != "" {
				s.RDBFile = strings.TrimSuffix(dir["dir"], "/") + "/" + file["dbfilename"]
			}
			return s, nil
		}
		if err := pause(ctx); err != nil {
			return nil, err
		}
	}
}

// persistence returns INFO persistence's fields.
func persistence(ctx context.Context, c *redis.Client) (map[string]string, error) {
	text, err := c.Info(ctx, "persistence").Result()
	if err != nil {
		return nil, fmt.Errorf("read INFO persistence: %w", err)
	}
	out := map[string]string{}
	for _, line := range strings.Split(text, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
			out[k] = v
		}
	}
	return out, nil
}

// pause waits a poll interval, or fails when ctx ends.
func pause(ctx context.Context) error {
	t := time.NewTimer(50 * time.Millisecond)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return errors.New("gave up waiting for the save: " + ctx.Err().Error())
	case <-t.C:
		return nil
	}
}
