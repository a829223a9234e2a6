-- Every entry gets its place in its books' sequence, given in commit order
-- (companies.last_seq is bumped in the posting's transaction, which
-- serialises postings per company), so that a reader paging entries by seq
-- never skips one committed late. Existing entries are numbered in id
-- order. sync_cursors holds how far each named reader (a sync target) has
-- acknowledged.
ALTER TABLE companies ADD COLUMN last_seq BIGINT NOT NULL DEFAULT 0;
ALTER TABLE entries ADD COLUMN seq BIGINT NOT NULL DEFAULT 0;
UPDATE entries SET seq = (SELECT COUNT(*) FROM entries e2
  WHERE e2.tenant = entries.tenant AND e2.company = entries.company AND e2.id <= entries.id);
UPDATE companies SET last_seq = (SELECT COUNT(*) FROM entries
  WHERE entries.tenant = companies.tenant AND entries.company = companies.id);
CREATE UNIQUE INDEX entries_seq ON entries (tenant, company, seq);
CREATE TABLE sync_cursors (
  tenant  TEXT NOT NULL,
  company TEXT NOT NULL,
  name    TEXT NOT NULL,
  seq     BIGINT NOT NULL,
  PRIMARY KEY (tenant, company, name)
);
