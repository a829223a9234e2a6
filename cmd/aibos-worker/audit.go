package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/aibos/worker/admin"
	"github.com/aibos/worker/admin/adminclient"
	"github.com/aibos/worker/audit"
	"github.com/aibos/worker/service"
)

// exitTampered is audit verify's exit code for a trail that does not
// verify, so that a script tells tampering from a store it cannot reach
// (1) or a bad configuration (2).
const exitTampered = 8

// newAuditCmd builds `aibos-worker audit ls|verify`. loadConfig reads the
// configuration whose store verify opens.
func newAuditCmd(ctx context.Context, o *apiOpts, loadConfig func(*cobra.Command) (*service.Config, error)) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "List the audit trail through the API (ls), or check it offline with the key (verify)",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newAuditLsCmd(o), newAuditVerifyCmd(ctx, o, loadConfig))
	return cmd
}

func newAuditVerifyCmd(ctx context.Context, o *apiOpts, loadConfig func(*cobra.Command) (*service.Config, error)) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Check the audit trail offline: no entry removed, edited or re-chained, the newest ones not cut off",
		Long: `Verify opens the store the configuration names (as serve does; on the embedded
store, while the service is stopped), and checks the audit trail with the key
(WORKER_AUDIT_KEY, WORKER_AUDIT_KEY_FILE, or the key generated in the data
directory): the retention checkpoint's signature, every entry's chain value,
that no number is missing, and that the trail reaches the entry the head file
in the data directory names.

Exit codes: 0 the trail verifies; 8 it does not (the first bad entry is named
on stderr); 1 the store could not be read; 2 a configuration error.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "table" && output != "text" && output != "json" {
				return usageErrorf("--output %q: want table or json", output)
			}
			cfg, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			rep, err := service.VerifyAudit(ctx, cfg)
			var ve *audit.VerifyError
			switch {
			case errors.As(err, &ve):
				return &exitError{exitTampered, fmt.Errorf("audit trail does not verify: %w", err)}
			case err != nil:
				return runtimeError(fmt.Errorf("audit verify: %w", err))
			case output == "json":
				return writeJSONOut(o.stdout, rep)
			}
			fmt.Fprintln(o.stdout, describeReport(rep))
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table (a line for people) or json (the report)")
	return cmd
}

// describeReport says in one line what verified.
func describeReport(r *audit.Report) string {
	var b strings.Builder
	if r.Entries == 0 {
		b.WriteString("audit trail verified: no entries")
	} else {
		fmt.Fprintf(&b, "audit trail verified: entries %d..%d", r.First, r.Last)
	}
	if r.Trimmed > 0 {
		fmt.Fprintf(&b, "; %d older entries trimmed through entry %d under a signed checkpoint", r.Trimmed, r.TrimmedThrough)
	}
	if r.HeadFileChecked {
		fmt.Fprintf(&b, "; the head file names entry %d", r.HeadFileSeq)
	} else {
		b.WriteString("; no head file to check the newest entries against")
	}
	return b.String()
}

func newAuditLsCmd(o *apiOpts) *cobra.Command {
	var since, until, cursor string
	var f admin.AuditFilter
	var limit int
	cmd := &cobra.Command{
		Use:   "ls",
		Short: "List audit entries through the API, newest first (filters: --tenant, --actor, --action, --since, --until)",
		Args:  cobra.NoArgs,
		RunE: o.run(func(ctx context.Context, c *adminclient.Client, _ []string) error {
			now := time.Now()
			var err error
			if f.Since, err = parseWhen("--since", since, now); err != nil {
				return err
			}
			if f.Until, err = parseWhen("--until", until, now); err != nil {
				return err
			}
			page, err := c.Audit(ctx, f, cursor, limit)
			if err != nil {
				return apiError("list audit entries", err)
			}
			err = o.show(page, func(w *tabwriter.Writer) {
				row(w, "SEQ", "TIME", "ACTOR", "ROLE", "TENANT", "ACTION", "TARGET", "OUTCOME")
				for _, e := range page.Entries {
					row(w, e.Seq, when(e.Time), actorOf(e), orDash(e.Role, "-"), orDash(e.Tenant, "-"), e.Action, orDash(e.Target, "-"), outcomeOf(e))
				}
			})
			if err == nil && !o.json() && page.NextCursor != "" {
				fmt.Fprintf(o.stdout, "more: --cursor %s\n", page.NextCursor)
			}
			return err
		}),
	}
	fl := cmd.Flags()
	fl.StringVar(&f.Tenant, "tenant", "", "only this tenant's entries")
	fl.StringVar(&f.Actor, "actor", "", "only the entries of the token with this id or name")
	fl.StringVar(&f.Action, "action", "", "only this action (job.retry) or area (job)")
	fl.StringVar(&since, "since", "", "entries at or after: an RFC 3339 time, or a duration before now (24h)")
	fl.StringVar(&until, "until", "", "entries before: an RFC 3339 time, or a duration before now")
	fl.StringVar(&cursor, "cursor", "", "continue a listing where the page before ended")
	fl.IntVar(&limit, "limit", 0, "entries per page (1..1000; default 100)")
	return o.command(cmd)
}

func actorOf(e *audit.Entry) string {
	actor := orDash(e.TokenName, "(no token)")
	if e.TokenID != "" && e.TokenID != e.TokenName {
		actor += " (" + e.TokenID + ")"
	}
	return actor
}

func outcomeOf(e *audit.Entry) string {
	if e.Status == 0 {
		return string(e.Outcome)
	}
	return fmt.Sprintf("%s %d", e.Outcome, e.Status)
}

// parseWhen reads a time flag: RFC 3339, or a duration before now.
func parseWhen(flag, v string, now time.Time) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(v); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	at, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, usageErrorf("%s %q: want an RFC 3339 time (2027-01-31T00:00:00Z) or a duration before now (24h)", flag, v)
	}
	return at, nil
}
