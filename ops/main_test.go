package ops_test

import (
	"os"
	"testing"

	"github.com/aibos/worker/internal/redistest"
)

func TestMain(m *testing.M) { os.Exit(redistest.Main(m)) }
