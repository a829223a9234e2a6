-- 0005: named leases (broker.LeaderStore): who holds each and until when
-- (unix ms on the broker's clock). A row whose until has passed is free.

CREATE TABLE leaders (
    name   TEXT    PRIMARY KEY,
    holder TEXT    NOT NULL,
    until  INTEGER NOT NULL
) WITHOUT ROWID;
