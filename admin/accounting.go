package admin

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/accounting"
	"github.com/aibos/worker/accounting/jobs"
)

// The accounting routes work on one company's books: the tenant is the
// token's (a cross-tenant token names it with ?tenant=), the company is in
// the path. Writing a document stores a version and posts nothing:
// POST .../process enqueues the job type that posts it (invoice.processing,
// bill.processing, payment.processing), so the application decides when a
// document is final, and a failed posting is a visible job.
func (s *Server) accountingRoutes() {
	const c = "/api/v1/companies/{company}"
	s.handle("POST /api/v1/companies", RoleOperator, s.companyCreate)
	s.handle("POST "+c+"/customers", RoleOperator, s.partyCreate(accounting.Customer))
	s.handle("POST "+c+"/vendors", RoleOperator, s.partyCreate(accounting.Vendor))
	for _, k := range []struct {
		path string
		kind accounting.DocumentKind
	}{{"invoices", accounting.Invoice}, {"bills", accounting.Bill}} {
		s.handle("POST "+c+"/"+k.path, RoleOperator, s.documentCreate(k.kind))
		s.handle("GET "+c+"/"+k.path+"/{id}", RoleViewer, s.documentGet(k.kind))
		s.handle("PUT "+c+"/"+k.path+"/{id}", RoleOperator, s.documentUpdate(k.kind))
		s.handle("POST "+c+"/"+k.path+"/{id}/void", RoleOperator, s.documentVoid(k.kind))
		s.handle("POST "+c+"/"+k.path+"/{id}/process", RoleOperator, s.documentProcess(k.kind))
	}
	s.handle("POST "+c+"/payments", RoleOperator, s.paymentCreate)
	s.handle("POST "+c+"/payments/{id}/process", RoleOperator, s.paymentProcess)
	s.handle("GET "+c+"/trial-balance", RoleViewer, s.trialBalance)
	s.handle("GET "+c+"/accounts/{code}/activity", RoleViewer, s.accountActivity)
	s.handle("GET "+c+"/receivables", RoleViewer, s.openItems(accounting.Invoice))
	s.handle("GET "+c+"/payables", RoleViewer, s.openItems(accounting.Bill))
}

// SetLedger makes the accounting routes serve store; until then they answer
// 503. The service calls it once the ledger is open.
func (s *Server) SetLedger(store accounting.Store) { s.ledger.Store(&store) }

func (s *Server) store() (accounting.Store, error) {
	if p := s.ledger.Load(); p != nil && *p != nil {
		return *p, nil
	}
	return nil, Errorf(http.StatusServiceUnavailable, CodeUnavailable, "", "no accounting ledger is configured")
}

// tenantOf returns the tenant a request acts for: the token's scope, else
// the tenant query parameter, which a cross-tenant token must give.
func tenantOf(r *http.Request, p *Principal) (string, error) {
	q := r.URL.Query().Get("tenant")
	switch {
	case p.TenantID != "" && q != "" && q != p.TenantID:
		return "", Errorf(http.StatusNotFound, CodeNotFound, "tenant", "tenant %q not found", q)
	case p.TenantID != "":
		return p.TenantID, nil
	case q == "":
		return "", Errorf(http.StatusBadRequest, CodeBadRequest, "tenant", "a cross-tenant token must name the tenant: ?tenant=")
	}
	return q, nil
}

// books returns the store and the books of the request's company.
func (s *Server) books(r *http.Request, p *Principal) (accounting.Store, accounting.Books, error) {
	st, err := s.store()
	if err != nil {
		return nil, accounting.Books{}, err
	}
	t, err := tenantOf(r, p)
	if err != nil {
		return nil, accounting.Books{}, err
	}
	return st, accounting.Books{Tenant: t, Company: r.PathValue("company")}, nil
}

// ledgerErr maps the store's errors to the API's.
func ledgerErr(err error) error {
	var inv *accounting.InvalidError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &inv):
		return Errorf(http.StatusUnprocessableEntity, CodeInvalid, inv.Field, "%s", inv.Error())
	case errors.Is(err, accounting.ErrNotFound):
		return Errorf(http.StatusNotFound, CodeNotFound, "", "%s", err.Error())
	case errors.Is(err, accounting.ErrDuplicate), errors.Is(err, accounting.ErrConflict):
		return Errorf(http.StatusConflict, CodeConflict, "", "%s", err.Error())
	case errors.Is(err, accounting.ErrInvalid):
		return Errorf(http.StatusUnprocessableEntity, CodeInvalid, "", "%s", err.Error())
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return err
	}
	return Errorf(http.StatusServiceUnavailable, CodeUnavailable, "", "the accounting ledger is unreachable")
}

func (s *Server) companyCreate(w http.ResponseWriter, r *http.Request, p *Principal) error {
	st, err := s.store()
	if err != nil {
		return err
	}
	t, err := tenantOf(r, p)
	if err != nil {
		return err
	}
	var in CompanyInput
	if err := s.decodeJSON(w, r, &in); err != nil {
		return err
	}
	c, err := st.CompanyCreate(r.Context(), accounting.Company{Tenant: t, ID: in.ID, Name: in.Name, Currency: in.Currency})
	if err != nil {
		return ledgerErr(err)
	}
	writeJSON(w, http.StatusCreated, Company{TenantID: c.Tenant, ID: c.ID, Name: c.Name, Currency: c.Currency})
	return nil
}

func (s *Server) partyCreate(kind accounting.PartyKind) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, p *Principal) error {
		st, b, in, err := booksInput[PartyInput](s, w, r, p)
		if err != nil {
			return err
		}
		if err := st.PartyCreate(r.Context(), b, accounting.Party{Kind: kind, ID: in.ID, Name: in.Name}); err != nil {
			return ledgerErr(err)
		}
		writeJSON(w, http.StatusCreated, Party{Kind: string(kind), ID: in.ID, Name: in.Name})
		return nil
	}
}

func (s *Server) documentCreate(kind accounting.DocumentKind) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, p *Principal) error {
		st, b, in, err := booksInput[DocumentInput](s, w, r, p)
		if err != nil {
			return err
		}
		dp, err := in.params(kind, in.ID, 0)
		if err != nil {
			return err
		}
		d, err := st.DocumentCreate(r.Context(), b, dp)
		if err != nil {
			return ledgerErr(err)
		}
		writeJSON(w, http.StatusCreated, documentOf(d))
		return nil
	}
}

func (s *Server) documentUpdate(kind accounting.DocumentKind) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, p *Principal) error {
		st, b, in, err := booksInput[DocumentInput](s, w, r, p)
		if err != nil {
			return err
		}
		if in.ID != "" && in.ID != r.PathValue("id") {
			return Errorf(http.StatusUnprocessableEntity, CodeInvalid, "id", "the body's id %q is not the path's %q", in.ID, r.PathValue("id"))
		}
		if in.Version < 1 {
			return Errorf(http.StatusUnprocessableEntity, CodeInvalid, "version", "version (the latest version, which this one replaces) must be at least 1")
		}
		dp, err := in.params(kind, r.PathValue("id"), in.Version)
		if err != nil {
			return err
		}
		d, err := st.DocumentUpdate(r.Context(), b, dp)
		if err != nil {
			return ledgerErr(err)
		}
		writeJSON(w, http.StatusOK, documentOf(d))
		return nil
	}
}

func (s *Server) documentVoid(kind accounting.DocumentKind) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, p *Principal) error {
		st, b, in, err := booksInput[VersionInput](s, w, r, p)
		if err != nil {
			return err
		}
		if in.Version < 1 {
			return Errorf(http.StatusUnprocessableEntity, CodeInvalid, "version", "version (the latest version, which the void replaces) must be at least 1")
		}
		d, err := st.DocumentVoid(r.Context(), b, kind, r.PathValue("id"), in.Version)
		if err != nil {
			return ledgerErr(err)
		}
		writeJSON(w, http.StatusOK, documentOf(d))
		return nil
	}
}

func (s *Server) documentGet(kind accounting.DocumentKind) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, p *Principal) error {
		st, b, err := s.books(r, p)
		if err != nil {
			return err
		}
		v := 0
		if q := r.URL.Query().Get("version"); q != "" {
			if v, err = strconv.Atoi(q); err != nil || v < 1 {
				return Errorf(http.StatusBadRequest, CodeBadRequest, "version", "version must be a positive integer, not %q", q)
			}
		}
		d, err := st.DocumentGet(r.Context(), b, kind, r.PathValue("id"), v)
		if err != nil {
			return ledgerErr(err)
		}
		writeJSON(w, http.StatusOK, documentOf(d))
		return nil
	}
}

// documentProcess enqueues the job that posts a document version: the
// latest unless the body names one.
func (s *Server) documentProcess(kind accounting.DocumentKind) handlerFunc {
	typ, queue, field := jobs.TypeInvoice, jobs.QueueInvoices, "invoiceId"
	if kind == accounting.Bill {
		typ, queue, field = jobs.TypeBill, jobs.QueueBills, "billId"
	}
	return func(w http.ResponseWriter, r *http.Request, p *Principal) error {
		st, b, err := s.books(r, p)
		if err != nil {
			return err
		}
		var in VersionInput
		if r.ContentLength != 0 {
			if err := s.decodeJSON(w, r, &in); err != nil {
				return err
			}
		}
		d, err := st.DocumentGet(r.Context(), b, kind, r.PathValue("id"), in.Version)
		if err != nil {
			return ledgerErr(err)
		}
		data := map[string]any{field: d.ID, "tenantId": b.Tenant, "companyId": b.Company, "version": d.Version}
		return s.enqueueProcessing(w, r, p, b, queue, typ, data)
	}
}

func (s *Server) paymentCreate(w http.ResponseWriter, r *http.Request, p *Principal) error {
	st, b, in, err := booksInput[PaymentInput](s, w, r, p)
	if err != nil {
		return err
	}
	received, err := parseDate("received", in.Received)
	if err != nil {
		return err
	}
	pm, err := st.PaymentCreate(r.Context(), b, accounting.Payment{ID: in.ID, CustomerID: in.CustomerID, Currency: in.Currency, Amount: in.Amount, Received: received})
	if err != nil {
		return ledgerErr(err)
	}
	writeJSON(w, http.StatusCreated, PaymentOut{ID: pm.ID, CustomerID: pm.CustomerID, Currency: pm.Currency, Amount: pm.Amount, Received: pm.Received.Format(time.DateOnly)})
	return nil
}

func (s *Server) paymentProcess(w http.ResponseWriter, r *http.Request, p *Principal) error {
	_, b, err := s.books(r, p) // books answers 503 without a ledger
	if err != nil {
		return err
	}
	data := map[string]any{"paymentId": r.PathValue("id"), "tenantId": b.Tenant, "companyId": b.Company}
	return s.enqueueProcessing(w, r, p, b, jobs.QueuePayments, jobs.TypePayment, data)
}

// enqueueProcessing adds a processing job for the books' tenant and
// company and answers 202 with it.
func (s *Server) enqueueProcessing(w http.ResponseWriter, r *http.Request, p *Principal, b accounting.Books, queue, typ string, data any) error {
	c, err := s.client(p)
	if err != nil {
		return err
	}
	j, err := c.Add(r.Context(), queue, worker.JobSpec{Type: typ, Data: data, TenantID: b.Tenant, CompanyID: b.Company})
	if err != nil {
		return storeErr(err)
	}
	writeJSON(w, http.StatusAccepted, jobOf(j))
	return nil
}

func (s *Server) trialBalance(w http.ResponseWriter, r *http.Request, p *Principal) error {
	st, b, err := s.books(r, p)
	if err != nil {
		return err
	}
	if _, err := st.CompanyGet(r.Context(), b); err != nil {
		return ledgerErr(err)
	}
	rows, err := st.TrialBalance(r.Context(), b)
	if err != nil {
		return ledgerErr(err)
	}
	out := TrialBalance{Rows: []BalanceRow{}}
	for _, x := range rows {
		out.Rows = append(out.Rows, BalanceRow{Code: x.Code, Name: x.Name, Type: string(x.Type), Currency: x.Currency, Debit: x.Debit, Credit: x.Credit, Balance: x.Balance()})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) accountActivity(w http.ResponseWriter, r *http.Request, p *Principal) error {
	st, b, err := s.books(r, p)
	if err != nil {
		return err
	}
	lines, err := st.AccountActivity(r.Context(), b, r.PathValue("code"))
	if err != nil {
		return ledgerErr(err)
	}
	out := Activity{Lines: []ActivityLine{}}
	for _, l := range lines {
		out.Lines = append(out.Lines, ActivityLine{EntryID: l.EntryID, Date: l.Date.Format(time.DateOnly), Memo: l.Memo, Account: l.Account, Debit: l.Debit, Credit: l.Credit, Currency: l.Currency})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) openItems(kind accounting.DocumentKind) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, p *Principal) error {
		st, b, err := s.books(r, p)
		if err != nil {
			return err
		}
		asOf := s.cfg.Now().UTC()
		if q := r.URL.Query().Get("asOf"); q != "" {
			if asOf, err = time.Parse(time.DateOnly, q); err != nil {
				return Errorf(http.StatusBadRequest, CodeBadRequest, "asOf", "asOf must be a date YYYY-MM-DD, not %q", q)
			}
		}
		if _, err := st.CompanyGet(r.Context(), b); err != nil {
			return ledgerErr(err)
		}
		open := st.OpenReceivables
		if kind == accounting.Bill {
			open = st.OpenPayables
		}
		items, err := open(r.Context(), b, asOf)
		if err != nil {
			return ledgerErr(err)
		}
		out := OpenItems{AsOf: asOf.Format(time.DateOnly), Items: []OpenItem{}}
		for _, it := range items {
			out.Items = append(out.Items, OpenItem{Kind: string(it.Kind), ID: it.ID, Version: it.Version, PartyID: it.PartyID, Currency: it.Currency,
				Issued: it.Issued.Format(time.DateOnly), Due: it.Due.Format(time.DateOnly), Total: it.Total, Applied: it.Applied, Open: it.Open, Bucket: it.Bucket})
		}
		writeJSON(w, http.StatusOK, out)
		return nil
	}
}

// booksInput is the prelude of every ledger write: the caller's books (see
// books) and the request body decoded into an In.
func booksInput[In any](s *Server, w http.ResponseWriter, r *http.Request, p *Principal) (accounting.Store, accounting.Books, *In, error) {
	st, b, err := s.books(r, p)
	if err != nil {
		return nil, accounting.Books{}, nil, err
	}
	in := new(In)
	if err := s.decodeJSON(w, r, in); err != nil {
		return nil, accounting.Books{}, nil, err
	}
	return st, b, in, nil
}
