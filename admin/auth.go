package admin

import (
	"errors"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// authenticate reads the request's bearer token and asks the
// Authenticator who it is: 401 without a token or with one it refuses, 429
// while the client's address has failed too often.
func (s *Server) authenticate(r *http.Request) (*Principal, error) {
	addr := clientAddr(r)
	if wait := s.failures.blocked(addr); wait > 0 {
		return nil, &retryAfterError{Errorf(http.StatusTooManyRequests, CodeTooMany, "Authorization",
			"too many failed authentications from %s; retry in %d s", addr, retryAfterSeconds(wait)), wait}
	}
	token, ok := bearer(r.Header.Get("Authorization"))
	if !ok {
		s.failures.fail(addr)
		return nil, Errorf(http.StatusUnauthorized, CodeUnauthenticated, "Authorization", "missing bearer token (Authorization: Bearer <token>)")
	}
	p, err := s.cfg.Auth.Authenticate(r.Context(), token)
	switch {
	case errors.Is(err, ErrUnauthenticated):
		s.failures.fail(addr)
		return nil, err
	case err != nil:
		// The store could not say: not the client's fault, so not a
		// failure against its address, and not a 401 that would make it
		// drop a good token.
		s.log.Warn("admin: cannot authenticate", "err", err)
		return nil, Errorf(http.StatusServiceUnavailable, CodeUnavailable, "", "cannot check the token now: the store did not answer")
	}
	return p, nil
}

// bearer returns the token of an Authorization header; the scheme's name
// is case-insensitive (RFC 9110).
func bearer(h string) (string, bool) {
	scheme, token, ok := strings.Cut(h, " ")
	token = strings.TrimSpace(token)
	return token, ok && strings.EqualFold(scheme, "Bearer") && token != ""
}

// authorize checks that p's role allows what needs role need: 403 if not.
func (s *Server) authorize(_ *http.Request, p *Principal, need Role) error {
	if !p.Role.Allows(need) {
		return Errorf(http.StatusForbidden, CodeForbidden, "", "role %s may not do this (needs %s)", p.Role, need)
	}
	return nil
}

// clientAddr is the address failed authentications are counted against:
// the connection's IP. X-Forwarded-For is not trusted, since any client
// can set it and so escape the limit.
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// retryAfterError is a 429 that carries how long to wait, written as the
// Retry-After header.
type retryAfterError struct {
	err  *Error
	wait time.Duration
}

func (e *retryAfterError) Error() string { return e.err.Message }
func (e *retryAfterError) Unwrap() error { return e.err }

func retryAfterSeconds(d time.Duration) int { return int(math.Ceil(d.Seconds())) }

// setRetryAfter sets Retry-After when err carries a wait.
func setRetryAfter(w http.ResponseWriter, err error) {
	var ra *retryAfterError
	if errors.As(err, &ra) {
		w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds(ra.wait)))
	}
}

// FailedAuthLimit bounds failed authentications per client address with a
// token bucket: Burst failures at once, then one per Every. A client out
// of failures gets 429 with Retry-After, even with a good token, until
// the bucket refills.
type FailedAuthLimit struct {
	// Every is how often one failure is given back. Defaults to 6s (10
	// a minute).
	Every time.Duration
	// Burst is how many failures an address may make at once. Defaults
	// to 10.
	Burst int
	// MaxClients bounds how many addresses are remembered. Defaults to
	// 10000.
	MaxClients int
}

// failureLimiter is a token bucket of failures per address, in bounded
// memory: when MaxClients addresses are remembered, those whose bucket is
// full again (they carry no state) are dropped, and if none is, an
// arbitrary one, so an attacker cycling addresses gets a fresh bucket
// rather than the server running out of memory.
type failureLimiter struct {
	cfg FailedAuthLimit
	now func() time.Time

	mu      sync.Mutex
	clients map[string]*rate.Limiter
}

func newFailureLimiter(cfg FailedAuthLimit, now func() time.Time) *failureLimiter {
	if cfg.Every <= 0 {
		cfg.Every = 6 * time.Second
	}
	if cfg.Burst <= 0 {
		cfg.Burst = 10
	}
	if cfg.MaxClients <= 0 {
		cfg.MaxClients = 10000
	}
	return &failureLimiter{cfg: cfg, now: now, clients: map[string]*rate.Limiter{}}
}

// blocked returns how long addr must wait before it may try again, or 0.
func (l *failureLimiter) blocked(addr string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	lim := l.clients[addr]
	if lim == nil {
		return 0
	}
	now := l.now()
	if tokens := lim.TokensAt(now); tokens < 1 {
		return time.Duration((1 - tokens) * float64(l.cfg.Every))
	}
	return 0
}

// fail records one failed authentication by addr.
func (l *failureLimiter) fail(addr string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	lim := l.clients[addr]
	if lim == nil {
		if len(l.clients) >= l.cfg.MaxClients {
			l.evict(now)
		}
		lim = rate.NewLimiter(rate.Every(l.cfg.Every), l.cfg.Burst)
		l.clients[addr] = lim
	}
	lim.AllowN(now, 1)
}

// evict makes room for one address.
func (l *failureLimiter) evict(now time.Time) {
	for a, lim := range l.clients {
		if lim.TokensAt(now) >= float64(l.cfg.Burst) {
			delete(l.clients, a)
		}
	}
	for a := range l.clients {
		if len(l.clients) < l.cfg.MaxClients {
			return
		}
		delete(l.clients, a)
	}
}

// size returns how many addresses are remembered.
func (l *failureLimiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.clients)
}
