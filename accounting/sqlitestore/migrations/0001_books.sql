-- The books of every tenant's companies. Every table carries (tenant,
-- company) and every query filters on both: tenant isolation. Dates are
-- TEXT 'YYYY-MM-DD'; amounts are INTEGER minor units.
CREATE TABLE companies (
  tenant   TEXT NOT NULL,
  id       TEXT NOT NULL,
  name     TEXT NOT NULL,
  currency TEXT NOT NULL,
  PRIMARY KEY (tenant, id)
);
CREATE TABLE accounts (
  tenant  TEXT NOT NULL,
  company TEXT NOT NULL,
  code    TEXT NOT NULL,
  name    TEXT NOT NULL,
  type    TEXT NOT NULL,
  PRIMARY KEY (tenant, company, code),
  FOREIGN KEY (tenant, company) REFERENCES companies (tenant, id)
);
CREATE TABLE parties (
  tenant  TEXT NOT NULL,
  company TEXT NOT NULL,
  kind    TEXT NOT NULL,
  id      TEXT NOT NULL,
  name    TEXT NOT NULL,
  PRIMARY KEY (tenant, company, kind, id),
  FOREIGN KEY (tenant, company) REFERENCES companies (tenant, id)
);
CREATE TABLE documents (
  tenant     TEXT NOT NULL,
  company    TEXT NOT NULL,
  kind       TEXT NOT NULL,
  id         TEXT NOT NULL,
  version    INTEGER NOT NULL,
  status     TEXT NOT NULL,
  party      TEXT NOT NULL,
  currency   TEXT NOT NULL,
  issue_date TEXT NOT NULL,
  due_date   TEXT NOT NULL,
  subtotal   INTEGER NOT NULL,
  tax        INTEGER NOT NULL,
  total      INTEGER NOT NULL,
  PRIMARY KEY (tenant, company, kind, id, version)
);
CREATE TABLE document_lines (
  tenant      TEXT NOT NULL,
  company     TEXT NOT NULL,
  kind        TEXT NOT NULL,
  id          TEXT NOT NULL,
  version     INTEGER NOT NULL,
  line_no     INTEGER NOT NULL,
  description TEXT NOT NULL,
  account     TEXT NOT NULL,
  quantity    INTEGER NOT NULL,
  unit_price  INTEGER NOT NULL,
  discount    INTEGER NOT NULL,
  tax_rate    INTEGER NOT NULL,
  net         INTEGER NOT NULL,
  tax         INTEGER NOT NULL,
  PRIMARY KEY (tenant, company, kind, id, version, line_no)
);
CREATE TABLE payments (
  tenant   TEXT NOT NULL,
  company  TEXT NOT NULL,
  id       TEXT NOT NULL,
  customer TEXT NOT NULL,
  currency TEXT NOT NULL,
  amount   INTEGER NOT NULL,
  received TEXT NOT NULL,
  PRIMARY KEY (tenant, company, id)
);
CREATE TABLE applications (
  tenant  TEXT NOT NULL,
  company TEXT NOT NULL,
  payment TEXT NOT NULL,
  invoice TEXT NOT NULL,
  amount  INTEGER NOT NULL,
  line_no INTEGER NOT NULL, -- the order the payment was applied in
  PRIMARY KEY (tenant, company, payment, invoice)
);
CREATE INDEX applications_invoice ON applications (tenant, company, invoice);
CREATE TABLE entries (
  id         INTEGER PRIMARY KEY,
  tenant     TEXT NOT NULL,
  company    TEXT NOT NULL,
  entry_date TEXT NOT NULL,
  memo       TEXT NOT NULL,
  reverses   INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX entries_books ON entries (tenant, company);
CREATE TABLE entry_lines (
  entry    INTEGER NOT NULL REFERENCES entries (id),
  line_no  INTEGER NOT NULL,
  tenant   TEXT NOT NULL,
  company  TEXT NOT NULL,
  account  TEXT NOT NULL,
  debit    INTEGER NOT NULL,
  credit   INTEGER NOT NULL,
  currency TEXT NOT NULL,
  PRIMARY KEY (entry, line_no)
);
CREATE INDEX entry_lines_account ON entry_lines (tenant, company, account);
-- The idempotency keys of postings: one row per (kind, id, version),
-- written in the same transaction as the entries it names.
CREATE TABLE postings (
  tenant   TEXT NOT NULL,
  company  TEXT NOT NULL,
  kind     TEXT NOT NULL,
  id       TEXT NOT NULL,
  version  INTEGER NOT NULL,
  entry    INTEGER NOT NULL DEFAULT 0,
  reversal INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (tenant, company, kind, id, version)
);
