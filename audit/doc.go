// Package audit is the tamper-evident audit trail: an append-only list of
// entries (who did what, to which target, with what outcome and what
// changed) kept in the broker's store, each entry chained to the one
// before it by an HMAC-SHA256 whose key is kept outside the store.
//
// Someone who can write the store but does not hold the key cannot remove,
// edit, insert or re-chain an entry unnoticed: Verify recomputes the chain
// and names the first entry that does not fit. Retention (Trail.Trim)
// removes the oldest entries through a signed checkpoint, so trimming is
// told apart from tampering; the newest entry's sequence number and chain
// value are also written to a head file outside the store, so cutting off
// the newest entries is detected too.
//
// The trail lives on broker.Committer documents, so it needs nothing of a
// storage engine beyond what workflows and schedules need: the head
// document (sequence number and chain value of the newest entry) is
// written with compare-and-set in the same commit as the entries it
// covers, so any number of processes append to one chain. A Trail batches
// the entries of concurrent callers of one process into one commit (group
// commit), so recording an entry per API request costs one store round
// trip per batch rather than per request.
//
// It is a package of its own, not part of package admin, because more than
// the API writes to it: the service records decryption failures of jobs
// (which no request causes) through the same Trail.
package audit
