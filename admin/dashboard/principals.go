package dashboard

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/aibos/worker/admin"
)

// ssoTokenPrefix marks the internal tokens Principals mints, so that one
// is never looked up in the token store.
const ssoTokenPrefix = "aibos_dsso_"

// Principals is the admin.Authenticator of a dashboard with single
// sign-on: it authenticates the internal tokens the dashboard mints for
// the sessions an OpenID Connect login makes, and hands every other token
// to Next. An internal token is random, lives only in the server's memory
// (never in the browser) and dies with its session (logout or expiry), so
// an SSO session calls the API as its principal without any long-lived
// token. Wire one Principals as both the API's Auth and the dashboard's.
// It is safe for concurrent use.
type Principals struct {
	next admin.Authenticator
	now  func() time.Time

	mu     sync.Mutex
	tokens map[string]*admin.Principal
}

// NewPrincipals returns Principals handing other tokens to next.
func NewPrincipals(next admin.Authenticator) (*Principals, error) {
	if next == nil {
		return nil, errors.New("dashboard: new principals: next is nil")
	}
	return &Principals{next: next, now: time.Now, tokens: map[string]*admin.Principal{}}, nil
}

// Authenticate returns the principal of an internal token while its
// session lives, and asks Next about any other token.
func (ps *Principals) Authenticate(ctx context.Context, token string) (*admin.Principal, error) {
	if len(token) <= len(ssoTokenPrefix) || token[:len(ssoTokenPrefix)] != ssoTokenPrefix {
		return ps.next.Authenticate(ctx, token)
	}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	p, ok := ps.tokens[token]
	if !ok {
		return nil, admin.ErrUnauthenticated
	}
	if ps.now().After(p.Expires) {
		delete(ps.tokens, token)
		return nil, admin.ErrUnauthenticated
	}
	c := *p
	return &c, nil
}

// mint returns a new internal token for p, valid until p.Expires; the
// expired ones are dropped on the way.
func (ps *Principals) mint(p admin.Principal) string {
	tok := ssoTokenPrefix + randomToken()
	ps.mu.Lock()
	defer ps.mu.Unlock()
	now := ps.now()
	for k, v := range ps.tokens {
		if now.After(v.Expires) {
			delete(ps.tokens, k)
		}
	}
	ps.tokens[tok] = &p
	return tok
}

// revoke ends an internal token at once (logout).
func (ps *Principals) revoke(token string) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	delete(ps.tokens, token)
}
