package redisbroker

import (
	"fmt"
	"strings"
	"testing"

	"github.com/aibos/worker/broker"
)

func TestTrimLibKeepsWhatIsCalled(t *testing.T) {
	lib := strings.Join([]string{
		"-- header comment",
		"local K = 1",
		"",
		"-- a calls b.",
		"local function a(x)",
		"  return b(x) + K",
		"end",
		"",
		"-- b doubles.",
		"local function b(x)",
		"  return 2 * x",
		"end",
		"",
		"-- c is unused; ab(…) and xc(…) are other names.",
		"local function c()",
		"  return 3",
		"end",
		"",
	}, "\n")
	got := trimLib(lib, "return a(1) + ab(2) + xc(3)")
	for _, want := range []string{"-- header comment", "local K = 1", "-- a calls b.", "local function a(x)",
		"-- b doubles.", "local function b(x)"} {
		if !strings.Contains(got, want) {
			t.Errorf("trimmed lib lacks %q:\n%s", want, got)
		}
	}
	for _, gone := range []string{"local function c()", "c is unused"} {
		if strings.Contains(got, gone) {
			t.Errorf("trimmed lib keeps %q:\n%s", gone, got)
		}
	}
	if strings.Index(got, "local function a(") > strings.Index(got, "local function b(") {
		t.Errorf("trimmed lib reorders the functions:\n%s", got)
	}
}

// Every real script keeps the lib functions it calls and drops some it
// does not (fetch never materializes a job).
func TestTrimLibOnTheScripts(t *testing.T) {
	lib := readLua("lib.lua")
	full := map[string]bool{}
	for _, l := range strings.Split(lib, "\n") {
		if m := libFunc.FindStringSubmatch(l); m != nil {
			full[m[1]] = true
		}
	}
	for _, name := range []string{"insert.lua", "fetch.lua", "complete.lua", "maintain.lua", "cancel.lua", "list.lua"} {
		body := readLua(name)
		trimmed := trimLib(lib, body)
		for fn := range full {
			if calls(body, fn) && !strings.Contains(trimmed, "local function "+fn+"(") {
				t.Errorf("%s calls %s but the trimmed lib lacks it", name, fn)
			}
		}
		if len(trimmed) >= len(lib) {
			t.Errorf("%s: trimmed lib is %d bytes of %d: nothing dropped", name, len(trimmed), len(lib))
		}
	}
	if strings.Contains(trimLib(lib, readLua("fetch.lua")), "local function materialize(") {
		t.Error("fetch.lua's lib keeps materialize, which it never calls")
	}
}

// The scripts that write a job from a template (workflow steps) give
// priority 0 the broker's default themselves: lib.lua must say the same
// number as package broker.
func TestLuaDefaultPriorityIsTheBrokers(t *testing.T) {
	want := fmt.Sprintf("local DEFAULT_PRIORITY = %d ", broker.DefaultPriority)
	if !strings.Contains(readLua("lib.lua"), want) {
		t.Fatalf("lib.lua lacks %q: its default priority differs from broker.DefaultPriority", want)
	}
}
