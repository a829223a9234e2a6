package redisbroker_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/aibos/worker/broker/redisbroker"
)

// hashTag returns the part of a key Redis Cluster hashes: the text between
// the first '{' and the next '}', if non-empty, else the whole key.
func hashTag(key string) string {
	i := strings.IndexByte(key, '{')
	if i < 0 {
		return key
	}
	j := strings.IndexByte(key[i+1:], '}')
	if j <= 0 {
		return key
	}
	return key[i+1 : i+1+j]
}

func TestQueueKeysShareOneHashTag(t *testing.T) {
	tests := []struct{ prefix, queue string }{
		{"aibos:worker", "invoices"},
		{"aibos:worker", "a"},
		{"tenant:x", "reports.daily-v2:eu_1"},
	}
	for _, tt := range tests {
		keys := redisbroker.QueueKeys(tt.prefix, tt.queue)
		if len(keys) < 10 {
			t.Fatalf("QueueKeys(%q, %q) returned only %d keys", tt.prefix, tt.queue, len(keys))
		}
		seen := map[string]bool{}
		for _, k := range keys {
			if !strings.HasPrefix(k, tt.prefix+":") {
				t.Errorf("key %q does not start with prefix %q", k, tt.prefix+":")
			}
			if got := hashTag(k); got != tt.queue {
				t.Errorf("key %q hashes on %q, want the queue %q", k, got, tt.queue)
			}
			if seen[k] {
				t.Errorf("key %q appears twice", k)
			}
			seen[k] = true
		}
	}
	// Two queues never share a key.
	a := redisbroker.QueueKeys("p", "q1")
	for _, k := range redisbroker.QueueKeys("p", "q2") {
		for _, o := range a {
			if k == o {
				t.Errorf("queues q1 and q2 share key %q", k)
			}
		}
	}
}

// A Broker keeps each queue's key names once built, and they are the names
// the queue has; a caller naming ever new queues (an API client probing
// names) does not grow what it keeps past its bound.
func TestKeyCacheIsExactAndBounded(t *testing.T) {
	// Key names need no server: the client is never used.
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer c.Close()
	b, err := redisbroker.New(c, redisbroker.Config{Prefix: "p"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for i := range redisbroker.MaxCachedKeys + 100 {
		q := fmt.Sprintf("q%d", i)
		for range 2 { // built, then from the cache
			keys, cached := redisbroker.KeysOf(b, q)
			if !slices.Equal(keys, redisbroker.QueueKeys("p", q)) {
				t.Fatalf("keys of %s from the broker differ from the queue's key names", q)
			}
			if cached > redisbroker.MaxCachedKeys {
				t.Fatalf("after %d queues the broker keeps the key names of %d, over its bound %d", i+1, cached, redisbroker.MaxCachedKeys)
			}
		}
	}
	if _, cached := redisbroker.KeysOf(b, "q0"); cached != redisbroker.MaxCachedKeys {
		t.Fatalf("the broker keeps the key names of %d queues, want %d (its bound) after more queues than that", cached, redisbroker.MaxCachedKeys)
	}
}
