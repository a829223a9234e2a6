-- 0002: recurring schedules (package schedule's Cron). def is the caller's
-- definition as JSON; the other columns are the store's own. Times are unix
-- milliseconds of the broker clock; last_tick 0 means no tick claimed yet.

CREATE TABLE schedules (
    name       TEXT    PRIMARY KEY,
    queue      TEXT    NOT NULL,
    def        TEXT    NOT NULL,
    -- timing joins spec, time zone and queue: a change resets since.
    timing     TEXT    NOT NULL,
    version    INTEGER NOT NULL,
    paused     INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    since      INTEGER NOT NULL,
    last_tick  INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
