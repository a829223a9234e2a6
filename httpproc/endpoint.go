package httpproc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	worker "github.com/aibos/worker"
)

// Instances spreads calls over several instances of the application.
// *scale.Balancer satisfies it. Do calls try with a node ("host:port")
// and, when try's error has a NodeFailure() bool method returning true,
// may call it again with another node, one call at a time; it returns
// try's last error, possibly wrapped (or one of its own when no node can be
// tried). Do must be safe for concurrent use.
type Instances interface {
	Do(ctx context.Context, try func(ctx context.Context, node string) error) error
}

// EndpointConfig says where and how to call an application endpoint.
type EndpointConfig struct {
	// URL is the endpoint, e.g. "https://app.internal/jobs/invoice". Set
	// either URL, or Path and Instances.
	URL string
	// Path is the endpoint's path on every instance, e.g. "/jobs/invoice",
	// used with Instances.
	Path string
	// Instances chooses the instance ("host:port") of each call.
	Instances Instances
	// Scheme is the scheme of calls through Instances. Defaults to "http".
	Scheme string
	// Secret signs every call ("whsec_" + base64, as the Standard Webhooks
	// specification says). Required.
	Secret string
	// Timeout bounds one call. Defaults to the job's own deadline (its
	// timeout, or the Manager's); a shorter Timeout applies within it.
	Timeout time.Duration
	// Headers are added to every call (e.g. an Authorization header).
	Headers map[string]string
	// Client makes the calls. Defaults to a client with no timeout of its
	// own: the job's context bounds each call.
	Client *http.Client
	// MaxResultBytes bounds the response body read as the job's result.
	// A longer 2xx body fails the job without retry. Defaults to 1 MiB.
	MaxResultBytes int64
	// MaxRetryAfter caps the delay a Retry-After header can ask for.
	// Defaults to 1h.
	MaxRetryAfter time.Duration
	// Now reads the clock for signatures and Retry-After dates. Defaults
	// to time.Now.
	Now func() time.Time
}

// Processor is a worker.Processor that processes each job by POSTing it
// to an application endpoint; see the package documentation for the
// request and how the response decides the outcome. It is safe for
// concurrent use.
type Processor struct {
	cfg  EndpointConfig
	key  []byte
	base *url.URL // nil with Instances
}

// New checks cfg and returns a Processor calling its endpoint. Register it
// for a job type: manager.Register("invoice.processing", p).
func New(cfg EndpointConfig) (*Processor, error) {
	p := &Processor{cfg: cfg}
	if err := p.init(); err != nil {
		return nil, fmt.Errorf("httpproc: new endpoint processor: %w", err)
	}
	return p, nil
}

func (p *Processor) init() error {
	c := &p.cfg
	switch {
	case c.URL != "" && c.Instances != nil:
		return errors.New("set either URL or Instances, not both")
	case c.URL == "" && c.Instances == nil:
		return errors.New("no URL and no Instances: one is required")
	case c.Timeout < 0:
		return fmt.Errorf("timeout %v is negative", c.Timeout)
	case c.MaxResultBytes < 0:
		return fmt.Errorf("max result bytes %d is negative", c.MaxResultBytes)
	case c.MaxRetryAfter < 0:
		return fmt.Errorf("max retry-after %v is negative", c.MaxRetryAfter)
	}
	key, err := parseSecret(c.Secret)
	if err != nil {
		return err
	}
	p.key = key
	if c.URL != "" {
		u, err := url.Parse(c.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("url %q is not an absolute http or https URL", redact(c.URL))
		}
		p.base = u
	} else {
		if c.Scheme == "" {
			c.Scheme = "http"
		}
		if c.Scheme != "http" && c.Scheme != "https" {
			return fmt.Errorf("scheme %q is not http or https", c.Scheme)
		}
		if c.Path != "" && !strings.HasPrefix(c.Path, "/") {
			return fmt.Errorf("path %q does not start with /", c.Path)
		}
	}
	for k := range c.Headers {
		if k == "" || strings.ContainsAny(k, " :\r\n") {
			return fmt.Errorf("header name %q is not a valid header name", k)
		}
	}
	if c.Client == nil {
		c.Client = &http.Client{}
	}
	if c.MaxResultBytes == 0 {
		c.MaxResultBytes = 1 << 20
	}
	if c.MaxRetryAfter == 0 {
		c.MaxRetryAfter = time.Hour
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return nil
}

// redact hides a URL's password and query (either may hold a token);
// unparsable text is hidden whole.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable)"
	}
	if u.RawQuery != "" {
		u.RawQuery = "redacted"
	}
	return u.Redacted()
}

// Request is the JSON body POSTed for a job. Receivers decode it; Data is
// the job's payload as it was enqueued.
type Request struct {
	ID          string            `json:"id"`
	Type        string            `json:"type"`
	Queue       string            `json:"queue"`
	TenantID    string            `json:"tenantId"`
	CompanyID   string            `json:"companyId"`
	Attempt     int               `json:"attempt"`
	MaxAttempts int               `json:"maxAttempts"`
	Data        json.RawMessage   `json:"data"`
	Headers     map[string]string `json:"headers,omitempty"`
}

// Process POSTs job to the endpoint and turns the response into the job's
// outcome: nil (and the JSON body as the job's result) on 2xx; a retryable
// error on 408, 429, 5xx and network errors, worker.RetryAfter when the
// response says when to come back; worker.NoRetry on other statuses. An
// error class named by the response is attached with recovery.Classify.
func (p *Processor) Process(ctx context.Context, job *worker.Job) error {
	if job == nil {
		return worker.NoRetry(errors.New("httpproc: process: job is nil"))
	}
	data := job.Data
	if len(data) == 0 {
		data = json.RawMessage("null")
	}
	body, err := json.Marshal(Request{ID: job.ID, Type: job.Type, Queue: job.Queue, TenantID: job.TenantID,
		CompanyID: job.CompanyID, Attempt: job.Attempt, MaxAttempts: job.MaxAttempts, Data: data, Headers: job.Headers})
	if err != nil {
		return worker.NoRetry(fmt.Errorf("encode request for endpoint: %w", err))
	}
	if p.cfg.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, p.cfg.Timeout)
		defer cancel()
	}
	msgID := messageID(job.Queue, job.ID)
	var result []byte
	try := func(ctx context.Context, target string) error {
		res, err := p.post(ctx, target, msgID, body)
		result = res
		return err
	}
	if p.base != nil {
		err = try(ctx, p.base.String())
	} else {
		err = p.cfg.Instances.Do(ctx, func(ctx context.Context, node string) error {
			return try(ctx, p.cfg.Scheme+"://"+node+p.cfg.Path)
		})
	}
	if err != nil {
		return outcome(err)
	}
	if len(result) > 0 {
		if err := worker.SetResult(ctx, json.RawMessage(result)); err != nil {
			return worker.NoRetry(fmt.Errorf("store endpoint result: %w", err))
		}
	}
	return nil
}

// post makes one signed call and reads its answer: the result body on
// 2xx, else a *callError.
func (p *Processor) post(ctx context.Context, target, msgID string, body []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return nil, &callError{op: "build request for " + redact(target), err: err}
	}
	for k, v := range p.cfg.Headers {
		req.Header.Set(k, v)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "aibos-worker")
	setSignature(req.Header, p.key, msgID, p.cfg.Now(), body)
	resp, err := p.cfg.Client.Do(req)
	if err != nil {
		return nil, transportError("call endpoint "+redact(target), err)
	}
	defer resp.Body.Close()
	return readResponse(resp, "endpoint "+redact(target), p.cfg.MaxResultBytes, p.cfg.MaxRetryAfter, p.cfg.Now())
}
