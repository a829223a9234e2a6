package faults

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/aibos/worker/internal/redistest"
)

// reportPath, when set, runs the whole suite at the published sizes and
// writes the report there (make faults).
var reportPath = flag.String("faults.report", "", "run every scenario at full size and write RELIABILITY.md to this path")

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "faultworker-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	workerBin = filepath.Join(dir, "faultworker")
	if out, err := exec.Command("go", "build", "-o", workerBin, "./faultworker").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build faultworker: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := redistest.Main(m)
	os.RemoveAll(dir)
	os.Exit(code)
}

// TestSmoke runs the first two scenarios at small sizes, so that the
// harness cannot rot between runs of make faults: every promised figure
// must hold.
func TestSmoke(t *testing.T) {
	if *reportPath != "" {
		t.Skip("the full suite runs instead")
	}
	for _, s := range Scenarios[:2] {
		tab := RunScenario(t, s, false)
		var b bytes.Buffer
		tab.Write(&b)
		t.Logf("\n%s", b.String())
		for _, broken := range tab.Broken() {
			t.Errorf("%s: %s", s.Name, broken)
		}
	}
}

// TestFaults runs every scenario at full size and writes the report; it
// runs only with -faults.report (make faults). It fails if a scenario
// misses a promise, after writing the report that says so.
func TestFaults(t *testing.T) {
	if *reportPath == "" {
		t.Skip("make faults runs it (-faults.report)")
	}
	begin := time.Now()
	loadBefore := loadAvg()
	var tabs []*Table
	for _, s := range Scenarios {
		tab := RunScenario(t, s, true)
		fmt.Fprintf(os.Stderr, "faults: %s: %s, %d figures missing their promise\n", s.Name, tab.Took.Round(time.Second), len(tab.Broken()))
		tabs = append(tabs, tab)
	}
	var b bytes.Buffer
	writeReport(&b, tabs, time.Since(begin), loadBefore, loadAvg())
	if err := os.WriteFile(*reportPath, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tab := range tabs {
		for _, broken := range tab.Broken() {
			t.Errorf("%s: %s", tab.Name, broken)
		}
	}
}

// writeReport writes RELIABILITY.md.
func writeReport(b *bytes.Buffer, tabs []*Table, took time.Duration, loadBefore, loadAfter string) {
	fmt.Fprintf(b, "# Reliability under faults\n\n")
	fmt.Fprintf(b, "Written by `make faults` (internal/faults; see its package doc for the method). "+
		"Every figure is counted by an independent oracle (each processor run's fsynced record and an idempotency table) "+
		"against the broker, for real `service.Serve` worker processes on a private redis-server.\n\n")
	fmt.Fprintf(b, "| | |\n|---|---|\n")
	fmt.Fprintf(b, "| date | %s |\n", time.Now().UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(b, "| commit | %s |\n", cmdOut("git", "describe", "--always", "--dirty"))
	fmt.Fprintf(b, "| machine | %d CPUs (nproc), %s memory, kernel %s |\n", runtime.NumCPU(), memTotal(), cmdOut("uname", "-sr"))
	fmt.Fprintf(b, "| software | %s, %s |\n", runtime.Version(), cmdOut("redis-server", "--version"))
	fmt.Fprintf(b, "| load average (1, 5, 15 min) | %s at the start, %s at the end |\n", loadBefore, loadAfter)
	fmt.Fprintf(b, "| suite run time | %s |\n\n", took.Round(time.Second))
	fmt.Fprintf(b, "The machine is shared (2 cores, other jobs running), so times are upper bounds rather than what a quiet machine gives.\n\n")
	var broken []string
	for _, tab := range tabs {
		for _, s := range tab.Broken() {
			broken = append(broken, tab.Name+": "+s)
		}
	}
	if len(broken) == 0 {
		fmt.Fprintf(b, "Every figure meets the design's promise where it makes one.\n\n")
	} else {
		fmt.Fprintf(b, "**Figures that miss the design's promise:**\n\n")
		for _, s := range broken {
			fmt.Fprintf(b, "- %s\n", s)
		}
		fmt.Fprintln(b)
	}
	for _, tab := range tabs {
		tab.Write(b)
	}
}

func cmdOut(name string, args ...string) string {
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		return "(unknown)"
	}
	return strings.TrimSpace(string(out))
}

// loadAvg returns the machine's load averages over 1, 5 and 15 minutes.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], ", ")
	}
	return "(unknown)"
}

func memTotal() string {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return "(unknown)"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			var kb int64
			if _, err := fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), &kb); err == nil {
				return fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
			}
		}
	}
	return "(unknown)"
}

// TestScenario runs the scenarios whose names match -faults.only at
// small sizes, for work on one scenario.
func TestScenario(t *testing.T) {
	if *only == "" {
		t.Skip("-faults.only names the scenarios")
	}
	for _, s := range Scenarios {
		if !strings.Contains(s.Name, *only) {
			continue
		}
		tab := RunScenario(t, s, *full)
		var b bytes.Buffer
		tab.Write(&b)
		t.Logf("\n%s", b.String())
		for _, broken := range tab.Broken() {
			t.Errorf("%s: %s", s.Name, broken)
		}
	}
}

var (
	only = flag.String("faults.only", "", "run only the scenarios whose names contain this")
	full = flag.Bool("faults.full", false, "with -faults.only: at full size")
)
