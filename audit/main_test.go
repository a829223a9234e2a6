package audit

import (
	"os"
	"testing"

	"github.com/aibos/worker/internal/redistest"
)

// TestMain stops the package's redis-server and fails the run if a test
// left a goroutine behind.
func TestMain(m *testing.M) { os.Exit(redistest.Main(m)) }
