package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/aibos/worker/admin"
	"github.com/aibos/worker/service"
)

// tokenBackend manages API tokens: offline in the store, or through a
// running service's API.
type tokenBackend interface {
	create(ctx context.Context, sp admin.TokenSpec) (string, *admin.TokenInfo, error)
	list(ctx context.Context) ([]*admin.TokenInfo, error)
	revoke(ctx context.Context, id string) error
}

// tokenFlags are the flags every tokens command shares.
type tokenFlags struct {
	url, token, output string
}

// newTokensCmd builds `aibos-worker tokens create|list|revoke`.
// loadConfig reads the configuration whose store the offline mode opens.
func newTokensCmd(ctx context.Context, lookupEnv func(string) (string, bool), stdout io.Writer,
	loadConfig func(*cobra.Command) (*service.Config, error)) *cobra.Command {
	var f tokenFlags
	cmd := &cobra.Command{
		Use:   "tokens",
		Short: "Create, list and revoke API tokens: in the store while the service is stopped, else through its API (--url, --token)",
		Long: `Manage the admin API's bearer tokens.

Without --url (or WORKER_API_URL) the commands open the store the configuration
names, as serve does: that works while the service is stopped, and is how the
first admin token is made. While it runs, give --url and an admin --token (or
WORKER_API_URL and WORKER_API_TOKEN) and the commands go through its API.`,
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&f.url, "url", "", "base URL of a running service's API, e.g. http://localhost:8080 (env WORKER_API_URL)")
	pf.StringVar(&f.token, "token", "", "admin token for --url (env WORKER_API_TOKEN)")
	pf.StringVarP(&f.output, "output", "o", "text", "output format: text or json")

	backend := func(cmd *cobra.Command) (tokenBackend, func() error, error) {
		if f.output != "text" && f.output != "json" {
			return nil, nil, &exitError{exitConfig, fmt.Errorf("--output %q: want text or json", f.output)}
		}
		u, tok := f.url, f.token
		if u == "" {
			u, _ = lookupEnv("WORKER_API_URL")
		}
		if tok == "" {
			tok, _ = lookupEnv("WORKER_API_TOKEN")
		}
		if u != "" {
			rb, err := newRemoteTokens(u, tok)
			if err != nil {
				return nil, nil, &exitError{exitConfig, err}
			}
			return rb, func() error { return nil }, nil
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
				return tokenError("create token", err)
			}
			if f.output == "json" {
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
				return tokenError("list tokens", err)
			}
			if f.output == "json" {
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
				return tokenError("revoke token "+args[0], err)
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

// tokenError gives a refused spec or request exit code 2 and anything
// else (the store, the network, the server) 1.
func tokenError(what string, err error) error {
	var ae *admin.Error
	if errors.As(err, &ae) && (ae.Status == http.StatusBadRequest || ae.Status == http.StatusUnprocessableEntity) {
		return &exitError{exitConfig, fmt.Errorf("%s: %w", what, err)}
	}
	return &exitError{exitFail, fmt.Errorf("%s: %w", what, err)}
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
type remoteTokens struct {
	base  *url.URL
	token string
	http  *http.Client
}

func newRemoteTokens(base, token string) (*remoteTokens, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--url %q: want the service's base URL, e.g. http://localhost:8080", base)
	}
	if token == "" {
		return nil, errors.New("--url needs an admin token: give --token or WORKER_API_TOKEN")
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	return &remoteTokens{base: u, token: token, http: &http.Client{Timeout: 30 * time.Second}}, nil
}

// do sends a request to path with body (JSON, if not nil) and decodes a
// 2xx answer into out (if not nil); another answer becomes an
// *admin.Error from the API's error shape.
func (r *remoteTokens) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, r.base.String()+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+r.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := r.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return fmt.Errorf("read the answer to %s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error *admin.Error `json:"error"`
		}
		if json.Unmarshal(data, &e) != nil || e.Error == nil {
			return fmt.Errorf("%s %s: %s", method, path, resp.Status)
		}
		e.Error.Status = resp.StatusCode
		return e.Error
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("decode the answer to %s %s: %w", method, path, err)
	}
	return nil
}

func (r *remoteTokens) create(ctx context.Context, sp admin.TokenSpec) (string, *admin.TokenInfo, error) {
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
	if err := r.do(ctx, http.MethodPost, "/api/v1/tokens", req, &out); err != nil {
		return "", nil, err
	}
	return out.Token, &out.TokenInfo, nil
}

func (r *remoteTokens) list(ctx context.Context) ([]*admin.TokenInfo, error) {
	var out struct {
		Tokens []*admin.TokenInfo `json:"tokens"`
	}
	err := r.do(ctx, http.MethodGet, "/api/v1/tokens", nil, &out)
	return out.Tokens, err
}

func (r *remoteTokens) revoke(ctx context.Context, id string) error {
	return r.do(ctx, http.MethodDelete, "/api/v1/tokens/"+url.PathEscape(id), nil, nil)
}
