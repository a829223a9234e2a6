package scale_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any leave a goroutine behind: a
// Scaler's loop or a Balancer's health checks that outlive Stop.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
