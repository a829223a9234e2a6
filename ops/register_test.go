package ops_test

import (
	"encoding/json"
	"slices"
	"testing"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/internal/testbroker"
	"github.com/aibos/worker/jobschema"
	"github.com/aibos/worker/ops"
)

// host records what Register registers.
type host struct {
	reg   *jobschema.Registry
	procs map[string]worker.Processor
}

func (h *host) Register(name string, p worker.Processor) error { h.procs[name] = p; return nil }
func (h *host) Schemas() *jobschema.Registry                   { return h.reg }

func TestRegisterAddsProcessorsAndSchemas(t *testing.T) {
	b := testbroker.SQLite(t)
	clean, err := ops.NewCleanup(ops.CleanupConfig{Broker: b})
	if err != nil {
		t.Fatal(err)
	}
	h := &host{reg: jobschema.New(), procs: map[string]worker.Processor{}}
	if err := ops.Register(h, ops.Processors{Cleanup: clean}); err != nil {
		t.Fatal(err)
	}
	if len(h.procs) != 1 || h.procs[ops.TypeCleanup] == nil || !slices.Equal(h.reg.Types(), []string{ops.TypeCleanup}) {
		t.Fatalf("registered %v with schemas %v; want data.cleanup alone (the nil ones left out)", h.procs, h.reg.Types())
	}
	for data, ok := range map[string]bool{`{"retentionDays": 90}`: true, `{"retentionDays": 0}`: false, `{}`: false, `{"retentionDays": 9, "x": 1}`: false} {
		if err := h.reg.ValidatePayload(ops.TypeCleanup, json.RawMessage(data)); (err == nil) != ok {
			t.Errorf("data.cleanup payload %s: %v", data, err)
		}
	}
	for typ, schema := range ops.Schemas() {
		r := jobschema.New()
		if err := r.Add(typ, schema); err != nil {
			t.Errorf("schema of %s: %v", typ, err)
		}
	}
	if len(ops.Schemas()) != 3 {
		t.Errorf("schemas for %d job types, want data.sync, data.cleanup and backup", len(ops.Schemas()))
	}
}
