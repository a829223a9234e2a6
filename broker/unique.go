package broker

import "strings"

// uniqueSep separates the tenant from the key in a unique slot. Tenant ids
// and unique keys cannot contain it (Validate rejects control characters),
// so a slot splits one way only and no raw key looks like a slot.
const uniqueSep = "\x1f"

// UniqueSlot is the name under which a broker holds the unique key key of a
// job of tenant tenant. Unique keys are held per (queue, tenant, key): a
// job with no tenant keeps key itself (its own namespace, tenant ""), a
// job with a tenant gets "\x1f" + tenant + "\x1f" + key, so that jobs of
// different tenants never contend for a key. An empty key is no key and
// stays empty. Brokers that store keys as plain strings (the Redis broker)
// use it; UniqueKeyOfSlot reads the user's key back.
func UniqueSlot(tenant, key string) string {
	if tenant == "" || key == "" {
		return key
	}
	return uniqueSep + tenant + uniqueSep + key
}

// UniqueKeyOfSlot is the inverse of UniqueSlot: the unique key a slot
// holds, as the user gave it. A string that is not a tenant's slot (a key
// of a job with no tenant, or one stored before keys were held per tenant)
// is returned as it is.
func UniqueKeyOfSlot(slot string) string {
	rest, ok := strings.CutPrefix(slot, uniqueSep)
	if !ok {
		return slot
	}
	if _, key, ok := strings.Cut(rest, uniqueSep); ok {
		return key
	}
	return slot
}
