package accounting

import (
	"context"
	"time"
)

// Store keeps the companies' books: master data, versioned documents,
// payments and the double-entry ledger. Implementations: sqlitestore (an
// embedded file) and pgstore (PostgreSQL); accountingtest.Run is their
// shared specification.
//
// Every method is safe for concurrent use, also by several processes on the
// same database. Every method but CompanyCreate and Tenants works inside
// one Books and never reads or writes another tenant's records: another
// tenant's company, party or document is ErrNotFound. Errors wrap
// ErrNotFound, ErrDuplicate, ErrInvalid (as an *InvalidError), ErrUnbalanced
// or ErrConflict as documented per method, or are storage failures.
type Store interface {
	// CompanyCreate creates a company with the default chart of accounts
	// (DefaultChart). ErrDuplicate if the tenant already has a company with
	// that id; ErrInvalid for an empty id or an unknown currency.
	CompanyCreate(ctx context.Context, c Company) (*Company, error)
	// CompanyGet returns a company. ErrNotFound if b names none.
	CompanyGet(ctx context.Context, b Books) (*Company, error)
	// CompanyList returns a tenant's companies ordered by id.
	CompanyList(ctx context.Context, tenant string) ([]Company, error)
	// Tenants returns every tenant that has a company, ordered: for
	// operators and invariant checks, never for a tenant's requests.
	Tenants(ctx context.Context) ([]string, error)

	// AccountCreate adds an account to the chart. ErrDuplicate if the code
	// is taken; ErrInvalid for an empty code or an unknown type.
	AccountCreate(ctx context.Context, b Books, a Account) error
	// AccountList returns the chart of accounts ordered by code.
	AccountList(ctx context.Context, b Books) ([]Account, error)

	// PartyCreate adds a customer or a vendor. ErrDuplicate if the id is
	// taken for that kind.
	PartyCreate(ctx context.Context, b Books, p Party) error

	// DocumentCreate stores version 1 of an invoice or a bill with its
	// totals computed by Calculate. ErrDuplicate if the id is taken;
	// ErrNotFound if the party or a line's account does not exist;
	// ErrInvalid for bad lines or a currency other than the company's.
	DocumentCreate(ctx context.Context, b Books, d DocumentParams) (*Document, error)
	// DocumentUpdate stores a new version replacing version
	// d.Version (which must be the latest, else ErrConflict) with d's
	// fields. Nothing is posted until DocumentPost.
	DocumentUpdate(ctx context.Context, b Books, d DocumentParams) (*Document, error)
	// DocumentVoid stores a new, void version after version (which must be
	// the latest and not void, else ErrConflict).
	DocumentVoid(ctx context.Context, b Books, kind DocumentKind, id string, version int) (*Document, error)
	// DocumentGet returns one version of a document, the latest if version
	// is 0. ErrNotFound if there is none.
	DocumentGet(ctx context.Context, b Books, kind DocumentKind, id string, version int) (*Document, error)
	// DocumentPost posts one version of a document to the ledger in ONE
	// database transaction that also records the idempotency key (kind, id,
	// version): it reverses the entry of the previously posted version, if
	// any, and, unless the version is void, posts its own entry (invoice:
	// receivable debit, revenue and tax-payable credits; bill: expense and
	// tax-receivable debits, payable credit). An invoice version left open
	// after the payments already applied to it is then settled, as far as
	// it goes, from its customer's credit (what posted payments left over,
	// oldest payment first): an application of each such payment and one
	// entry, customer-credit debit and receivable credit (Posting.Credit).
	// Posting a version already posted, concurrently or not, returns the
	// first posting and changes nothing. ErrNotFound if the version does not exist; ErrConflict if a
	// later version is already posted, or if payments applied to the
	// invoice exceed the new version's total.
	DocumentPost(ctx context.Context, b Books, kind DocumentKind, id string, version int) (*Posting, error)

	// PaymentCreate records a payment from a customer. ErrDuplicate if the
	// id is taken; ErrNotFound if the customer does not exist; ErrInvalid
	// for an amount <= 0 or a currency other than the company's.
	PaymentCreate(ctx context.Context, b Books, p Payment) (*Payment, error)
	// PaymentPost posts a payment in ONE transaction with its idempotency
	// key: cash debit, receivable credit for what it settles of the
	// customer's posted open invoices (oldest issue date first, partially
	// if it runs out), customer-credit credit for the rest. Posting it
	// again returns the first posting. ErrNotFound if there is no such
	// payment.
	PaymentPost(ctx context.Context, b Books, id string) (*Posting, error)

	// JournalPost posts a manual entry. ErrUnbalanced unless, in every
	// currency, debits equal credits; ErrInvalid for a line with both or
	// neither of debit and credit, a negative amount or a bad currency;
	// ErrNotFound for an unknown account.
	JournalPost(ctx context.Context, b Books, e JournalEntry) (*JournalEntry, error)
	// JournalGet returns an entry. ErrNotFound if b has none with that id.
	JournalGet(ctx context.Context, b Books, id int64) (*JournalEntry, error)
	// JournalCount returns how many entries the books hold.
	JournalCount(ctx context.Context, b Books) (int, error)
	// JournalSince returns up to limit (1..1000) entries of the books with
	// a Seq above after, in Seq order. Seqs are given in commit order, so
	// paging on from the last Seq returned never misses an entry, however
	// postings interleave. ErrInvalid for a limit out of range or a
	// negative after.
	JournalSince(ctx context.Context, b Books, after int64, limit int) ([]JournalEntry, error)

	// CursorGet returns the Seq a named reader of the books (a sync
	// target) has acknowledged through, 0 if it has none yet.
	CursorGet(ctx context.Context, b Books, name string) (int64, error)
	// CursorAdvance moves the named cursor from from to to, in one
	// transaction: ErrConflict if it is not at from (another reader moved
	// it), ErrInvalid if to is not above from or name is empty. Safe for
	// concurrent use: of two advances from the same Seq, one wins.
	CursorAdvance(ctx context.Context, b Books, name string, from, to int64) error

	// TrialBalance returns every account with ledger lines, with its debit
	// and credit totals per currency, ordered by account code.
	TrialBalance(ctx context.Context, b Books) ([]AccountBalance, error)
	// AccountActivity returns an account's ledger lines in posting order.
	// ErrNotFound if the account does not exist.
	AccountActivity(ctx context.Context, b Books, account string) ([]ActivityLine, error)
	// OpenReceivables returns the posted invoices not fully paid, aged at
	// asOf, oldest first.
	OpenReceivables(ctx context.Context, b Books, asOf time.Time) ([]OpenItem, error)
	// OpenPayables returns the posted bills, aged at asOf, oldest first.
	OpenPayables(ctx context.Context, b Books, asOf time.Time) ([]OpenItem, error)

	// Close releases the store's connections.
	Close() error
}

// DocumentParams are the fields of a new document version.
type DocumentParams struct {
	Kind DocumentKind
	ID   string
	// Version is the version being replaced (DocumentUpdate only).
	Version   int
	PartyID   string
	Currency  string
	IssueDate time.Time
	DueDate   time.Time // defaults to IssueDate
	Lines     []Line
}
