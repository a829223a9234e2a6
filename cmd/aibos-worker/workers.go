package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/aibos/worker/admin/adminclient"
	"github.com/aibos/worker/health"
	"github.com/aibos/worker/internal/workerreg"
)

// newWorkersCmd builds `aibos-worker workers`.
func newWorkersCmd(o *apiOpts) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "workers",
		Short: "List the worker processes with their last heartbeat, concurrency and utilisation (over the API)",
		Args:  cobra.NoArgs,
		RunE: o.run(func(ctx context.Context, c *adminclient.Client, _ []string) error {
			l, raw, err := callView[struct {
				Workers []*workerreg.Worker `json:"workers"`
			}](ctx, c, "GET", "/api/v1/workers", nil)
			if err != nil {
				return apiError("list workers", err)
			}
			return o.show(raw, func(w *tabwriter.Writer) {
				row(w, "ID", "HOST", "PID", "QUEUES", "CONCURRENCY", "BUSY", "UTILISATION", "LAST SEEN", "GONE")
				for _, wk := range l.Workers {
					row(w, wk.ID, wk.Host, wk.PID, strings.Join(wk.Queues, ","), wk.Concurrency, wk.Busy, fmt.Sprintf("%.0f%%", wk.Utilisation*100), when(wk.LastSeen), wk.Gone)
				}
			})
		}),
	}
	return o.command(cmd)
}

// nodeHealth is one service's answer to /readyz.
type nodeHealth struct {
	URL   string `json:"url"`
	Ready bool   `json:"ready"`
	// HTTPStatus is /readyz's status, 0 when the service did not answer.
	HTTPStatus int            `json:"httpStatus"`
	Error      string         `json:"error,omitempty"`
	Report     *health.Report `json:"report,omitempty"`
}

// newHealthCmd builds `aibos-worker health`: /readyz of every service
// URL, no token needed. It exits 0 when every one is ready, else 7.
func newHealthCmd(o *apiOpts) *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "health",
		Short: "Ask each service's /readyz whether it is ready; exit 0 if all are, 7 if not",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.checkOutput(); err != nil {
				return err
			}
			urls := o.resolvedURLs()
			if len(urls) == 0 {
				return usageErrorf("no service URL: give --url or set %s", envURL)
			}
			hc := &http.Client{Timeout: timeout}
			out := struct {
				Ready bool          `json:"ready"`
				Nodes []*nodeHealth `json:"nodes"`
			}{Ready: true}
			for _, u := range urls {
				n := readyz(cmd.Context(), hc, u)
				out.Ready = out.Ready && n.Ready
				out.Nodes = append(out.Nodes, n)
			}
			err := o.show(out, func(w *tabwriter.Writer) {
				row(w, "URL", "READY", "STATUS", "FAILING CHECKS")
				for _, n := range out.Nodes {
					status, failing := "unreachable", []string{}
					if n.Report != nil {
						status = string(n.Report.Status)
						for _, c := range n.Report.Checks {
							if c.Status != health.Healthy {
								failing = append(failing, c.Name+": "+oneLine(c.Error))
							}
						}
					} else if n.Error != "" {
						failing = append(failing, oneLine(n.Error))
					}
					row(w, n.URL, n.Ready, status, orDash(strings.Join(failing, "; "), "-"))
				}
			})
			if err == nil && !out.Ready {
				return &exitError{exitUnavailable, fmt.Errorf("not ready: %s", notReady(out.Nodes))}
			}
			return err
		},
	}
	o.command(cmd)
	cmd.Flags().DurationVar(&timeout, "wait", 10*time.Second, "how long to wait for each service's answer")
	return cmd
}

// readyz asks base's /readyz.
func readyz(ctx context.Context, hc *http.Client, base string) *nodeHealth {
	n := &nodeHealth{URL: base}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/readyz", nil)
	if err != nil {
		n.Error = fmt.Sprintf("--url %q: %v", base, err)
		return n
	}
	resp, err := hc.Do(req)
	if err != nil {
		n.Error = err.Error()
		return n
	}
	defer resp.Body.Close()
	n.HTTPStatus = resp.StatusCode
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var rep health.Report
	if err == nil && json.Unmarshal(b, &rep) == nil && rep.Status != "" {
		n.Report = &rep
	} else {
		n.Error = fmt.Sprintf("/readyz answered %d with a body that is not a health report", resp.StatusCode)
	}
	n.Ready = resp.StatusCode == http.StatusOK && n.Report != nil
	return n
}

// notReady names the services that are not ready.
func notReady(nodes []*nodeHealth) string {
	var names []string
	for _, n := range nodes {
		if !n.Ready {
			names = append(names, n.URL)
		}
	}
	return strings.Join(names, ", ")
}
