package admin

import (
	"context"
	"errors"
	"time"
)

// Role is what an API token may do. Each role includes the ones below it:
// admin > operator > viewer.
type Role string

// The roles.
const (
	// RoleViewer reads: jobs, queues, schedules, runs, workers, tenants,
	// series, health.
	RoleViewer Role = "viewer"
	// RoleOperator also retries, cancels, deletes, pauses, resumes,
	// triggers and enqueues.
	RoleOperator Role = "operator"
	// RoleAdmin also manages schedules, tenants, tokens and settings.
	RoleAdmin Role = "admin"
)

// rank orders the roles; 0 is not a role.
func (r Role) rank() int {
	switch r {
	case RoleViewer:
		return 1
	case RoleOperator:
		return 2
	case RoleAdmin:
		return 3
	}
	return 0
}

// Valid reports whether r is one of the three roles.
func (r Role) Valid() bool { return r.rank() > 0 }

// Allows reports whether a token with role r may do what needs role need.
func (r Role) Allows(need Role) bool { return r.Valid() && r.rank() >= need.rank() }

// Principal is who made a request: the token that authenticated it.
type Principal struct {
	// TokenID identifies the token (never the secret itself).
	TokenID string
	// Name is the token's human name, e.g. "support-alice".
	Name string
	// Role is what the token may do.
	Role Role
	// TenantID scopes the token to one tenant: it sees and touches only
	// that tenant's jobs, schedules, runs and settings, enforced by the
	// seam's tenant scope. Empty means cross-tenant. The seed's "all" is
	// never a scope: a token scoped to "all" sees only jobs whose tenant
	// is literally "all".
	TenantID string
	// Expires is when the token stops working; zero means never.
	Expires time.Time
}

// SeesPayload reports whether p may read what jobs carry: a job's data,
// result and progress, a workflow run's input and its steps' outputs, and
// a schedule's job data. They may hold a customer's data, so the API
// leaves them out for a viewer and sets payloadRedacted instead; operators
// and admins, who act on jobs and enqueue them, see them. Errors, states
// and times are shown to every role: they are what a viewer is for.
func (p *Principal) SeesPayload() bool { return p.Role.Allows(RoleOperator) }

// CrossTenant reports whether p may see every tenant.
func (p *Principal) CrossTenant() bool { return p.TenantID == "" }

// Authenticator turns a bearer token into its Principal. Authenticate
// returns an error wrapping ErrUnauthenticated when the token is unknown,
// revoked or expired, and another error when it cannot tell (the store is
// unreachable). It must compare secrets in constant time and be safe for
// concurrent use.
type Authenticator interface {
	Authenticate(ctx context.Context, token string) (*Principal, error)
}

// ErrUnauthenticated is returned by an Authenticator for a token it does
// not accept; the API answers 401.
var ErrUnauthenticated = errors.New("unauthenticated")

type principalKey struct{}

// PrincipalFrom returns the Principal of an authenticated request's
// context.
func PrincipalFrom(ctx context.Context) (*Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(*Principal)
	return p, ok
}

func withPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}
