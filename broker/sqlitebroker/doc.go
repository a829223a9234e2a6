// Package sqlitebroker is the embedded storage engine of aibos-worker: a
// broker.Broker kept in one SQLite file (modernc.org/sqlite, pure Go, no cgo).
// It is the zero-setup default; use the Redis broker to scale out to many
// machines.
//
// # Durability
//
// The file runs in WAL mode; every state change is one IMMEDIATE
// transaction. Inserts, operator actions (cancel, retry, delete, pause) and
// commits of the generic primitive (Commit: workflow runs, schedules)
// commit with synchronous=FULL: a call that
// returned has reached the disk. Lease traffic (fetch, complete, extend,
// fail, maintenance) commits with synchronous=NORMAL: written to the WAL
// before the call returns, so a killed process (SIGKILL) loses nothing, and
// fsynced with the next FULL commit or checkpoint. A power loss can undo the
// last lease transitions, which only makes those jobs run again (delivery is
// at least once); it never loses an enqueued job. This saves an fsync per
// fetch and per acknowledgement batch. The commit that takes the WAL past
// 1,000 pages (a FULL commit) or 16,384 pages (a NORMAL one) copies it
// into the database file (a checkpoint), so a restart after a crash
// replays at most 64 MiB of WAL.
//
// Calls that write while a transaction runs join it (group commit): each
// runs in a savepoint of its own, so that its failure undoes only its own
// writes, and every call is answered after the one commit, with an error
// if the commit fails. A call that needs FULL never joins a NORMAL
// transaction.
//
// # Sharing the file
//
// Within one process, share one *Broker between all goroutines and Managers:
// it keeps a single write connection (so writers queue in the process instead
// of fighting over SQLite's lock) and a small pool of read connections.
//
// A file is open in one Broker at a time. Open takes an exclusive lock on
// path + ".lock" (flock, on Unix systems; path with its symbolic links
// resolved, so a link to the store takes the same lock) and fails with
// ErrInUse, naming the holder's pid, while another process or another
// Broker of this process has the store open. The kernel drops the lock when its holder exits or is
// killed, so a crash never blocks the next start; the small lock file itself
// stays. Letting two processes write one SQLite file would be safe but
// slow and unfair (SQLite's lock waits poll, so one busy process can starve
// the other into "database is locked" errors), and it would not add
// capacity: to run workers on several processes or machines, use the Redis
// broker. Tools that only read the file (the sqlite3 shell, backups) are not
// affected by the lock.
//
// # Schema
//
// The schema lives in migrations/*.sql, embedded in the binary and applied
// on Open; PRAGMA user_version records how many have run and PRAGMA
// application_id marks the file as ours. Open refuses, without writing
// anything, a file that is not SQLite, a SQLite database of another
// application, or a store written by a newer version of this package.
package sqlitebroker
