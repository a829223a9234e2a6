package schedule_test

import (
	"os"
	"testing"

	"github.com/aibos/worker/internal/redistest"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		schedulerChild()
		return
	}
	os.Exit(redistest.Main(m))
}
