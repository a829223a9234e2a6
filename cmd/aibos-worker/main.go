// Command aibos-worker is the AI-BOS worker service and its tools.
//
//	aibos-worker serve     run the service (see package service)
//	aibos-worker config    print the effective configuration and where each value came from
//	aibos-worker tokens    create, list and revoke the admin API's tokens (offline, or with --url and --token)
//	aibos-worker version   print the version
//
// Configuration: built-in defaults < config file (--config) < environment
// variables (the seed's names) < flags. Run `aibos-worker serve --help` for
// every setting.
//
// Exit codes:
//
//	0  clean exit: the drain finished, or running jobs were handed back
//	1  runtime failure: the broker could not be opened, the port was taken, ...
//	2  configuration or usage error: one line on stderr names the setting, the value and what is allowed
//	3  a second SIGTERM/SIGINT stopped the drain: jobs still running come back when their leases expire
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/aibos/worker/service"
)

// Exit codes; see the package doc.
const (
	exitOK     = 0
	exitFail   = 1
	exitConfig = 2
	exitForced = 3
)

// version is set at build time with -ldflags "-X main.version=v1.2.3";
// otherwise the module's build information is used.
var version = ""

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.LookupEnv, os.Stdout, os.Stderr))
}

// exitError carries an exit code out of a command.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// run runs the command line args and returns the exit code.
func run(ctx context.Context, args []string, lookupEnv func(string) (string, bool), stdout, stderr io.Writer) int {
	root := newRoot(ctx, lookupEnv, stdout, stderr)
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return exitOK
	}
	fmt.Fprintln(stderr, "aibos-worker: "+err.Error())
	var ee *exitError
	switch {
	case errors.As(err, &ee):
		return ee.code
	case service.IsConfigError(err):
		return exitConfig
	default:
		// cobra's own errors (unknown command or flag, bad arguments) are
		// usage errors.
		return exitConfig
	}
}

// newRoot builds the command tree. Every setting is a persistent flag, so
// serve and config read the same configuration.
func newRoot(ctx context.Context, lookupEnv func(string) (string, bool), stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "aibos-worker",
		Short:         "The AI-BOS background worker service",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.CompletionOptions.DisableDefaultCmd = true
	pf := root.PersistentFlags()
	pf.String("config", "", "YAML config file (queues, job types, schedules, callbacks, recovery, and any setting)")
	for _, s := range service.Settings() {
		def := s.Default
		if def == "" {
			def = "unset"
		}
		pf.String(s.Flag, "", fmt.Sprintf("%s (env %s; default %s)", s.Help, s.Env, def))
		if s.Default == "true" || s.Default == "false" {
			pf.Lookup(s.Flag).NoOptDefVal = "true" // --monitoring-enabled alone means true
		}
	}
	load := func(cmd *cobra.Command) (*service.Config, error) {
		flags := map[string]string{}
		var file string
		for _, s := range service.Settings() {
			if f := cmd.Flags().Lookup(s.Flag); f != nil && f.Changed {
				flags[s.Flag] = f.Value.String()
			}
		}
		if f := cmd.Flags().Lookup("config"); f != nil {
			file = f.Value.String()
		}
		return service.Load(service.LoadInput{File: file, LookupEnv: lookupEnv, Flags: flags})
	}
	// withConfig runs a command with the configuration its flags, the
	// environment and the file make.
	withConfig := func(run func(*service.Config) error) func(*cobra.Command, []string) error {
		return func(cmd *cobra.Command, _ []string) error {
			cfg, err := load(cmd)
			if err != nil {
				return err
			}
			return run(cfg)
		}
	}
	root.AddCommand(
		&cobra.Command{
			Use:   "serve",
			Short: "Run the service: workers, schedulers, workflow engine, /metrics, /livez, /readyz, /health",
			Args:  cobra.NoArgs,
			RunE:  withConfig(func(cfg *service.Config) error { return serve(ctx, cfg, stderr) }),
		},
		&cobra.Command{
			Use:   "config",
			Short: "Print the effective configuration, where each value came from, secrets redacted",
			Args:  cobra.NoArgs,
			RunE:  withConfig(func(cfg *service.Config) error { return printConfig(stdout, cfg) }),
		},
		newTokensCmd(ctx, lookupEnv, stdout, load),
		&cobra.Command{
			Use:   "version",
			Short: "Print the version",
			Args:  cobra.NoArgs,
			Run: func(cmd *cobra.Command, _ []string) {
				fmt.Fprintln(stdout, "aibos-worker", versionString())
			},
		},
	)
	return root
}

// serve runs the service until SIGTERM or SIGINT, then drains it. A
// second signal exits at once.
func serve(ctx context.Context, cfg *service.Config, stderr io.Writer) error {
	log := service.NewLogger(cfg, stderr)
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)

	svc, err := service.New(ctx, cfg, log)
	if err != nil {
		return runtimeError(err)
	}
	if err := svc.Start(ctx); err != nil {
		_ = svc.Close()
		return runtimeError(err)
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
			return &exitError{exitFail, err}
		}
		if runErr != nil {
			return &exitError{exitFail, runErr}
		}
		log.Info("stopped")
		return nil
	case sig := <-sigs:
		log.Warn("second signal; exiting without finishing the drain", "signal", sig.String())
		return &exitError{exitForced, fmt.Errorf("stopped by a second %s before the drain finished", sig)}
	}
}

// runtimeError gives err exit code 1 unless it is a configuration error.
func runtimeError(err error) error {
	if service.IsConfigError(err) {
		return err
	}
	return &exitError{exitFail, err}
}

// versionString returns the version set at build time, or the module's.
func versionString() string {
	if version != "" {
		return version
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "(unknown)"
	}
	v := info.Main.Version
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" {
			v += " " + s.Value
		}
	}
	return v + " " + info.GoVersion
}
