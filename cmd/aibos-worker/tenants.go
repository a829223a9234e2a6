package main

import (
	"context"
	"net/url"
	"strconv"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/aibos/worker/admin/adminclient"
	"github.com/aibos/worker/tenant"
)

// tenantFields are the flags of tenants create and update.
type tenantFields struct {
	name, timeZone, currency string
	limits                   tenant.Limits
}

func (f *tenantFields) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.name, "name", "", "display name")
	fs.StringVar(&f.timeZone, "time-zone", "", "IANA time zone, e.g. Europe/Paris (default UTC)")
	fs.StringVar(&f.currency, "currency", "", "ISO 4217 currency code, e.g. EUR (default USD)")
	fs.IntVar(&f.limits.MaxConcurrency, "max-concurrency", 0, "most of the tenant's jobs running at once over every worker (0: no cap)")
	fs.Float64Var(&f.limits.RatePerSecond, "rate", 0, "most of the tenant's jobs started per second (0: no cap)")
	fs.IntVar(&f.limits.Weight, "weight", 0, "the tenant's share in fair scheduling, 1..1000 (default 1)")
}

// newTenantsCmd builds `aibos-worker tenants ls|get|create|update`.
func newTenantsCmd(o *apiOpts) *cobra.Command {
	var offset, limit int
	table := func(w *tabwriter.Writer, ts ...*tenant.Tenant) {
		row(w, "ID", "NAME", "TIME ZONE", "CURRENCY", "MAX CONCURRENCY", "RATE/S", "WEIGHT", "CREATED")
		for _, t := range ts {
			row(w, t.ID, t.Name, t.TimeZone, t.Currency, t.Limits.MaxConcurrency, strconv.FormatFloat(t.Limits.RatePerSecond, 'g', -1, 64), t.Limits.Weight, when(t.CreatedAt))
		}
	}
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List the tenants",
		Args:  cobra.NoArgs,
		RunE: o.run(func(ctx context.Context, c *adminclient.Client, _ []string) error {
			path := "/api/v1/tenants?" + url.Values{"offset": {strconv.Itoa(offset)}, "limit": {strconv.Itoa(limit)}}.Encode()
			l, raw, err := callView[struct {
				Tenants    []*tenant.Tenant `json:"tenants"`
				NextOffset int              `json:"nextOffset"`
				Total      int              `json:"total"`
			}](ctx, c, "GET", path, nil)
			if err != nil {
				return apiError("list tenants", err)
			}
			return o.show(raw, func(w *tabwriter.Writer) {
				table(w, l.Tenants...)
				o.morePages("tenants", l.Total, l.NextOffset)
			})
		}),
	}
	ls.Flags().IntVar(&offset, "offset", 0, "skip this many tenants")
	ls.Flags().IntVar(&limit, "limit", 100, "tenants per page, 1..1000")

	get := &cobra.Command{
		Use:   "get ID",
		Short: "Show a tenant",
		Args:  cobra.ExactArgs(1),
		RunE: o.run(func(ctx context.Context, c *adminclient.Client, args []string) error {
			t, raw, err := callView[tenant.Tenant](ctx, c, "GET", "/api/v1/tenants/"+url.PathEscape(args[0]), nil)
			if err != nil {
				return apiError("get tenant "+args[0], err)
			}
			return o.show(raw, func(w *tabwriter.Writer) { table(w, t) })
		}),
	}

	var cf tenantFields
	create := &cobra.Command{
		Use:   "create ID",
		Short: "Add a tenant to the registry",
		Args:  cobra.ExactArgs(1),
		RunE: o.run(func(ctx context.Context, c *adminclient.Client, args []string) error {
			t, raw, err := callView[tenant.Tenant](ctx, c, "POST", "/api/v1/tenants", map[string]any{
				"id": args[0], "name": cf.name, "timeZone": cf.timeZone, "currency": cf.currency, "limits": cf.limits})
			if err != nil {
				return apiError("create tenant "+args[0], err)
			}
			return o.show(raw, func(w *tabwriter.Writer) { table(w, t) })
		}),
	}
	cf.register(create.Flags())
	_ = create.MarkFlagRequired("name")

	var uf tenantFields
	update := &cobra.Command{
		Use:   "update ID",
		Short: "Change a tenant: the flags given replace those values, the others are kept",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client()
			if err != nil {
				return err
			}
			ctx, fl, path := cmd.Context(), cmd.Flags(), "/api/v1/tenants/"+url.PathEscape(args[0])
			cur, _, err := callView[tenant.Tenant](ctx, c, "GET", path, nil)
			if err != nil {
				return apiError("update tenant "+args[0], err)
			}
			keep := func(flag, given, old string) string {
				if fl.Changed(flag) {
					return given
				}
				return old
			}
			body := map[string]any{"name": keep("name", uf.name, cur.Name), "timeZone": keep("time-zone", uf.timeZone, cur.TimeZone),
				"currency": keep("currency", uf.currency, cur.Currency)}
			// Limits are sent only when one is given: a tenant-scoped
			// admin may change the rest but not its tenant's limits.
			if fl.Changed("max-concurrency") || fl.Changed("rate") || fl.Changed("weight") {
				l := cur.Limits
				if fl.Changed("max-concurrency") {
					l.MaxConcurrency = uf.limits.MaxConcurrency
				}
				if fl.Changed("rate") {
					l.RatePerSecond = uf.limits.RatePerSecond
				}
				if fl.Changed("weight") {
					l.Weight = uf.limits.Weight
				}
				body["limits"] = l
			}
			t, raw, err := callView[tenant.Tenant](ctx, c, "PUT", path, body)
			if err != nil {
				return apiError("update tenant "+args[0], err)
			}
			return o.show(raw, func(w *tabwriter.Writer) { table(w, t) })
		},
	}
	uf.register(update.Flags())
	return o.group("tenants", "List, show, create and update tenants (over the API)", ls, get, create, update)
}
