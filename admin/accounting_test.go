package admin_test

import (
	"context"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/aibos/worker/accounting"
	"github.com/aibos/worker/accounting/accountingtest"
	"github.com/aibos/worker/accounting/jobs"
	"github.com/aibos/worker/accounting/sqlitestore"
	"github.com/aibos/worker/admin"
	"github.com/aibos/worker/admin/apitest"
	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/internal/testbroker"
)

// TestAccountingRoutes drives every accounting operation once to success
// and once to an error, as tenant A's operator (the tenant from the
// token) and as the cross-tenant operator (?tenant=).
func TestAccountingRoutes(t *testing.T) {
	testbroker.Each(t, func(t *testing.T, b broker.Broker) {
		st, err := sqlitestore.Open(context.Background(), filepath.Join(t.TempDir(), "accounting.db"))
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		defer accountingtest.CheckBooks(t, st)
		srv := apitest.Start(t, admin.Config{Broker: b, Ledger: st})
		opA, viewA, opB := apitest.Scoped(admin.RoleOperator, apitest.TenantA), apitest.Scoped(admin.RoleViewer, apitest.TenantA), apitest.Scoped(admin.RoleOperator, apitest.TenantB)
		const c = "/api/v1/companies/acme"
		var co admin.Company
		srv.Do(t, "POST", "/api/v1/companies", opA, `{"id":"acme","name":"Acme","currency":"EUR"}`).Want(t, http.StatusCreated).JSON(t, &co)
		if co.TenantID != apitest.TenantA || co.Currency != "EUR" {
			t.Fatalf("company %+v", co)
		}
		srv.Do(t, "POST", "/api/v1/companies", opA, `{"id":"acme","currency":"EUR"}`).WantError(t, http.StatusConflict, admin.CodeConflict)
		srv.Do(t, "POST", "/api/v1/companies", apitest.Operator, `{"id":"x","currency":"EUR"}`).WantError(t, http.StatusBadRequest, admin.CodeBadRequest)

		for _, kind := range []string{"customers", "vendors"} {
			srv.Do(t, "POST", c+"/"+kind, opA, `{"id":"p1","name":"P One"}`).Want(t, http.StatusCreated)
			srv.Do(t, "POST", c+"/"+kind, opA, `{"id":"p1","name":"P One"}`).WantError(t, http.StatusConflict, admin.CodeConflict)
		}

		doc := `{"id":"d1","partyId":"p1","currency":"EUR","issueDate":"2026-01-10","lines":[{"description":"x","quantity":3,"unitPrice":1005,"taxRate":1950}]}`
		for _, kind := range []string{"invoices", "bills"} {
			var d admin.Document
			srv.Do(t, "POST", c+"/"+kind, opA, doc).Want(t, http.StatusCreated).JSON(t, &d)
			// 3 × 10.05 = 30.15, tax 19.5 % = 5.87925 → 5.88 (half up, per line).
			if d.Version != 1 || d.Subtotal != 3015 || d.Tax != 588 || d.Total != 3603 {
				t.Fatalf("%s created %+v", kind, d)
			}
			e := srv.Do(t, "POST", c+"/"+kind, opA, `{"id":"d2","partyId":"p1","currency":"EUR","issueDate":"2026-01-10","lines":[{"description":"x","quantity":0,"unitPrice":1}]}`).
				WantError(t, http.StatusUnprocessableEntity, admin.CodeInvalid)
			if e.Field != "lines[0].quantity" {
				t.Errorf("bad line: field %q", e.Field)
			}
			srv.Do(t, "GET", c+"/"+kind+"/d1", viewA, nil).Want(t, http.StatusOK).JSON(t, &d)
			srv.Do(t, "GET", c+"/"+kind+"/d1", apitest.Scoped(admin.RoleViewer, apitest.TenantB), nil).WantError(t, http.StatusNotFound, admin.CodeNotFound)

			upd := `{"version":1,"partyId":"p1","currency":"EUR","issueDate":"2026-01-10","lines":[{"description":"x","quantity":1,"unitPrice":500}]}`
			srv.Do(t, "PUT", c+"/"+kind+"/d1", opA, upd).Want(t, http.StatusOK).JSON(t, &d)
			if d.Version != 2 || d.Total != 500 {
				t.Fatalf("%s updated %+v", kind, d)
			}
			srv.Do(t, "PUT", c+"/"+kind+"/d1", opA, upd).WantError(t, http.StatusConflict, admin.CodeConflict) // version 1 is no longer the latest
			var j admin.Job
			srv.Do(t, "POST", c+"/"+kind+"/d1/process", opA, `{"version":2}`).Want(t, http.StatusAccepted).JSON(t, &j)
			if j.TenantID != apitest.TenantA || j.CompanyID != "acme" || (kind == "invoices") != (j.Type == jobs.TypeInvoice) {
				t.Fatalf("processing job %+v", j)
			}
			srv.Do(t, "POST", c+"/"+kind+"/nope/process", opA, nil).WantError(t, http.StatusNotFound, admin.CodeNotFound)
			srv.Do(t, "POST", c+"/"+kind+"/d1/void", opA, `{"version":2}`).Want(t, http.StatusOK).JSON(t, &d)
			if d.Version != 3 || d.Status != "void" {
				t.Fatalf("%s voided %+v", kind, d)
			}
			srv.Do(t, "POST", c+"/"+kind+"/d1/void", opB, `{"version":3}`).WantError(t, http.StatusNotFound, admin.CodeNotFound)
		}

		srv.Do(t, "POST", c+"/payments", opA, `{"id":"pay1","customerId":"p1","currency":"EUR","amount":1000,"received":"2026-02-01"}`).Want(t, http.StatusCreated)
		srv.Do(t, "POST", c+"/payments", opA, `{"id":"pay2","customerId":"p1","currency":"USD","amount":1000,"received":"2026-02-01"}`).
			WantError(t, http.StatusUnprocessableEntity, admin.CodeInvalid)
		srv.Do(t, "POST", c+"/payments/pay1/process?tenant="+apitest.TenantA, apitest.Operator, nil).Want(t, http.StatusAccepted)
		srv.Do(t, "POST", c+"/payments/pay1/process", apitest.Operator, nil).WantError(t, http.StatusBadRequest, admin.CodeBadRequest)

		// The ledger reads, after posting one invoice directly.
		srv.Do(t, "POST", c+"/invoices", opA, `{"id":"d9","partyId":"p1","currency":"EUR","issueDate":"2026-01-10","dueDate":"2026-02-09","lines":[{"description":"x","quantity":1,"unitPrice":700}]}`).Want(t, http.StatusCreated)
		if _, err := st.DocumentPost(context.Background(), accounting.Books{Tenant: apitest.TenantA, Company: "acme"}, accounting.Invoice, "d9", 1); err != nil {
			t.Fatal(err)
		}
		var tb admin.TrialBalance
		srv.Do(t, "GET", c+"/trial-balance", viewA, nil).Want(t, http.StatusOK).JSON(t, &tb)
		var sum int64
		for _, r := range tb.Rows {
			sum += r.Balance
		}
		if len(tb.Rows) == 0 || sum != 0 {
			t.Fatalf("trial balance %+v sums to %d", tb, sum)
		}
		srv.Do(t, "GET", "/api/v1/companies/nope/trial-balance", viewA, nil).WantError(t, http.StatusNotFound, admin.CodeNotFound)
		var act admin.Activity
		srv.Do(t, "GET", c+"/accounts/1200/activity", viewA, nil).Want(t, http.StatusOK).JSON(t, &act)
		if len(act.Lines) != 1 || act.Lines[0].Debit != 700 {
			t.Fatalf("receivable activity %+v", act)
		}
		srv.Do(t, "GET", c+"/accounts/9999/activity", viewA, nil).WantError(t, http.StatusNotFound, admin.CodeNotFound)
		var open admin.OpenItems
		srv.Do(t, "GET", c+"/receivables?asOf=2026-03-01", viewA, nil).Want(t, http.StatusOK).JSON(t, &open)
		if len(open.Items) != 1 || open.Items[0].Open != 700 || open.Items[0].Bucket != "1-30" {
			t.Fatalf("receivables %+v", open)
		}
		srv.Do(t, "GET", c+"/receivables?asOf=March", viewA, nil).WantError(t, http.StatusBadRequest, admin.CodeBadRequest)
		srv.Do(t, "GET", c+"/payables?tenant="+apitest.TenantA, apitest.Viewer, nil).Want(t, http.StatusOK)
		srv.Do(t, "GET", c+"/payables?tenant="+apitest.TenantA, viewA+"-nope", nil).WantError(t, http.StatusUnauthorized, admin.CodeUnauthenticated)
		// A viewer may read but not write.
		srv.Do(t, "POST", c+"/customers", viewA, `{"id":"p2"}`).WantError(t, http.StatusForbidden, admin.CodeForbidden)
	})
}
