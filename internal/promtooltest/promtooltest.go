// Package promtooltest finds promtool (Debian package prometheus) for the
// tests that check metrics and alert rules with it.
package promtooltest

import (
	"os"
	"os/exec"
	"testing"
)

// Path returns promtool's path. Without promtool the test skips, or, with
// CI set, fails: make test installs it (scripts/ensure-promtool.sh).
func Path(t testing.TB) string {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("promtool is not installed (Debian package prometheus; scripts/ensure-promtool.sh installs it)")
		}
		t.Skip("promtool is not installed: install the Debian package prometheus")
	}
	return path
}
