package main

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/aibos/worker/admin/adminclient"
)

// runView is what the tables show of a workflow run of the API.
type runView struct {
	ID         string     `json:"id"`
	Workflow   string     `json:"workflow"`
	State      string     `json:"state"`
	TenantID   string     `json:"tenantId"`
	Error      string     `json:"error"`
	FailedStep string     `json:"failedStep"`
	CreatedAt  time.Time  `json:"createdAt"`
	FinishedAt *time.Time `json:"finishedAt"`
	Steps      []struct {
		Name     string `json:"name"`
		State    string `json:"state"`
		Attempts int    `json:"attempts"`
		Error    string `json:"error"`
	} `json:"steps"`
}

// runPage is a page of GET /api/v1/workflows/runs.
type runPage struct {
	Runs       []*runView `json:"runs"`
	NextCursor string     `json:"nextCursor,omitempty"`
}

// newWorkflowsCmd builds `aibos-worker workflows ls|get|cancel`.
func newWorkflowsCmd(o *apiOpts) *cobra.Command {
	var (
		workflow, state, tenant, cursor string
		limit                           int
	)
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List a workflow's runs, newest first, a page at a time",
		Args:  cobra.NoArgs,
		RunE: o.run(func(ctx context.Context, c *adminclient.Client, _ []string) error {
			if workflow == "" {
				return usageErrorf("--workflow is required: runs are listed per workflow")
			}
			q := url.Values{"workflow": {workflow}}
			for k, v := range map[string]string{"state": state, "tenant": tenant, "cursor": cursor} {
				if v != "" {
					q.Set(k, v)
				}
			}
			if limit > 0 {
				q.Set("limit", strconv.Itoa(limit))
			}
			page, raw, err := callView[runPage](ctx, c, "GET", "/api/v1/workflows/runs?"+q.Encode(), nil)
			if err != nil {
				return apiError("list runs of workflow "+workflow, err)
			}
			return o.show(raw, func(w *tabwriter.Writer) {
				row(w, "ID", "WORKFLOW", "STATE", "TENANT", "CREATED", "FINISHED", "FAILED STEP")
				for _, r := range page.Runs {
					row(w, r.ID, r.Workflow, r.State, orDash(r.TenantID, "-"), when(r.CreatedAt), whenPtr(r.FinishedAt), orDash(r.FailedStep, "-"))
				}
				if page.NextCursor != "" {
					fmt.Fprintf(o.stderr, "more runs: run again with --cursor %s\n", page.NextCursor)
				}
			})
		}),
	}
	lf := ls.Flags()
	lf.StringVar(&workflow, "workflow", "", "the workflow (required)")
	lf.StringVar(&state, "state", "", "only runs in this state: running, succeeded, failed or cancelled")
	lf.StringVar(&tenant, "tenant", "", "only this tenant's runs")
	lf.StringVar(&cursor, "cursor", "", "the page after the one that printed this cursor")
	lf.IntVar(&limit, "limit", 0, "runs per page, 1..1000")

	byID := func(use, short, method, suffix, what string) *cobra.Command {
		return &cobra.Command{
			Use:   use + " ID",
			Short: short,
			Args:  cobra.ExactArgs(1),
			RunE: o.run(func(ctx context.Context, c *adminclient.Client, args []string) error {
				r, raw, err := callView[runView](ctx, c, method, "/api/v1/workflows/runs/"+url.PathEscape(args[0])+suffix, nil)
				if err != nil {
					return apiError(what+" workflow run "+args[0], err)
				}
				return o.show(raw, func(w *tabwriter.Writer) {
					fmt.Fprintf(w, "run %s of %s: %s (created %s, finished %s)\n", r.ID, r.Workflow, r.State, when(r.CreatedAt), whenPtr(r.FinishedAt))
					if r.Error != "" {
						fmt.Fprintf(w, "error in step %s: %s\n", r.FailedStep, oneLine(r.Error))
					}
					row(w, "STEP", "STATE", "ATTEMPTS", "ERROR")
					for _, st := range r.Steps {
						row(w, st.Name, st.State, st.Attempts, orDash(oneLine(st.Error), "-"))
					}
				})
			}),
		}
	}
	return o.group("workflows", "List workflow runs, show one with its steps, cancel one (over the API)",
		ls,
		byID("get", "Show a run with its steps' states", "GET", "", "get"),
		byID("cancel", "Cancel a running run: its pending steps do not run", "POST", "/cancel", "cancel"))
}
