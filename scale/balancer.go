package scale

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Algorithm chooses how a Balancer spreads requests over its healthy nodes.
type Algorithm string

// The algorithms.
const (
	// RoundRobin takes the healthy nodes in turn: the seed's default.
	RoundRobin Algorithm = "round-robin"
	// LeastOutstanding takes the healthy node with the fewest requests in
	// flight through Do, in turn among equals.
	LeastOutstanding Algorithm = "least-outstanding"
	// Weighted takes the healthy nodes in turn in proportion to their
	// Weight (smooth weighted round-robin, so picks interleave).
	Weighted Algorithm = "weighted"
)

// ErrNoHealthyNode is returned by Next and wrapped by Do when no node may
// take a request: every node is ejected, or Do has tried every node left.
var ErrNoHealthyNode = errors.New("scale: no healthy node")

// Node is one instance behind a Balancer.
type Node struct {
	// Addr is the node's host:port, the seed's form ("worker-1:3001").
	Addr string
	// Weight is the node's share under the Weighted algorithm, ignored by
	// the others. Defaults to 1.
	Weight int
}

// HealthCheck configures the active health checks: a GET of
// Scheme://Addr/Path per node, healthy when it answers 2xx in time.
type HealthCheck struct {
	// Interval between rounds of checks. Defaults to 30s (the seed's);
	// a negative Interval disables active checks.
	Interval time.Duration
	// Timeout bounds one check. Defaults to 5s (the seed's).
	Timeout time.Duration
	// Path is the health endpoint. Defaults to "/healthz".
	Path string
	// Scheme is "http" or "https". Defaults to "http".
	Scheme string
}

// BalancerConfig configures a Balancer. Only Nodes is required.
type BalancerConfig struct {
	// Algorithm defaults to RoundRobin.
	Algorithm Algorithm
	// Nodes to balance over: at least one, each Addr once.
	Nodes []Node
	// HealthCheck configures the active checks that Start runs.
	HealthCheck HealthCheck
	// FailureThreshold is how many consecutive node failures reported
	// through Do eject a node (the passive check). Defaults to 3.
	FailureThreshold int
	// Cooldown is how long an ejected node is skipped before it is probed
	// again (or, without active checks, given one trial request).
	// Defaults to 30s.
	Cooldown time.Duration
	// Client sends the health checks. Defaults to a client without its own
	// timeout: HealthCheck.Timeout bounds each check.
	Client *http.Client
	// Name labels the metrics (label "balancer"), so that several
	// balancers can share one Registerer. Defaults to "default".
	Name string
	// Registerer, when set, gets per-node metrics: requests, failures,
	// healthy (0/1) and outstanding requests.
	Registerer prometheus.Registerer
	// Logger receives ejections and recoveries. Defaults to slog.Default().
	Logger *slog.Logger
	// Now is the clock of cooldowns. Defaults to time.Now.
	Now func() time.Time
}

// node is a Node with its state, guarded by Balancer.mu.
type node struct {
	Node
	idx         int
	ejected     bool
	until       time.Time // while ejected: skipped and not probed before this
	ejections   int       // times ejected, so a check that began earlier cannot undo a later ejection
	failures    int       // consecutive node failures
	outstanding int       // tries in flight through Do
	current     int       // smooth weighted round-robin credit
}

// Balancer spreads requests over nodes: the seed's LoadBalancer. It
// ejects a node after FailureThreshold consecutive node failures reported
// through Do, or when an active health check fails, and takes it back when
// a health check passes (or, with active checks off, on a successful trial
// request once Cooldown has passed). Safe for concurrent use.
type Balancer struct {
	cfg     BalancerConfig
	metrics *balancerMetrics
	nodes   []*node

	mu      sync.Mutex
	next    int  // round-robin cursor: index of the node to consider first
	active  bool // active checks are running, so only a check takes a node back
	started bool
	closed  bool
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// NewBalancer validates cfg, fills in its defaults and returns a Balancer
// with every node healthy. Call Start to run active health checks.
func NewBalancer(cfg BalancerConfig) (*Balancer, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, fmt.Errorf("scale: new balancer: %w", err)
	}
	b := &Balancer{cfg: cfg}
	for i, n := range cfg.Nodes {
		b.nodes = append(b.nodes, &node{Node: n, idx: i})
	}
	b.metrics = newBalancerMetrics(b)
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(b.metrics); err != nil {
			return nil, fmt.Errorf("scale: new balancer: register metrics of balancer %q: %w", cfg.Name, err)
		}
	}
	return b, nil
}

func (c *BalancerConfig) setDefaults() error {
	switch c.Algorithm {
	case "":
		c.Algorithm = RoundRobin
	case RoundRobin, LeastOutstanding, Weighted:
	default:
		return invalid("Algorithm", "%q is not one of %q, %q, %q", c.Algorithm, RoundRobin, LeastOutstanding, Weighted)
	}
	if len(c.Nodes) == 0 {
		return invalid("Nodes", "is empty: list at least one host:port")
	}
	nodes := make([]Node, len(c.Nodes))
	seen := make(map[string]bool, len(c.Nodes))
	for i, n := range c.Nodes {
		if err := checkAddr(n.Addr); err != nil {
			return invalid(fmt.Sprintf("Nodes[%d].Addr", i), "%q %v", n.Addr, err)
		}
		if seen[n.Addr] {
			return invalid(fmt.Sprintf("Nodes[%d].Addr", i), "%q is listed twice", n.Addr)
		}
		seen[n.Addr] = true
		if n.Weight < 0 {
			return invalid(fmt.Sprintf("Nodes[%d].Weight", i), "%d is negative", n.Weight)
		}
		if n.Weight == 0 {
			n.Weight = 1
		}
		nodes[i] = n
	}
	c.Nodes = nodes // a copy, so the caller's slice stays theirs
	if err := c.HealthCheck.setDefaults(); err != nil {
		return err
	}
	if c.FailureThreshold < 0 {
		return invalid("FailureThreshold", "%d is negative", c.FailureThreshold)
	}
	if c.FailureThreshold == 0 {
		c.FailureThreshold = 3
	}
	if c.Cooldown < 0 {
		return invalid("Cooldown", "%v is negative", c.Cooldown)
	}
	if c.Cooldown == 0 {
		c.Cooldown = 30 * time.Second
	}
	if c.Client == nil {
		c.Client = &http.Client{}
	}
	if c.Name == "" {
		c.Name = "default"
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return nil
}

func (h *HealthCheck) setDefaults() error {
	if h.Interval == 0 {
		h.Interval = 30 * time.Second
	}
	if h.Timeout < 0 {
		return invalid("HealthCheck.Timeout", "%v is negative", h.Timeout)
	}
	if h.Timeout == 0 {
		h.Timeout = 5 * time.Second
	}
	if h.Path == "" {
		h.Path = "/healthz"
	}
	if !strings.HasPrefix(h.Path, "/") {
		return invalid("HealthCheck.Path", "%q does not start with /", h.Path)
	}
	switch h.Scheme {
	case "":
		h.Scheme = "http"
	case "http", "https":
	default:
		return invalid("HealthCheck.Scheme", "%q is not http or https", h.Scheme)
	}
	return nil
}

// invalid says what is wrong with the named field of BalancerConfig.
func invalid(field, format string, args ...any) error {
	return fmt.Errorf("%s %s", field, fmt.Sprintf(format, args...))
}

// checkAddr says what keeps addr from being host:port.
func checkAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("is not host:port: %w", err)
	}
	if host == "" {
		return errors.New("has no host")
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("has port %q, not a number from 1 to 65535", port)
	}
	return nil
}

// Next returns the Addr of the node the algorithm picks among the healthy
// ones: the seed's getNextWorker. It returns ErrNoHealthyNode when every
// node is ejected. Next neither counts the request as outstanding nor
// learns its outcome; use Do for that, and for failover.
func (b *Balancer) Next() (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := b.pickLocked(nil)
	if n == nil {
		return "", ErrNoHealthyNode
	}
	return n.Addr, nil
}

// Do runs try against the node the algorithm picks, counting it
// outstanding while try runs. If try returns a node failure (see
// IsNodeFailure) the failure counts against the node and Do tries the next
// healthy node not yet tried in this call, until every node was tried;
// then it returns ErrNoHealthyNode wrapping try's last error. Any other
// result of try, nil or not, means the node is alive and Do returns it as
// is. Once ctx is done Do stops failing over and a failure is not held
// against the node, since the caller gave up, not the node.
// Safe for concurrent use.
func (b *Balancer) Do(ctx context.Context, try func(ctx context.Context, node string) error) error {
	if try == nil {
		return errors.New("scale: balancer do: try is nil")
	}
	tried := make([]bool, len(b.nodes))
	var last error
	for attempts := 0; ; attempts++ {
		if last != nil && ctx.Err() != nil {
			return last
		}
		b.mu.Lock()
		n := b.pickLocked(tried)
		if n != nil {
			n.outstanding++
		}
		b.mu.Unlock()
		if n == nil {
			if last == nil {
				return ErrNoHealthyNode
			}
			return fmt.Errorf("%w left after %d failed tries: %w", ErrNoHealthyNode, attempts, last)
		}
		tried[n.idx] = true
		err := b.run(ctx, n, try)
		if !IsNodeFailure(err) {
			return err
		}
		last = err
	}
}

// run calls try on n and records its outcome. If try panics, n is released
// without an outcome and the panic goes on to the caller.
func (b *Balancer) run(ctx context.Context, n *node, try func(ctx context.Context, node string) error) error {
	b.metrics.requests.WithLabelValues(n.Addr).Inc()
	finished := false
	defer func() {
		if !finished {
			b.finish(n, nil, false)
		}
	}()
	err := try(ctx, n.Addr)
	finished = true
	b.finish(n, err, ctx.Err() == nil)
	return err
}

// finish releases n after a try and, if judge, records the try's outcome.
func (b *Balancer) finish(n *node, err error, judge bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n.outstanding--
	if !judge {
		return
	}
	if !IsNodeFailure(err) {
		n.failures = 0
		return
	}
	b.metrics.failures.WithLabelValues(n.Addr).Inc()
	n.failures++
	if n.ejected {
		return
	}
	if n.failures >= b.cfg.FailureThreshold {
		b.ejectLocked(n, fmt.Sprintf("%d consecutive failures", n.failures), err)
	}
}

// pickLocked returns the node the algorithm picks among those available
// and not in skip, or nil. A node picked for a trial after its cooldown is
// taken back half-open: one more failure ejects it again.
func (b *Balancer) pickLocked(skip []bool) *node {
	now := b.cfg.Now()
	ok := func(n *node) bool {
		if skip != nil && skip[n.idx] {
			return false
		}
		return !n.ejected || (!b.active && !now.Before(n.until))
	}
	var best *node
	switch b.cfg.Algorithm {
	case Weighted:
		total := 0
		for _, n := range b.nodes {
			if !ok(n) {
				continue
			}
			n.current += n.Weight
			total += n.Weight
			if best == nil || n.current > best.current {
				best = n
			}
		}
		if best != nil {
			best.current -= total
		}
	default: // RoundRobin, LeastOutstanding: from the cursor on, so ties go in turn
		for i := range b.nodes {
			n := b.nodes[(b.next+i)%len(b.nodes)]
			if !ok(n) {
				continue
			}
			if best == nil || (b.cfg.Algorithm == LeastOutstanding && n.outstanding < best.outstanding) {
				best = n
			}
			if b.cfg.Algorithm == RoundRobin {
				break
			}
		}
	}
	if best == nil {
		return nil
	}
	// Past the chosen node, not past the cursor: otherwise the node after
	// an ejected one would get the ejected one's turns too.
	b.next = best.idx + 1
	if best.ejected {
		best.ejected = false
		best.failures = b.cfg.FailureThreshold - 1
		b.cfg.Logger.Info("balancer: trying ejected node again after its cooldown",
			"balancer", b.cfg.Name, "node", best.Addr)
	}
	return best
}

// ejectLocked takes n out of rotation for Cooldown.
func (b *Balancer) ejectLocked(n *node, why string, err error) {
	n.ejected = true
	n.ejections++
	n.until = b.cfg.Now().Add(b.cfg.Cooldown)
	b.cfg.Logger.Warn("balancer: node ejected", "balancer", b.cfg.Name, "node", n.Addr,
		"reason", why, "error", err, "cooldown", b.cfg.Cooldown)
}

// NodeStatus is a node's state as the Balancer sees it.
type NodeStatus struct {
	Node
	// Healthy is false while the node is ejected.
	Healthy bool
	// EjectedUntil is when an ejected node may be probed or tried again.
	EjectedUntil time.Time
	// Failures counts the node's consecutive node failures.
	Failures int
	// Outstanding counts the tries in flight on the node through Do.
	Outstanding int
}

// Nodes returns every node's status, in the configured order.
func (b *Balancer) Nodes() []NodeStatus {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]NodeStatus, len(b.nodes))
	for i, n := range b.nodes {
		out[i] = NodeStatus{Node: n.Node, Healthy: !n.ejected, Failures: n.failures, Outstanding: n.outstanding}
		if n.ejected {
			out[i].EjectedUntil = n.until
		}
	}
	return out
}
