package redisbroker_test

import (
	"testing"

	"github.com/aibos/worker/internal/redistest"
)

// TestSentinel starts one Sentinel setup (a master, a replica, three
// sentinels) and runs the Sentinel cases on it, the master kill last.
func TestSentinel(t *testing.T) {
	s := redistest.StartSentinel(t)
	t.Run("OpenURL", func(t *testing.T) { testOpenURL(t, s.URL()) })
	t.Run("DurableWithReplica", func(t *testing.T) { testDurableWithReplica(t, s) })
}
