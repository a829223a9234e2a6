package main

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/aibos/worker/admin"
	"github.com/aibos/worker/admin/adminclient"
)

// newQueueTenantsCmd builds `aibos-worker queues tenants ls|show|pause|resume`:
// each tenant's share of one queue, and pausing one tenant's jobs there.
func newQueueTenantsCmd(o *apiOpts) *cobra.Command {
	var offset, limit int
	table := func(w *tabwriter.Writer, ts ...admin.QueueTenant) {
		row(w, "TENANT", "PAUSED", "WAITING", "RUNNING", "OLDEST PENDING", "STARTS/S", "WEIGHT", "MAX ACTIVE")
		for _, t := range ts {
			row(w, t.Tenant, t.TenantPaused, t.Counts["pending"]+t.Counts["scheduled"], t.Counts["active"],
				whenPtr(t.OldestPendingAt), strconv.FormatFloat(t.StartRate, 'f', 2, 64), t.Weight, t.MaxActive)
		}
	}
	path := func(args []string) string {
		p := "/api/v1/queues/" + url.PathEscape(args[0]) + "/tenants"
		if len(args) > 1 {
			p += "/" + url.PathEscape(args[1])
		}
		return p
	}
	ls := &cobra.Command{
		Use:               "ls QUEUE",
		Short:             "List a queue's tenants: waiting and running jobs, oldest pending, starts per second over the last 5 minutes",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: o.completeQueueArg,
		RunE: o.run(func(ctx context.Context, c *adminclient.Client, args []string) error {
			q := url.Values{"offset": {strconv.Itoa(offset)}, "limit": {strconv.Itoa(limit)}}
			l, raw, err := callView[admin.QueueTenantList](ctx, c, "GET", path(args)+"?"+q.Encode(), nil)
			if err != nil {
				return apiError("list the tenants of queue "+args[0], err)
			}
			return o.show(raw, func(w *tabwriter.Writer) {
				table(w, l.Tenants...)
				o.morePages("tenants", l.Total, l.NextOffset)
			})
		}),
	}
	ls.Flags().IntVar(&offset, "offset", 0, "skip this many tenants")
	ls.Flags().IntVar(&limit, "limit", 50, "most tenants to list, 1..100")
	show := &cobra.Command{
		Use:               "show QUEUE TENANT",
		Short:             "Show one tenant's share of a queue, with its rate limits",
		Args:              cobra.ExactArgs(2),
		ValidArgsFunction: o.completeQueueArg,
		RunE: o.run(func(ctx context.Context, c *adminclient.Client, args []string) error {
			t, raw, err := callView[admin.QueueTenant](ctx, c, "GET", path(args), nil)
			if err != nil {
				return apiError("show tenant "+args[1]+" of queue "+args[0], err)
			}
			return o.show(raw, func(w *tabwriter.Writer) {
				table(w, *t)
				for _, r := range t.Rates {
					fmt.Fprintf(w, "rate limit%s: %d per %dms, %d available now\n", rateScope(r), r.Limit, r.PeriodMs, r.Available)
				}
			})
		}),
	}
	act := func(verb, short string) *cobra.Command {
		return &cobra.Command{
			Use:               verb + " QUEUE TENANT",
			Short:             short,
			Args:              cobra.ExactArgs(2),
			ValidArgsFunction: o.completeQueueArg,
			RunE: o.run(func(ctx context.Context, c *adminclient.Client, args []string) error {
				_, raw, err := callView[struct{}](ctx, c, "POST", path(args)+"/"+verb, nil)
				if err != nil {
					return apiError(verb+" tenant "+args[1]+" of queue "+args[0], err)
				}
				return o.show(raw, func(w *tabwriter.Writer) {
					fmt.Fprintf(w, "queue %s tenant %s %sd\n", args[0], args[1], verb)
				})
			}),
		}
	}
	pause := act("pause", "Stop workers leasing one tenant's jobs of a queue; the other tenants' jobs run on")
	resume := act("resume", "Let workers lease one tenant's jobs of a queue again")
	// Not runnable, so that the shared flags are its subcommands' alone.
	group := o.command(&cobra.Command{Use: "tenants", Short: "Each tenant's share of a queue; pause and resume one tenant there (over the API)"})
	for _, sub := range []*cobra.Command{ls, show, pause, resume} {
		o.addFlags(sub.Flags())
		group.AddCommand(sub)
	}
	return group
}

// rateScope names what a rate limit applies to.
func rateScope(r admin.RateLimit) string {
	switch {
	case r.Tenant != "" && r.Type != "":
		return " of tenant " + r.Tenant + " type " + r.Type
	case r.Tenant != "":
		return " of tenant " + r.Tenant
	case r.Type != "":
		return " of type " + r.Type
	}
	return ""
}
