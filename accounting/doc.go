// Package accounting keeps the books the seed's accounting jobs work on:
// per tenant and company (the legal entity that owns a set of books), a
// chart of accounts, customers and vendors, invoices and bills with lines,
// payments, and a double-entry ledger whose entries always balance.
//
// Amounts are int64 minor units of an ISO 4217 currency (MinorUnits); no
// floats anywhere. A document's totals come from Calculate: line amount =
// quantity × unit price − discount, tax per line at the line's rate in
// basis points, rounded half up per line.
//
// Documents are versioned: DocumentCreate makes version 1, DocumentUpdate
// and DocumentVoid add versions, and nothing reaches the ledger until
// Store.DocumentPost posts a version. Each posting rule runs in one
// database transaction that also commits its idempotency key (document
// kind, id and version), so a job that posts, crashes and is retried posts
// once:
//
//   - an invoice debits receivables and credits revenue (per line account)
//     and tax payable; a bill debits expense and tax receivable and credits
//     payables;
//   - a new version of a posted document reverses the previous version's
//     entry and posts its own; a void only reverses;
//   - a payment (Store.PaymentPost) settles the customer's posted open
//     invoices oldest first, partially if it runs out, and keeps the rest
//     as customer credit;
//   - an invoice posted while its customer has credit is settled from it,
//     oldest payment first, as far as it goes (customer credit debited,
//     receivables credited), in the same transaction.
//
// The processors of the invoice.processing, bill.processing and
// payment.processing jobs are thin on top: they load the document named by
// the job and call one Store method.
//
// Two stores implement Store: sqlitestore (an embedded file, the default)
// and pgstore (PostgreSQL). accountingtest.Run is their shared
// specification, and accountingtest.CheckBooks the invariants every test
// ends with: each company's trial balance sums to zero, and receivables
// equal open invoices minus applied payments.
package accounting
