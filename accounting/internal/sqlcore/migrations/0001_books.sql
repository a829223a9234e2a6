-- The books of every tenant's companies, for SQLite and PostgreSQL alike
-- ({{serial}} is the dialect's auto-increment key; SQLite reads BIGINT as
-- its 64-bit INTEGER). Every table carries (tenant, company) and every query
-- filters on both: tenant isolation. Dates are TEXT 'YYYY-MM-DD'; amounts
-- are BIGINT minor units.
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
  version    BIGINT NOT NULL,
  status     TEXT NOT NULL,
  party      TEXT NOT NULL,
  currency   TEXT NOT NULL,
  issue_date TEXT NOT NULL,
  due_date   TEXT NOT NULL,
  subtotal   BIGINT NOT NULL,
  tax        BIGINT NOT NULL,
  total      BIGINT NOT NULL,
  PRIMARY KEY (tenant, company, kind, id, version)
);
CREATE TABLE document_lines (
  tenant      TEXT NOT NULL,
  company     TEXT NOT NULL,
  kind        TEXT NOT NULL,
  id          TEXT NOT NULL,
  version     BIGINT NOT NULL,
  line_no     BIGINT NOT NULL,
  description TEXT NOT NULL,
  account     TEXT NOT NULL,
  quantity    BIGINT NOT NULL,
  unit_price  BIGINT NOT NULL,
  discount    BIGINT NOT NULL,
  tax_rate    BIGINT NOT NULL,
  net         BIGINT NOT NULL,
  tax         BIGINT NOT NULL,
  PRIMARY KEY (tenant, company, kind, id, version, line_no)
);
CREATE TABLE payments (
  tenant   TEXT NOT NULL,
  company  TEXT NOT NULL,
  id       TEXT NOT NULL,
  customer TEXT NOT NULL,
  currency TEXT NOT NULL,
  amount   BIGINT NOT NULL,
  received TEXT NOT NULL,
  PRIMARY KEY (tenant, company, id)
);
CREATE TABLE applications (
  tenant  TEXT NOT NULL,
  company TEXT NOT NULL,
  payment TEXT NOT NULL,
  invoice TEXT NOT NULL,
  amount  BIGINT NOT NULL,
  line_no BIGINT NOT NULL, -- the order the payment was applied in
  PRIMARY KEY (tenant, company, payment, invoice)
);
CREATE INDEX applications_invoice ON applications (tenant, company, invoice);
CREATE TABLE entries (
  id         {{serial}},
  tenant     TEXT NOT NULL,
  company    TEXT NOT NULL,
  entry_date TEXT NOT NULL,
  memo       TEXT NOT NULL,
  reverses   BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX entries_books ON entries (tenant, company);
CREATE TABLE entry_lines (
  entry    BIGINT NOT NULL REFERENCES entries (id),
  line_no  BIGINT NOT NULL,
  tenant   TEXT NOT NULL,
  company  TEXT NOT NULL,
  account  TEXT NOT NULL,
  debit    BIGINT NOT NULL,
  credit   BIGINT NOT NULL,
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
  version  BIGINT NOT NULL,
  entry    BIGINT NOT NULL DEFAULT 0,
  reversal BIGINT NOT NULL DEFAULT 0,
  PRIMARY KEY (tenant, company, kind, id, version)
);
