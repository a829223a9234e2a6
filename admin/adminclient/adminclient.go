// Package adminclient is a Go client of the aibos-worker admin and
// producer API (package admin): typed calls for jobs, queues and health,
// and Do for any other route, over one or several service URLs balanced
// by a scale.Balancer (a node that cannot be reached is failed over).
//
// Errors the API answers with are returned as *admin.Error (errors.As),
// with its status, code, message and field.
package adminclient

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/aibos/worker/admin"
	"github.com/aibos/worker/scale"
)

// Config configures a Client. URLs and Token are required.
type Config struct {
	// URLs are the services' base URLs, e.g. http://worker-1:3001; all
	// with one scheme and no path. Requests are spread over them.
	URLs []string
	// Token is the API token sent as Authorization: Bearer.
	Token string
	// Algorithm spreads requests over URLs. Defaults to round robin.
	Algorithm scale.Algorithm
	// HTTPClient sends the requests. Defaults to a client with a 30s
	// timeout.
	HTTPClient *http.Client
}

// Client calls the API. It is safe for concurrent use.
type Client struct {
	token  string
	scheme string
	http   *http.Client
	bal    *scale.Balancer
}

// New returns a Client for cfg.
func New(cfg Config) (*Client, error) {
	if cfg.Token == "" {
		return nil, errors.New("adminclient: new: Token is empty")
	}
	if len(cfg.URLs) == 0 {
		return nil, errors.New("adminclient: new: URLs is empty: give at least one service URL")
	}
	c := &Client{token: cfg.Token, http: cfg.HTTPClient}
	if c.http == nil {
		c.http = &http.Client{Timeout: 30 * time.Second}
	}
	nodes := make([]scale.Node, len(cfg.URLs))
	for i, raw := range cfg.URLs {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.Trim(u.Path, "/") != "" || u.RawQuery != "" {
			return nil, fmt.Errorf("adminclient: new: URLs[%d] %q is not http(s)://host:port", i, raw)
		}
		if c.scheme != "" && u.Scheme != c.scheme {
			return nil, fmt.Errorf("adminclient: new: URLs[%d] %q: every URL must use %s", i, raw, c.scheme)
		}
		c.scheme = u.Scheme
		host := u.Host
		if u.Port() == "" {
			host += map[string]string{"http": ":80", "https": ":443"}[u.Scheme]
		}
		nodes[i] = scale.Node{Addr: host}
	}
	bal, err := scale.NewBalancer(scale.BalancerConfig{Algorithm: cfg.Algorithm, Nodes: nodes,
		HealthCheck: scale.HealthCheck{Interval: -1}, Client: c.http, Name: "adminclient"})
	if err != nil {
		return nil, fmt.Errorf("adminclient: new: %w", err)
	}
	c.bal = bal
	return c, nil
}

// Do sends method path (e.g. "/api/v1/schedules") with body encoded as
// JSON (none if nil) and decodes a 2xx answer into out (ignored if nil).
// headers are name, value pairs. A node that cannot be reached is failed
// over to the next; any answer, error or not, ends the call. An error
// answer is returned as *admin.Error.
func (c *Client) Do(ctx context.Context, method, path string, body, out any, headers ...string) error {
	if len(headers)%2 != 0 {
		return fmt.Errorf("adminclient: %s %s: headers must be name, value pairs", method, path)
	}
	var payload []byte
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("adminclient: %s %s: encode the body: %w", method, path, err)
		}
		payload = b
	}
	return c.send(ctx, method, path, payload, "application/json", headers, func(resp *http.Response) error { return decode(resp, out) })
}

// Download GETs path (e.g. a report file) and copies a 2xx answer's body,
// whatever its type, to w; it returns how many bytes it copied. Failover
// is as Do's: only a node that gave no answer is retried, so w never gets
// two answers' bytes. An error answer is returned as *admin.Error.
func (c *Client) Download(ctx context.Context, path string, w io.Writer) (int64, error) {
	var n int64
	err := c.send(ctx, "GET", path, nil, "*/*", nil, func(resp *http.Response) error {
		if resp.StatusCode < 200 || resp.StatusCode > 299 {
			return decode(resp, nil)
		}
		var err error
		if n, err = io.Copy(w, resp.Body); err != nil {
			return fmt.Errorf("read the answer: %w", err)
		}
		return nil
	})
	return n, err
}

// send sends one request to a node the balancer picks, failing over while
// none answers, and hands the answer to handle.
func (c *Client) send(ctx context.Context, method, path string, payload []byte, accept string, headers []string, handle func(*http.Response) error) error {
	err := c.bal.Do(ctx, func(ctx context.Context, node string) error {
		var rd io.Reader
		if payload != nil {
			rd = bytes.NewReader(payload)
		}
		req, err := http.NewRequestWithContext(ctx, method, c.scheme+"://"+node+path, rd)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+c.token)
		req.Header.Set("Accept", accept)
		if payload != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		for i := 0; i < len(headers); i += 2 {
			req.Header.Set(headers[i], headers[i+1])
		}
		resp, err := c.http.Do(req)
		if err != nil {
			// No answer: the node may be down; the balancer tries another.
			return scale.NodeFailure(err)
		}
		defer resp.Body.Close()
		return handle(resp)
	})
	if err != nil {
		var e *admin.Error
		if errors.As(err, &e) {
			return e
		}
		return fmt.Errorf("adminclient: %s %s: %w", method, path, err)
	}
	return nil
}

// decode reads an answer: out from a 2xx, an *admin.Error otherwise.
func decode(resp *http.Response, out any) error {
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("read the answer: %w", err)
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		if out == nil || resp.StatusCode == http.StatusNoContent {
			return nil
		}
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("decode the answer: %w", err)
		}
		return nil
	}
	var env struct {
		Error *admin.Error `json:"error"`
	}
	if err := json.Unmarshal(b, &env); err != nil || env.Error == nil {
		return &admin.Error{Status: resp.StatusCode, Code: admin.CodeInternal, Message: fmt.Sprintf("status %d with a body that is not the API's error: %.200s", resp.StatusCode, b)}
	}
	env.Error.Status = resp.StatusCode
	return env.Error
}

// Enqueue adds one job to queue. An empty idempotencyKey gets a random
// one, so that a request failed over to another service after its first
// try may have reached one still adds the job once.
func (c *Client) Enqueue(ctx context.Context, queue string, job admin.EnqueueRequest, idempotencyKey string) (*admin.Job, error) {
	key, err := keyOr(idempotencyKey)
	if err != nil {
		return nil, err
	}
	var out admin.Job
	if err := c.Do(ctx, "POST", "/api/v1/queues/"+url.PathEscape(queue)+"/jobs", job, &out, admin.IdempotencyHeader, key); err != nil {
		return nil, err
	}
	return &out, nil
}

// EnqueueBatch adds jobs to queue, all or none, as Enqueue does one.
func (c *Client) EnqueueBatch(ctx context.Context, queue string, jobs []admin.EnqueueRequest, idempotencyKey string) ([]*admin.Job, error) {
	key, err := keyOr(idempotencyKey)
	if err != nil {
		return nil, err
	}
	var out admin.BatchResponse
	if err := c.Do(ctx, "POST", "/api/v1/queues/"+url.PathEscape(queue)+"/jobs/batch", admin.BatchRequest{Jobs: jobs}, &out, admin.IdempotencyHeader, key); err != nil {
		return nil, err
	}
	return out.Jobs, nil
}

func keyOr(k string) (string, error) {
	if k != "" {
		return k, nil
	}
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("adminclient: make an idempotency key: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// Job returns a job by id; queue may be empty (the service searches).
func (c *Client) Job(ctx context.Context, id, queue string) (*admin.Job, error) {
	return call[admin.Job](ctx, c, "GET", jobPath(id, "", queue), nil)
}

// RetryJob retries a dead, cancelled or expired job.
func (c *Client) RetryJob(ctx context.Context, id, queue string) (*admin.Job, error) {
	return call[admin.Job](ctx, c, "POST", jobPath(id, "/retry", queue), nil)
}

// CancelJob cancels a scheduled, pending or active job.
func (c *Client) CancelJob(ctx context.Context, id, queue string) (*admin.Job, error) {
	return call[admin.Job](ctx, c, "POST", jobPath(id, "/cancel", queue), nil)
}

// DeleteJob deletes a job that is not active.
func (c *Client) DeleteJob(ctx context.Context, id, queue string) error {
	return c.Do(ctx, "DELETE", jobPath(id, "", queue), nil, nil)
}

func jobPath(id, action, queue string) string {
	p := "/api/v1/jobs/" + url.PathEscape(id) + action
	if queue != "" {
		p += "?queue=" + url.QueryEscape(queue)
	}
	return p
}

// ListJobs returns one page of jobs matching f; cursor is "" for the
// first page, then the page's NextCursor; limit 0 means the service's
// default (100).
func (c *Client) ListJobs(ctx context.Context, f admin.JobFilter, cursor string, limit int) (*admin.JobPage, error) {
	q := listQuery(map[string]string{"queue": f.Queue, "state": f.State, "type": f.Type, "tenant": f.Tenant, "cursor": cursor},
		map[string]time.Time{"from": f.From, "to": f.To}, limit)
	return call[admin.JobPage](ctx, c, "GET", "/api/v1/jobs?"+q, nil)
}

// listQuery encodes a listing's query: the text and time parameters that
// are set, and limit when above 0.
func listQuery(text map[string]string, times map[string]time.Time, limit int) string {
	q := url.Values{}
	for k, v := range text {
		if v != "" {
			q.Set(k, v)
		}
	}
	for k, v := range times {
		if !v.IsZero() {
			q.Set(k, v.Format(time.RFC3339Nano))
		}
	}
	if limit > 0 {
		q.Set("limit", fmt.Sprint(limit))
	}
	return q.Encode()
}

// BulkJobs retries or deletes the jobs req.Filter selects, or counts them
// with req.DryRun.
func (c *Client) BulkJobs(ctx context.Context, req admin.BulkRequest) (*admin.BulkResponse, error) {
	return call[admin.BulkResponse](ctx, c, "POST", "/api/v1/jobs/bulk", req)
}

// Queues lists the queues with their counts.
func (c *Client) Queues(ctx context.Context) ([]*admin.Queue, error) {
	out, err := call[admin.QueueList](ctx, c, "GET", "/api/v1/queues", nil)
	if err != nil {
		return nil, err
	}
	return out.Queues, nil
}

// PauseQueue stops workers leasing queue's jobs.
func (c *Client) PauseQueue(ctx context.Context, queue string) error {
	return c.Do(ctx, "POST", "/api/v1/queues/"+url.PathEscape(queue)+"/pause", nil, nil)
}

// ResumeQueue undoes PauseQueue.
func (c *Client) ResumeQueue(ctx context.Context, queue string) error {
	return c.Do(ctx, "POST", "/api/v1/queues/"+url.PathEscape(queue)+"/resume", nil, nil)
}

// SetQueueConcurrency sets how many of queue's jobs each worker process
// runs at once (0: each process's own).
func (c *Client) SetQueueConcurrency(ctx context.Context, queue string, n int) error {
	return c.Do(ctx, "PUT", "/api/v1/queues/"+url.PathEscape(queue)+"/concurrency", admin.QueueSettings{Concurrency: n}, nil)
}

// Audit returns one page of the audit trail matching f, newest first;
// cursor is "" for the first page, then the page's NextCursor; limit 0
// means the service's default (100). A tenant-scoped token sees its
// tenant's entries only.
func (c *Client) Audit(ctx context.Context, f admin.AuditFilter, cursor string, limit int) (*admin.AuditPage, error) {
	q := listQuery(map[string]string{"tenant": f.Tenant, "actor": f.Actor, "action": f.Action, "cursor": cursor},
		map[string]time.Time{"since": f.Since, "until": f.Until}, limit)
	return call[admin.AuditPage](ctx, c, "GET", "/api/v1/audit?"+q, nil)
}

// Health reports whether the service's store answers.
func (c *Client) Health(ctx context.Context) (*admin.Health, error) {
	return call[admin.Health](ctx, c, "GET", "/api/v1/health", nil)
}

// RotateKeys re-seals up to req.MaxJobs stored jobs under the service's
// newest encryption key; call it again until the result is Done.
func (c *Client) RotateKeys(ctx context.Context, req admin.RotateRequest) (*admin.RotateResult, error) {
	return call[admin.RotateResult](ctx, c, "POST", "/api/v1/keys/rotate", req)
}

// call is Do for a call that answers with a T.
func call[T any](ctx context.Context, c *Client, method, path string, body any) (*T, error) {
	var out T
	if err := c.Do(ctx, method, path, body, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
