package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/aibos/worker"
	"github.com/aibos/worker/broker"
)

// queueRoutes registers the queues routes and health.
func (s *Server) queueRoutes() {
	s.handle("GET /api/v1/queues", RoleViewer, s.listQueues)
	s.handle("POST /api/v1/queues/{queue}/pause", RoleOperator, s.pauseQueue)
	s.handle("POST /api/v1/queues/{queue}/resume", RoleOperator, s.resumeQueue)
	s.handle("PUT /api/v1/queues/{queue}/concurrency", RoleAdmin, s.setQueueConcurrency)
	s.handle("GET /api/v1/health", RoleViewer, s.health)
}

// Queue is a queue with its counts (a tenant-scoped token's counts are
// its tenant's jobs only).
type Queue struct {
	Name   string         `json:"name"`
	Paused bool           `json:"paused"`
	Counts map[string]int `json:"counts"`
	// Concurrency is the limit set through the API for every worker
	// process, if one is.
	Concurrency int `json:"concurrency,omitempty"`
	// ManagedBy is "config" for a queue declared in the configuration
	// file ConfigFile (its settings are read-only through the API), else
	// "api".
	ManagedBy  string `json:"managedBy"`
	ConfigFile string `json:"configFile,omitempty"`
}

// QueueList answers GET /api/v1/queues.
type QueueList struct {
	Queues []*Queue `json:"queues"`
}

func (s *Server) listQueues(w http.ResponseWriter, r *http.Request, p *Principal) error {
	c, err := s.client(p)
	if err != nil {
		return err
	}
	names, err := c.Queues(r.Context())
	if err != nil {
		return storeErr(err)
	}
	out := QueueList{Queues: []*Queue{}}
	for _, n := range names {
		st, err := c.Stats(r.Context(), n)
		if err != nil {
			return storeErr(err)
		}
		q := &Queue{Name: n, Paused: st.Paused, Counts: map[string]int{}}
		for _, state := range broker.States {
			q.Counts[string(state)] = int(st.Count(state))
		}
		set, _, err := ReadQueueSettings(r.Context(), s.cfg.Broker, n)
		if err != nil {
			return storeErr(err)
		}
		q.Concurrency, q.ManagedBy, q.ConfigFile = set.Concurrency, "api", set.ConfigFile
		if set.ManagedBy != "" {
			q.ManagedBy = set.ManagedBy
		}
		out.Queues = append(out.Queues, q)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// crossTenantOnly refuses a tenant-scoped token an action on a whole
// queue, which every tenant's jobs share.
func crossTenantOnly(p *Principal) error {
	if !p.CrossTenant() {
		return Errorf(http.StatusForbidden, CodeForbidden, "", "a queue is shared by every tenant: a token scoped to tenant %q may not change it", p.TenantID)
	}
	return nil
}

func (s *Server) pauseQueue(w http.ResponseWriter, r *http.Request, p *Principal) error {
	return s.queueAction(w, r, p, (*worker.Client).Pause)
}

func (s *Server) resumeQueue(w http.ResponseWriter, r *http.Request, p *Principal) error {
	return s.queueAction(w, r, p, (*worker.Client).Resume)
}

func (s *Server) queueAction(w http.ResponseWriter, r *http.Request, p *Principal, act func(*worker.Client, context.Context, string) error) error {
	if err := crossTenantOnly(p); err != nil {
		return err
	}
	q, err := queueParam(r)
	if err != nil {
		return err
	}
	c, err := s.client(p)
	if err != nil {
		return err
	}
	if err := act(c, r.Context(), q); err != nil {
		return storeErr(err)
	}
	st, err := c.Stats(r.Context(), q)
	if err != nil {
		return storeErr(err)
	}
	writeJSON(w, http.StatusOK, map[string]any{"name": q, "paused": st.Paused})
	return nil
}

// QueueSettings are a queue's settings kept in the store for every worker
// process (see WatchQueueSettings).
type QueueSettings struct {
	// Concurrency is how many of the queue's jobs each worker process runs
	// at once; 0 means the process's own configuration.
	Concurrency int `json:"concurrency"`
	// ManagedBy is broker.ManagedByConfig for a queue the configuration
	// file ConfigFile declares (see ReconcileQueues), else empty.
	ManagedBy  string `json:"managedBy,omitempty"`
	ConfigFile string `json:"configFile,omitempty"`
}

const (
	settingsKind = "admin.queue-settings"
	settingsKey  = "settings"
	// MaxQueueConcurrency bounds a queue's concurrency setting.
	MaxQueueConcurrency = 10000
)

// ReadQueueSettings returns queue's stored settings and their version (0
// and zero settings when none are stored). b must implement
// broker.Committer.
func ReadQueueSettings(ctx context.Context, b broker.Broker, queue string) (QueueSettings, int64, error) {
	cm, ok := b.(broker.Committer)
	if !ok {
		return QueueSettings{}, 0, fmt.Errorf("read queue %q settings: broker %T does not implement broker.Committer", queue, b)
	}
	doc, err := cm.DocGet(ctx, queue, settingsKind, settingsKey)
	if errors.Is(err, broker.ErrDocNotFound) {
		return QueueSettings{}, 0, nil
	}
	if err != nil {
		return QueueSettings{}, 0, fmt.Errorf("read queue %q settings: %w", queue, err)
	}
	var set QueueSettings
	if err := json.Unmarshal(doc.Body, &set); err != nil {
		return QueueSettings{}, 0, fmt.Errorf("read queue %q settings: %w", queue, err)
	}
	return set, doc.Version, nil
}

func (s *Server) setQueueConcurrency(w http.ResponseWriter, r *http.Request, p *Principal) error {
	if err := crossTenantOnly(p); err != nil {
		return err
	}
	q, err := queueParam(r)
	if err != nil {
		return err
	}
	var set QueueSettings
	if err := s.decodeJSON(w, r, &set); err != nil {
		return err
	}
	if set.Concurrency < 0 || set.Concurrency > MaxQueueConcurrency {
		return Errorf(http.StatusUnprocessableEntity, CodeInvalid, "concurrency", "concurrency must be 0..%d (0: each process's own)", MaxQueueConcurrency)
	}
	cm := s.cfg.Broker.(broker.Committer)
	body, _ := json.Marshal(set)
	for range 5 {
		cur, version, err := ReadQueueSettings(r.Context(), s.cfg.Broker, q)
		if err != nil {
			return storeErr(err)
		}
		if cur.ManagedBy == broker.ManagedByConfig {
			return Errorf(http.StatusConflict, CodeConflict, "concurrency", "queue %q is managed by config (%s); set its concurrency there, not through the API", q, configFileName(cur.ConfigFile))
		}
		noteAudit(r.Context(), "", map[string]any{"concurrency": map[string]int{"before": cur.Concurrency, "after": set.Concurrency}})
		_, err = cm.Commit(r.Context(), &broker.CommitParams{Scope: q,
			Docs: []*broker.DocWrite{{Kind: settingsKind, Key: settingsKey, Version: version, Body: body}}})
		if errors.Is(err, broker.ErrConflict) {
			continue // another admin wrote meanwhile; last write wins
		}
		if err != nil {
			return storeErr(err)
		}
		writeJSON(w, http.StatusOK, map[string]any{"name": q, "concurrency": set.Concurrency})
		return nil
	}
	return Errorf(http.StatusConflict, CodeConflict, "concurrency", "the settings of queue %q kept changing; retry", q)
}

// ReconcileQueues marks the queues the configuration file file declares
// as managed by it, so that the API shows them read-only, and releases the
// queues file declared before but no longer does. A declared queue's
// concurrency set through the API is dropped: the file wins for what it
// declares. A service runs it at start, as schedule.Reconcile for
// schedules. b must implement broker.Committer.
func ReconcileQueues(ctx context.Context, b broker.Broker, file string, declared []string) error {
	cm, ok := b.(broker.Committer)
	if !ok {
		return fmt.Errorf("reconcile queues of %s: broker %T does not implement broker.Committer", file, b)
	}
	want := map[string]bool{}
	for _, q := range declared {
		if err := broker.ValidateQueueName(q); err != nil {
			return fmt.Errorf("reconcile queues of %s: %w", file, err)
		}
		want[q] = true
	}
	known, err := b.QueueList(ctx)
	if err != nil {
		return fmt.Errorf("reconcile queues of %s: list queues: %w", file, err)
	}
	queues := append([]string(nil), declared...)
	for _, q := range known {
		if !want[q] {
			queues = append(queues, q)
		}
	}
	for _, q := range queues {
		if err := reconcileQueue(ctx, cm, b, file, q, want[q]); err != nil {
			return fmt.Errorf("reconcile queues of %s: %w", file, err)
		}
	}
	return nil
}

// reconcileQueue brings one queue's settings in line with file.
func reconcileQueue(ctx context.Context, cm broker.Committer, b broker.Broker, file, q string, declared bool) error {
	for range 5 {
		cur, version, err := ReadQueueSettings(ctx, b, q)
		if err != nil {
			return err
		}
		var next QueueSettings
		switch {
		case declared:
			next = QueueSettings{ManagedBy: broker.ManagedByConfig, ConfigFile: file}
		case cur.ManagedBy == broker.ManagedByConfig && cur.ConfigFile == file:
			next = QueueSettings{} // no longer declared: the API manages it
		default:
			return nil
		}
		if next == cur && version != 0 {
			return nil
		}
		body, _ := json.Marshal(next)
		_, err = cm.Commit(ctx, &broker.CommitParams{Scope: q,
			Docs: []*broker.DocWrite{{Kind: settingsKind, Key: settingsKey, Version: version, Body: body}}})
		if errors.Is(err, broker.ErrConflict) {
			continue // an admin wrote meanwhile: read again
		}
		if err != nil {
			return fmt.Errorf("write queue %q settings: %w", q, err)
		}
		return nil
	}
	return fmt.Errorf("write queue %q settings: they kept changing", q)
}

// WatchQueueSettings applies the queue settings stored through the API
// to m, for each queue m runs, now and then every interval (a few seconds
// is right: 0 means 3s), until ctx ends. A service starts it beside its
// Manager: that is how a concurrency set through the API reaches every
// worker process. Reads that fail are logged by m's logger and retried at
// the next round; it returns ctx's error.
func WatchQueueSettings(ctx context.Context, b broker.Broker, m *worker.Manager, interval time.Duration) error {
	if interval <= 0 {
		interval = 3 * time.Second
	}
	applied := map[string]int{}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		for _, q := range m.Config().Queues {
			set, _, err := ReadQueueSettings(ctx, b, q.Name)
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				m.Config().Logger.Warn("admin: read queue settings", "queue", q.Name, "err", err)
				continue
			}
			if prev, ok := applied[q.Name]; ok && prev == set.Concurrency {
				continue
			}
			n := set.Concurrency
			if n == 0 {
				n = q.Concurrency // back to the configured value
			}
			if err := m.SetQueueConcurrency(q.Name, n); err == nil {
				applied[q.Name] = set.Concurrency
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Health answers GET /api/v1/health when the store answers; when it
// does not, the answer is a 503 error.
type Health struct {
	Status string `json:"status"`
}

func (s *Server) health(w http.ResponseWriter, r *http.Request, _ *Principal) error {
	if err := s.cfg.Broker.Ping(r.Context()); err != nil {
		return Errorf(http.StatusServiceUnavailable, CodeUnavailable, "", "the store does not answer: %v", err)
	}
	writeJSON(w, http.StatusOK, Health{Status: "ok"})
	return nil
}
