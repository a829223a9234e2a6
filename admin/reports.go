package admin

import (
	"errors"
	"net/http"
	"path"

	"github.com/aibos/worker/accounting"
	"github.com/aibos/worker/accounting/report"
)

// The report routes list and serve a company's daily reports (the
// report.generation job writes them), scoped like the accounting routes:
// another tenant's company is 404, whether or not it has reports.
func (s *Server) reportRoutes() {
	const c = "/api/v1/companies/{company}/reports"
	s.handle("GET "+c, RoleViewer, s.reportList)
	s.handle("GET "+c+"/{date}/{name}", RoleViewer, s.reportDownload)
}

// reportBooks returns the report directory and checks the request's
// company exists in its tenant's books.
func (s *Server) reportBooks(r *http.Request, p *Principal) (*report.Dir, accounting.Books, error) {
	if s.cfg.Reports == nil {
		return nil, accounting.Books{}, Errorf(http.StatusServiceUnavailable, CodeUnavailable, "", "no report directory is configured")
	}
	st, b, err := s.books(r, p)
	if err != nil {
		return nil, b, err
	}
	if _, err := st.CompanyGet(r.Context(), b); err != nil {
		return nil, b, ledgerErr(err)
	}
	return s.cfg.Reports, b, nil
}

func (s *Server) reportList(w http.ResponseWriter, r *http.Request, p *Principal) error {
	dir, b, err := s.reportBooks(r, p)
	if err != nil {
		return err
	}
	files, err := dir.List(b)
	if err != nil {
		s.log.Error("admin: list reports", "tenant", b.Tenant, "company", b.Company, "err", err)
		return Errorf(http.StatusInternalServerError, CodeInternal, "", "the reports could not be listed")
	}
	writeJSON(w, http.StatusOK, ReportList{Reports: files})
	return nil
}

func (s *Server) reportDownload(w http.ResponseWriter, r *http.Request, p *Principal) error {
	dir, b, err := s.reportBooks(r, p)
	if err != nil {
		return err
	}
	date, name := r.PathValue("date"), r.PathValue("name")
	f, err := dir.Open(b, date, name)
	if errors.Is(err, report.ErrNotFound) {
		return Errorf(http.StatusNotFound, CodeNotFound, "", "%s", err.Error())
	}
	if err != nil {
		s.log.Error("admin: open report", "tenant", b.Tenant, "company", b.Company, "date", date, "name", name, "err", err)
		return Errorf(http.StatusInternalServerError, CodeInternal, "", "the report could not be read")
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Errorf(http.StatusInternalServerError, CodeInternal, "", "the report could not be read")
	}
	ctype := "text/csv; charset=utf-8"
	if path.Ext(name) == ".pdf" {
		ctype = "application/pdf"
	}
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Content-Disposition", `attachment; filename="`+b.Company+"-"+date+"-"+name+`"`)
	http.ServeContent(w, r, name, fi.ModTime(), f)
	return nil
}

// ReportList is the answer of GET /api/v1/companies/{company}/reports.
type ReportList struct {
	// Reports are the files, newest date first.
	Reports []report.File `json:"reports"`
}
