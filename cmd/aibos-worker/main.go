// Command aibos-worker is the AI-BOS worker service and its tools.
//
//	aibos-worker serve     run the service (see package service)
//	aibos-worker config    print the effective configuration and where each value came from
//	aibos-worker tokens    create, list and revoke the admin API's tokens (offline, or with --url and --token)
//	aibos-worker restore   bring a backup back into the data directory (offline; --force to replace files)
//	aibos-worker version   print the version
//
// and the operators' commands over the admin API (the same roles, tenant
// scopes and audit trail as every other caller):
//
//	aibos-worker queues    ls | pause | resume | concurrency
//	aibos-worker jobs      ls | get | retry | cancel | delete
//	aibos-worker dead      retry | delete  (bulk, with --dry-run to count first)
//	aibos-worker cron      ls | next | trigger | pause | resume
//	aibos-worker workflows ls | get | cancel
//	aibos-worker enqueue   QUEUE TYPE
//	aibos-worker workers   the worker processes and their heartbeats
//	aibos-worker tenants   ls | get | create | update
//	aibos-worker health    /readyz of each service
//	aibos-worker audit     ls (the trail, over the API) | verify (offline, with the key)
//	aibos-worker backup    now (a backup job, waited for)
//	aibos-worker completion bash|zsh|fish|powershell
//
// They find the service with --url (repeatable, or comma-separated: calls
// are spread over the URLs and fail over) or AIBOS_WORKER_URL, and send the
// token of --token or AIBOS_WORKER_TOKEN. Output is a table for people, or
// with -o json the API's answer, with the API's field names, for scripts.
// Errors are one line on stderr: what was being done, the API's message,
// the field it names and the API's error code.
//
// Configuration: built-in defaults < config file (--config) < environment
// variables (the seed's names) < flags. Run `aibos-worker serve --help` for
// every setting.
//
// Exit codes:
//
//	0  success; for serve a clean exit: the drain finished, or running jobs were handed back
//	1  runtime failure: the broker could not be opened, the port was taken, the API answered 500, ...
//	2  configuration or usage error: one line on stderr names the setting, the value and what is allowed;
//	   also a request the API refused as malformed or invalid (400, 413, 415, 422)
//	3  serve: a second SIGTERM/SIGINT stopped the drain: jobs still running come back when their leases expire
//	4  not found (404), e.g. no such job, or another tenant's
//	5  not allowed: the token is missing, wrong, expired or revoked (401), or its role or tenant may not do that (403)
//	6  conflict (409): a duplicate, a job in a state the action does not apply to, a resource managed by the config file
//	7  unavailable: no service answered, the store is unreachable (503), too many requests or a full queue (429),
//	   or health found a service not ready
//	8  audit verify: the audit trail does not verify (the first bad entry is named on stderr)
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
	"time"

	"github.com/spf13/cobra"

	"github.com/aibos/worker/accounting"
	"github.com/aibos/worker/service"
)

// Exit codes; see the package doc.
const (
	exitOK     = 0
	exitFail   = 1
	exitConfig = 2
	exitForced = 3
	// exitNotFound and the codes after it are in api.go.
)

// version is set at build time with -ldflags "-X main.version=v1.2.3";
// otherwise the module's build information is used.
var version = ""

// testLease, when set at build time (-ldflags "-X main.testLease=2s"),
// replaces the job lease duration (service.Config.LeaseDuration, no setting
// of its own): the accounting crash test builds serve so, that a killed
// worker's jobs run again within the test's budget. Release builds leave
// it empty.
var testLease = ""

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
	root := newRoot(ctx, lookupEnv, os.Stdin, stdout, stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
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
func newRoot(ctx context.Context, lookupEnv func(string) (string, bool), stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "aibos-worker",
		Short:         "The AI-BOS background worker service",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
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
	api := &apiOpts{lookupEnv: lookupEnv, stdout: stdout, stderr: stderr}
	serveCmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the service: workers, schedulers, workflow engine, /metrics, /livez, /readyz, /health",
		Args:  cobra.NoArgs,
	}
	demo := serveCmd.Flags().Bool("demo", false, "seed two demo tenants' books and keep adding invoices and payments, so work flows at once")
	serveCmd.RunE = withConfig(func(cfg *service.Config) error { return serve(ctx, cfg, stderr, *demo) })
	root.AddCommand(
		serveCmd,
		&cobra.Command{
			Use:   "config",
			Short: "Print the effective configuration, where each value came from, secrets redacted",
			Args:  cobra.NoArgs,
			RunE:  withConfig(func(cfg *service.Config) error { return printConfig(stdout, cfg) }),
		},
		newTokensCmd(ctx, api, load),
		newQueuesCmd(api),
		newJobsCmd(api),
		newDeadCmd(api),
		newCronCmd(api),
		newWorkflowsCmd(api),
		newEnqueueCmd(api, stdin),
		newWorkersCmd(api),
		newTenantsCmd(api),
		newReportsCmd(api),
		newHealthCmd(api),
		newAuditCmd(ctx, api, load),
		newBackupCmd(api),
		newRestoreCmd(ctx, stdout, load),
		newKeysCmd(api),
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
// second signal exits at once. It opens the accounting ledger and
// registers the accounting job types (registerAccounting). With demo, it
// also seeds the demo tenants' books and keeps adding work (see startDemo)
// until the first signal.
func serve(ctx context.Context, cfg *service.Config, stderr io.Writer, demo bool) error {
	if testLease != "" {
		d, err := time.ParseDuration(testLease)
		if err != nil || d <= 0 {
			return fmt.Errorf("serve: build-time lease %q: want a positive Go duration", testLease)
		}
		cfg.LeaseDuration = d
	}
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	var ledger accounting.Store
	defer func() {
		if ledger != nil {
			_ = ledger.Close()
		}
	}()
	stopDemo := func() {}
	setup := func(svc *service.Service) error {
		log := service.NewLogger(cfg, stderr)
		st, where, err := registerAccounting(ctx, svc, cfg, demo)
		if err != nil {
			return err
		}
		ledger = st
		if err := registerOps(svc, cfg, st); err != nil {
			return err
		}
		if err := registerMail(svc, cfg, st, demo, log); err != nil {
			return err
		}
		// Debug: a config error found at Start must stay the one line
		// serve prints.
		log.Debug("accounting ledger open", "at", where)
		if demo {
			stopDemo = startDemo(ctx, svc, st, log, demoInterval)
		}
		return nil
	}
	// The demo stops adding work at the first signal, before the drain.
	fwd := make(chan os.Signal, 2)
	done := make(chan struct{})
	defer close(done)
	go func() {
		for first := true; ; first = false {
			select {
			case sig := <-sigs:
				if first {
					stopDemo()
				}
				fwd <- sig
			case <-done:
				return
			}
		}
	}()
	serveNotifications(cfg, demo)
	scheduleDailyReports(cfg)
	err := service.Serve(ctx, cfg, stderr, fwd, setup)
	stopDemo()
	if errors.Is(err, service.ErrDrainInterrupted) {
		return &exitError{exitForced, err}
	}
	if err != nil {
		return runtimeError(err)
	}
	return nil
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
