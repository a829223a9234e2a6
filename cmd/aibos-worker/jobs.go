package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/aibos/worker/admin"
	"github.com/aibos/worker/admin/adminclient"
)

// newJobsCmd builds `aibos-worker jobs ls|get|retry|cancel|delete`.
func newJobsCmd(o *apiOpts) *cobra.Command {
	var (
		f             admin.JobFilter
		since, until  string
		cursor        string
		limit         int
		all           bool
		queue         string
		now           = time.Now
		completeQueue = func(cmd *cobra.Command) {
			_ = cmd.RegisterFlagCompletionFunc("queue", o.completeQueues)
		}
	)
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List jobs, filtered by queue, state, type, tenant and creation time, a page at a time (--cursor) or all (--all)",
		Args:  cobra.NoArgs,
		RunE: o.run(func(ctx context.Context, c *adminclient.Client, _ []string) error {
			var err error
			if f.From, err = parseSince("--since", since, now()); err != nil {
				return err
			}
			if f.To, err = parseSince("--until", until, now()); err != nil {
				return err
			}
			if all && cursor != "" {
				return usageErrorf("--all and --cursor: give one (--all reads every page from the first)")
			}
			page, err := c.ListJobs(ctx, f, cursor, limit)
			if err != nil {
				return apiError("list jobs", err)
			}
			for all && page.NextCursor != "" {
				next, err := c.ListJobs(ctx, f, page.NextCursor, limit)
				if err != nil {
					return apiError("list jobs", err)
				}
				page.Jobs, page.NextCursor = append(page.Jobs, next.Jobs...), next.NextCursor
			}
			return o.show(page, func(w *tabwriter.Writer) {
				row(w, "ID", "QUEUE", "TYPE", "STATE", "ATTEMPT", "TENANT", "CREATED")
				for _, j := range page.Jobs {
					row(w, j.ID, j.Queue, j.Type, j.State, fmt.Sprintf("%d/%d", j.Attempt, j.MaxAttempts), orDash(j.TenantID, "-"), when(j.CreatedAt))
				}
				if page.NextCursor != "" {
					fmt.Fprintf(o.stderr, "more jobs: run again with --cursor %s, or with --all\n", page.NextCursor)
				}
			})
		}),
	}
	lf := ls.Flags()
	lf.StringVar(&f.Queue, "queue", "", "only this queue")
	lf.StringVar(&f.State, "state", "", "only this state: scheduled, pending, active, completed, dead, cancelled or expired")
	lf.StringVar(&f.Type, "type", "", "only this job type")
	lf.StringVar(&f.Tenant, "tenant", "", "only this tenant")
	lf.StringVar(&since, "since", "", "only jobs created at or after this: a duration ago (2h) or an RFC 3339 time")
	lf.StringVar(&until, "until", "", "only jobs created before this: a duration ago (2h) or an RFC 3339 time")
	lf.IntVar(&limit, "limit", 0, "jobs per page, 1..1000 (default the service's, 100)")
	lf.StringVar(&cursor, "cursor", "", "the page after the one that printed this cursor")
	lf.BoolVar(&all, "all", false, "read every page")
	completeQueue(ls)
	_ = ls.RegisterFlagCompletionFunc("state", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return []string{"scheduled", "pending", "active", "completed", "dead", "cancelled", "expired"}, cobra.ShellCompDirectiveNoFileComp
	})

	byID := func(use, short string, act func(ctx context.Context, c *adminclient.Client, id string) (*admin.Job, error), what string) *cobra.Command {
		cmd := &cobra.Command{
			Use:   use + " ID",
			Short: short,
			Args:  cobra.ExactArgs(1),
			RunE: o.run(func(ctx context.Context, c *adminclient.Client, args []string) error {
				j, err := act(ctx, c, args[0])
				if err != nil {
					return apiError(what+" job "+args[0], err)
				}
				return o.show(j, func(w *tabwriter.Writer) { jobTable(w, j) })
			}),
		}
		cmd.Flags().StringVar(&queue, "queue", "", "the job's queue (found by id if left out)")
		completeQueue(cmd)
		return cmd
	}
	get := byID("get", "Show a job: its state, attempts, last error, data and result",
		func(ctx context.Context, c *adminclient.Client, id string) (*admin.Job, error) {
			return c.Job(ctx, id, queue)
		}, "get")
	retry := byID("retry", "Run a dead, cancelled or expired job again",
		func(ctx context.Context, c *adminclient.Client, id string) (*admin.Job, error) {
			return c.RetryJob(ctx, id, queue)
		}, "retry")
	cancel := byID("cancel", "Cancel a scheduled, pending or active job",
		func(ctx context.Context, c *adminclient.Client, id string) (*admin.Job, error) {
			return c.CancelJob(ctx, id, queue)
		}, "cancel")
	del := &cobra.Command{
		Use:   "delete ID",
		Short: "Delete a job that is not active",
		Args:  cobra.ExactArgs(1),
		RunE: o.run(func(ctx context.Context, c *adminclient.Client, args []string) error {
			if err := c.DeleteJob(ctx, args[0], queue); err != nil {
				return apiError("delete job "+args[0], err)
			}
			return o.show(map[string]any{"id": args[0], "deleted": true}, func(w *tabwriter.Writer) {
				fmt.Fprintf(w, "deleted job %s\n", args[0])
			})
		}),
	}
	del.Flags().StringVar(&queue, "queue", "", "the job's queue (found by id if left out)")
	completeQueue(del)
	return o.group("jobs", "List, show, retry, cancel and delete jobs (over the API)", ls, get, retry, cancel, del)
}

// jobTable writes one job as NAME VALUE lines.
func jobTable(w *tabwriter.Writer, j *admin.Job) {
	row(w, "ID", j.ID)
	row(w, "QUEUE", j.Queue)
	row(w, "TYPE", j.Type)
	row(w, "STATE", j.State)
	row(w, "PRIORITY", j.Priority)
	row(w, "ATTEMPT", fmt.Sprintf("%d/%d", j.Attempt, j.MaxAttempts))
	row(w, "TENANT", orDash(j.TenantID, "-"))
	row(w, "COMPANY", orDash(j.CompanyID, "-"))
	row(w, "CREATED", when(j.CreatedAt))
	row(w, "RUN AT", when(j.RunAt))
	row(w, "STARTED", whenPtr(j.StartedAt))
	row(w, "FINISHED", whenPtr(j.FinishedAt))
	row(w, "LAST ERROR", orDash(oneLine(j.LastError), "-"))
	row(w, "DATA", orDash(string(j.Data), "-"))
	row(w, "RESULT", orDash(string(j.Result), "-"))
}

// parseSince reads a time flag: a duration ago or an RFC 3339 time; ""
// is the zero time.
func parseSince(flag, v string, now time.Time) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(v); err == nil {
		if d < 0 {
			return time.Time{}, usageErrorf("%s %q: want a duration ago, not a negative one", flag, v)
		}
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, usageErrorf("%s %q: want a duration ago (2h) or an RFC 3339 time (2026-01-02T15:04:05Z)", flag, v)
	}
	return t, nil
}

// newDeadCmd builds `aibos-worker dead retry|delete`: the bulk actions on
// a queue's dead jobs.
func newDeadCmd(o *apiOpts) *cobra.Command {
	var (
		f        admin.JobFilter
		dryRun   bool
		progress time.Duration
	)
	action := func(name, short string) *cobra.Command {
		cmd := &cobra.Command{
			Use:   name,
			Short: short,
			Args:  cobra.NoArgs,
			RunE: o.run(func(ctx context.Context, c *adminclient.Client, _ []string) error {
				if f.Queue == "" {
					return usageErrorf("--queue is required: bulk actions work on one queue's dead jobs")
				}
				f.State = "dead"
				res, err := bulk(ctx, c, admin.BulkRequest{Action: name, Filter: f, DryRun: dryRun}, progress, o.stderr)
				if err != nil {
					return apiError(name+" dead jobs in queue "+f.Queue, err)
				}
				return o.show(res, func(w *tabwriter.Writer) {
					switch {
					case res.DryRun && res.Truncated:
						fmt.Fprintf(w, "would %s at least %d dead jobs in queue %s (dry run)\n", name, res.Matched, f.Queue)
					case res.DryRun:
						fmt.Fprintf(w, "would %s %d dead jobs in queue %s (dry run)\n", name, res.Matched, f.Queue)
					default:
						fmt.Fprintf(w, "%s: %d of %d dead jobs in queue %s, %d failed\n", pastTense(name), res.Done, res.Matched, f.Queue, res.Failed)
						for _, e := range res.Errors {
							fmt.Fprintf(w, "  %s: %s\n", e.ID, oneLine(e.Message))
						}
					}
				})
			}),
		}
		fl := cmd.Flags()
		fl.StringVar(&f.Queue, "queue", "", "the queue (required)")
		fl.StringVar(&f.Type, "type", "", "only jobs of this type")
		fl.StringVar(&f.Tenant, "tenant", "", "only this tenant's jobs")
		fl.BoolVar(&dryRun, "dry-run", false, "only count the jobs the action would apply to")
		fl.DurationVar(&progress, "progress-after", time.Second, "print a progress line on stderr once the action has run this long")
		_ = cmd.RegisterFlagCompletionFunc("queue", o.completeQueues)
		return cmd
	}
	return o.group("dead", "Retry or delete a queue's dead jobs in bulk; --dry-run counts them first (over the API)",
		action("retry", "Retry the dead jobs the flags select"),
		action("delete", "Delete the dead jobs the flags select"))
}

func pastTense(action string) string {
	if action == "retry" {
		return "retried"
	}
	return "deleted"
}

// bulk runs a bulk action to its end: the API acts on at most
// admin.MaxBulk jobs a call, so a real run calls again while more match.
// Once the action has run for progressAfter, a progress line on stderr
// says how far it got, each second.
func bulk(ctx context.Context, c *adminclient.Client, req admin.BulkRequest, progressAfter time.Duration, stderr io.Writer) (*admin.BulkResponse, error) {
	total := &admin.BulkResponse{Action: req.Action, DryRun: req.DryRun}
	progress := make(chan admin.BulkResponse, 1)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		showProgress(req, progressAfter, progress, stop, stderr)
	}()
	defer func() { close(stop); <-done }()
	for {
		res, err := c.BulkJobs(ctx, req)
		if err != nil {
			return nil, err
		}
		total.Matched += res.Matched
		total.Done += res.Done
		total.Failed += res.Failed
		total.Errors = append(total.Errors, res.Errors...)
		total.Truncated = res.Truncated
		select {
		case <-progress:
		default:
		}
		progress <- *total
		// A dry run counts once; a real run stops when nothing more
		// matches, or when a call moved no job (they all failed).
		if req.DryRun || !res.Truncated || res.Done == 0 {
			return total, nil
		}
	}
}

// showProgress prints a progress line each second once after has passed,
// with the latest totals, until stop; an action that ends after that
// long without a line yet gets one, so a slow action always shows one.
func showProgress(req admin.BulkRequest, after time.Duration, progress <-chan admin.BulkResponse, stop <-chan struct{}, stderr io.Writer) {
	start := time.Now()
	timer := time.NewTimer(after)
	defer timer.Stop()
	var latest admin.BulkResponse
	printed := false
	line := func() {
		verb := map[string]string{"retry": "retrying", "delete": "deleting"}[req.Action]
		if req.DryRun {
			fmt.Fprintf(stderr, "counting dead jobs in queue %s to %s (%s)\n", req.Filter.Queue, req.Action, time.Since(start).Round(time.Second))
			printed = true
			return
		}
		fmt.Fprintf(stderr, "%s dead jobs in queue %s: %d done, %d failed so far (%s)\n", verb, req.Filter.Queue, latest.Done, latest.Failed, time.Since(start).Round(time.Second))
		printed = true
	}
	for {
		select {
		case <-stop:
			select {
			case latest = <-progress:
			default:
			}
			if !printed && time.Since(start) >= after {
				line()
			}
			return
		case latest = <-progress:
		case <-timer.C:
			line()
			timer.Reset(time.Second)
		}
	}
}
