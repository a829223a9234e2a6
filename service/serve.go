package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
)

// ErrDrainInterrupted is returned by Serve when a second signal stopped the
// drain: jobs still running come back when their leases expire.
var ErrDrainInterrupted = errors.New("drain interrupted")

// Serve runs the service until a signal arrives on sigs or ctx is done,
// then drains it; a second signal during the drain returns at once with an
// error wrapping ErrDrainInterrupted. It is `aibos-worker serve`, shared so
// that a binary of a team's own (or the fault suite's) runs exactly the
// same start, signal and drain steps: setup registers Go processors and
// workflows between New and Start (nil for none). Errors from New and
// Start are returned as they are (a *ConfigError stays one).
func Serve(ctx context.Context, cfg *Config, stderr io.Writer, sigs <-chan os.Signal, setup func(*Service) error) error {
	log := NewLogger(cfg, stderr)
	svc, err := New(ctx, cfg, log)
	if err != nil {
		return err
	}
	if setup != nil {
		if err := setup(svc); err != nil {
			_ = svc.Close()
			return fmt.Errorf("service: set up: %w", err)
		}
	}
	if err := svc.Start(ctx); err != nil {
		_ = svc.Close()
		return err
	}
	var runErr error
	select {
	case sig := <-sigs:
		log.Info("signal received; draining", "signal", sig.String(), "drain_timeout", cfg.DrainTimeout.String())
	case err := <-svc.Done():
		runErr = fmt.Errorf("http server stopped: %w", err)
		log.Error("http server stopped; shutting down", "err", err)
	case <-ctx.Done():
	}
	done := make(chan error, 1)
	go func() { done <- svc.Shutdown(context.Background()) }()
	select {
	case err := <-done:
		if err != nil {
			return err
		}
		if runErr != nil {
			return runErr
		}
		log.Info("stopped")
		return nil
	case sig := <-sigs:
		log.Warn("second signal; exiting without finishing the drain", "signal", sig.String())
		return fmt.Errorf("stopped by a second %s before the drain finished: %w", sig, ErrDrainInterrupted)
	}
}
