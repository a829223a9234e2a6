package jobs

import (
	"testing"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/recovery"
	"github.com/aibos/worker/retry"
)

// TestDecodeStrictRefusesUnknownFields pins what the mail and report
// processors rely on: a field the payload type lacks (a misspelt
// "reportTyp") fails the job as a validation error, never to be retried,
// instead of decoding to a zero value.
func TestDecodeStrictRefusesUnknownFields(t *testing.T) {
	var p reportPayload
	ok := &worker.Job{ID: "j1", Data: []byte(`{"reportType":"daily","tenantId":"t","companyId":"c"}`)}
	if err := decodeStrict(ok, &p); err != nil || p.ReportType != "daily" || p.CompanyID != "c" {
		t.Fatalf("decodeStrict(valid) = %+v, %v", p, err)
	}
	bad := &worker.Job{ID: "j2", Data: []byte(`{"reportTyp":"daily","tenantId":"t","companyId":"c"}`)}
	err := decodeStrict(bad, &reportPayload{})
	if err == nil {
		t.Fatal("decodeStrict accepted an unknown field")
	}
	if !retry.IsNoRetry(err) || recovery.ErrorType(err) != recovery.ValidationError {
		t.Errorf("decodeStrict(unknown field) = %v: want a validation error that is not retried", err)
	}
}
