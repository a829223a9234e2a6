package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/aibos/worker/admin"
)

// newEnqueueCmd builds `aibos-worker enqueue QUEUE TYPE`.
func newEnqueueCmd(o *apiOpts, stdin io.Reader) *cobra.Command {
	var (
		req            admin.EnqueueRequest
		data, dataFile string
		delay          time.Duration
		key            string
	)
	cmd := &cobra.Command{
		Use:   "enqueue QUEUE TYPE",
		Short: "Add a job to a queue (over the API); prints the job",
		Long: `Add a job to a queue. The job's data is the JSON of --data, or of the file
--data-file names (- for stdin); none means no data. A tenant-scoped token
enqueues for its own tenant.`,
		Args:              cobra.ExactArgs(2),
		ValidArgsFunction: o.completeQueueArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client()
			if err != nil {
				return err
			}
			raw, err := jobData(data, dataFile, stdin)
			if err != nil {
				return err
			}
			if delay < 0 {
				return usageErrorf("--delay %v: want a duration from now, not a negative one", delay)
			}
			req.Type, req.Data, req.Delay = args[1], raw, delay.Milliseconds()
			j, err := c.Enqueue(cmd.Context(), args[0], req, key)
			if err != nil {
				return apiError(fmt.Sprintf("enqueue a %s job to queue %s", args[1], args[0]), err)
			}
			return o.show(j, func(w *tabwriter.Writer) { jobTable(w, j) })
		},
	}
	o.command(cmd)
	f := cmd.Flags()
	f.StringVar(&data, "data", "", `the job's data as JSON, e.g. '{"invoiceId":"inv_1"}'`)
	f.StringVar(&dataFile, "data-file", "", "a file holding the job's data as JSON; - reads stdin")
	f.IntVar(&req.Priority, "priority", 0, "1 (most urgent) to 1000 (default 3)")
	f.DurationVar(&delay, "delay", 0, "run the job this long from now, e.g. 10m")
	f.IntVar(&req.Attempts, "attempts", 0, "how many times the job may be tried (default the service's)")
	f.StringVar(&req.TenantID, "tenant", "", "the job's tenant (a tenant-scoped token's own if left out)")
	f.StringVar(&req.CompanyID, "company", "", "the job's company")
	f.StringVar(&key, "idempotency-key", "", "sending the same key again returns the first job instead of adding a second")
	cmd.MarkFlagsMutuallyExclusive("data", "data-file")
	return cmd
}

// jobData reads the job's data from --data or --data-file and checks it
// is JSON.
func jobData(data, file string, stdin io.Reader) (json.RawMessage, error) {
	flag, b := "--data", []byte(data)
	switch {
	case file == "-":
		var err error
		if b, err = io.ReadAll(stdin); err != nil {
			return nil, &exitError{exitFail, fmt.Errorf("read the job's data from stdin: %w", err)}
		}
		flag = "--data-file - (stdin)"
	case file != "":
		var err error
		if b, err = os.ReadFile(file); err != nil {
			return nil, usageErrorf("--data-file: %v", err)
		}
		flag = "--data-file " + file
	case data == "":
		return nil, nil
	}
	if !json.Valid(b) {
		return nil, usageErrorf("%s: the job's data is not valid JSON", flag)
	}
	return json.RawMessage(b), nil
}
