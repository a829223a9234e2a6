package redisbroker

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/aibos/worker/broker"
)

var _ broker.FairBroker = (*Broker)(nil)

// QueueFairSet stores the queue's fair policy in its fair hash, in one
// script (lua/fair_set.lua); see broker.FairBroker.
func (b *Broker) QueueFairSet(ctx context.Context, p *broker.FairPolicy) error {
	if err := b.open("set fair policy"); err != nil {
		return err
	}
	if err := p.Validate(); err != nil {
		return fmt.Errorf("redisbroker: set fair policy: %w", err)
	}
	if err := b.registerQueue(ctx, p.Queue); err != nil {
		return fmt.Errorf("redisbroker: set fair policy of %q: %w", p.Queue, err)
	}
	k := b.keys(p.Queue)
	args := make([]any, 0, 4+2*len(p.TypeRates)+4*len(p.Tenants))
	args = append(args, boolArg(p.Fair), p.MaxActive, rateArg(p.TenantRate), len(p.TypeRates))
	for typ, r := range p.TypeRates {
		args = append(args, typ, rateArg(r))
	}
	for tn, s := range p.Tenants {
		args = append(args, tn, max(s.Weight, 1), s.MaxActive, rateArg(s.Rate))
	}
	if err := b.run(ctx, b.client, scriptFairSet, []string{k.fair, k.seq, k.fairTags}, args...).Err(); err != nil {
		return fmt.Errorf("redisbroker: set fair policy of %q: %w", p.Queue, err)
	}
	// A lifted cap or rate may let jobs held back be leased now.
	if err := b.wakeIdle(ctx, p.Queue); err != nil {
		return fmt.Errorf("redisbroker: set fair policy of %q: wake workers: %w", p.Queue, err)
	}
	return nil
}

// QueueFairGet reads the queue's fair policy; see broker.FairBroker.
func (b *Broker) QueueFairGet(ctx context.Context, queue string) (*broker.FairPolicy, error) {
	if err := b.open("get fair policy"); err != nil {
		return nil, err
	}
	if err := broker.ValidateQueueName(queue); err != nil {
		return nil, fmt.Errorf("redisbroker: get fair policy: %w: %v", broker.ErrInvalidJob, err)
	}
	h, err := b.client.HGetAll(ctx, b.keys(queue).fair).Result()
	if err != nil {
		return nil, fmt.Errorf("redisbroker: get fair policy of %q: %w", queue, err)
	}
	p := &broker.FairPolicy{Queue: queue, Fair: h["on"] == "1"}
	num := func(field, v string) (int, error) {
		n, err := strconv.Atoi(v)
		if err != nil {
			return 0, fmt.Errorf("redisbroker: get fair policy of %q: field %s holds %q, not a number", queue, field, v)
		}
		return n, nil
	}
	if v, ok := h["cap"]; ok {
		if p.MaxActive, err = num("cap", v); err != nil {
			return nil, err
		}
	}
	rate := func(field, v string) (broker.Rate, error) {
		l, per, ok := strings.Cut(v, "|")
		n, err1 := strconv.Atoi(l)
		us, err2 := strconv.ParseInt(per, 10, 64)
		if !ok || err1 != nil || err2 != nil {
			return broker.Rate{}, fmt.Errorf("redisbroker: get fair policy of %q: field %s holds %q, not a rate limit", queue, field, v)
		}
		return broker.Rate{Limit: n, Period: time.Duration(us) * time.Microsecond}, nil
	}
	if v, ok := h["rt"]; ok {
		if p.TenantRate, err = rate("rt", v); err != nil {
			return nil, err
		}
	}
	for f, v := range h {
		kind, tn, ok := strings.Cut(f, ":")
		if ok && kind == "y" {
			if p.TypeRates == nil {
				p.TypeRates = map[string]broker.Rate{}
			}
			if p.TypeRates[tn], err = rate(f, v); err != nil {
				return nil, err
			}
			continue
		}
		if !ok || kind != "w" && kind != "c" && kind != "r" {
			continue
		}
		if kind == "r" {
			r, err := rate(f, v)
			if err != nil {
				return nil, err
			}
			if p.Tenants == nil {
				p.Tenants = map[string]broker.TenantShare{}
			}
			s := p.Tenants[tn]
			s.Rate = r
			p.Tenants[tn] = s
			continue
		}
		n, err := num(f, v)
		if err != nil {
			return nil, err
		}
		if p.Tenants == nil {
			p.Tenants = map[string]broker.TenantShare{}
		}
		s := p.Tenants[tn]
		if kind == "w" {
			s.Weight = n
		} else {
			s.MaxActive = n
		}
		p.Tenants[tn] = s
	}
	return p, nil
}

// rateArg encodes a rate limit as the scripts take it (lib.lua): ” for
// none, else "<limit>|<period in µs>".
func rateArg(r broker.Rate) string {
	if r.IsZero() {
		return ""
	}
	return strconv.Itoa(r.Limit) + "|" + strconv.FormatInt(r.Period.Microseconds(), 10)
}

// rateStats reports the queue's rate limits for QueueStats.
func (b *Broker) rateStats(ctx context.Context, queue, scope string) ([]broker.RateStat, error) {
	p, err := b.QueueFairGet(ctx, queue)
	if err != nil || !p.Rated() {
		return nil, err
	}
	now, err := b.client.Time(ctx).Result()
	if err != nil {
		return nil, fmt.Errorf("read the redis clock: %w", err)
	}
	rl := b.keys(queue).rates
	return broker.RateStats(p, scope, func(key string) (int64, error) {
		v, err := b.client.HGet(ctx, rl, key).Int64()
		if errors.Is(err, redis.Nil) {
			return 0, nil
		}
		return v, err
	}, now.UnixMicro())
}

// QueueTenantPause pauses or resumes one tenant of a queue in its
// paused-tenants hash; see broker.FairBroker.
func (b *Broker) QueueTenantPause(ctx context.Context, queue, tenant string, paused bool) error {
	if err := b.open("pause tenant"); err != nil {
		return err
	}
	if err := broker.ValidateTenantPause(queue, tenant); err != nil {
		return fmt.Errorf("redisbroker: %w", err)
	}
	if err := b.registerQueue(ctx, queue); err != nil {
		return fmt.Errorf("redisbroker: pause tenant %q of %q: %w", tenant, queue, err)
	}
	k := b.keys(queue).tpaused
	var err error
	if paused {
		err = b.client.HSet(ctx, k, tenant, "1").Err()
	} else {
		err = b.client.HDel(ctx, k, tenant).Err()
	}
	if err != nil {
		return fmt.Errorf("redisbroker: pause tenant %q of %q: %w", tenant, queue, err)
	}
	if !paused {
		if err := b.wakeIdle(ctx, queue); err != nil {
			return fmt.Errorf("redisbroker: resume tenant %q of %q: wake workers: %w", tenant, queue, err)
		}
	}
	return nil
}
