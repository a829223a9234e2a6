package redisbroker

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/aibos/worker/broker"
)

// FormatVersion is the version of the stored layout (keys, bodies, scores,
// indexes) this package reads and writes. It is kept in <prefix>:format.
//
// The upgrade rule: releases that share a FormatVersion mix freely on one
// Redis (a rolling upgrade needs nothing). A release that changes the layout
// raises FormatVersion and migrates older data in place the first time it
// checks the format (Ping; the Manager pings at start); a release finding a
// newer format refuses to work on it (ErrNewerFormat) rather than misread
// it. So when the release notes announce a new format, stop the old workers
// before starting the new ones.
//
// Version 1 is the first versioned layout. Data written before versioning
// (no <prefix>:format key) is format 0 and is migrated to 1. Version 2 keeps
// workflow runs and schedules as documents (Commit); see
// migrateSchedulesToDocs. Version 3 adds the tenant index (doc.go): each job
// with a tenant has an entry in its tenant's zset of its state, and its
// state hash, when it has one, holds the tenant; reindexTenants builds them.
// Version 4 orders pending jobs with priority 1 first (before: higher
// numbers first), in the pending zset and the tenant indexes; stored
// priority numbers keep their value and are read with the new meaning.
// Version 5 holds unique keys per tenant: a job with a tenant holds its key
// under broker.UniqueSlot (its 'u' field and its <prefix>:{q}:u: key), a
// job with no tenant under the key itself, as before; migrateUniqueSlots
// moves the keys of older tenant jobs.
// Version 6 fences leases across rollbacks and keeps recovered jobs' places
// (lua/fetch.lua, lua/mark.lua): a job's state hash records its place ('q')
// when fetched, a lease token is never below the Redis clock in
// microseconds, and each queue has an epoch and a write marker per broker;
// all are written as they are first needed (the old token counter stays
// below the clock), so the migration has nothing to rewrite, but a release
// of format 5 must not run beside it (its tokens would repeat after a
// rollback, and it would send recovered jobs to the back of the queue).
// Version 7 keeps each job's attempt history in a list <prefix>:{q}:h:<id>
// (lua/lib.lua), written as attempts end; jobs stored before have none, so
// there is nothing to migrate, but a release of format 6 must not run
// beside it (it would delete jobs and leave their histories behind).
// Version 8 no longer lists a completed job's last attempt in its history:
// completion marks the job's state hash ('la') and readers derive that
// attempt from its fields (lua/lib.lua), a list write and delete fewer per
// job. Jobs completed before keep what they show (their list, or none), so
// there is nothing to migrate, but a release of format 7 must not run
// beside it (its JobGet would not show the last attempt of jobs this
// release completed).
// Version 9 gives a job fetched with no state hash (a plain job: no unique
// key, TTL or earlier attempt) none at all: its lease is an entry of the
// queue's lease hash and, once it completes with no result, its outcome an
// entry of the queue's done hash (lua/lib.lua), each written once per
// batch. Jobs stored before keep their state hashes, which this release
// reads as before, so there is nothing to migrate, but a release of format
// 8 must not run beside it (it would not see those leases: its lease
// recovery would drop the jobs from the active set, and its JobGet would
// show them pending).
const FormatVersion = 9

// ErrNewerFormat: the data was written in a stored format newer than this
// release reads. Upgrade this worker.
var ErrNewerFormat = errors.New("redis data is in a newer stored format than this release reads")

// formatKey names the key holding the stored format version. It has no
// hash tag: it is read and written on its own.
func formatKey(prefix string) string { return prefix + ":format" }

// formatMigrations upgrade data from format i to i+1, indexed by i. Each is
// idempotent: a crash half-way is finished by the next run.
var formatMigrations = map[int64]func(ctx context.Context, b *Broker) error{
	0: func(context.Context, *Broker) error { return nil },
	1: migrateSchedulesToDocs,
	2: func(ctx context.Context, b *Broker) error { return b.reindexTenants(ctx) },
	3: rescorePending,
	4: migrateUniqueSlots,
	5: func(context.Context, *Broker) error { return nil },
	6: func(context.Context, *Broker) error { return nil },
	7: func(context.Context, *Broker) error { return nil },
	8: func(context.Context, *Broker) error { return nil },
}

// reindexSlice is how many entries of a state's zset one reindex script
// call reads: about a millisecond of Redis time.
const reindexSlice = 1000

// reindexTenants builds the tenant index of every queue's jobs (format 2 to
// 3), one slice of a state's zset per script call (lua/tenant_reindex.lua).
// Jobs that change state meanwhile are indexed by the scripts that move
// them, provided no worker of an older format still runs (the upgrade rule).
func (b *Broker) reindexTenants(ctx context.Context) error {
	queues, err := b.client.SMembers(ctx, queuesKey(b.prefix)).Result()
	if err != nil {
		return fmt.Errorf("list queues: %w", err)
	}
	for _, q := range queues {
		k := b.keys(q)
		for _, st := range broker.States {
			for start := int64(0); start >= 0; {
				start, err = b.run(ctx, b.client, scriptReindex, []string{k.stateZset(st), k.job}, string(st), start, reindexSlice).Int64()
				if err != nil {
					return fmt.Errorf("index tenants of %s jobs of %q: %w", st, q, err)
				}
			}
		}
	}
	return nil
}

// formatReady checks the stored format once per Broker, before the first
// write: data written by this release before anything pinged must not be
// mistaken later for data of an older format (a key-less prefix holding
// jobs is format 0, and its migration would run over every job). After the
// first success it costs one atomic load.
func (b *Broker) formatReady(ctx context.Context, op string) error {
	if b.formatOK.Load() {
		return nil
	}
	if err := b.checkFormat(ctx); err != nil {
		return fmt.Errorf("redisbroker: %s: %w", op, err)
	}
	return nil
}

// checkFormat makes sure the data is in FormatVersion: it stamps an unused
// prefix, migrates older data and refuses newer data.
func (b *Broker) checkFormat(ctx context.Context) error {
	if b.formatOK.Load() {
		return nil
	}
	key := formatKey(b.prefix)
	v, err := b.client.Get(ctx, key).Int64()
	switch {
	case errors.Is(err, redis.Nil):
		// Data from before versioning, or nothing yet: both are format 0.
		v = 0
	case err != nil:
		return fmt.Errorf("read stored format %s: %w", key, err)
	}
	if v > FormatVersion {
		return fmt.Errorf("%w: %s is %d, this release reads up to %d", ErrNewerFormat, key, v, FormatVersion)
	}
	for ; v < FormatVersion; v++ {
		if err := formatMigrations[v](ctx, b); err != nil {
			return fmt.Errorf("migrate stored format %d to %d: %w", v, v+1, err)
		}
		if err := b.client.Set(ctx, key, v+1, 0).Err(); err != nil {
			return fmt.Errorf("record stored format %d: %w", v+1, err)
		}
	}
	b.formatOK.Store(true)
	return nil
}

// rescorePending migrates format 3 to 4: it gives every pending job of
// every queue the score of its stored priority under the new order
// (lua/rescore.lua), in batches of a few hundred jobs per script call.
func rescorePending(ctx context.Context, b *Broker) error {
	queues, err := b.client.SMembers(ctx, queuesKey(b.prefix)).Result()
	if err != nil {
		return fmt.Errorf("list queues: %w", err)
	}
	for _, q := range queues {
		k := b.keys(q)
		// ZSCAN returns every member present throughout the scan at least
		// once; rescoring one twice does no harm.
		var cursor uint64
		for {
			ids, next, err := b.client.ZScan(ctx, k.pending, cursor, "", 500).Result()
			if err != nil {
				return fmt.Errorf("scan pending jobs of %q: %w", q, err)
			}
			args := make([]any, 0, len(ids)/2)
			for i := 0; i < len(ids); i += 2 { // member, score pairs
				args = append(args, ids[i])
			}
			if len(args) > 0 {
				if err := b.run(ctx, b.client, scriptRescore, []string{k.pending, k.job}, args...).Err(); err != nil {
					return fmt.Errorf("rescore pending jobs of %q: %w", q, err)
				}
			}
			if cursor = next; cursor == 0 {
				break
			}
		}
	}
	return nil
}

// uniqueStates are the states whose jobs' unique keys migrateUniqueSlots
// moves: the unfinished ones, which hold their key, and those JobRetry can
// bring back, which take it again. Completed jobs never use theirs again
// (their 'u' reads back the same either way).
var uniqueStates = []broker.State{broker.StateScheduled, broker.StatePending, broker.StateActive,
	broker.StateDead, broker.StateCancelled, broker.StateExpired}

// migrateUniqueSlots migrates format 4 to 5: the unique key of every job
// with a tenant in uniqueStates moves to its tenant's slot
// (lua/unique_slot.lua), one slice of a state's zset per script call, so
// that a key an old job holds keeps holding. Jobs with no tenant keep their
// key as it is. As for reindexTenants, jobs that change state meanwhile may
// be missed unless the old workers are stopped (the upgrade rule).
func migrateUniqueSlots(ctx context.Context, b *Broker) error {
	queues, err := b.client.SMembers(ctx, queuesKey(b.prefix)).Result()
	if err != nil {
		return fmt.Errorf("list queues: %w", err)
	}
	for _, q := range queues {
		k := b.keys(q)
		for _, st := range uniqueStates {
			for start := int64(0); ; start += reindexSlice {
				ids, err := b.client.ZRange(ctx, k.stateZset(st), start, start+reindexSlice-1).Result()
				if err != nil {
					return fmt.Errorf("read %s jobs of %q: %w", st, q, err)
				}
				if err := b.moveUniqueKeys(ctx, k, ids); err != nil {
					return fmt.Errorf("move unique keys of %s jobs of %q: %w", st, q, err)
				}
				if len(ids) < reindexSlice {
					break
				}
			}
		}
	}
	return nil
}

// moveUniqueKeys moves the unique keys of the tenant jobs among ids to
// their slots: one pipeline reads their keys and tenants, one script call
// moves those that are not in a slot yet.
func (b *Broker) moveUniqueKeys(ctx context.Context, k queueKeys, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	pipe := b.client.Pipeline()
	reads := make([]*redis.SliceCmd, len(ids))
	for i, id := range ids {
		reads[i] = pipe.HMGet(ctx, k.job+id, "u", "tn")
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return err
	}
	var args []any
	for i, r := range reads {
		v := r.Val()
		u, _ := v[0].(string)
		tn, _ := v[1].(string)
		if slot := broker.UniqueSlot(tn, u); slot != u && broker.UniqueKeyOfSlot(u) == u {
			args = append(args, ids[i], u, slot)
		}
	}
	if len(args) == 0 {
		return nil
	}
	return b.run(ctx, b.client, scriptSlot, []string{k.job, k.unique}, args...).Err()
}
