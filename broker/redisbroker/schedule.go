package redisbroker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"

	"time"

	"github.com/redis/go-redis/v9"

	"github.com/aibos/worker/broker"
)

var _ broker.ScheduleStore = (*Broker)(nil)

// The schedule scripts; see lua/schedule_*.lua.
var (
	scriptScheduleUpsert     = loadScript("schedule_upsert.lua")
	scriptSchedulePause      = loadScript("schedule_pause.lua")
	scriptScheduleClaim      = loadScript("schedule_claim.lua")
	scriptScheduleReschedule = loadScript("schedule_reschedule.lua")
)

// Schedules live in two places. A schedule's definition and claim state
// share one hash under its target queue's hash tag,
// <prefix>:{queue}:cron:<name>, so the claim script checks the last tick,
// inserts the job and records the tick in one Cluster slot. A global hash
// <prefix>:schedules maps each name to its queue, for lookups and listing.

// schedulesKey names the global name → queue index. It has no hash tag: it
// is written outside the scripts, with idempotent HSET/HDEL.
func schedulesKey(prefix string) string { return prefix + ":schedules" }

// scheduleKey names a schedule's hash in its queue's slot.
func scheduleKey(prefix, queue, name string) string {
	return prefix + ":{" + queue + "}:cron:" + name
}

// ScheduleUpsert creates or replaces a schedule; see broker.ScheduleStore.
// A schedule that moves to another queue takes its created time, version and
// paused flag along; its claim state starts afresh (Since is now).
func (b *Broker) ScheduleUpsert(ctx context.Context, s *broker.Schedule) (*broker.Schedule, error) {
	if err := b.open("upsert schedule"); err != nil {
		return nil, err
	}
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("redisbroker: upsert schedule: %w", err)
	}
	def := *s
	def.Job.ID, def.Job.Delay, def.Job.RunAt = "", 0, time.Time{}
	body, err := json.Marshal(scheduleDef(&def))
	if err != nil {
		return nil, fmt.Errorf("redisbroker: upsert schedule %q: encode: %w", s.Name, err)
	}
	queue := s.Job.Queue
	oldQueue, err := b.client.HGet(ctx, schedulesKey(b.prefix), s.Name).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("redisbroker: upsert schedule %q: look up: %w", s.Name, err)
	}
	inherit := []any{"0", "", "0"}
	moved := oldQueue != "" && oldQueue != queue
	if moved {
		v, err := b.client.HMGet(ctx, scheduleKey(b.prefix, oldQueue, s.Name), "ver", "created", "paused").Result()
		if err != nil {
			return nil, fmt.Errorf("redisbroker: upsert schedule %q: read old queue: %w", s.Name, err)
		}
		for i, x := range v {
			if str, ok := x.(string); ok {
				inherit[i] = str
			}
		}
	}
	timing := s.Spec + "\x00" + s.TimeZone + "\x00" + queue
	key := scheduleKey(b.prefix, queue, s.Name)
	res, err := scriptScheduleUpsert.Run(ctx, b.client, []string{key}, string(body), timing, inherit[0], inherit[1], inherit[2]).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("redisbroker: upsert schedule %q: %w", s.Name, err)
	}
	if err := b.client.HSet(ctx, schedulesKey(b.prefix), s.Name, queue).Err(); err != nil {
		return nil, fmt.Errorf("redisbroker: upsert schedule %q: index: %w", s.Name, err)
	}
	if moved {
		if err := b.client.Del(ctx, scheduleKey(b.prefix, oldQueue, s.Name)).Err(); err != nil {
			return nil, fmt.Errorf("redisbroker: upsert schedule %q: remove from queue %q: %w", s.Name, oldQueue, err)
		}
	}
	_ = b.registerQueue(ctx, queue)
	fields := map[string]string{"def": string(body), "ver": res[0], "created": res[1], "updated": res[2],
		"paused": res[3], "since": res[4], "last": res[5]}
	return decodeSchedule(fields)
}

// scheduleDef is the part of a Schedule the caller sets: what the def field
// stores.
func scheduleDef(s *broker.Schedule) *broker.Schedule {
	return &broker.Schedule{Name: s.Name, Spec: s.Spec, TimeZone: s.TimeZone, Job: s.Job,
		CatchUp: s.CatchUp, CatchUpWindow: s.CatchUpWindow}
}

// decodeSchedule builds a Schedule from its hash fields.
func decodeSchedule(f map[string]string) (*broker.Schedule, error) {
	var s broker.Schedule
	if err := json.Unmarshal([]byte(f["def"]), &s); err != nil {
		return nil, fmt.Errorf("decode schedule definition: %w", err)
	}
	ms := func(k string) (time.Time, error) {
		n, err := strconv.ParseInt(f[k], 10, 64)
		if err != nil {
			return time.Time{}, fmt.Errorf("decode schedule %q: field %s: %w", s.Name, k, err)
		}
		if n == 0 {
			return time.Time{}, nil
		}
		return fromMillis(n), nil
	}
	var err error
	if s.Version, err = strconv.ParseInt(f["ver"], 10, 64); err != nil {
		return nil, fmt.Errorf("decode schedule %q: version: %w", s.Name, err)
	}
	s.Paused = f["paused"] == "1"
	for k, dst := range map[string]*time.Time{"created": &s.CreatedAt, "updated": &s.UpdatedAt, "since": &s.Since, "last": &s.LastTick} {
		if *dst, err = ms(k); err != nil {
			return nil, err
		}
	}
	return &s, nil
}

// scheduleQueue returns the queue a schedule lives in.
func (b *Broker) scheduleQueue(ctx context.Context, name string) (string, error) {
	if err := broker.ValidateScheduleName(name); err != nil {
		return "", fmt.Errorf("%w: %v", broker.ErrInvalidJob, err)
	}
	q, err := b.client.HGet(ctx, schedulesKey(b.prefix), name).Result()
	if errors.Is(err, redis.Nil) {
		return "", broker.ErrScheduleNotFound
	}
	return q, err
}

// ScheduleGet returns one schedule; see broker.ScheduleStore.
func (b *Broker) ScheduleGet(ctx context.Context, name string) (*broker.Schedule, error) {
	if err := b.open("get schedule"); err != nil {
		return nil, err
	}
	q, err := b.scheduleQueue(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("redisbroker: get schedule %q: %w", name, err)
	}
	f, err := b.client.HGetAll(ctx, scheduleKey(b.prefix, q, name)).Result()
	if err != nil {
		return nil, fmt.Errorf("redisbroker: get schedule %q: %w", name, err)
	}
	if len(f) == 0 {
		return nil, fmt.Errorf("redisbroker: get schedule %q: %w", name, broker.ErrScheduleNotFound)
	}
	s, err := decodeSchedule(f)
	if err != nil {
		return nil, fmt.Errorf("redisbroker: get schedule %q: %w", name, err)
	}
	return s, nil
}

// ScheduleList returns every schedule, sorted by name, read in one pipeline
// (split by slot under Cluster), and the Redis clock.
func (b *Broker) ScheduleList(ctx context.Context) (*broker.ScheduleListResult, error) {
	if err := b.open("list schedules"); err != nil {
		return nil, err
	}
	index, err := b.client.HGetAll(ctx, schedulesKey(b.prefix)).Result()
	if err != nil {
		return nil, fmt.Errorf("redisbroker: list schedules: %w", err)
	}
	names := make([]string, 0, len(index))
	for n := range index {
		names = append(names, n)
	}
	sort.Strings(names)
	cmds := make([]*redis.MapStringStringCmd, len(names))
	var now *redis.TimeCmd
	_, err = b.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, n := range names {
			cmds[i] = p.HGetAll(ctx, scheduleKey(b.prefix, index[n], n))
		}
		now = p.Time(ctx)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("redisbroker: list schedules: %w", err)
	}
	out := &broker.ScheduleListResult{Now: now.Val().UTC(), Schedules: make([]*broker.Schedule, 0, len(names))}
	for i, c := range cmds {
		if len(c.Val()) == 0 {
			continue // deleted between the two reads
		}
		s, err := decodeSchedule(c.Val())
		if err != nil {
			return nil, fmt.Errorf("redisbroker: list schedules: %q: %w", names[i], err)
		}
		out.Schedules = append(out.Schedules, s)
	}
	return out, nil
}

// ScheduleDelete removes a schedule; see broker.ScheduleStore.
func (b *Broker) ScheduleDelete(ctx context.Context, name string) error {
	if err := b.open("delete schedule"); err != nil {
		return err
	}
	q, err := b.scheduleQueue(ctx, name)
	if err != nil {
		return fmt.Errorf("redisbroker: delete schedule %q: %w", name, err)
	}
	// The claim hash goes first: a scheduler that still finds the name in
	// the index then gets "missing" from the claim script.
	if err := b.client.Del(ctx, scheduleKey(b.prefix, q, name)).Err(); err != nil {
		return fmt.Errorf("redisbroker: delete schedule %q: %w", name, err)
	}
	if err := b.client.HDel(ctx, schedulesKey(b.prefix), name).Err(); err != nil {
		return fmt.Errorf("redisbroker: delete schedule %q: index: %w", name, err)
	}
	return nil
}

// SchedulePause sets or clears a schedule's paused flag; see
// broker.ScheduleStore.
func (b *Broker) SchedulePause(ctx context.Context, name string, paused bool) error {
	if err := b.open("pause schedule"); err != nil {
		return err
	}
	q, err := b.scheduleQueue(ctx, name)
	if err != nil {
		return fmt.Errorf("redisbroker: pause schedule %q: %w", name, err)
	}
	flag := "0"
	if paused {
		flag = "1"
	}
	ok, err := scriptSchedulePause.Run(ctx, b.client, []string{scheduleKey(b.prefix, q, name)}, flag).Int()
	if err != nil {
		return fmt.Errorf("redisbroker: pause schedule %q: %w", name, err)
	}
	if ok == 0 {
		return fmt.Errorf("redisbroker: pause schedule %q: %w", name, broker.ErrScheduleNotFound)
	}
	return nil
}

// ScheduleClaim claims a tick and inserts its job in one script call; see
// broker.ScheduleStore.
func (b *Broker) ScheduleClaim(ctx context.Context, p *broker.ScheduleClaimParams) (*broker.ScheduleClaimResult, error) {
	if err := b.open("claim schedule tick"); err != nil {
		return nil, err
	}
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("redisbroker: claim schedule tick: %w", err)
	}
	q, err := b.scheduleQueue(ctx, p.Name)
	if err != nil {
		return nil, fmt.Errorf("redisbroker: claim tick of schedule %q: %w", p.Name, err)
	}
	j := p.Job
	if j.Queue != q {
		return nil, fmt.Errorf("redisbroker: claim tick of schedule %q: %w", p.Name,
			&broker.InvalidError{Index: -1, Field: "job.queue", Reason: fmt.Sprintf("%q is not the schedule's queue %q", j.Queue, q)})
	}
	headers := ""
	if len(j.Headers) > 0 {
		h, err := json.Marshal(j.Headers)
		if err != nil {
			return nil, fmt.Errorf("redisbroker: claim tick of schedule %q: encode headers: %w", p.Name, err)
		}
		headers = string(h)
	}
	k := b.keys(q)
	keys := []string{scheduleKey(b.prefix, q, p.Name), k.scheduled, k.pending, k.seq, k.ttl, k.job, k.unique}
	tick := p.Tick.UnixMilli()
	reply, err := scriptScheduleClaim.Run(ctx, b.client, keys, tick, p.Version,
		j.ID, j.Type, string(j.Data), j.Priority, j.MaxAttempts, j.TenantID, j.CompanyID, headers,
		j.UniqueKey, int64(j.Timeout), millis(j.TTL), j.MaxQueueLength).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("redisbroker: claim tick of schedule %q: %w", p.Name, err)
	}
	if len(reply) != 3 {
		return nil, fmt.Errorf("redisbroker: claim tick of schedule %q: unexpected reply %v", p.Name, reply)
	}
	if reply[0] == "missing" {
		return nil, fmt.Errorf("redisbroker: claim tick of schedule %q: %w", p.Name, broker.ErrScheduleNotFound)
	}
	now, _ := strconv.ParseInt(reply[1], 10, 64)
	last, _ := strconv.ParseInt(reply[2], 10, 64)
	res := &broker.ScheduleClaimResult{Status: broker.ClaimStatus(reply[0]), Now: fromMillis(now)}
	if last > 0 {
		res.LastTick = fromMillis(last)
	}
	if res.Status == broker.ClaimOK {
		res.Job = claimedJob(j, tick, now)
	}
	return res, nil
}

// claimedJob is the job the claim script stored, built from its params.
func claimedJob(p *broker.JobInsertParams, tick, now int64) *broker.Job {
	j := newJob(p, fromMillis(now))
	j.RunAt = fromMillis(tick)
	if ttl := millis(p.TTL); ttl > 0 {
		j.ExpiresAt = fromMillis(tick + ttl)
	}
	return j
}

// JobReschedule moves a scheduled or pending job to runAt; see
// broker.ScheduleStore.
func (b *Broker) JobReschedule(ctx context.Context, queue, id string, runAt time.Time) (*broker.Job, error) {
	if err := b.open("reschedule job"); err != nil {
		return nil, err
	}
	if err := broker.ValidateQueueName(queue); err != nil {
		return nil, fmt.Errorf("redisbroker: reschedule job: %w: %v", broker.ErrInvalidJob, err)
	}
	k := b.keys(queue)
	reply, err := scriptScheduleReschedule.Run(ctx, b.client, []string{k.scheduled, k.pending, k.seq, k.ttl, k.job},
		id, runAt.UnixMilli()).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("redisbroker: reschedule job %s in %q: %w", id, queue, err)
	}
	switch reply[0] {
	case "missing":
		return nil, fmt.Errorf("redisbroker: reschedule job %s in %q: %w", id, queue, broker.ErrNotFound)
	case "state":
		return nil, fmt.Errorf("redisbroker: reschedule job %s in %q: it is %s: %w", id, queue, reply[1], broker.ErrWrongState)
	}
	return b.JobGet(ctx, queue, id)
}
