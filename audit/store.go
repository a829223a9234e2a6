package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/aibos/worker/broker"
)

// The trail lives in the store under a scope of its own. Entries are
// documents keyed by their sequence number and listed in the index "all"
// and in "tenant:<id>" for their Scope and Tenant, scored by sequence
// number, so that a tenant's listing reads its own index. The head
// document holds the newest entry's number and chain value; the
// checkpoint, what retention has trimmed.
const (
	Scope         = "_audit"
	entryKind     = "audit-entry"
	headKind      = "audit-head"
	headKey       = "head"
	checkpointKey = "checkpoint"
	checkKind     = "audit-checkpoint"
	indexAll      = "all"
)

func tenantIndex(t string) string { return "tenant:" + t }

func entryKey(seq int64) string { return strconv.FormatInt(seq, 10) }

// head is the head document's body.
type head struct {
	Seq   int64  `json:"seq"`
	Chain string `json:"chain"`
	// TimeMs is the newest entry's time, so that the next batch's time
	// never goes back.
	TimeMs int64 `json:"timeMs"`
}

// checkpoint is the checkpoint document's body: retention has removed
// the entries up to Through, whose chain value was Chain. MAC signs it.
type checkpoint struct {
	Through int64  `json:"through"`
	Chain   string `json:"chain"`
	Trimmed int64  `json:"trimmed"` // entries removed so far, over every trim
	TimeMs  int64  `json:"timeMs"`  // the store's clock at the last trim
	MAC     string `json:"mac"`
}

func (c *checkpoint) sum(key []byte) []byte {
	return mac(key, "checkpoint", c.Through, c.Chain, c.Trimmed, c.TimeMs)
}

// readDoc reads one document of the trail's scope into v and returns its
// version, 0 if there is none.
func readDoc(ctx context.Context, cm broker.Committer, kind, key string, v any) (int64, error) {
	d, err := cm.DocGet(ctx, Scope, kind, key)
	if errors.Is(err, broker.ErrDocNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read audit %s: %w", kind, err)
	}
	if err := json.Unmarshal(d.Body, v); err != nil {
		return 0, fmt.Errorf("read audit %s: %w", kind, err)
	}
	return d.Version, nil
}

// committer returns b's Committer.
func committer(b broker.Broker) (broker.Committer, error) {
	cm, ok := b.(broker.Committer)
	if !ok {
		return nil, fmt.Errorf("broker %T does not implement broker.Committer", b)
	}
	return cm, nil
}
