package tenant

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/aibos/worker/broker"
)

// Scope is the broker scope (see broker.Committer) the registry's
// documents live in: one document of kind "tenant" per tenant, keyed by
// its id and listed in the index "all".
const Scope = "_tenants"

const (
	kind       = "tenant"
	indexAll   = "all"
	maxRetries = 100
)

// Registry keeps tenants in a broker's store. It is safe for concurrent
// use by many goroutines and processes: every write is a compare-and-set
// of the tenant's document.
type Registry struct {
	c broker.Committer
}

// New returns the Registry kept in b. It fails if b does not implement
// broker.Committer.
func New(b broker.Broker) (*Registry, error) {
	c, ok := b.(broker.Committer)
	if !ok {
		return nil, fmt.Errorf("tenant registry: broker %T does not implement broker.Committer", b)
	}
	return &Registry{c: c}, nil
}

// Create registers t (normalized, see Tenant.Normalize) and returns it as
// stored, with CreatedAt and UpdatedAt set to the broker's clock. It
// returns an *InvalidError for a bad t and an error wrapping ErrExists if
// the id is taken.
func (r *Registry) Create(ctx context.Context, t *Tenant) (*Tenant, error) {
	if err := t.Normalize(); err != nil {
		return nil, err
	}
	now, err := r.c.Now(ctx)
	if err != nil {
		return nil, fmt.Errorf("create tenant %q: read the broker clock: %w", t.ID, err)
	}
	out := *t
	out.CreatedAt, out.UpdatedAt = now.UTC(), now.UTC()
	err = r.write(ctx, &out, 0)
	if errors.Is(err, broker.ErrConflict) {
		return nil, fmt.Errorf("create tenant %q: %w", t.ID, ErrExists)
	}
	if err != nil {
		return nil, fmt.Errorf("create tenant %q: %w", t.ID, err)
	}
	return &out, nil
}

// Update replaces the name, time zone, currency and limits of the tenant
// t.ID (t normalized as by Create) and returns it as stored: CreatedAt is
// kept, UpdatedAt is the broker's clock. It returns an *InvalidError for a
// bad t and an error wrapping ErrNotFound if no such tenant is registered.
// Concurrent updates of one tenant are applied one after the other; the
// last one wins whole.
func (r *Registry) Update(ctx context.Context, t *Tenant) (*Tenant, error) {
	if err := t.Normalize(); err != nil {
		return nil, err
	}
	return r.Modify(ctx, t.ID, func(cur *Tenant) error {
		cur.Name, cur.TimeZone, cur.Currency, cur.Limits = t.Name, t.TimeZone, t.Currency, t.Limits
		return nil
	})
}

// Modify reads the tenant id, lets edit change it, normalizes and stores
// the result with a compare-and-set, and returns it as stored. If the
// tenant changed in between, it reads it again and calls edit again, so
// edit sees the tenant it changes. The id and CreatedAt cannot be
// changed; UpdatedAt is the broker's clock. An error from edit is returned
// as is, storing nothing; otherwise errors are as for Update.
func (r *Registry) Modify(ctx context.Context, id string, edit func(t *Tenant) error) (*Tenant, error) {
	if err := ValidateID(id); err != nil {
		return nil, err
	}
	for range maxRetries {
		cur, version, err := r.get(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("update tenant %q: %w", id, err)
		}
		created := cur.CreatedAt
		if err := edit(cur); err != nil {
			return nil, err
		}
		cur.ID, cur.CreatedAt = id, created
		if err := cur.Normalize(); err != nil {
			return nil, err
		}
		now, err := r.c.Now(ctx)
		if err != nil {
			return nil, fmt.Errorf("update tenant %q: read the broker clock: %w", id, err)
		}
		cur.UpdatedAt = now.UTC()
		err = r.write(ctx, cur, version)
		if errors.Is(err, broker.ErrConflict) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("update tenant %q: %w", id, err)
		}
		return cur, nil
	}
	return nil, fmt.Errorf("update tenant %q: still conflicting after %d attempts: %w", id, maxRetries, broker.ErrConflict)
}

// Get returns the tenant id, or an error wrapping ErrNotFound.
func (r *Registry) Get(ctx context.Context, id string) (*Tenant, error) {
	if err := ValidateID(id); err != nil {
		return nil, err
	}
	t, _, err := r.get(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("get tenant %q: %w", id, err)
	}
	return t, nil
}

// ListParams selects a page of the registry, ordered by id.
type ListParams struct {
	Offset int // >= 0
	Limit  int // 1..1000; 0 means 100
}

// ListResult is a page of the registry.
type ListResult struct {
	Tenants []*Tenant
	// NextOffset is the Offset of the next page; -1 when there is none.
	NextOffset int
	// Total counts every registered tenant.
	Total int
}

// List returns one page of the registered tenants, ordered by id.
func (r *Registry) List(ctx context.Context, p ListParams) (*ListResult, error) {
	if p.Limit == 0 {
		p.Limit = 100
	}
	if p.Offset < 0 || p.Limit < 1 || p.Limit > 1000 {
		return nil, &InvalidError{Field: "limit", Reason: fmt.Sprintf("offset %d and limit %d must be >= 0 and 1..1000", p.Offset, p.Limit)}
	}
	l, err := r.c.DocList(ctx, &broker.DocListParams{Scope: Scope, Kind: kind, Index: indexAll, Offset: p.Offset, Limit: p.Limit})
	if err != nil {
		return nil, fmt.Errorf("list tenants: %w", err)
	}
	res := &ListResult{Tenants: make([]*Tenant, 0, len(l.Docs)), NextOffset: -1, Total: l.Total}
	for _, d := range l.Docs {
		t, err := decode(d)
		if err != nil {
			return nil, fmt.Errorf("list tenants: %w", err)
		}
		res.Tenants = append(res.Tenants, t)
	}
	if next := p.Offset + len(l.Docs); len(l.Docs) == p.Limit && next < l.Total {
		res.NextOffset = next
	}
	return res, nil
}

func (r *Registry) get(ctx context.Context, id string) (*Tenant, int64, error) {
	d, err := r.c.DocGet(ctx, Scope, kind, id)
	if errors.Is(err, broker.ErrDocNotFound) {
		return nil, 0, ErrNotFound
	}
	if err != nil {
		return nil, 0, err
	}
	t, err := decode(d)
	if err != nil {
		return nil, 0, err
	}
	return t, d.Version, nil
}

func decode(d *broker.Doc) (*Tenant, error) {
	var t Tenant
	if err := json.Unmarshal(d.Body, &t); err != nil {
		return nil, fmt.Errorf("decode tenant %q: %w", d.Key, err)
	}
	return &t, nil
}

// write stores t over the document at version (0: it must not exist).
func (r *Registry) write(ctx context.Context, t *Tenant, version int64) error {
	body, err := json.Marshal(t)
	if err != nil {
		return fmt.Errorf("encode: %w", err)
	}
	_, err = r.c.Commit(ctx, &broker.CommitParams{Scope: Scope, Docs: []*broker.DocWrite{{
		Kind: kind, Key: t.ID, Version: version, Body: body,
		Index: []broker.IndexEntry{{Name: indexAll}},
	}}})
	return err
}
