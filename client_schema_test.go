package worker_test

import (
	"context"
	"errors"
	"testing"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/jobschema"
)

// testSchemas returns a registry with the seed's invoice.processing
// payload schema.
func testSchemas(t *testing.T) *jobschema.Registry {
	t.Helper()
	reg := jobschema.New()
	err := reg.Add("invoice.processing", []byte(`{"type":"object","required":["invoiceId","tenantId","companyId"],
		"additionalProperties":false,"properties":{"invoiceId":{"type":"string"},"tenantId":{"type":"string"},"companyId":{"type":"string"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

func TestClientChecksPayloadSchemas(t *testing.T) {
	eachEngine(t, func(t *testing.T, b broker.Broker) {
		ctx := context.Background()
		c, err := worker.NewClient(b, worker.ClientConfig{Schemas: testSchemas(t)})
		if err != nil {
			t.Fatal(err)
		}
		valid := map[string]any{"invoiceId": "inv_001", "tenantId": "t1", "companyId": "c1"}
		if _, err := c.Add(ctx, "invoices", worker.JobSpec{Type: "invoice.processing", Data: valid}); err != nil {
			t.Fatalf("valid payload: %v", err)
		}
		bad := []struct {
			name string
			data any
			ptr  string
		}{
			{"missing", map[string]any{"invoiceId": "inv_001", "tenantId": "t1"}, "/companyId"},
			{"mistyped", map[string]any{"invoiceId": 1, "tenantId": "t1", "companyId": "c1"}, "/invoiceId"},
			{"extra", map[string]any{"invoiceId": "i", "tenantId": "t1", "companyId": "c1", "x": true}, "/x"},
		}
		for _, tc := range bad {
			spec := worker.JobSpec{Type: "invoice.processing", Data: tc.data}
			_, err := c.Add(ctx, "invoices", spec)
			checkSchemaErr(t, "Add "+tc.name, err, tc.ptr)
			// The bad job sits second in a batch: nothing of the batch is stored.
			_, err = c.AddMany(ctx, "invoices", []worker.JobSpec{{Type: "invoice.processing", Data: valid}, spec})
			checkSchemaErr(t, "AddMany "+tc.name, err, tc.ptr)
		}
		st, err := c.Stats(ctx, "invoices")
		if err != nil {
			t.Fatal(err)
		}
		if st.Pending != 1 {
			t.Fatalf("%d jobs pending, want only the valid one", st.Pending)
		}
		// Types without a schema are not checked.
		if _, err := c.Add(ctx, "invoices", worker.JobSpec{Type: "report.generation", Data: 42}); err != nil {
			t.Fatal(err)
		}
	})
}

func checkSchemaErr(t *testing.T, what string, err error, ptr string) {
	t.Helper()
	var se *jobschema.Error
	if !errors.Is(err, worker.ErrInvalidJob) || !errors.As(err, &se) || se.Pointer != ptr {
		t.Errorf("%s: %v, want ErrInvalidJob with a schema error at %s", what, err, ptr)
	}
}
