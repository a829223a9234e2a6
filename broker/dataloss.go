package broker

import "time"

// DataLossReporter is an optional capability of a Broker that notices when
// its store lost data it had acknowledged: emptied (restarted without
// persistence) or rolled back (restored from an older snapshot, failed over
// to a lagging replica). Package health reports such a broker unready for
// a while after a detection, and package metrics exports the count. A
// Broker without it reports nothing (the embedded SQLite store cannot lose
// data under a running process).
type DataLossReporter interface {
	// DataLoss returns what the broker has detected since it was created:
	// the zero DataLoss if nothing. Safe for concurrent use; it never
	// touches the store.
	DataLoss() DataLoss
}

// DataLoss describes the data loss a broker detected.
type DataLoss struct {
	// Count is how many detections there were (each queue and each event
	// counts once).
	Count int64
	// At, Queue and Reason describe the last one.
	At     time.Time
	Queue  string
	Reason string
}
