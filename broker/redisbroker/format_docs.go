package redisbroker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/aibos/worker/broker"
)

// migrateSchedulesToDocs upgrades format 1 to 2: workflow runs and
// schedules moved from broker-specific keys to the documents of Commit,
// where packages workflow and schedule keep them. Each schedule (the hash
// <prefix>:{q}:cron:<name>, listed in <prefix>:schedules) becomes the
// documents package schedule reads: kind "schedule" in its queue's scope,
// listed in the index "all", and its entry (kind "schedule-queue") in the
// registry scope "_schedules". Runs of the old layout (<prefix>:{q}:wf:*) are not
// converted: drain running workflows before upgrading (see the package
// documentation). Writing a document that exists is skipped, so a run cut
// short is finished by the next.
func migrateSchedulesToDocs(ctx context.Context, b *Broker) error {
	index := b.prefix + ":schedules"
	names, err := b.client.HGetAll(ctx, index).Result()
	if err != nil {
		return fmt.Errorf("read %s: %w", index, err)
	}
	for name, queue := range names {
		old := b.prefix + ":{" + queue + "}:cron:" + name
		f, err := b.client.HGetAll(ctx, old).Result()
		if err != nil {
			return fmt.Errorf("read schedule %s: %w", old, err)
		}
		if len(f) > 0 {
			sc, err := oldSchedule(f)
			if err != nil {
				return err
			}
			if err := b.putDoc(ctx, queue, "schedule", name, sc); err != nil {
				return err
			}
		}
		if err := b.putDoc(ctx, "_schedules", "schedule-queue", name, queue); err != nil {
			return err
		}
		if err := b.client.Del(ctx, old).Err(); err != nil {
			return fmt.Errorf("remove schedule %s: %w", old, err)
		}
		if err := b.client.HDel(ctx, index, name).Err(); err != nil {
			return fmt.Errorf("remove schedule %q from %s: %w", name, index, err)
		}
	}
	return nil
}

// putDoc writes version 1 of the document (kind, name) in scope, listed in
// the index "all", unless it exists.
func (b *Broker) putDoc(ctx context.Context, scope, kind, name string, body any) error {
	key := b.docKey(scope, kind, name)
	n, err := b.client.Exists(ctx, key).Result()
	if err != nil || n == 1 {
		return err
	}
	v, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("encode schedule %q: %w", name, err)
	}
	if err := b.client.HSet(ctx, key, "v", "1", "b", string(v), "x", `["all"]`).Err(); err != nil {
		return fmt.Errorf("write %s: %w", key, err)
	}
	if err := b.client.ZAdd(ctx, b.prefix+":{"+scope+"}:x:"+kind+":all", redis.Z{Member: name}).Err(); err != nil {
		return fmt.Errorf("index %s: %w", key, err)
	}
	return nil
}

// oldSchedule decodes a schedule hash of format 1: def (the caller's part
// as JSON), ver, paused ('0' | '1'), and created, updated, since and last
// in unix ms.
func oldSchedule(f map[string]string) (*broker.Schedule, error) {
	var s broker.Schedule
	if err := json.Unmarshal([]byte(f["def"]), &s); err != nil {
		return nil, fmt.Errorf("decode schedule definition: %w", err)
	}
	var err error
	if s.Version, err = strconv.ParseInt(f["ver"], 10, 64); err != nil {
		return nil, fmt.Errorf("decode schedule %q: version: %w", s.Name, err)
	}
	s.Paused = f["paused"] == "1"
	for k, dst := range map[string]*time.Time{"created": &s.CreatedAt, "updated": &s.UpdatedAt, "since": &s.Since, "last": &s.LastTick} {
		n, err := strconv.ParseInt(f[k], 10, 64)
		if err != nil {
			return nil, errors.Join(fmt.Errorf("decode schedule %q: field %s", s.Name, k), err)
		}
		if n > 0 {
			*dst = fromMillis(n)
		}
	}
	return &s, nil
}
