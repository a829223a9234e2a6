package jobschema_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/jobschema"
)

const invoiceSchema = `{
  "type": "object",
  "required": ["invoiceId", "tenantId", "companyId"],
  "additionalProperties": false,
  "properties": {
    "invoiceId": {"type": "string", "minLength": 1},
    "tenantId": {"type": "string", "minLength": 1},
    "companyId": {"type": "string", "minLength": 1},
    "version": {"type": "integer", "minimum": 1},
    "lines": {"type": "array", "items": {"type": "object", "properties": {"qty": {"type": "integer"}}}}
  }
}`

func TestValidatePayloadNamesFirstFailingField(t *testing.T) {
	reg := jobschema.New()
	if err := reg.Add("invoice.processing", []byte(invoiceSchema)); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, data  string
		ptr, reason string // "" ptr and reason: valid
	}{
		{"valid", `{"invoiceId":"inv_001","tenantId":"t1","companyId":"c1","version":2}`, "", ""},
		{"missing field", `{"invoiceId":"inv_001","tenantId":"t1"}`, "/companyId", "missing property"},
		{"mistyped field", `{"invoiceId":7,"tenantId":"t1","companyId":"c1"}`, "/invoiceId", "got number, want string"},
		{"extra field", `{"invoiceId":"i","tenantId":"t1","companyId":"c1","amount":5}`, "/amount", "property not allowed"},
		{"nested", `{"invoiceId":"i","tenantId":"t1","companyId":"c1","lines":[{"qty":1},{"qty":"x"}]}`, "/lines/1/qty", "got string, want integer"},
		{"no payload", ``, "", "got null, want object"},
		{"not json", `{"a":`, "", "payload is not valid JSON"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := reg.ValidatePayload("invoice.processing", []byte(tc.data))
			if tc.reason == "" {
				if err != nil {
					t.Fatalf("valid payload rejected: %v", err)
				}
				return
			}
			var se *jobschema.Error
			if !errors.As(err, &se) || !errors.Is(err, broker.ErrInvalidJob) {
				t.Fatalf("err %v: want a *jobschema.Error matching ErrInvalidJob", err)
			}
			if se.Pointer != tc.ptr || se.Reason != tc.reason || se.Type != "invoice.processing" {
				t.Fatalf("got pointer %q reason %q, want %q %q", se.Pointer, se.Reason, tc.ptr, tc.reason)
			}
		})
	}
	if err := reg.ValidatePayload("other.type", []byte(`"anything"`)); err != nil {
		t.Fatalf("a type without a schema is checked: %v", err)
	}
}

func TestPointerEscapes(t *testing.T) {
	reg := jobschema.New()
	if err := reg.Add("t", []byte(`{"type":"object","properties":{"a/b~c":{"type":"string"}}}`)); err != nil {
		t.Fatal(err)
	}
	var se *jobschema.Error
	if err := reg.ValidatePayload("t", []byte(`{"a/b~c":1}`)); !errors.As(err, &se) || se.Pointer != "/a~1b~0c" {
		t.Fatalf("err %v, want pointer /a~1b~0c", err)
	}
}

func TestAddRejectsBadSchemas(t *testing.T) {
	reg := jobschema.New()
	for name, c := range map[string]struct{ typ, schema string }{
		"empty type":   {"", `{}`},
		"not json":     {"t", `{`},
		"wrong schema": {"t", `{"type":"objekt"}`},
	} {
		if err := reg.Add(c.typ, []byte(c.schema)); err == nil {
			t.Errorf("%s: Add accepted it", name)
		}
	}
	if got := reg.Types(); len(got) != 0 {
		t.Fatalf("a failed Add left types %v", got)
	}
}

func TestLoadDir(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("invoice.processing.json", invoiceSchema)
	write("README.txt", "not a schema")
	reg := jobschema.New()
	if err := reg.LoadDir(dir); err != nil {
		t.Fatal(err)
	}
	if got := reg.Types(); len(got) != 1 || got[0] != "invoice.processing" {
		t.Fatalf("types %v", got)
	}
	write("bad.json", `{"type":1}`)
	if err := reg.LoadDir(dir); err == nil || !strings.Contains(err.Error(), "bad.json") {
		t.Fatalf("bad file: %v, want an error naming bad.json", err)
	}
	if err := jobschema.New().LoadDir(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("a missing directory loaded")
	}
}

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
