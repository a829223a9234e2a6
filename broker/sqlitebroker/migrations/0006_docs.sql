-- 0006: versioned documents and their indexes (broker.Committer), on which
-- packages workflow and schedule keep their runs and schedules. A document
-- is addressed by (scope, kind, key); the scope is a queue. An index is a
-- named list of one kind's document keys, each with a score, read in
-- (score, key) order.

CREATE TABLE docs (
    scope   TEXT    NOT NULL,
    kind    TEXT    NOT NULL,
    key     TEXT    NOT NULL,
    version INTEGER NOT NULL,
    body    BLOB    NOT NULL,
    PRIMARY KEY (scope, kind, key)
) WITHOUT ROWID;

CREATE TABLE doc_index (
    scope TEXT    NOT NULL,
    kind  TEXT    NOT NULL,
    name  TEXT    NOT NULL,
    key   TEXT    NOT NULL,
    score INTEGER NOT NULL,
    PRIMARY KEY (scope, kind, key, name)
) WITHOUT ROWID;

CREATE INDEX doc_index_order ON doc_index (scope, kind, name, score, key);
