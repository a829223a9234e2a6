// Command faultworker is the fault suite's worker process: the service
// exactly as `aibos-worker serve` runs it (service.Serve: the same
// configuration loading from the environment and a config file, the same
// start, signal handling and drain), with the suite's oracle processors
// (package oracle) compiled in. A separate binary rather than serve with
// an HTTP processor pointing at the harness, because the oracle must run
// inside the worker process: a run that a SIGKILL or SIGSTOP cuts short
// has to leave its own fsynced trace, and fault.exit has to end the very
// process that leased the job.
//
// Beyond the service's own settings it reads:
//
//	FAULTS_CONFIG       the config file (queues)
//	FAULTS_ORACLE_DIR   the oracle's directory (run files, idempotency table)
//	FAULTS_WORKER       this worker's name in the run files
//	FAULTS_LEASE_MS     the lease duration (service.Config.LeaseDuration)
//	FAULTS_CLOCK_OFFSET the service's clock offset, a Go duration (service.Config.TestClockOffset)
//
// Exit codes: 0 clean stop, 1 failure, 3 a second signal stopped the drain.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/aibos/worker/internal/faults/oracle"
	"github.com/aibos/worker/service"
)

func main() { os.Exit(run()) }

func run() int {
	cfg, err := service.Load(service.LoadInput{File: os.Getenv("FAULTS_CONFIG"), LookupEnv: os.LookupEnv})
	if err != nil {
		fmt.Fprintln(os.Stderr, "faultworker:", err)
		return 2
	}
	if v := os.Getenv("FAULTS_LEASE_MS"); v != "" {
		ms, err := strconv.Atoi(v)
		if err != nil || ms <= 0 {
			fmt.Fprintf(os.Stderr, "faultworker: FAULTS_LEASE_MS=%q: want milliseconds above 0\n", v)
			return 2
		}
		cfg.LeaseDuration = time.Duration(ms) * time.Millisecond
	}
	if v := os.Getenv("FAULTS_CLOCK_OFFSET"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			fmt.Fprintf(os.Stderr, "faultworker: FAULTS_CLOCK_OFFSET=%q: want a Go duration: %v\n", v, err)
			return 2
		}
		cfg.TestClockOffset = d
	}
	var clock atomic.Pointer[func() time.Time] // the service's, once it exists
	rec, err := oracle.Open(os.Getenv("FAULTS_ORACLE_DIR"), os.Getenv("FAULTS_WORKER"), func() time.Time {
		if f := clock.Load(); f != nil {
			return (*f)()
		}
		return time.Now().Add(cfg.TestClockOffset)
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "faultworker:", err)
		return 1
	}
	defer rec.Close()
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	err = service.Serve(context.Background(), cfg, os.Stderr, sigs, func(s *service.Service) error {
		now := s.Now
		clock.Store(&now)
		return rec.Register(s)
	})
	switch {
	case errors.Is(err, service.ErrDrainInterrupted):
		fmt.Fprintln(os.Stderr, "faultworker:", err)
		return 3
	case err != nil:
		fmt.Fprintln(os.Stderr, "faultworker:", err)
		return 1
	}
	return 0
}
