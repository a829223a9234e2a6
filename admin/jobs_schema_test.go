package admin_test

import (
	"net/http"
	"testing"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/admin"
	"github.com/aibos/worker/admin/apitest"
	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/internal/testbroker"
	"github.com/aibos/worker/jobschema"
)

func TestEnqueueChecksPayloadSchema(t *testing.T) {
	testbroker.Each(t, func(t *testing.T, b broker.Broker) {
		reg := jobschema.New()
		err := reg.Add("invoice.processing", []byte(`{"type":"object","required":["invoiceId","tenantId","companyId"],
			"additionalProperties":false,"properties":{"invoiceId":{"type":"string"},"tenantId":{"type":"string"},"companyId":{"type":"string"}}}`))
		if err != nil {
			t.Fatal(err)
		}
		c, err := worker.NewClient(b, worker.ClientConfig{Schemas: reg})
		if err != nil {
			t.Fatal(err)
		}
		srv := apitest.Start(t, admin.Config{Broker: b, Client: c})
		srv.Do(t, "POST", "/api/v1/queues/invoices/jobs", apitest.Operator,
			`{"type":"invoice.processing","data":{"invoiceId":"inv_001","tenantId":"t1","companyId":"c1"}}`).Want(t, http.StatusCreated)
		for _, tc := range []struct{ name, data, field string }{
			{"missing", `{"invoiceId":"inv_001","tenantId":"t1"}`, "/companyId"},
			{"mistyped", `{"invoiceId":1,"tenantId":"t1","companyId":"c1"}`, "/invoiceId"},
			{"extra", `{"invoiceId":"i","tenantId":"t1","companyId":"c1","x":1}`, "/x"},
		} {
			e := srv.Do(t, "POST", "/api/v1/queues/invoices/jobs", apitest.Operator,
				`{"type":"invoice.processing","data":`+tc.data+`}`).WantError(t, http.StatusUnprocessableEntity, admin.CodeSchema)
			if e.Field != tc.field {
				t.Errorf("%s: field %q, want %q (%s)", tc.name, e.Field, tc.field, e.Message)
			}
			e = srv.Do(t, "POST", "/api/v1/queues/invoices/jobs/batch", apitest.Operator,
				`{"jobs":[{"type":"invoice.processing","data":{"invoiceId":"i","tenantId":"t","companyId":"c"}},{"type":"invoice.processing","data":`+tc.data+`}]}`).
				WantError(t, http.StatusUnprocessableEntity, admin.CodeSchema)
			if e.Field != tc.field {
				t.Errorf("batch %s: field %q, want %q (%s)", tc.name, e.Field, tc.field, e.Message)
			}
			// With an Idempotency-Key the job goes through another path.
			srv.Do(t, "POST", "/api/v1/queues/invoices/jobs", apitest.Operator,
				`{"type":"invoice.processing","data":`+tc.data+`}`, "Idempotency-Key", "k-"+tc.name).
				WantError(t, http.StatusUnprocessableEntity, admin.CodeSchema)
		}
		st, err := c.Stats(t.Context(), "invoices")
		if err != nil {
			t.Fatal(err)
		}
		if st.Pending != 1 {
			t.Fatalf("%d jobs pending, want only the valid one", st.Pending)
		}
	})
}
