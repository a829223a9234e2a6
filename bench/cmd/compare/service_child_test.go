//go:build !servicebench

package main

import (
	"context"
	"math"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const servicePkg = "github.com/aibos/worker/service"

// deps lists the packages the compare command links, built with tags.
func deps(t *testing.T, tags string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-tags", tags, "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -tags %q -deps: %v", tags, err)
	}
	return strings.Fields(string(out))
}

// TestDefaultBuildLinksNoService pins why phase h runs in a child: the
// process that measures phases a-g must not link the service, whose
// packages' init state every garbage collection would mark.
func TestDefaultBuildLinksNoService(t *testing.T) {
	if d := deps(t, ""); slices.Contains(d, servicePkg) {
		t.Errorf("the default build of compare links %s; phases a-g would measure its heap too", servicePkg)
	}
	if d := deps(t, "servicebench"); !slices.Contains(d, servicePkg) {
		t.Errorf("the servicebench build of compare does not link %s; phase h's child would have no service to measure", servicePkg)
	}
}

func TestRowsRoundTrip(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "rows.json")
	want := results{}
	want.set("aibos", "h http process c10 jobs/s", 12000)
	want.set("sqlite", "h http process c10 jobs/s", 8000.5)
	want.set("sqlite", "h http enqueue-to-start p99 ms", math.NaN()) // no samples
	if err := writeRows(path, want); err != nil {
		t.Fatal(err)
	}
	got, err := readRows(path)
	if err != nil {
		t.Fatal(err)
	}
	res := results{}
	res.set("aibos", "c latency p50 ms", 0.3)
	res.set("aibos", "h http process c10 jobs/s", 1)
	res.merge(got)
	if v := res["aibos"]["c latency p50 ms"]; v != 0.3 {
		t.Errorf("merge lost a figure the child did not send: c latency p50 ms = %v", v)
	}
	if v := res["aibos"]["h http process c10 jobs/s"]; v != 12000 {
		t.Errorf("aibos h http process c10 = %v; want the child's 12000", v)
	}
	if v := res["sqlite"]["h http process c10 jobs/s"]; v != 8000.5 {
		t.Errorf("sqlite h http process c10 = %v; want the child's 8000.5", v)
	}
	if v, ok := res["sqlite"]["h http enqueue-to-start p99 ms"]; ok {
		t.Errorf("a NaN figure came back as %v; want it left out", v)
	}

	if err := writeRows(path, results{}); err != nil {
		t.Fatal(err)
	}
	if _, err := readRows(path); err == nil || !strings.Contains(err.Error(), "no figures") {
		t.Errorf("rows with no figure: err = %v; want one saying so", err)
	}
	if _, err := readRows(filepath.Join(dir, "missing.json")); err == nil {
		t.Error("a child that wrote no rows file: no error")
	}
}

func TestChildArgs(t *testing.T) {
	cfg := &config{systems: []string{"asynq", "aibos", "bullmq"}, n: 2000, latencyS: 2.5, verbose: true}
	got := strings.Join(childArgs(cfg, "127.0.0.1:6390"), " ")
	want := "-phases h -systems aibos -runs 1 -n 2000 -latency-seconds 2.5 -redis-addr 127.0.0.1:6390 -v"
	if got != want {
		t.Errorf("childArgs = %q; want %q", got, want)
	}
	cfg = &config{systems: []string{"bullmq"}, n: 10, latencyS: 5}
	got = strings.Join(childArgs(cfg, "127.0.0.1:1"), " ")
	want = "-phases h -systems none -runs 1 -n 10 -latency-seconds 5 -redis-addr 127.0.0.1:1"
	if got != want {
		t.Errorf("without aibos: childArgs = %q; want %q (phase h must not install node packages)", got, want)
	}
}

// TestPhaseHRunsInChild runs phase h, small, through the child on a
// redis-server of its own: both engines' rows come back.
func TestPhaseHRunsInChild(t *testing.T) {
	srv := testRedis(t)
	cfg := &config{phases: []string{"h"}, systems: []string{"aibos"}, runs: 1, n: 200, latencyS: 0.5}
	res := results{}
	if err := measureServiceAll(context.Background(), cfg, srv, res); err != nil {
		t.Fatal(err)
	}
	for _, sys := range []string{"aibos", "sqlite"} {
		for _, metric := range []string{"h api enqueue invoices x1 jobs/s", "h http process c10 jobs/s", "h http enqueue-to-start p99 ms"} {
			if v, ok := res[sys][metric]; !ok || !(v > 0) {
				t.Errorf("%s %q = %v (present %v); want a positive figure from the child", sys, metric, v, ok)
			}
		}
	}
}
