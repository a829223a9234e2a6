package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/aibos/worker/accounting/jobs"
	"github.com/aibos/worker/admin"
	"github.com/aibos/worker/admin/adminclient"
)

// newReportsCmd builds `aibos-worker reports ls|get|run`: a company's
// daily reports (trial balance and receivables aging, CSV and PDF), as
// the API lists and serves them, and a run of report.generation for one
// company.
func newReportsCmd(o *apiOpts) *cobra.Command {
	var tenant string
	reportsPath := func(company string, parts ...string) string {
		p := "/api/v1/companies/" + url.PathEscape(company) + "/reports"
		for _, s := range parts {
			p += "/" + url.PathEscape(s)
		}
		if tenant != "" {
			p += "?" + url.Values{"tenant": {tenant}}.Encode()
		}
		return p
	}
	tenantFlag := func(cmd *cobra.Command) {
		cmd.Flags().StringVar(&tenant, "tenant", "", "the company's tenant (a tenant-scoped token's own if left out)")
	}

	ls := &cobra.Command{
		Use:   "ls COMPANY",
		Short: "List a company's report files, newest date first",
		Args:  cobra.ExactArgs(1),
		RunE: o.run(func(ctx context.Context, c *adminclient.Client, args []string) error {
			l, raw, err := callView[admin.ReportList](ctx, c, "GET", reportsPath(args[0]), nil)
			if err != nil {
				return apiError("list the reports of company "+args[0], err)
			}
			return o.show(raw, func(w *tabwriter.Writer) {
				row(w, "DATE", "NAME", "SIZE", "WRITTEN")
				for _, f := range l.Reports {
					row(w, f.Date, f.Name, f.Size, when(f.Written))
				}
			})
		}),
	}
	tenantFlag(ls)

	var out string
	get := &cobra.Command{
		Use:   "get COMPANY DATE NAME",
		Short: "Download a report file (e.g. 2026-03-15 trial-balance.pdf)",
		Long: `Download a report file to --out (default COMPANY-DATE-NAME in the current
directory). The file appears whole or not at all: it is written beside
the target and renamed.`,
		Args: cobra.ExactArgs(3),
		RunE: o.run(func(ctx context.Context, c *adminclient.Client, args []string) error {
			company, date, name := args[0], args[1], args[2]
			if _, err := time.Parse(time.DateOnly, date); err != nil {
				return usageErrorf("report date %q: want YYYY-MM-DD", date)
			}
			dst := out
			if dst == "" {
				dst = company + "-" + date + "-" + name
			}
			if dst == "-" {
				if _, err := c.Download(ctx, reportsPath(company, date, name), o.stdout); err != nil {
					return apiError(fmt.Sprintf("download report %s %s of company %s", date, name, company), err)
				}
				return nil
			}
			n, err := download(ctx, c, reportsPath(company, date, name), dst)
			if err != nil {
				return apiError(fmt.Sprintf("download report %s %s of company %s", date, name, company), err)
			}
			fmt.Fprintf(o.stdout, "%s: %d bytes\n", dst, n)
			return nil
		}),
	}
	tenantFlag(get)
	get.Flags().StringVarP(&out, "out", "O", "", "the file to write (- for stdout)")

	var date string
	run := &cobra.Command{
		Use:   "run COMPANY --tenant TENANT",
		Short: "Enqueue report.generation for a company now (queue reports)",
		Long: `Enqueue a report.generation job that writes the company's daily reports
as of --date (default: today in the tenant's time zone), replacing that
date's files. Follow it with jobs get; the files then show in reports ls.`,
		Args: cobra.ExactArgs(1),
		RunE: o.run(func(ctx context.Context, c *adminclient.Client, args []string) error {
			if date != "" {
				if _, err := time.Parse(time.DateOnly, date); err != nil {
					return usageErrorf("--date %q: want YYYY-MM-DD", date)
				}
			}
			payload := map[string]string{"reportType": "daily", "tenantId": tenant, "companyId": args[0]}
			if date != "" {
				payload["date"] = date
			}
			data, err := json.Marshal(payload)
			if err != nil {
				return err
			}
			req := admin.EnqueueRequest{Type: jobs.TypeReport, Data: data, TenantID: tenant, CompanyID: args[0]}
			j, err := c.Enqueue(ctx, jobs.QueueReports, req, "")
			if err != nil {
				return apiError("enqueue the reports of company "+args[0], err)
			}
			return o.show(j, func(w *tabwriter.Writer) { jobTable(w, j) })
		}),
	}
	tenantFlag(run)
	_ = run.MarkFlagRequired("tenant")
	run.Flags().StringVar(&date, "date", "", "the day reported on, YYYY-MM-DD (default: today in the tenant's zone)")

	return o.group("reports", "List, download and run a company's daily reports (over the API)", ls, get, run)
}

// download writes the answer to GET path to the file dst, whole or not at
// all: into a temporary file beside dst, renamed once complete.
func download(ctx context.Context, c *adminclient.Client, path, dst string) (int64, error) {
	f, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".*")
	if err != nil {
		return 0, fmt.Errorf("create the download file: %w", err)
	}
	defer os.Remove(f.Name()) // after the rename, nothing is left to remove
	n, err := c.Download(ctx, path, f)
	if cerr := f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("write %s: %w", dst, cerr)
	}
	if err != nil {
		return 0, err
	}
	if err := os.Rename(f.Name(), dst); err != nil {
		return 0, fmt.Errorf("save %s: %w", dst, err)
	}
	return n, nil
}
