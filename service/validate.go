package service

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/broker/redisbroker"
	"github.com/aibos/worker/recovery"
	"github.com/aibos/worker/schedule"
	"github.com/aibos/worker/workflow"
)

// Validate checks the sections of the configuration (the settings are
// checked as they are read). The error is a *ConfigError.
func (c *Config) Validate() error {
	where := "config"
	if c.File != "" {
		where = "config file " + c.File
	}
	bad := func(name, want string) error { return &ConfigError{Where: where, Name: name, Want: want} }
	// A Config built in Go rather than by Load has its settings checked
	// here, by the same parsers.
	scratch := Default()
	for _, s := range settings {
		if v := s.get(c); s.set(scratch, v) != nil {
			return &ConfigError{Name: s.env, Value: s.show(c), Quote: true, Want: "want " + s.allowed}
		}
	}
	if err := c.validateRedisDB(); err != nil {
		return err
	}
	if len(c.Queues) == 0 {
		return bad("queues", "list at least one queue")
	}
	seen := map[string]bool{}
	for i, q := range c.Queues {
		name := fmt.Sprintf("queues[%d]", i)
		switch err := broker.ValidateQueueName(q.Name); {
		case err != nil:
			return bad(name+".name", err.Error())
		case seen[q.Name]:
			return bad(name+".name", fmt.Sprintf("queue %q is listed twice", q.Name))
		case q.Name == workflow.DefaultQueue:
			return bad(name+".name", fmt.Sprintf("queue %q is the workflow engine's own; it is always served", q.Name))
		case q.Priority < 0 || q.Priority > broker.MaxPriority:
			return bad(name+".priority", fmt.Sprintf("%d is outside [1, %d] (1 is the most urgent)", q.Priority, broker.MaxPriority))
		case q.Concurrency < 0:
			return bad(name+".concurrency", fmt.Sprintf("%d is negative", q.Concurrency))
		}
		seen[q.Name] = true
	}
	for _, t := range c.JobTypeNames() {
		if err := c.JobTypes[t].validate(); err != nil {
			return bad("job_types."+t, err.Error())
		}
	}
	if err := c.validateSchedules(seen); err != nil {
		return bad(err.name, err.want)
	}
	if c.Callbacks != nil {
		if err := checkHTTPURL(c.Callbacks.URL); err != nil {
			return bad("callbacks.url", err.Error())
		}
		if err := checkSecret(c.Callbacks.Secret); err != nil {
			return bad("callbacks.secret", err.Error())
		}
		if c.Callbacks.Timeout < 0 || c.Callbacks.MaxAttempts < 0 {
			return bad("callbacks", "timeout and max_attempts must not be negative")
		}
	}
	if _, err := c.RecoveryPolicy(); err != nil {
		return bad("recovery", err.Error())
	}
	if sc := c.Scaling; sc != nil {
		if err := sc.validate(); err != nil {
			return bad("scaling", err.Error())
		}
	}
	return c.validateOps(bad)
}

// validate checks the scaling section's ranges; the scaler checks how
// they relate (min below max, down below up) when it is built.
func (sc *Scaling) validate() error {
	switch {
	case sc.MinWorkers < 0 || sc.MaxWorkers < 0:
		return fmt.Errorf("min_workers %d and max_workers %d must not be negative", sc.MinWorkers, sc.MaxWorkers)
	case sc.MaxWorkers != 0 && sc.MinWorkers > sc.MaxWorkers:
		return fmt.Errorf("min_workers %d is above max_workers %d", sc.MinWorkers, sc.MaxWorkers)
	case sc.ScaleUpThreshold < 0 || sc.ScaleUpThreshold > 1 || sc.ScaleDownThreshold < 0 || sc.ScaleDownThreshold > 1:
		return fmt.Errorf("thresholds must be within [0, 1] (utilisation), got up %v and down %v", sc.ScaleUpThreshold, sc.ScaleDownThreshold)
	case sc.Interval < 0:
		return fmt.Errorf("interval %v is negative", sc.Interval)
	}
	return nil
}

type fieldErr struct{ name, want string }

func (c *Config) validateSchedules(queues map[string]bool) *fieldErr {
	names := map[string]bool{}
	for i, s := range c.Schedules {
		name := fmt.Sprintf("schedules[%d]", i)
		if s.Name != "" {
			name = "schedules." + s.Name
		}
		switch {
		case s.Name == "":
			return &fieldErr{name + ".name", "a schedule needs a name"}
		case names[s.Name]:
			return &fieldErr{name + ".name", "listed twice"}
		case s.Job.Type == "":
			return &fieldErr{name + ".job.type", "a schedule's job needs a type"}
		case !queues[s.Job.Queue]:
			return &fieldErr{name + ".job.queue", fmt.Sprintf("%q is not a served queue (queues: %s)", s.Job.Queue, strings.Join(queueNames(c), ", "))}
		case s.Job.MaxAttempts < 0:
			return &fieldErr{name + ".job.max_attempts", "negative"}
		}
		names[s.Name] = true
		if _, err := schedule.Parse(s.Cron, s.TimeZone, schedule.ParseOptions{}); err != nil {
			return &fieldErr{name + ".cron", err.Error()}
		}
		if _, err := json.Marshal(s.Job.Data); err != nil {
			return &fieldErr{name + ".job.data", "not JSON-encodable: " + err.Error()}
		}
	}
	return nil
}

func queueNames(c *Config) []string {
	out := make([]string, len(c.Queues))
	for i, q := range c.Queues {
		out[i] = q.Name
	}
	return out
}

// validate checks one job type's binding.
func (t JobType) validate() error {
	switch {
	case t.Processor == "" && t.HTTP == nil:
		return fmt.Errorf("set processor (a Go processor's name) or http (an endpoint)")
	case t.Processor != "" && t.HTTP != nil:
		return fmt.Errorf("set processor or http, not both")
	case t.HTTP == nil:
		return nil
	}
	e := t.HTTP
	if len(e.Instances) == 0 {
		if err := checkHTTPURL(e.URL); err != nil {
			return fmt.Errorf("http.url: %w", err)
		}
	} else if u, err := url.Parse(e.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return fmt.Errorf("http.url: with instances, want the scheme and path of the calls, e.g. http:///jobs/invoice (the host is the instance's)")
	}
	for _, in := range e.Instances {
		if _, port, err := net.SplitHostPort(in); err != nil || port == "" {
			return fmt.Errorf("http.instances: %q is not host:port", in)
		}
	}
	if err := checkSecret(e.Secret); err != nil {
		return fmt.Errorf("http.secret: %w", err)
	}
	if e.Timeout < 0 {
		return fmt.Errorf("http.timeout: %v is negative", e.Timeout)
	}
	switch e.Algorithm {
	case "", "round-robin", "least-outstanding", "weighted":
	default:
		return fmt.Errorf("http.algorithm: %q is not round-robin, least-outstanding or weighted", e.Algorithm)
	}
	if e.HealthPath != "" && !strings.HasPrefix(e.HealthPath, "/") {
		return fmt.Errorf("http.health_path: %q does not start with /", e.HealthPath)
	}
	return nil
}

// checkHTTPURL accepts an absolute http or https URL.
func checkHTTPURL(raw string) error {
	u, err := url.Parse(raw)
	switch {
	case raw == "":
		return fmt.Errorf("a URL is required")
	case err != nil:
		return fmt.Errorf("does not parse: %s", reason(err))
	case u.Scheme != "http" && u.Scheme != "https" || u.Host == "":
		return fmt.Errorf("%q is not an absolute http or https URL", u.Redacted())
	}
	return nil
}

// checkSecret accepts a Standard Webhooks secret: whsec_ followed by
// base64. Every call is signed, so one is required. The secret is never
// quoted.
func checkSecret(s string) error {
	if s == "" {
		return fmt.Errorf("want secret (whsec_ followed by base64) or secret_env: every call is signed")
	}
	b64, ok := strings.CutPrefix(s, "whsec_")
	if !ok {
		return fmt.Errorf("want whsec_ followed by base64 (value not shown)")
	}
	if _, err := base64.StdEncoding.DecodeString(b64); err != nil {
		return fmt.Errorf("the part after whsec_ is not base64 (value not shown)")
	}
	return nil
}

// RecoveryPolicy returns the recovery strategies as a recovery.Policy.
func (c *Config) RecoveryPolicy() (*recovery.Policy, error) {
	p := &recovery.Policy{}
	for _, s := range c.Recovery {
		p.Strategies = append(p.Strategies, recovery.Strategy{
			ErrorType: s.ErrorType, Action: recovery.Action(s.Action), MaxAttempts: s.MaxAttempts, Delay: s.Delay, Notify: s.Notify,
		})
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return p, nil
}

// validateRedisDB refuses a REDIS_DB other than 0, given by the file, the
// environment or a flag, when REDIS_URL names a Redis Cluster: a cluster has
// only database 0, and quietly using it would mix the data of deployments
// kept apart by database elsewhere. REDIS_DB's default is left unused.
func (c *Config) validateRedisDB() error {
	if c.RedisURL == "" || c.RedisDB == 0 || c.Source("REDIS_DB") == FromDefault {
		return nil
	}
	if o, err := redisbroker.ParseURL(c.RedisURL); err == nil && o.Topology == redisbroker.Cluster {
		return &ConfigError{Name: "REDIS_DB", Value: strconv.Itoa(c.RedisDB), Quote: true,
			Want: "want 0 or unset: REDIS_URL names a Redis Cluster, which has only database 0 (use QUEUE_PREFIX to keep deployments apart)"}
	}
	return nil
}
