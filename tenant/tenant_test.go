package tenant_test

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/internal/testbroker"
	"github.com/aibos/worker/tenant"
)

func TestNormalizeRejectsBadFields(t *testing.T) {
	good := func() *tenant.Tenant {
		return &tenant.Tenant{ID: "acme", Name: "Acme Ltd", TimeZone: "Europe/Berlin", Currency: "EUR",
			Limits: tenant.Limits{MaxConcurrency: 10, RatePerSecond: 2.5, Weight: 3}}
	}
	if err := good().Normalize(); err != nil {
		t.Fatalf("a good tenant: %v", err)
	}
	for _, c := range []struct {
		field string
		edit  func(*tenant.Tenant)
	}{
		{"id", func(t *tenant.Tenant) { t.ID = "" }},
		{"id", func(t *tenant.Tenant) { t.ID = "all" }},
		{"id", func(t *tenant.Tenant) { t.ID = "a b" }},
		{"id", func(t *tenant.Tenant) { t.ID = strings.Repeat("x", tenant.MaxIDLen+1) }},
		{"name", func(t *tenant.Tenant) { t.Name = "" }},
		{"name", func(t *tenant.Tenant) { t.Name = "a\nb" }},
		{"timeZone", func(t *tenant.Tenant) { t.TimeZone = "Mars/Olympus" }},
		{"timeZone", func(t *tenant.Tenant) { t.TimeZone = "Local" }},
		{"timeZone", func(t *tenant.Tenant) { t.TimeZone = "../../etc/passwd" }},
		{"currency", func(t *tenant.Tenant) { t.Currency = "EURO" }},
		{"currency", func(t *tenant.Tenant) { t.Currency = "eur" }},
		{"currency", func(t *tenant.Tenant) { t.Currency = "ABC" }},
		{"limits.maxConcurrency", func(t *tenant.Tenant) { t.Limits.MaxConcurrency = -1 }},
		{"limits.ratePerSecond", func(t *tenant.Tenant) { t.Limits.RatePerSecond = -0.5 }},
		{"limits.ratePerSecond", func(t *tenant.Tenant) { t.Limits.RatePerSecond = math.NaN() }},
		{"limits.weight", func(t *tenant.Tenant) { t.Limits.Weight = tenant.MaxWeight + 1 }},
		{"limits.weight", func(t *tenant.Tenant) { t.Limits.Weight = -2 }},
	} {
		tn := good()
		c.edit(tn)
		err := tn.Normalize()
		var inv *tenant.InvalidError
		if !errors.As(err, &inv) || inv.Field != c.field {
			t.Errorf("tenant %+v: Normalize = %v, want an *InvalidError for %s", tn, err, c.field)
		}
	}
}

func TestNormalizeDefaults(t *testing.T) {
	tn := &tenant.Tenant{ID: "acme", Name: "Acme"}
	if err := tn.Normalize(); err != nil {
		t.Fatal(err)
	}
	if tn.TimeZone != "UTC" || tn.Currency != "USD" || tn.Limits.Weight != 1 {
		t.Fatalf("defaults: zone %q, currency %q, weight %d; want UTC, USD, 1", tn.TimeZone, tn.Currency, tn.Limits.Weight)
	}
}

func TestRegistry(t *testing.T) {
	testbroker.Each(t, func(t *testing.T, b broker.Broker) {
		ctx := context.Background()
		r, err := tenant.New(b)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.Get(ctx, "acme"); !errors.Is(err, tenant.ErrNotFound) {
			t.Fatalf("Get of an unknown tenant = %v, want ErrNotFound", err)
		}
		if _, err := r.Update(ctx, &tenant.Tenant{ID: "acme", Name: "Acme"}); !errors.Is(err, tenant.ErrNotFound) {
			t.Fatalf("Update of an unknown tenant = %v, want ErrNotFound", err)
		}
		created, err := r.Create(ctx, &tenant.Tenant{ID: "acme", Name: "Acme", TimeZone: "Asia/Tokyo", Currency: "JPY"})
		if err != nil {
			t.Fatal(err)
		}
		if created.CreatedAt.IsZero() || !created.UpdatedAt.Equal(created.CreatedAt) {
			t.Fatalf("created at %v, updated at %v: want both set and equal", created.CreatedAt, created.UpdatedAt)
		}
		if _, err := r.Create(ctx, &tenant.Tenant{ID: "acme", Name: "Other"}); !errors.Is(err, tenant.ErrExists) {
			t.Fatalf("second Create = %v, want ErrExists", err)
		}
		if _, err := r.Create(ctx, &tenant.Tenant{ID: "bad", Name: "Bad", TimeZone: "Nowhere/City"}); err == nil {
			t.Fatal("Create accepted a bad time zone")
		}
		upd, err := r.Update(ctx, &tenant.Tenant{ID: "acme", Name: "Acme KK", TimeZone: "Asia/Tokyo", Currency: "JPY",
			Limits: tenant.Limits{Weight: 5}})
		if err != nil {
			t.Fatal(err)
		}
		got, err := r.Get(ctx, "acme")
		if err != nil {
			t.Fatal(err)
		}
		if got.Name != "Acme KK" || got.Limits.Weight != 5 || !got.CreatedAt.Equal(created.CreatedAt) || got.UpdatedAt.Before(created.UpdatedAt) {
			t.Fatalf("after update: %+v (update returned %+v)", got, upd)
		}
		for _, id := range []string{"c", "b", "a"} {
			if _, err := r.Create(ctx, &tenant.Tenant{ID: id, Name: id}); err != nil {
				t.Fatal(err)
			}
		}
		var ids []string
		offset := 0
		for offset >= 0 {
			l, err := r.List(ctx, tenant.ListParams{Offset: offset, Limit: 3})
			if err != nil {
				t.Fatal(err)
			}
			if l.Total != 4 {
				t.Fatalf("total %d, want 4", l.Total)
			}
			for _, x := range l.Tenants {
				ids = append(ids, x.ID)
			}
			offset = l.NextOffset
		}
		if strings.Join(ids, ",") != "a,acme,b,c" {
			t.Fatalf("listed %v, want a, acme, b, c in order", ids)
		}
	})
}
