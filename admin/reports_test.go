package admin_test

import (
	"context"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aibos/worker/accounting"
	"github.com/aibos/worker/accounting/report"
	"github.com/aibos/worker/accounting/sqlitestore"
	"github.com/aibos/worker/admin"
	"github.com/aibos/worker/admin/apitest"
	"github.com/aibos/worker/internal/testbroker"
)

// TestReportRoutes lists and downloads a company's reports as its
// tenant's viewer and as a cross-tenant viewer, and shows another
// tenant's viewer neither the list nor a file (404, as if the company did
// not exist).
func TestReportRoutes(t *testing.T) {
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, filepath.Join(t.TempDir(), "accounting.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	books := accounting.Books{Tenant: apitest.TenantA, Company: "acme"}
	if _, err := st.CompanyCreate(ctx, accounting.Company{Tenant: books.Tenant, ID: books.Company, Name: "Acme", Currency: "EUR"}); err != nil {
		t.Fatal(err)
	}
	dir := &report.Dir{Root: t.TempDir()}
	r, err := report.Build(ctx, st, books, time.Date(2026, 3, 15, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	files, err := r.Files()
	if err != nil {
		t.Fatal(err)
	}
	if err := dir.Write(books, "2026-03-15", files); err != nil {
		t.Fatal(err)
	}
	srv := apitest.Start(t, admin.Config{Broker: testbroker.SQLite(t), Ledger: st, Reports: dir})
	viewA, viewB := apitest.Scoped(admin.RoleViewer, apitest.TenantA), apitest.Scoped(admin.RoleViewer, apitest.TenantB)
	const c = "/api/v1/companies/acme/reports"

	var l admin.ReportList
	srv.Do(t, "GET", c, viewA, nil).Want(t, http.StatusOK).JSON(t, &l)
	if len(l.Reports) != 4 || l.Reports[0].Date != "2026-03-15" || l.Reports[0].Size == 0 {
		t.Fatalf("reports %+v, want the 4 files of 2026-03-15", l.Reports)
	}
	srv.Do(t, "GET", c+"?tenant="+apitest.TenantA, apitest.Viewer, nil).Want(t, http.StatusOK).JSON(t, &l)
	if len(l.Reports) != 4 {
		t.Fatalf("cross-tenant viewer sees %d reports, want 4", len(l.Reports))
	}
	csv := srv.Do(t, "GET", c+"/2026-03-15/trial-balance.csv", viewA, nil).Want(t, http.StatusOK)
	if got := csv.Header.Get("Content-Type"); !strings.HasPrefix(got, "text/csv") || !strings.HasPrefix(string(csv.Body), "account,name,type") {
		t.Fatalf("trial balance CSV: %s %q", got, csv.Body)
	}
	pdf := srv.Do(t, "GET", c+"/2026-03-15/receivables-aging.pdf", viewA, nil).Want(t, http.StatusOK)
	if pdf.Header.Get("Content-Type") != "application/pdf" || !strings.HasPrefix(string(pdf.Body), "%PDF-") {
		t.Fatalf("aging PDF: %s, %d bytes", pdf.Header.Get("Content-Type"), len(pdf.Body))
	}

	// Another tenant: the company does not exist for it.
	srv.Do(t, "GET", c, viewB, nil).WantError(t, http.StatusNotFound, admin.CodeNotFound)
	srv.Do(t, "GET", c+"/2026-03-15/trial-balance.csv", viewB, nil).WantError(t, http.StatusNotFound, admin.CodeNotFound)
	srv.Do(t, "GET", c+"?tenant="+apitest.TenantA, viewB, nil).WantError(t, http.StatusNotFound, admin.CodeNotFound)
	// No such date; a cross-tenant token that names no tenant; no token.
	srv.Do(t, "GET", c+"/2026-03-16/trial-balance.csv", viewA, nil).WantError(t, http.StatusNotFound, admin.CodeNotFound)
	srv.Do(t, "GET", c+"/2026-03-15/trial-balance.csv", apitest.Viewer, nil).WantError(t, http.StatusBadRequest, admin.CodeBadRequest)
	srv.Do(t, "GET", c, "", nil).Want(t, http.StatusUnauthorized)
}

// TestReportRoutesWithoutDirectory: a server with no report directory
// answers 503, not an empty list.
func TestReportRoutesWithoutDirectory(t *testing.T) {
	st, err := sqlitestore.Open(context.Background(), filepath.Join(t.TempDir(), "accounting.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	srv := apitest.Start(t, admin.Config{Broker: testbroker.SQLite(t), Ledger: st})
	srv.Do(t, "GET", "/api/v1/companies/acme/reports", apitest.Scoped(admin.RoleViewer, apitest.TenantA), nil).
		WantError(t, http.StatusServiceUnavailable, admin.CodeUnavailable)
}
