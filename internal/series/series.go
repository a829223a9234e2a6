// Package series keeps per-minute series of each queue's throughput,
// failures and processing latency in the broker's store, for charts: each
// process records its Manager's events in memory and adds them to the
// stored minute with a compare-and-set, so the minutes of many processes
// merge with no lost update.
//
// A minute of a queue is one document (kind "series", key the minute's
// Unix time in seconds) in the queue's scope, listed in the index "minute"
// scored by that time: a range read is one index page, and on Redis the
// documents stay in the queue's Cluster slot. The queues that have series
// are listed in the scope QueuesScope.
//
// An event counts in the minute of its Event.Time, the recording
// process's clock: minutes of processes whose clocks differ by seconds
// merge with that much blur at their edges, which charts do not show.
//
// Wiring: chain Recorder.Observe into ManagerConfig.OnEvent (with the
// metrics observer), run Recorder.Run for the process's life, and read
// with Read and Queues.
package series

import (
	"math"
	"time"
)

// Bounds are the upper bounds, in milliseconds, of the latency histogram's
// buckets; a last bucket holds everything slower. Quantiles are reported as
// the upper bound of the bucket they fall in, so they are exact to a bucket.
var Bounds = []int64{5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000}

// Minute is one queue's counts in one minute.
type Minute struct {
	// Start is the minute's first instant (UTC).
	Start time.Time `json:"start"`
	// Completed counts the jobs that completed.
	Completed int64 `json:"completed"`
	// Failed counts the failed attempts: retrying and dead.
	Failed int64 `json:"failed"`
	// Dead counts the failed attempts after which the job is dead.
	Dead int64 `json:"dead"`
	// Latency summarises how long processors ran, over every finished
	// attempt (completed, retrying, dead).
	Latency Latency `json:"latency"`
	// Started counts the attempts that started, by the job's tenant (""
	// for jobs of no tenant): the per-tenant start rate. At most
	// MaxStartedTenants tenants a minute; the starts of more are left out.
	Started map[string]int64 `json:"started,omitempty"`
}

// MaxStartedTenants bounds the tenants a Minute counts starts of, so that a
// queue shared by very many tenants keeps small minute documents.
const MaxStartedTenants = 1000

// start counts one start of tenant's job.
func (m *Minute) start(tenant string, n int64) {
	if _, ok := m.Started[tenant]; !ok && len(m.Started) >= MaxStartedTenants {
		return
	}
	if m.Started == nil {
		m.Started = map[string]int64{}
	}
	m.Started[tenant] += n
}

// Latency summarises processing times.
type Latency struct {
	Count int64 `json:"count"`
	SumMs int64 `json:"sumMs"`
	// Buckets counts attempts per bucket of Bounds (the last one beyond
	// it); len(Bounds)+1 entries.
	Buckets []int64 `json:"buckets"`
}

// Add records one attempt that ran for d.
func (l *Latency) Add(d time.Duration) {
	if l.Buckets == nil {
		l.Buckets = make([]int64, len(Bounds)+1)
	}
	ms := d.Milliseconds()
	l.Count++
	l.SumMs += ms
	i := 0
	for i < len(Bounds) && ms > Bounds[i] {
		i++
	}
	l.Buckets[i]++
}

func (l *Latency) merge(o Latency) {
	if len(o.Buckets) == 0 {
		return
	}
	if l.Buckets == nil {
		l.Buckets = make([]int64, len(Bounds)+1)
	}
	l.Count += o.Count
	l.SumMs += o.SumMs
	for i := range min(len(l.Buckets), len(o.Buckets)) {
		l.Buckets[i] += o.Buckets[i]
	}
}

// Quantile returns the upper bound, in milliseconds, of the bucket holding
// quantile q (0 < q <= 1); 0 with no attempts, and -1 when it falls beyond
// the last bound.
func (l *Latency) Quantile(q float64) int64 {
	if l.Count == 0 {
		return 0
	}
	rank := int64(math.Ceil(q * float64(l.Count)))
	var seen int64
	for i, n := range l.Buckets {
		seen += n
		if seen >= rank {
			if i < len(Bounds) {
				return Bounds[i]
			}
			return -1
		}
	}
	return -1
}

func (m *Minute) merge(o *Minute) {
	m.Completed += o.Completed
	m.Failed += o.Failed
	m.Dead += o.Dead
	m.Latency.merge(o.Latency)
	for tenant, n := range o.Started {
		m.start(tenant, n)
	}
}
