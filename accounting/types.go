package accounting

import "time"

// Books names one company's books: every Store method takes one, and no
// method reads or writes outside it, so one tenant never sees another's
// records.
type Books struct {
	Tenant  string
	Company string
}

// Company is a legal entity of a tenant: it owns one set of books, kept in
// its base currency.
type Company struct {
	Tenant   string
	ID       string
	Name     string
	Currency string // ISO 4217, e.g. "EUR"
}

// AccountType classifies an account of the chart of accounts.
type AccountType string

// The account types of a chart of accounts.
const (
	Asset     AccountType = "asset"
	Liability AccountType = "liability"
	Equity    AccountType = "equity"
	Revenue   AccountType = "revenue"
	Expense   AccountType = "expense"
)

// Account is one account of a company's chart of accounts.
type Account struct {
	Code string // e.g. "1200"
	Name string
	Type AccountType
}

// The accounts CompanyCreate adds to every new company; the posting rules
// use them.
const (
	AccountCash           = "1000"
	AccountReceivable     = "1200"
	AccountTaxReceivable  = "1400"
	AccountPayable        = "2000"
	AccountTaxPayable     = "2200"
	AccountCustomerCredit = "2300"
	AccountEquity         = "3000"
	AccountRevenue        = "4000" // default revenue account of invoice lines
	AccountExpense        = "5000" // default expense account of bill lines
)

// DefaultChart returns the chart of accounts every new company starts with.
func DefaultChart() []Account {
	return []Account{
		{AccountCash, "Cash", Asset},
		{AccountReceivable, "Accounts receivable", Asset},
		{AccountTaxReceivable, "Input tax receivable", Asset},
		{AccountPayable, "Accounts payable", Liability},
		{AccountTaxPayable, "Tax payable", Liability},
		{AccountCustomerCredit, "Customer credit", Liability},
		{AccountEquity, "Owner's equity", Equity},
		{AccountRevenue, "Revenue", Revenue},
		{AccountExpense, "Expenses", Expense},
	}
}

// PartyKind says whether a party is a customer or a vendor.
type PartyKind string

// The kinds of party.
const (
	Customer PartyKind = "customer"
	Vendor   PartyKind = "vendor"
)

// Party is a customer or a vendor of a company.
type Party struct {
	Kind PartyKind
	ID   string
	Name string
}

// DocumentKind says whether a document is an invoice (sent to a customer)
// or a bill (received from a vendor).
type DocumentKind string

// The kinds of document.
const (
	Invoice DocumentKind = "invoice"
	Bill    DocumentKind = "bill"
)

// Status is the state of one document version.
type Status string

// The states of a document version.
const (
	Open Status = "open" // to be posted (or posted)
	Void Status = "void" // posting it reverses the previous version
)

// Line is one line of an invoice or bill. Amounts are integer minor units
// of the document's currency.
type Line struct {
	Description string
	// Account is the revenue (invoice) or expense (bill) account the line
	// posts to. Defaults to AccountRevenue or AccountExpense.
	Account   string
	Quantity  int64 // whole units, > 0
	UnitPrice int64 // minor units, >= 0
	Discount  int64 // minor units off the line, 0 <= Discount <= Quantity×UnitPrice
	// TaxRate is in basis points (hundredths of a percent): 2000 is 20 %.
	TaxRate int64

	// Net and Tax are computed by Calculate: Net = Quantity×UnitPrice −
	// Discount, Tax = Net×TaxRate/10000 rounded half up.
	Net int64
	Tax int64
}

// Document is one version of an invoice or a bill. Versions are immutable:
// an update or a void makes a new version.
type Document struct {
	Kind      DocumentKind
	ID        string
	Version   int
	Status    Status
	PartyID   string // the customer of an invoice, the vendor of a bill
	Currency  string
	IssueDate time.Time // a date: UTC midnight
	DueDate   time.Time
	Lines     []Line
	Totals
}

// Payment is money received from a customer.
type Payment struct {
	ID         string
	CustomerID string
	Currency   string
	Amount     int64 // minor units, > 0
	Received   time.Time
}

// EntryLine is one line of a journal entry: exactly one of Debit and Credit
// is positive.
type EntryLine struct {
	Account  string
	Debit    int64
	Credit   int64
	Currency string
}

// JournalEntry is a balanced set of ledger lines posted together.
type JournalEntry struct {
	ID int64
	// Seq is the entry's place in its books' sequence: 1, 2, 3, ... in
	// commit order, so that a reader paging by Seq (Store.JournalSince)
	// never skips an entry committed after it read a later one.
	Seq   int64
	Date  time.Time
	Memo  string
	Lines []EntryLine
	// Reverses is the id of the entry this one reverses, or 0.
	Reverses int64
}

// Posting is what posting a document version or a payment did. Posting the
// same version again returns the first posting unchanged.
type Posting struct {
	Kind    string // "invoice", "bill" or "payment"
	ID      string
	Version int
	// Entry is the entry that books this version; nil for a void.
	Entry *JournalEntry
	// Reversal reverses the entry of the previously posted version; nil if
	// there was none.
	Reversal *JournalEntry
	// Applications are a payment's amounts applied to invoices, oldest
	// invoice first; what is left is the customer's credit.
	Applications []Application
	// Credit is the entry that settled part of an invoice version from its
	// customer's credit (customer-credit debit, receivable credit); nil if
	// none was used.
	Credit *JournalEntry
}

// Application is part of a payment applied to one invoice.
type Application struct {
	InvoiceID string
	Amount    int64
}

// AccountBalance is one row of a trial balance.
type AccountBalance struct {
	Account
	Currency string
	Debit    int64
	Credit   int64
}

// Balance is Debit − Credit: positive for a debit balance.
func (b AccountBalance) Balance() int64 { return b.Debit - b.Credit }

// ActivityLine is one ledger line of an account, with its entry.
type ActivityLine struct {
	EntryID int64
	Date    time.Time
	Memo    string
	EntryLine
}

// OpenItem is a posted invoice (receivable) or bill (payable) not fully
// settled.
type OpenItem struct {
	Kind     DocumentKind
	ID       string
	Version  int
	PartyID  string
	Currency string
	Issued   time.Time
	Due      time.Time
	Total    int64
	Applied  int64 // payments applied (always 0 for bills)
	Open     int64 // Total − Applied, > 0
	// Bucket is the age past the due date at the report's date: "current"
	// (not yet due), "1-30", "31-60", "61-90" or "90+" days.
	Bucket string
}
