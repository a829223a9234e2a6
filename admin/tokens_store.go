package admin

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/aibos/worker/broker"
)

// A token reads awt_<id>_<secret>: the prefix makes a leaked token easy to
// recognise (secret scanners, logs), and the id finds the stored hash with
// one read instead of a scan. The id is not secret; the secret is 32 bytes
// from crypto/rand.
const (
	tokenPrefix  = "awt_"
	tokenIDBytes = 8
	secretBytes  = 32
)

// The token registry lives in the store under its own scope; the index
// "all" lists every token, "tenant:<id>" those of one tenant, so that a
// tenant's listing is a query of its own index, never a filtered scan.
const (
	TokenScope = "_tokens"
	tokenKind  = "api-token"
	indexAll   = "all"
)

func tenantIndex(tenant string) string { return "tenant:" + tenant }

// Bounds of a token's name.
const maxTokenName = 100

// TokenInfo describes a stored token; it never holds the secret.
type TokenInfo struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Role Role   `json:"role"`
	// TenantID is the token's tenant scope; empty means cross-tenant.
	TenantID  string     `json:"tenantId,omitempty"`
	CreatedAt time.Time  `json:"createdAt"`
	ExpiresAt *time.Time `json:"expiresAt,omitempty"`
}

// storedToken is a token's document: its description and the SHA-256 of
// its secret, hex-encoded.
type storedToken struct {
	TokenInfo
	Hash string `json:"hash"`
}

// TokenSpec is what a new token is made with.
type TokenSpec struct {
	Name     string
	Role     Role
	TenantID string // empty: cross-tenant
	// ExpiresAt is when the token stops working; zero means never.
	ExpiresAt time.Time
}

// TokenStore keeps API tokens in the broker's store (broker.Committer
// documents) and authenticates bearer tokens against them. Secrets are
// stored only as SHA-256 hashes: a secret is 256 random bits, so a fast
// hash is as strong as a slow one against guessing, and bcrypt or argon2
// would only add tens of milliseconds to every request (their cost exists
// to protect low-entropy passwords, which these are not). Its methods are
// safe for concurrent use by many goroutines and processes.
type TokenStore struct {
	c   broker.Committer
	now func() time.Time
}

// NewTokenStore returns the token store on b, which must implement
// broker.Committer. now is the clock expiry is judged by; nil means
// time.Now.
func NewTokenStore(b broker.Broker, now func() time.Time) (*TokenStore, error) {
	c, ok := b.(broker.Committer)
	if !ok {
		return nil, fmt.Errorf("admin: new token store: broker %T does not implement broker.Committer", b)
	}
	if now == nil {
		now = time.Now
	}
	return &TokenStore{c: c, now: now}, nil
}

// Validate checks a token spec and returns an *Error (422) naming the
// field at fault.
func (sp *TokenSpec) Validate(now time.Time) error {
	switch {
	case strings.TrimSpace(sp.Name) == "" || len(sp.Name) > maxTokenName || !utf8.ValidString(sp.Name) || strings.IndexFunc(sp.Name, unicode.IsControl) >= 0:
		return Errorf(http.StatusUnprocessableEntity, CodeInvalid, "name", "name %q must be 1..%d printable characters", sp.Name, maxTokenName)
	case !sp.Role.Valid():
		return Errorf(http.StatusUnprocessableEntity, CodeInvalid, "role", "role %q must be viewer, operator or admin", sp.Role)
	case len(sp.TenantID) > broker.MaxKeyLen || !utf8.ValidString(sp.TenantID) || strings.IndexFunc(sp.TenantID, unicode.IsControl) >= 0:
		return Errorf(http.StatusUnprocessableEntity, CodeInvalid, "tenantId", "tenant id must be at most %d printable characters", broker.MaxKeyLen)
	case !sp.ExpiresAt.IsZero() && !sp.ExpiresAt.After(now):
		return Errorf(http.StatusUnprocessableEntity, CodeInvalid, "expiresAt", "expiry %s is not in the future", sp.ExpiresAt.UTC().Format(time.RFC3339))
	}
	return nil
}

// Create stores a new token and returns it, the only time its secret is
// seen, with its description. A bad spec is an *Error (422).
func (ts *TokenStore) Create(ctx context.Context, sp TokenSpec) (string, *TokenInfo, error) {
	now := ts.now()
	if err := sp.Validate(now); err != nil {
		return "", nil, err
	}
	raw := make([]byte, tokenIDBytes+secretBytes)
	if _, err := rand.Read(raw); err != nil {
		return "", nil, fmt.Errorf("create token: read random bytes: %w", err)
	}
	id := hex.EncodeToString(raw[:tokenIDBytes])
	secret := base64.RawURLEncoding.EncodeToString(raw[tokenIDBytes:])
	sum := sha256.Sum256([]byte(secret))
	st := storedToken{
		TokenInfo: TokenInfo{ID: id, Name: sp.Name, Role: sp.Role, TenantID: sp.TenantID, CreatedAt: now.UTC().Truncate(time.Millisecond)},
		Hash:      hex.EncodeToString(sum[:]),
	}
	if !sp.ExpiresAt.IsZero() {
		exp := sp.ExpiresAt.UTC().Truncate(time.Millisecond)
		st.ExpiresAt = &exp
	}
	body, err := json.Marshal(st)
	if err != nil {
		return "", nil, fmt.Errorf("create token: %w", err)
	}
	score := st.CreatedAt.UnixMilli()
	index := []broker.IndexEntry{{Name: indexAll, Score: score}}
	if sp.TenantID != "" {
		index = append(index, broker.IndexEntry{Name: tenantIndex(sp.TenantID), Score: score})
	}
	_, err = ts.c.Commit(ctx, &broker.CommitParams{Scope: TokenScope, Docs: []*broker.DocWrite{{Kind: tokenKind, Key: id, Body: body, Index: index}}})
	if err != nil {
		return "", nil, fmt.Errorf("create token: %w", err)
	}
	return tokenPrefix + id + "_" + secret, &st.TokenInfo, nil
}

// List returns the tokens, newest first: every token when tenant is
// empty, else only those scoped to tenant (never the cross-tenant ones).
func (ts *TokenStore) List(ctx context.Context, tenant string) ([]*TokenInfo, error) {
	index := indexAll
	if tenant != "" {
		index = tenantIndex(tenant)
	}
	var out []*TokenInfo
	for offset := 0; ; {
		l, err := ts.c.DocList(ctx, &broker.DocListParams{Scope: TokenScope, Kind: tokenKind, Index: index, Desc: true, Offset: offset, Limit: broker.MaxDocList})
		if err != nil {
			return nil, fmt.Errorf("list tokens: %w", err)
		}
		for _, d := range l.Docs {
			st, err := decodeToken(d)
			if err != nil {
				return nil, fmt.Errorf("list tokens: %w", err)
			}
			out = append(out, &st.TokenInfo)
		}
		offset += len(l.Docs)
		if len(l.Docs) < broker.MaxDocList {
			return out, nil
		}
	}
}

// Revoke deletes the token id, after which it no longer authenticates.
// A missing token, or one of another tenant than tenant (when tenant is
// not empty), is an *Error with status 404.
func (ts *TokenStore) Revoke(ctx context.Context, id, tenant string) error {
	for {
		d, err := ts.get(ctx, id)
		if err != nil {
			return fmt.Errorf("revoke token: %w", err)
		}
		if d == nil {
			return tokenNotFound(id)
		}
		st, err := decodeToken(d)
		if err != nil {
			return fmt.Errorf("revoke token: %w", err)
		}
		if tenant != "" && st.TenantID != tenant {
			return tokenNotFound(id)
		}
		_, err = ts.c.Commit(ctx, &broker.CommitParams{Scope: TokenScope, Docs: []*broker.DocWrite{{Kind: tokenKind, Key: id, Version: d.Version, Delete: true}}})
		if errors.Is(err, broker.ErrConflict) {
			continue // written meanwhile: judge it again
		}
		if err != nil {
			return fmt.Errorf("revoke token %q: %w", id, err)
		}
		return nil
	}
}

func tokenNotFound(id string) *Error {
	return Errorf(http.StatusNotFound, CodeNotFound, "id", "token %q not found", id)
}

// get reads a token's document: nil if there is none.
func (ts *TokenStore) get(ctx context.Context, id string) (*broker.Doc, error) {
	if len(id) != 2*tokenIDBytes || strings.Trim(id, "0123456789abcdef") != "" {
		return nil, nil // not an id this store makes
	}
	d, err := ts.c.DocGet(ctx, TokenScope, tokenKind, id)
	if errors.Is(err, broker.ErrDocNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read token %q: %w", id, err)
	}
	return d, nil
}

// Authenticate implements Authenticator: the token must be well formed,
// stored, match its hash (compared in constant time) and not be expired.
func (ts *TokenStore) Authenticate(ctx context.Context, token string) (*Principal, error) {
	id, secret, ok := parseToken(token)
	if !ok {
		return nil, fmt.Errorf("%w: not an aibos-worker API token (awt_<id>_<secret>)", ErrUnauthenticated)
	}
	d, err := ts.get(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("authenticate: %w", err)
	}
	if d == nil {
		return nil, fmt.Errorf("%w: unknown or revoked token", ErrUnauthenticated)
	}
	st, err := decodeToken(d)
	if err != nil {
		return nil, fmt.Errorf("authenticate: %w", err)
	}
	if !secretMatches(st.Hash, secret) {
		return nil, fmt.Errorf("%w: unknown or revoked token", ErrUnauthenticated)
	}
	if st.ExpiresAt != nil && !ts.now().Before(*st.ExpiresAt) {
		return nil, fmt.Errorf("%w: the token expired at %s", ErrUnauthenticated, st.ExpiresAt.Format(time.RFC3339))
	}
	p := &Principal{TokenID: st.ID, Name: st.Name, Role: st.Role, TenantID: st.TenantID}
	if st.ExpiresAt != nil {
		p.Expires = *st.ExpiresAt
	}
	return p, nil
}

// secretMatches reports whether secret hashes to storedHex. The hashes are
// compared in constant time, so how long a refusal takes says nothing
// about how much of a guess was right.
func secretMatches(storedHex, secret string) bool {
	want, err := hex.DecodeString(storedHex)
	if err != nil || len(want) != sha256.Size {
		return false
	}
	got := sha256.Sum256([]byte(secret))
	return subtle.ConstantTimeCompare(want, got[:]) == 1
}

// parseToken splits awt_<id>_<secret>.
func parseToken(token string) (id, secret string, ok bool) {
	rest, ok := strings.CutPrefix(token, tokenPrefix)
	if !ok {
		return "", "", false
	}
	id, secret, ok = strings.Cut(rest, "_")
	if !ok || len(id) != 2*tokenIDBytes || secret == "" || len(secret) > 128 {
		return "", "", false
	}
	return id, secret, true
}

func decodeToken(d *broker.Doc) (*storedToken, error) {
	var st storedToken
	if err := json.Unmarshal(d.Body, &st); err != nil {
		return nil, fmt.Errorf("decode token %q: %w", d.Key, err)
	}
	return &st, nil
}
