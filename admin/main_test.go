package admin_test

import (
	"os"
	"testing"

	"github.com/aibos/worker/internal/redistest"
)

// TestMain stops the package's shared redis-server and fails the run if a
// test left a goroutine behind. Every area's tests share it: a package has
// one TestMain.
func TestMain(m *testing.M) { os.Exit(redistest.Main(m)) }
