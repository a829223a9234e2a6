// Package tenant is the registry of the tenants of a multi-tenant
// deployment: each tenant's name, time zone, currency and limits, kept in
// the broker's store (broker.Committer documents), so every process of a
// deployment reads the same registry.
//
// The limits are stored and validated here; the scheduler enforces them
// (fair scheduling by Weight, MaxConcurrency, RatePerSecond) and reads them
// from this package, as do schedules that run in a tenant's time zone.
//
// The registry is independent of jobs: a job's TenantID need not name a
// registered tenant, and Purge removes a tenant's jobs whether it is
// registered or not.
package tenant

import (
	"errors"
	"fmt"
	"time"

	"golang.org/x/text/currency"
)

// Tenant is one registered tenant.
type Tenant struct {
	// ID is what jobs carry as their TenantID: 1..128 letters, digits and
	// "._-:". "all" is reserved: a system job's tenant "all" means "run for
	// every tenant", so no tenant may be called that.
	ID string `json:"id"`
	// Name is the tenant's display name, 1..200 characters.
	Name string `json:"name"`
	// TimeZone is an IANA time zone name (time.LoadLocation accepts it).
	// Defaults to "UTC".
	TimeZone string `json:"timeZone"`
	// Currency is an ISO 4217 code, e.g. "EUR". Defaults to "USD".
	Currency string `json:"currency"`
	// Limits bound what the tenant's jobs may use.
	Limits Limits `json:"limits"`
	// CreatedAt and UpdatedAt are the broker's clock; Create and Update set
	// them.
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`
}

// Limits are a tenant's share of the workers. Zero values mean no limit
// (and weight 1).
type Limits struct {
	// MaxConcurrency caps how many of the tenant's jobs run at once over
	// every worker; 0 means no cap.
	MaxConcurrency int `json:"maxConcurrency"`
	// RatePerSecond caps how many of the tenant's jobs start per second;
	// 0 means no cap.
	RatePerSecond float64 `json:"ratePerSecond"`
	// Weight is the tenant's share in fair scheduling, 1..1000. Defaults
	// to 1.
	Weight int `json:"weight"`
}

// Bounds of a tenant's fields.
const (
	MaxIDLen          = 128
	MaxNameLen        = 200
	MaxWeight         = 1000
	MaxConcurrencyCap = 1_000_000
	MaxRatePerSecond  = 1_000_000
)

// ErrNotFound: no tenant with that id is registered.
var ErrNotFound = errors.New("tenant not found")

// ErrExists: Create found a tenant with that id already registered.
var ErrExists = errors.New("tenant already exists")

// InvalidError names the field of a tenant that fails validation.
type InvalidError struct {
	Field  string // the JSON name, e.g. "timeZone", "limits.weight"
	Reason string
}

func (e *InvalidError) Error() string {
	return fmt.Sprintf("invalid tenant: %s: %s", e.Field, e.Reason)
}

// Normalize fills in the defaults (time zone UTC, currency USD, weight 1)
// and checks every field, returning an *InvalidError naming the first bad
// one. Create and Update call it.
func (t *Tenant) Normalize() error {
	if t == nil {
		return &InvalidError{Field: "tenant", Reason: "is missing"}
	}
	if err := ValidateID(t.ID); err != nil {
		return err
	}
	if t.Name == "" || len([]rune(t.Name)) > MaxNameLen {
		return &InvalidError{Field: "name", Reason: fmt.Sprintf("must be 1..%d characters", MaxNameLen)}
	}
	for _, r := range t.Name {
		if r < 0x20 || r == 0x7f {
			return &InvalidError{Field: "name", Reason: "contains a control character"}
		}
	}
	if t.TimeZone == "" {
		t.TimeZone = "UTC"
	}
	// LoadLocation reads a file named by the zone, so a name with a path in
	// it is refused first, whatever the zone database would make of it.
	if _, err := time.LoadLocation(t.TimeZone); err != nil || t.TimeZone == "Local" || len(t.TimeZone) > 64 {
		return &InvalidError{Field: "timeZone", Reason: fmt.Sprintf("%q is not an IANA time zone name", t.TimeZone)}
	}
	if t.Currency == "" {
		t.Currency = "USD"
	}
	if u, err := currency.ParseISO(t.Currency); err != nil || u.String() != t.Currency {
		return &InvalidError{Field: "currency", Reason: fmt.Sprintf("%q is not an ISO 4217 currency code (upper case, e.g. EUR)", t.Currency)}
	}
	return t.Limits.Normalize()
}

// Normalize fills in the default weight and checks the limits, returning an
// *InvalidError naming the first bad one.
func (l *Limits) Normalize() error {
	if l.Weight == 0 {
		l.Weight = 1
	}
	switch {
	case l.MaxConcurrency < 0 || l.MaxConcurrency > MaxConcurrencyCap:
		return &InvalidError{Field: "limits.maxConcurrency", Reason: fmt.Sprintf("%d is outside 0..%d (0 means no cap)", l.MaxConcurrency, MaxConcurrencyCap)}
	case !(l.RatePerSecond >= 0 && l.RatePerSecond <= MaxRatePerSecond): // NaN fails too
		return &InvalidError{Field: "limits.ratePerSecond", Reason: fmt.Sprintf("%v is outside 0..%d (0 means no cap)", l.RatePerSecond, MaxRatePerSecond)}
	case l.Weight < 1 || l.Weight > MaxWeight:
		return &InvalidError{Field: "limits.weight", Reason: fmt.Sprintf("%d is outside 1..%d", l.Weight, MaxWeight)}
	}
	return nil
}

// ValidateID checks a tenant id, returning an *InvalidError for field "id".
func ValidateID(id string) error {
	bad := func(format string, args ...any) error {
		return &InvalidError{Field: "id", Reason: fmt.Sprintf(format, args...)}
	}
	if id == "" || len(id) > MaxIDLen {
		return bad("must be 1..%d bytes", MaxIDLen)
	}
	if id == "all" {
		return bad(`"all" is reserved: a system job's tenant "all" means every tenant`)
	}
	for i, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-' || r == ':') {
			return bad("%q has %q at byte %d (allowed: letters, digits and . _ - :)", id, r, i)
		}
	}
	return nil
}
