package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/aibos/worker/admin"
	"github.com/aibos/worker/admin/adminclient"
	"github.com/aibos/worker/service"
)

// tokenBackend manages API tokens: offline in the store, or through a
// running service's API.
type tokenBackend interface {
	create(ctx context.Context, sp admin.TokenSpec) (string, *admin.TokenInfo, error)
	list(ctx context.Context) ([]*admin.TokenInfo, error)
	revoke(ctx context.Context, id string) error
}

// newTokensCmd builds `aibos-worker tokens create|list|revoke`.
// loadConfig reads the configuration whose store the offline mode opens.
func newTokensCmd(ctx context.Context, o *apiOpts, loadConfig func(*cobra.Command) (*service.Config, error)) *cobra.Command {
	stdout := o.stdout
	cmd := &cobra.Command{
		Use:   "tokens",
		Short: "Create, list and revoke API tokens: in the store while the service is stopped, else through its API (--url, --token)",
		Long: `Manage the admin API's bearer tokens.

Without --url (or AIBOS_WORKER_URL) the commands open the store the
configuration names, as serve does: that works while the service is stopped,
and is how the first admin token is made. While it runs, give --url and an
admin --token (or AIBOS_WORKER_URL and AIBOS_WORKER_TOKEN) and the commands go
through its API.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	o.addFlags(cmd.PersistentFlags())

	backend := func(cmd *cobra.Command) (tokenBackend, func() error, error) {
		if err := o.checkOutput(); err != nil {
			return nil, nil, err
		}
		if o.online() {
			c, err := o.client()
			if err != nil {
				return nil, nil, err
			}
			return remoteTokens{c}, func() error { return nil }, nil
		}
		cfg, err := loadConfig(cmd)
		if err != nil {
			return nil, nil, err
		}
		ts, closeStore, err := service.OpenTokens(ctx, cfg)
		if err != nil {
			return nil, nil, runtimeError(err)
		}
		return offlineTokens{ts}, closeStore, nil
	}
	with := func(run func(b tokenBackend, args []string) error) func(*cobra.Command, []string) error {
		return func(cmd *cobra.Command, args []string) error {
			b, closeB, err := backend(cmd)
			if err != nil {
				return err
			}
			err = run(b, args)
			if cerr := closeB(); err == nil && cerr != nil {
				err = &exitError{exitFail, fmt.Errorf("close the store: %w", cerr)}
			}
			return err
		}
	}

	var name, role, tenant, expires string
	create := &cobra.Command{
		Use:   "create",
		Short: "Make a token; it is printed once, alone on the last line (or as \"token\" with -o json)",
		Args:  cobra.NoArgs,
		RunE: with(func(b tokenBackend, _ []string) error {
			sp := admin.TokenSpec{Name: name, Role: admin.Role(role), TenantID: tenant}
			if expires != "" {
				at, err := parseExpiry(expires, time.Now())
				if err != nil {
					return &exitError{exitConfig, err}
				}
				sp.ExpiresAt = at
			}
			token, info, err := b.create(ctx, sp)
			if err != nil {
				return apiError("create token", err)
			}
			if o.json() {
				return writeJSONOut(stdout, struct {
					Token string `json:"token"`
					*admin.TokenInfo
				}{token, info})
			}
			fmt.Fprintf(stdout, "created token %s (%s)\n", info.ID, describe(info))
			fmt.Fprintln(stdout, "it is shown this once; keep it secret:")
			fmt.Fprintln(stdout, token)
			return nil
		}),
	}
	cf := create.Flags()
	cf.StringVar(&name, "name", "", "what the token is for, e.g. support-alice (required)")
	cf.StringVar(&role, "role", "", "viewer, operator or admin (required)")
	cf.StringVar(&tenant, "tenant", "", "tenant the token is scoped to; unset means every tenant")
	cf.StringVar(&expires, "expires", "", "when it stops working: a duration from now (720h) or an RFC 3339 time; unset means never")
	_ = create.MarkFlagRequired("name")
	_ = create.MarkFlagRequired("role")

	list := &cobra.Command{
		Use:   "list",
		Short: "List the tokens (never their secrets)",
		Args:  cobra.NoArgs,
		RunE: with(func(b tokenBackend, _ []string) error {
			l, err := b.list(ctx)
			if err != nil {
				return apiError("list tokens", err)
			}
			if o.json() {
				if l == nil {
					l = []*admin.TokenInfo{}
				}
				return writeJSONOut(stdout, struct {
					Tokens []*admin.TokenInfo `json:"tokens"`
				}{l})
			}
			tw := tabwriter.NewWriter(stdout, 2, 8, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tNAME\tROLE\tTENANT\tEXPIRES\tCREATED")
			for _, t := range l {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.Name, t.Role, orDash(t.TenantID, "(all tenants)"), expiry(t), t.CreatedAt.Format(time.RFC3339))
			}
			return tw.Flush()
		}),
	}
	revoke := &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke a token: it stops working at once",
		Args:  cobra.ExactArgs(1),
		RunE: with(func(b tokenBackend, args []string) error {
			if err := b.revoke(ctx, args[0]); err != nil {
				return apiError("revoke token "+args[0], err)
			}
			fmt.Fprintf(stdout, "revoked token %s\n", args[0])
			return nil
		}),
	}
	cmd.AddCommand(create, list, revoke)
	return cmd
}

// parseExpiry reads --expires: a positive duration from now or an RFC 3339
// time in the future.
func parseExpiry(v string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(v); err == nil {
		if d <= 0 {
			return time.Time{}, fmt.Errorf("--expires %q: want a positive duration", v)
		}
		return now.Add(d), nil
	}
	at, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("--expires %q: want a duration from now (720h) or an RFC 3339 time (2027-01-31T00:00:00Z)", v)
	}
	return at, nil
}

func describe(t *admin.TokenInfo) string {
	return fmt.Sprintf("name %s, role %s, tenant %s, expires %s", t.Name, t.Role, orDash(t.TenantID, "(all tenants)"), expiry(t))
}

func expiry(t *admin.TokenInfo) string {
	if t.ExpiresAt == nil {
		return "never"
	}
	return t.ExpiresAt.Format(time.RFC3339)
}

func orDash(v, none string) string {
	if v == "" {
		return none
	}
	return v
}

func writeJSONOut(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// offlineTokens manages tokens in the store directly.
type offlineTokens struct{ ts *admin.TokenStore }

func (o offlineTokens) create(ctx context.Context, sp admin.TokenSpec) (string, *admin.TokenInfo, error) {
	return o.ts.Create(ctx, sp)
}

func (o offlineTokens) list(ctx context.Context) ([]*admin.TokenInfo, error) {
	return o.ts.List(ctx, "")
}

func (o offlineTokens) revoke(ctx context.Context, id string) error { return o.ts.Revoke(ctx, id, "") }

// remoteTokens manages tokens through a running service's API.
type remoteTokens struct{ c *adminclient.Client }

func (r remoteTokens) create(ctx context.Context, sp admin.TokenSpec) (string, *admin.TokenInfo, error) {
	req := map[string]any{"name": sp.Name, "role": sp.Role}
	if sp.TenantID != "" {
		req["tenantId"] = sp.TenantID
	}
	if !sp.ExpiresAt.IsZero() {
		req["expiresAt"] = sp.ExpiresAt
	}
	var out struct {
		Token string `json:"token"`
		admin.TokenInfo
	}
	if err := r.c.Do(ctx, "POST", "/api/v1/tokens", req, &out); err != nil {
		return "", nil, err
	}
	return out.Token, &out.TokenInfo, nil
}

func (r remoteTokens) list(ctx context.Context) ([]*admin.TokenInfo, error) {
	var out struct {
		Tokens []*admin.TokenInfo `json:"tokens"`
	}
	err := r.c.Do(ctx, "GET", "/api/v1/tokens", nil, &out)
	return out.Tokens, err
}

func (r remoteTokens) revoke(ctx context.Context, id string) error {
	return r.c.Do(ctx, "DELETE", "/api/v1/tokens/"+url.PathEscape(id), nil, nil)
}
