package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/aibos/worker/admin"
	"github.com/aibos/worker/admin/adminclient"
	"github.com/aibos/worker/broker"
)

// newQueuesCmd builds `aibos-worker queues ls|pause|resume|concurrency`.
func newQueuesCmd(o *apiOpts) *cobra.Command {
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List the queues with their job counts per state",
		Args:  cobra.NoArgs,
		RunE: o.run(func(ctx context.Context, c *adminclient.Client, _ []string) error {
			qs, err := c.Queues(ctx)
			if err != nil {
				return apiError("list queues", err)
			}
			return o.show(admin.QueueList{Queues: qs}, func(w *tabwriter.Writer) {
				head := []any{"QUEUE", "PAUSED"}
				for _, st := range broker.States {
					head = append(head, strings.ToUpper(string(st)))
				}
				row(w, append(head, "CONCURRENCY", "MANAGED BY")...)
				for _, q := range qs {
					cells := []any{q.Name, q.Paused}
					for _, st := range broker.States {
						cells = append(cells, q.Counts[string(st)])
					}
					conc := "-"
					if q.Concurrency > 0 {
						conc = strconv.Itoa(q.Concurrency)
					}
					row(w, append(cells, conc, q.ManagedBy)...)
				}
			})
		}),
	}
	pauseResume := func(pause bool) *cobra.Command {
		use, short, verb := "pause QUEUE", "Stop workers leasing the queue's jobs (enqueueing goes on)", "paused"
		act := (*adminclient.Client).PauseQueue
		if !pause {
			use, short, verb, act = "resume QUEUE", "Let workers lease the queue's jobs again", "resumed", (*adminclient.Client).ResumeQueue
		}
		return &cobra.Command{
			Use:               use,
			Short:             short,
			Args:              cobra.ExactArgs(1),
			ValidArgsFunction: o.completeQueueArg,
			RunE: o.run(func(ctx context.Context, c *adminclient.Client, args []string) error {
				if err := act(c, ctx, args[0]); err != nil {
					return apiError(fmt.Sprintf("%s queue %s", verb[:len(verb)-1], args[0]), err)
				}
				return o.show(map[string]any{"name": args[0], "paused": pause}, func(w *tabwriter.Writer) {
					fmt.Fprintf(w, "queue %s %s\n", args[0], verb)
				})
			}),
		}
	}
	concurrency := &cobra.Command{
		Use:               "concurrency QUEUE N",
		Short:             "Set how many of the queue's jobs each worker process runs at once (0: each process's own setting)",
		Args:              cobra.ExactArgs(2),
		ValidArgsFunction: o.completeQueueArg,
		RunE: o.run(func(ctx context.Context, c *adminclient.Client, args []string) error {
			n, err := strconv.Atoi(args[1])
			if err != nil || n < 0 {
				return usageErrorf("concurrency %q: want a whole number, 0 or more", args[1])
			}
			if err := c.SetQueueConcurrency(ctx, args[0], n); err != nil {
				return apiError("set the concurrency of queue "+args[0], err)
			}
			return o.show(map[string]any{"name": args[0], "concurrency": n}, func(w *tabwriter.Writer) {
				fmt.Fprintf(w, "queue %s concurrency %d\n", args[0], n)
			})
		}),
	}
	return o.group("queues", "List queues, pause and resume them, set their concurrency (over the API)", ls, pauseResume(true), pauseResume(false), concurrency)
}
