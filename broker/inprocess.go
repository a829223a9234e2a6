package broker

// InProcess is an optional capability of a Broker whose store is a file the
// calling process opens itself (the embedded SQLite store): no call waits
// on a network peer or a failover, and a call waiting for the store's lock
// is bounded by the broker's own lock timeout. Callers that bound calls
// only to survive an outage (worker.Client's default Timeout) skip that
// bound for such a broker: a deadline costs an embedded call its own
// cancellation watcher per SQL statement, about a tenth of a single
// enqueue, and buys nothing.
type InProcess interface {
	// InProcess reports whether every call is served in this process.
	InProcess() bool
}
