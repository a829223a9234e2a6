package broker

import "context"

// CompleteFetcher is an optional capability of a Broker whose every call is
// a round trip to a server (the Redis broker): it acknowledges completions
// and leases jobs in one round trip instead of two. A busy Manager fetches
// as its jobs finish, so it sends the completions queued by then with its
// next fetch (BullMQ's moveToFinished fetches the next job the same way, one
// job at a time). A Manager uses it when the broker offers it and falls back
// to JobComplete and JobFetch otherwise; a broker whose writes already share
// a transaction (the SQLite broker's group commit) gains nothing by it.
type CompleteFetcher interface {
	// JobCompleteFetch does what JobComplete(ctx, complete) and then
	// JobFetch(ctx, fetch) do, with the same rules, in one round trip: each
	// completion is fenced by its lease token and reported on its own, the
	// completions (of any queue) take effect before the fetch reads the
	// queue (a completed job no longer counts towards its tenant's cap),
	// and the fetch leases as JobFetch does. The two halves succeed or fail
	// apart, each as its own call would: the result says how each went. An
	// empty complete is a plain fetch.
	//
	// The error reports a call refused whole (the broker is closed, fetch
	// is nil): nothing was sent. A round trip that failed fails both
	// halves, each with its error: neither is known to have taken effect,
	// as when JobComplete and JobFetch fail as a whole. Safe for concurrent
	// use.
	JobCompleteFetch(ctx context.Context, complete []*JobCompleteParams, fetch *JobFetchParams) (*CompleteFetchResult, error)
}

// CompleteFetchResult is the outcome of a JobCompleteFetch: its completion
// half as JobComplete returns it, its fetch half as JobFetch does.
type CompleteFetchResult struct {
	// Completed has one error per completion, in order: nil, ErrNotFound or
	// ErrLeaseLost, as JobComplete's per-job errors. Nil when CompleteErr is
	// set.
	Completed []error
	// CompleteErr reports a failure of the whole completion half (invalid
	// params, the script failed): none of its completions is known to have
	// been written.
	CompleteErr error
	// Jobs are the jobs leased, as JobFetch returns them; FetchErr is
	// JobFetch's error (ErrQueuePaused, invalid params, the script failed).
	Jobs     []*Job
	FetchErr error
}

// CompleteErrOf returns the outcome of completion i of a JobCompleteFetch
// that returned res and err: the whole call's error, the completion half's,
// or the job's own.
func (res *CompleteFetchResult) CompleteErrOf(i int, err error) error {
	switch {
	case err != nil:
		return err
	case res.CompleteErr != nil:
		return res.CompleteErr
	case i < len(res.Completed):
		return res.Completed[i]
	}
	return nil
}
