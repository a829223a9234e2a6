package admin_test

import (
	"flag"
	"fmt"
	"os"
	"testing"

	"github.com/aibos/worker/admin/apitest"
	"github.com/aibos/worker/internal/redistest"
)

// TestMain stops the package's shared redis-server and fails the run if a
// test left a goroutine behind. Every area's tests share it: a package has
// one TestMain. After a whole run (no -run filter) it also fails unless
// every operation of the OpenAPI document was answered, and validated,
// with a success and with an error.
func TestMain(m *testing.M) {
	code := redistest.Main(m)
	if code == 0 && flag.Lookup("test.run").Value.String() == "" {
		if err := apitest.CheckCoverage(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}
