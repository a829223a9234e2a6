-- The entry that settled part of a posted invoice version from its
-- customer's credit (0: none), so that posting the version again returns
-- the first posting whole.
ALTER TABLE postings ADD COLUMN credit BIGINT NOT NULL DEFAULT 0;
