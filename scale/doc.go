// Package scale spreads work: the seed's LoadBalancer (Balancer) and
// WorkerScaler (Scaler).
//
// # Balancer
//
// A Balancer spreads requests over several instances of an application,
// each a Node given as host:port, the seed's form. It is what an HTTP
// endpoint processor uses when the application runs more than once.
//
//	lb, err := scale.NewBalancer(scale.BalancerConfig{
//		Nodes: []scale.Node{{Addr: "worker-1:3001"}, {Addr: "worker-2:3001"}, {Addr: "worker-3:3001"}},
//	})
//	lb.Start(ctx) // active health checks: GET http://node/healthz every 30s, 5s timeout
//	defer lb.Close()
//	err = lb.Do(ctx, func(ctx context.Context, node string) error {
//		resp, err := http.Get("http://" + node + "/jobs")
//		if err != nil {
//			return scale.NodeFailure(err) // count it against the node, fail over
//		}
//		...
//	})
//
// Next (the seed's getNextWorker) returns the node to use; Do also counts
// the request as outstanding, learns its outcome and fails over. The
// algorithms are RoundRobin (the seed's default), LeastOutstanding and
// Weighted.
//
// A node leaves the rotation (is ejected) in two ways: passively, after
// FailureThreshold consecutive node failures seen by Do (an error with a
// NodeFailure() bool method returning true, see NodeFailure), and actively,
// when a health check fails. An ejected node is skipped for Cooldown, then
// checked again; it returns when a check passes. Without active checks
// (HealthCheck.Interval < 0, or Start not running) it returns half-open
// after Cooldown: it gets a trial request, and one more failure ejects it
// again. A Registerer gets per-node metrics: requests, failures, healthy
// and outstanding.
//
// # Scaler
//
// A Scaler is the seed's WorkerScaler. It changes how many jobs a
// worker.Manager runs at once (Manager.SetConcurrency) from two signals
// read every Interval: utilisation (busy ÷ concurrency) and queue latency
// (how long the oldest pending job of the Manager's queues has waited). It scales up when utilisation reaches ScaleUpThreshold or the
// latency exceeds LatencyThreshold, and down when utilisation is at most
// ScaleDownThreshold and no job is pending, always within
// [MinWorkers, MaxWorkers] and after the cooldowns. Its decisions and the
// worker count it wants are Prometheus metrics, so a Kubernetes autoscaler
// can scale processes on the same signal. Changing the count never cancels,
// drops or repeats a running job.
package scale
