package main

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/aibos/worker/admin"
	"github.com/aibos/worker/admin/adminclient"
	"github.com/aibos/worker/broker"
)

// newQueuesCmd builds `aibos-worker queues ls|pause|resume|concurrency|tenants`.
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
	queueAct := func(use, short, method, suffix, what string, body func(args []string) (any, error)) *cobra.Command {
		return &cobra.Command{
			Use:               use,
			Short:             short,
			Args:              cobra.ExactArgs(strings.Count(use, " ")),
			ValidArgsFunction: o.completeQueueArg,
			RunE: o.run(func(ctx context.Context, c *adminclient.Client, args []string) error {
				b, err := body(args)
				if err != nil {
					return err
				}
				q, raw, err := callView[struct {
					Name        string `json:"name"`
					Paused      *bool  `json:"paused"`
					Concurrency *int   `json:"concurrency"`
				}](ctx, c, method, "/api/v1/queues/"+url.PathEscape(args[0])+suffix, b)
				if err != nil {
					return apiError(what+" "+args[0], err)
				}
				return o.show(raw, func(w *tabwriter.Writer) {
					switch {
					case q.Concurrency != nil:
						fmt.Fprintf(w, "queue %s concurrency %d\n", q.Name, *q.Concurrency)
					case q.Paused != nil && *q.Paused:
						fmt.Fprintf(w, "queue %s paused\n", q.Name)
					default:
						fmt.Fprintf(w, "queue %s resumed\n", q.Name)
					}
				})
			}),
		}
	}
	noBody := func([]string) (any, error) { return nil, nil }
	pause := queueAct("pause QUEUE", "Stop workers leasing the queue's jobs (enqueueing goes on)", "POST", "/pause", "pause queue", noBody)
	resume := queueAct("resume QUEUE", "Let workers lease the queue's jobs again", "POST", "/resume", "resume queue", noBody)
	concurrency := queueAct("concurrency QUEUE N", "Set how many of the queue's jobs each worker process runs at once (0: each process's own setting)",
		"PUT", "/concurrency", "set the concurrency of queue", func(args []string) (any, error) {
			n, err := strconv.Atoi(args[1])
			if err != nil || n < 0 {
				return nil, usageErrorf("concurrency %q: want a whole number, 0 or more", args[1])
			}
			return admin.QueueSettings{Concurrency: n}, nil
		})
	return o.group("queues", "List queues, pause and resume them, set their concurrency, see and pause their tenants (over the API)", ls, pause, resume, concurrency, newQueueTenantsCmd(o))
}
