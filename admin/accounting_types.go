package admin

import (
	"net/http"
	"strconv"
	"time"

	"github.com/aibos/worker/accounting"
)

// CompanyInput is the body of POST /api/v1/companies.
type CompanyInput struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Currency string `json:"currency"`
}

// Company is a company as the API shows it.
type Company struct {
	TenantID string `json:"tenantId"`
	ID       string `json:"id"`
	Name     string `json:"name"`
	Currency string `json:"currency"`
}

// PartyInput is the body that creates a customer or a vendor.
type PartyInput struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// Party is a customer or a vendor as the API shows it.
type Party struct {
	Kind string `json:"kind"`
	ID   string `json:"id"`
	Name string `json:"name"`
}

// LineInput is one line of a document body; amounts are integer minor
// units, the tax rate in basis points.
type LineInput struct {
	Description string `json:"description"`
	Account     string `json:"account,omitempty"`
	Quantity    int64  `json:"quantity"`
	UnitPrice   int64  `json:"unitPrice"`
	Discount    int64  `json:"discount,omitempty"`
	TaxRate     int64  `json:"taxRate,omitempty"`
}

// DocumentInput is the body that creates an invoice or a bill (id
// required) or stores a new version of one (version: the version it
// replaces).
type DocumentInput struct {
	ID        string      `json:"id,omitempty"`
	Version   int         `json:"version,omitempty"`
	PartyID   string      `json:"partyId"`
	Currency  string      `json:"currency"`
	IssueDate string      `json:"issueDate"`
	DueDate   string      `json:"dueDate,omitempty"`
	Lines     []LineInput `json:"lines"`
}

// params turns the body into the store's parameters.
func (in *DocumentInput) params(kind accounting.DocumentKind, id string, version int) (accounting.DocumentParams, error) {
	issued, err := parseDate("issueDate", in.IssueDate)
	if err != nil {
		return accounting.DocumentParams{}, err
	}
	var due time.Time
	if in.DueDate != "" {
		if due, err = parseDate("dueDate", in.DueDate); err != nil {
			return accounting.DocumentParams{}, err
		}
	}
	d := accounting.DocumentParams{Kind: kind, ID: id, Version: version, PartyID: in.PartyID, Currency: in.Currency, IssueDate: issued, DueDate: due}
	for _, l := range in.Lines {
		d.Lines = append(d.Lines, accounting.Line{Description: l.Description, Account: l.Account, Quantity: l.Quantity, UnitPrice: l.UnitPrice, Discount: l.Discount, TaxRate: l.TaxRate})
	}
	return d, nil
}

// VersionInput names a document version (void: the latest, which the void
// replaces; process: the version to post, the latest when absent).
type VersionInput struct {
	Version int `json:"version,omitempty"`
}

// Line is a document line with its computed amounts.
type Line struct {
	LineInput
	Account string `json:"account"`
	Net     int64  `json:"net"`
	Tax     int64  `json:"tax"`
}

// Document is one version of an invoice or a bill.
type Document struct {
	Kind      string `json:"kind"`
	ID        string `json:"id"`
	Version   int    `json:"version"`
	Status    string `json:"status"`
	PartyID   string `json:"partyId"`
	Currency  string `json:"currency"`
	IssueDate string `json:"issueDate"`
	DueDate   string `json:"dueDate"`
	Lines     []Line `json:"lines"`
	Subtotal  int64  `json:"subtotal"`
	Tax       int64  `json:"tax"`
	Total     int64  `json:"total"`
}

func documentOf(d *accounting.Document) Document {
	out := Document{Kind: string(d.Kind), ID: d.ID, Version: d.Version, Status: string(d.Status), PartyID: d.PartyID, Currency: d.Currency,
		IssueDate: d.IssueDate.Format(time.DateOnly), DueDate: d.DueDate.Format(time.DateOnly), Lines: []Line{},
		Subtotal: d.Subtotal, Tax: d.Totals.Tax, Total: d.Total}
	for _, l := range d.Lines {
		out.Lines = append(out.Lines, Line{LineInput: LineInput{Description: l.Description, Quantity: l.Quantity, UnitPrice: l.UnitPrice, Discount: l.Discount, TaxRate: l.TaxRate},
			Account: l.Account, Net: l.Net, Tax: l.Tax})
	}
	return out
}

// PaymentInput is the body of POST .../payments.
type PaymentInput struct {
	ID         string `json:"id"`
	CustomerID string `json:"customerId"`
	Currency   string `json:"currency"`
	Amount     int64  `json:"amount"`
	Received   string `json:"received"`
}

// PaymentOut is a recorded payment.
type PaymentOut struct {
	ID         string `json:"id"`
	CustomerID string `json:"customerId"`
	Currency   string `json:"currency"`
	Amount     int64  `json:"amount"`
	Received   string `json:"received"`
}

// TrialBalance is GET .../trial-balance.
type TrialBalance struct {
	Rows []BalanceRow `json:"rows"`
}

// BalanceRow is one account's totals in one currency.
type BalanceRow struct {
	Code     string `json:"code"`
	Name     string `json:"name"`
	Type     string `json:"type"`
	Currency string `json:"currency"`
	Debit    int64  `json:"debit"`
	Credit   int64  `json:"credit"`
	Balance  int64  `json:"balance"`
}

// Activity is GET .../accounts/{code}/activity.
type Activity struct {
	Lines []ActivityLine `json:"lines"`
}

// ActivityLine is one ledger line of an account.
type ActivityLine struct {
	EntryID  int64  `json:"entryId"`
	Date     string `json:"date"`
	Memo     string `json:"memo"`
	Account  string `json:"account"`
	Debit    int64  `json:"debit"`
	Credit   int64  `json:"credit"`
	Currency string `json:"currency"`
}

// OpenItems is GET .../receivables and .../payables.
type OpenItems struct {
	AsOf  string     `json:"asOf"`
	Items []OpenItem `json:"items"`
}

// OpenItem is a posted invoice or bill not fully settled.
type OpenItem struct {
	Kind     string `json:"kind"`
	ID       string `json:"id"`
	Version  int    `json:"version"`
	PartyID  string `json:"partyId"`
	Currency string `json:"currency"`
	Issued   string `json:"issued"`
	Due      string `json:"due"`
	Total    int64  `json:"total"`
	Applied  int64  `json:"applied"`
	Open     int64  `json:"open"`
	Bucket   string `json:"bucket"`
}

// parseDate reads a YYYY-MM-DD date of field.
func parseDate(field, v string) (time.Time, error) {
	t, err := time.Parse(time.DateOnly, v)
	if err != nil {
		return time.Time{}, Errorf(http.StatusUnprocessableEntity, CodeInvalid, field, "%s must be a date YYYY-MM-DD, not %s", field, strconv.Quote(v))
	}
	return t, nil
}
