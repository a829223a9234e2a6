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

// A body split by libSplit gets before its first part only the lib its
// first part needs, and at the split what only the rest needs, each once
// and in lib order, constants included.
func TestScriptTextSplitsTheLib(t *testing.T) {
	lib := strings.Join([]string{
		"local function b(x)",
		"  return 2 * x",
		"end",
		"local function a(x)",
		"  return b(x)",
		"end",
		"-- K is c's.",
		"local K = 7",
		"local function c()",
		"  return K + b(1)",
		"end",
		"local function d()",
		"  return 4",
		"end",
	}, "\n")
	got := scriptText(lib, "local x = a(1)\nif x then return x end\n"+libSplit+"\nreturn c() + a(2)")
	head, tail, ok := strings.Cut(got, "if x then return x end")
	if !ok {
		t.Fatalf("script lost its first part:\n%s", got)
	}
	for _, want := range []string{"local function b(", "local function a("} {
		if strings.Count(head, want) != 1 || strings.Contains(tail, want) {
			t.Errorf("%q not once before the first part:\n%s", want, got)
		}
	}
	for _, want := range []string{"-- K is c's.\nlocal K = 7", "local function c("} {
		if strings.Contains(head, want) || strings.Count(tail, want) != 1 {
			t.Errorf("%q not once after the first part:\n%s", want, got)
		}
	}
	if strings.Index(tail, "local K") > strings.Index(tail, "local function c(") {
		t.Errorf("K comes after c, which names it:\n%s", got)
	}
	if strings.Contains(got, "local function d(") {
		t.Errorf("d is called nowhere, yet kept:\n%s", got)
	}
	if !strings.HasSuffix(got, "return c() + a(2)") {
		t.Errorf("the rest of the body is not last:\n%s", got)
	}
}

// The single-job insert's fast path creates none of the batch's closures,
// and no constant a script does not name costs it a call.
func TestInsertFastPathLib(t *testing.T) {
	text := scriptText(readLua("lib.lua"), readLua("insert.lua"))
	head, _, ok := strings.Cut(text, "if n == 1 and k == 0 then")
	if !ok {
		t.Fatal("insert.lua has no single-job path")
	}
	for _, gone := range []string{"local function job_state(", "local function zadd_table(", "local PIN ="} {
		if strings.Contains(head, gone) {
			t.Errorf("the single-job path pays for %q", gone)
		}
	}
	if strings.Contains(scriptText(readLua("lib.lua"), readLua("get.lua")), "local PIN =") {
		t.Error("get.lua creates PIN, which it never names")
	}
}

// A constant that lib's own top-level code names is kept, and a split
// marker that is not a line of its own is refused.
func TestLibSetupAndSplitMarker(t *testing.T) {
	lib := "local K = 7\nif K then end\nlocal J = 8"
	got := trimLib(lib, "return 1")
	if !strings.Contains(got, "local K = 7") {
		t.Errorf("K, named by lib's own code, was dropped:\n%s", got)
	}
	if strings.Contains(got, "local J = 8") {
		t.Errorf("J, named nowhere, was kept:\n%s", got)
	}
	defer func() {
		if recover() == nil {
			t.Error("a marker inside a line was taken for no marker")
		}
	}()
	scriptText(lib, "local x = 1 "+libSplit+"\nreturn x")
}
