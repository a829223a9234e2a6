package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/aibos/worker/admin"
	"github.com/aibos/worker/admin/adminclient"
	"github.com/aibos/worker/scale"
)

// The environment variables the commands over the API read when their
// flags are not given. WORKER_API_URL and WORKER_API_TOKEN are the names
// the first `tokens` release read; they are still accepted, after these.
const (
	envURL         = "AIBOS_WORKER_URL"
	envToken       = "AIBOS_WORKER_TOKEN"
	envURLLegacy   = "WORKER_API_URL"
	envTokenLegacy = "WORKER_API_TOKEN"
)

// apiOpts are the flags every command over the admin API shares: where
// the service is, the token, and the output format. One value serves the
// whole command tree: cobra runs one command per process.
//
// A command over the API is made of these pieces: o.group (a group of
// subcommands) or o.command (a lone command) give it the shared flags;
// o.run makes its RunE with a client; the typed adminclient calls, or
// callView for a route without one, fetch the answer; o.show prints it as
// JSON or a table; apiError turns a failure into one line and the exit
// code the package doc lists.
type apiOpts struct {
	urls   []string
	token  string
	output string

	lookupEnv      func(string) (string, bool)
	stdout, stderr io.Writer
}

// addFlags gives the flag set (a command's, or a group's persistent
// flags) the shared flags.
func (o *apiOpts) addFlags(fs *pflag.FlagSet) {
	fs.StringSliceVar(&o.urls, "url", nil, "base URL of the service's API, e.g. http://localhost:8080; repeat it or separate URLs by commas to spread calls over several services (env "+envURL+")")
	fs.StringVar(&o.token, "token", "", "API token (env "+envToken+")")
	fs.StringVarP(&o.output, "output", "o", "table", "output format: table (for people) or json (for scripts; the API's field names)")
}

// command readies cmd, a command over the API: the shared flags are its
// own, and its help leaves out the service's settings, which it does
// not read (root's persistent flags, shown by the default help as
// "Global Flags").
func (o *apiOpts) command(cmd *cobra.Command) *cobra.Command {
	if cmd.Runnable() {
		o.addFlags(cmd.Flags())
	}
	tmpl := cmd.UsageTemplate()
	if i := strings.Index(tmpl, globalFlagsStart); i >= 0 {
		if j := strings.Index(tmpl[i:], globalFlagsEnd); j >= 0 {
			tmpl = tmpl[:i] + tmpl[i+j+len(globalFlagsEnd):]
		}
	}
	cmd.SetUsageTemplate(tmpl)
	return cmd
}

// The "Global Flags" part of cobra's usage template.
const (
	globalFlagsStart = "{{if .HasAvailableInheritedFlags}}"
	globalFlagsEnd   = "{{.InheritedFlags.FlagUsages | trimTrailingWhitespaces}}{{end}}"
)

// resolvedURLs returns --url, else the environment's URL(s), split at
// commas.
func (o *apiOpts) resolvedURLs() []string {
	urls := o.urls
	if len(urls) == 0 {
		urls = strings.Split(o.env(envURL, envURLLegacy), ",")
	}
	out := urls[:0:0]
	for _, u := range urls {
		if u = strings.TrimSpace(u); u != "" {
			out = append(out, strings.TrimSuffix(u, "/"))
		}
	}
	return out
}

// resolvedToken returns --token, else the environment's.
func (o *apiOpts) resolvedToken() string {
	if o.token != "" {
		return o.token
	}
	return o.env(envToken, envTokenLegacy)
}

// env returns the first of names that is set.
func (o *apiOpts) env(names ...string) string {
	for _, n := range names {
		if v, ok := o.lookupEnv(n); ok && v != "" {
			return v
		}
	}
	return ""
}

// online reports whether a service URL is given.
func (o *apiOpts) online() bool { return len(o.resolvedURLs()) > 0 }

// checkOutput refuses an unknown -o. "text" is the older name of table.
func (o *apiOpts) checkOutput() error {
	switch o.output {
	case "table", "json", "text":
		return nil
	}
	return usageErrorf("--output %q: want table or json", o.output)
}

func (o *apiOpts) json() bool { return o.output == "json" }

// client returns a client for the service, or a usage error naming what
// is missing.
func (o *apiOpts) client() (*adminclient.Client, error) {
	if err := o.checkOutput(); err != nil {
		return nil, err
	}
	urls := o.resolvedURLs()
	if len(urls) == 0 {
		return nil, usageErrorf("no service URL: give --url or set %s", envURL)
	}
	tok := o.resolvedToken()
	if tok == "" {
		return nil, usageErrorf("no API token: give --token or set %s (make the first one with `aibos-worker tokens create` while the service is stopped)", envToken)
	}
	c, err := adminclient.New(adminclient.Config{URLs: urls, Token: tok})
	if err != nil {
		return nil, usageErrorf("--url: %s", strings.TrimPrefix(err.Error(), "adminclient: new: "))
	}
	return c, nil
}

// show prints v: as JSON with -o json (v is the API's answer, so the
// field names are the API's), else through table.
func (o *apiOpts) show(v any, table func(w *tabwriter.Writer)) error {
	if o.json() {
		return writeJSONOut(o.stdout, v)
	}
	tw := tabwriter.NewWriter(o.stdout, 2, 8, 2, ' ', 0)
	table(tw)
	return tw.Flush()
}

// morePages tells, on stderr, how to read the next page of a listing of
// total things when next, its offset, is above 0.
func (o *apiOpts) morePages(what string, total, next int) {
	if next > 0 {
		fmt.Fprintf(o.stderr, "%d %s in all: run again with --offset %d for more\n", total, what, next)
	}
}

// row writes one tab-separated table row.
func row(w io.Writer, cells ...any) {
	for i, c := range cells {
		if i > 0 {
			fmt.Fprint(w, "\t")
		}
		fmt.Fprint(w, c)
	}
	fmt.Fprintln(w)
}

// when formats a time for a table; the zero time is "-".
func when(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// whenPtr is when for an optional time.
func whenPtr(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return when(*t)
}

// Exit codes of the commands over the API, beyond exitOK, exitFail and
// exitConfig (see the package doc).
const (
	exitNotFound    = 4
	exitDenied      = 5
	exitConflict    = 6
	exitUnavailable = 7
)

// usageErrorf is a usage error: exit code 2.
func usageErrorf(format string, args ...any) error {
	return &exitError{exitConfig, fmt.Errorf(format, args...)}
}

// apiError turns the error of the call doing what into one line with the
// exit code scripts branch on: the API's message, then the field it
// names and the API's code.
func apiError(what string, err error) error {
	var ae *admin.Error
	if errors.As(err, &ae) {
		msg := ae.Message
		if ae.Field != "" {
			msg += " (field " + ae.Field + ")"
		}
		return &exitError{exitCodeOf(ae), fmt.Errorf("%s: %s [%s]", what, oneLine(msg), ae.Code)}
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return err
	}
	code := exitFail
	if errors.Is(err, scale.ErrNoHealthyNode) {
		code = exitUnavailable
	}
	return &exitError{code, fmt.Errorf("%s: %s", what, oneLine(err.Error()))}
}

// exitCodes maps the API's error codes (admin.Error.Code) to exit codes.
var exitCodes = map[string]int{
	admin.CodeBadRequest:      exitConfig,
	admin.CodeInvalid:         exitConfig,
	admin.CodeTooLarge:        exitConfig,
	admin.CodeUnsupported:     exitConfig,
	admin.CodeMethod:          exitConfig,
	admin.CodeIdempotency:     exitConfig,
	admin.CodeNotFound:        exitNotFound,
	admin.CodeUnauthenticated: exitDenied,
	admin.CodeForbidden:       exitDenied,
	admin.CodeConflict:        exitConflict,
	admin.CodeUnavailable:     exitUnavailable,
	admin.CodeTimeout:         exitUnavailable,
	admin.CodeTooMany:         exitUnavailable,
	admin.CodeQueueFull:       exitUnavailable,
	admin.CodeInternal:        exitFail,
}

// exitCodeOf maps an API error to an exit code by its code; a code this
// binary does not know (a newer service) by its status class.
func exitCodeOf(e *admin.Error) int {
	if code, ok := exitCodes[e.Code]; ok {
		return code
	}
	switch {
	case e.Status == http.StatusNotFound:
		return exitNotFound
	case e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden:
		return exitDenied
	case e.Status == http.StatusConflict:
		return exitConflict
	case e.Status == http.StatusServiceUnavailable || e.Status == http.StatusTooManyRequests:
		return exitUnavailable
	case e.Status >= 400 && e.Status < 500:
		return exitConfig
	}
	return exitFail
}

// oneLine keeps an error on one line of stderr.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// completeQueues completes queue names from the service, when the flags
// or the environment say where it is; otherwise it offers nothing.
func (o *apiOpts) completeQueues(cmd *cobra.Command, _ []string, _ string) ([]string, cobra.ShellCompDirective) {
	c, err := o.client()
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	qs, err := c.Queues(cmd.Context())
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	names := make([]string, len(qs))
	for i, q := range qs {
		names[i] = q.Name
	}
	return names, cobra.ShellCompDirectiveNoFileComp
}

// completeQueueArg completes a command's first argument with queue names.
func (o *apiOpts) completeQueueArg(cmd *cobra.Command, args []string, to string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	return o.completeQueues(cmd, args, to)
}

// run makes a command's RunE that calls the API with a client made from
// the shared flags, under the command's context.
func (o *apiOpts) run(f func(ctx context.Context, c *adminclient.Client, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		c, err := o.client()
		if err != nil {
			return err
		}
		return f(cmd.Context(), c, args)
	}
}

// group returns a command group over the API: each of subs gets the
// shared flags. The group alone prints its help; with an unknown
// subcommand it is a usage error, so a typo in a script does not pass.
func (o *apiOpts) group(use, short string, subs ...*cobra.Command) *cobra.Command {
	cmd := o.command(&cobra.Command{Use: use, Short: short, Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() }})
	for _, sub := range subs {
		o.addFlags(sub.Flags())
	}
	cmd.AddCommand(subs...)
	return cmd
}

// callView sends method path with body (none if nil) and returns the
// answer as the API wrote it, for -o json, and decoded into a V, the
// part a table shows.
func callView[V any](ctx context.Context, c *adminclient.Client, method, path string, body any) (*V, json.RawMessage, error) {
	var raw json.RawMessage
	if err := c.Do(ctx, method, path, body, &raw); err != nil {
		return nil, nil, err
	}
	var v V
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, nil, fmt.Errorf("decode the answer to %s %s: %w", method, path, err)
		}
	}
	return &v, raw, nil
}
