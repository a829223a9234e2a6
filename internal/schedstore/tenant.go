package schedstore

import (
	"encoding/json"
	"fmt"

	"github.com/aibos/worker/broker"
)

// regEntry is the body of a registry document: the queue a schedule lives
// in and the tenant its job belongs to, so that a tenant's schedules are
// listed through the tenant's own index.
type regEntry struct {
	Queue  string `json:"queue"`
	Tenant string `json:"tenant,omitempty"`
	// legacy marks an entry stored before tenants were indexed (a bare
	// queue name): the next upsert rewrites it.
	legacy bool
}

// decodeEntry reads a registry document, old form (a JSON string naming
// the queue) or new (a regEntry object).
func decodeEntry(d *broker.Doc) (regEntry, error) {
	var q string
	if json.Unmarshal(d.Body, &q) == nil {
		return regEntry{Queue: q, legacy: true}, nil
	}
	var e regEntry
	if err := json.Unmarshal(d.Body, &e); err != nil || e.Queue == "" {
		return regEntry{}, fmt.Errorf("decode the registry entry of schedule %q: %s is neither a queue name nor an entry", d.Key, d.Body)
	}
	return e, nil
}

// tenantIndex names the index of the schedules of one tenant. The seed's
// tenant "all" is an ordinary tenant name here, never a wildcard.
func tenantIndex(tenant string) string { return "tenant:" + tenant }

// indexes lists a schedule's document (and its registry entry) in the
// index of every schedule and in its tenant's.
func indexes(tenant string) []broker.IndexEntry {
	return []broker.IndexEntry{{Name: indexAll}, {Name: tenantIndex(tenant)}}
}
