package redisbroker_test

import (
	"strings"
	"testing"

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
