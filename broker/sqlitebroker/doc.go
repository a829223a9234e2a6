// Package sqlitebroker is the embedded storage engine of aibos-worker: a
// broker.Broker kept in one SQLite file (modernc.org/sqlite, pure Go, no cgo).
// It is the zero-setup default; use the Redis broker to scale out to many
// machines.
//
// # Durability
//
// The file runs in WAL mode with synchronous=FULL: every state change is one
// IMMEDIATE transaction, and a call that returned has reached the disk. A
// process killed at any moment (SIGKILL, power loss) loses no acknowledged
// enqueue or completion, and the file opens cleanly afterwards.
//
// # Sharing the file
//
// Within one process, share one *Broker between all goroutines and Managers:
// it keeps a single write connection (so writers queue in the process instead
// of fighting over SQLite's lock) and a small pool of read connections.
//
// Several processes may open the same file at once, on one machine (SQLite
// locking does not work over network file systems). They coordinate through
// SQLite's own locks: every write is an IMMEDIATE transaction that waits up
// to Options.BusyTimeout for the other processes' writes, so each job is
// still leased to one worker at a time and fencing tokens still grow. Write
// throughput is shared, not multiplied: for more than one node, use Redis.
//
// # Schema
//
// The schema lives in migrations/*.sql, embedded in the binary and applied
// on Open; PRAGMA user_version records how many have run and PRAGMA
// application_id marks the file as ours. Open refuses, without writing
// anything, a file that is not SQLite, a SQLite database of another
// application, or a store written by a newer version of this package.
package sqlitebroker
