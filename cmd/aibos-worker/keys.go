package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/aibos/worker/admin"
	"github.com/aibos/worker/admin/adminclient"
)

// newKeysCmd builds `aibos-worker keys rotate`. It goes through the admin
// API like the other commands, not to the store: the service keeps
// running (the embedded store is locked to the process serving it), the
// admin role and the audit trail cover it, and the keys stay in the
// service's environment. Each request re-seals a bounded number of jobs
// and saves a cursor in the store, so a rotate that is killed continues
// where it stopped when run again.
func newKeysCmd(o *apiOpts) *cobra.Command {
	var req admin.RotateRequest
	rotate := &cobra.Command{
		Use:   "rotate",
		Short: "Re-seal stored jobs, workflow runs and schedule templates under the service's newest encryption key (WORKER_ENCRYPTION_KEYS, newest last), in batches, resumably",
		Args:  cobra.NoArgs,
		RunE: o.run(func(ctx context.Context, c *adminclient.Client, _ []string) error {
			var total admin.RotateResult
			for {
				res, err := c.RotateKeys(ctx, req)
				if err != nil {
					return apiError("rotate keys", err)
				}
				total.Key, total.Done = res.Key, res.Done
				total.Read += res.Read
				total.Rewritten += res.Rewritten
				total.Values += res.Values
				total.Runs += res.Runs
				total.Schedules += res.Schedules
				total.Unreadable = append(total.Unreadable, res.Unreadable...)
				fmt.Fprintf(o.stderr, "read %d jobs and runs, re-sealed %d jobs, %d runs and %d schedules under key %s\n",
					total.Read, total.Rewritten, total.Runs, total.Schedules, total.Key)
				if res.Done {
					break
				}
			}
			fmt.Fprintf(o.stdout, "done: every stored job, workflow run and schedule is under key %s (%d jobs, %d runs and %d schedules re-sealed, %d values)\n",
				total.Key, total.Rewritten, total.Runs, total.Schedules, total.Values)
			for _, j := range total.Unreadable {
				fmt.Fprintf(o.stdout, "left as is, does not decrypt: %s\n", j)
			}
			return nil
		}),
	}
	rotate.Flags().StringSliceVar(&req.Queues, "queue", nil, "rotate only these queues (default every queue)")
	rotate.Flags().IntVar(&req.BatchSize, "batch", 0, "jobs per page, 1..1000 (default 100)")
	rotate.Flags().IntVar(&req.MaxJobs, "per-request", 0, "jobs each API request reads, 1..500 (default 500)")
	return o.group("keys", "Encryption keys (over the API)", rotate)
}
