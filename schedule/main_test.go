package schedule_test

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/aibos/worker/internal/redistest"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		schedulerChild()
		return
	}
	code := redistest.Main(m)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}
