//go:build !servicebench

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
)

// measureServiceAll runs phase h in a child process: this command built
// with the tag servicebench, which adds service.go and so links package
// service. The default build does not link it. Linked, its dependencies'
// package-level state (JSON Schema metaschemas compiled at init,
// Prometheus, OpenTelemetry and gRPC registries) left 1.7 MB live in the
// heap against 0.4 MB, full of pointers that every garbage collection
// marks while phases a-g measure the library; the library's users do not
// link the service, and phase c's tail latency lost 8-11% to it (see
// bench/RESULTS.md, eleventh round).
//
// The child uses this run's redis-server (-redis-addr), runs once, and
// hands back its rows as JSON in the file named by rowsEnv. Phase h's
// CPU is therefore not in this process's -cpuprofile.
func measureServiceAll(ctx context.Context, cfg *config, srv *redisServer, res results) error {
	src, err := sourceDir()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "aibos-bench-h-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "compare-servicebench")
	build := exec.CommandContext(ctx, "go", "build", "-tags", "servicebench", "-o", bin, ".")
	build.Dir = src
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("build phase h (go build -tags servicebench in %s): %w\n%s", src, err, out)
	}
	rows := filepath.Join(dir, "rows.json")
	cmd := exec.CommandContext(ctx, bin, childArgs(cfg, srv.addr)...)
	cmd.Env = append(os.Environ(), rowsEnv+"="+rows)
	// The child's table is its rows file; what it logs goes to stderr.
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("phase h child: %w", err)
	}
	got, err := readRows(rows)
	if err != nil {
		return fmt.Errorf("phase h child: %w", err)
	}
	res.merge(got)
	return nil
}

// childArgs are the flags of phase h's child: the phase's own, and this
// run's Redis. Only aibos of the systems matters to phase h (it selects
// the Redis engine); passing bullmq would make the child install node
// packages for nothing.
func childArgs(cfg *config, redisAddr string) []string {
	systems := "none"
	if cfg.has(cfg.systems, "aibos") {
		systems = "aibos"
	}
	args := []string{"-phases", "h", "-systems", systems, "-runs", "1",
		"-n", strconv.Itoa(cfg.n),
		"-latency-seconds", strconv.FormatFloat(cfg.latencyS, 'g', -1, 64),
		"-redis-addr", redisAddr}
	if cfg.verbose {
		args = append(args, "-v")
	}
	return args
}

// sourceDir is this command's source directory, where the child is built.
func sourceDir() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	dir := filepath.Dir(file)
	if !ok || !filepath.IsAbs(dir) {
		return "", fmt.Errorf("phase h builds this command's source with -tags servicebench, but the binary does not know where its source is (built with -trimpath?); run it with go run ./cmd/compare from bench/")
	}
	if _, err := os.Stat(filepath.Join(dir, "service.go")); err != nil {
		return "", fmt.Errorf("phase h builds this command's source with -tags servicebench: %w", err)
	}
	return dir, nil
}

// merge sets every figure of o in r.
func (r results) merge(o results) {
	for sys, m := range o {
		for metric, v := range m {
			r.set(sys, metric, v)
		}
	}
}

// readRows reads what writeRows wrote; a file with no figure is an error,
// for a child that measured nothing failed.
func readRows(path string) (results, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r results
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	n := 0
	for _, m := range r {
		n += len(m)
	}
	if n == 0 {
		return nil, fmt.Errorf("%s: no figures", path)
	}
	return r, nil
}
