package service

import (
	"fmt"
	"log/slog"
	"maps"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"time"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/recovery"
)

// Source says where a configuration value came from.
type Source string

// The sources, in rising precedence: a flag beats an environment variable,
// which beats the config file, which beats the built-in default.
const (
	FromDefault Source = "default"
	FromFile    Source = "file"
	FromEnv     Source = "env"
	FromFlag    Source = "flag"
)

// Config is the service's configuration: the seed's environment variables
// plus what the config file describes. Load builds one from defaults, a
// file, the environment and flags; Default returns the defaults alone.
type Config struct {
	// Concurrency is the most jobs run at once (WORKER_CONCURRENCY). 5.
	Concurrency int
	// RetryAttempts is the attempts a job gets when it names none
	// (WORKER_RETRY_ATTEMPTS). 3.
	RetryAttempts int
	// RetryDelay is the base of the exponential backoff between attempts
	// (WORKER_RETRY_DELAY). 1s.
	RetryDelay time.Duration
	// Timeout bounds one attempt of a job that sets none (WORKER_TIMEOUT). 5m.
	Timeout time.Duration
	// RedisURL selects Redis; empty means the embedded store under DataDir
	// (REDIS_URL).
	RedisURL string
	// RedisDB is the database used when RedisURL names none (REDIS_DB). 2.
	RedisDB int
	// RedisMaxConnections is the Redis client's pool size
	// (REDIS_MAX_CONNECTIONS). 10.
	RedisMaxConnections int
	// RedisDurableReplicas, when above 0, makes every enqueue return only
	// once that many Redis replicas confirmed it (WAIT), and fail when
	// fewer do within RedisDurableTimeout (REDIS_DURABLE_REPLICAS). 0.
	RedisDurableReplicas int
	// RedisDurableTimeout bounds that wait (REDIS_DURABLE_TIMEOUT). 1s.
	RedisDurableTimeout time.Duration
	// RedisTLSCAFile is a PEM file of the authorities a rediss:// server's
	// certificate must be signed by, instead of the system's
	// (REDIS_TLS_CA_FILE). None.
	RedisTLSCAFile string
	// RedisTLSCertFile and RedisTLSKeyFile are the PEM client certificate
	// and key presented to a rediss:// server that requires one
	// (REDIS_TLS_CERT_FILE, REDIS_TLS_KEY_FILE): both or neither. None.
	RedisTLSCertFile, RedisTLSKeyFile string
	// RedisTLSServerName is the name the server's certificate must carry,
	// when it is not the host of REDIS_URL (REDIS_TLS_SERVER_NAME). None.
	RedisTLSServerName string
	// QueuePrefix starts every Redis key (QUEUE_PREFIX). aibos:worker.
	QueuePrefix string
	// QueueDefaultTTL is how long a completed job's record is kept
	// (QUEUE_DEFAULT_TTL). It never removes unprocessed work. 1h.
	QueueDefaultTTL time.Duration
	// QueueMaxLength caps each queue's waiting (pending + scheduled) jobs;
	// adds beyond it fail with ErrQueueFull (QUEUE_MAX_LENGTH). 10000.
	QueueMaxLength int
	// MonitoringEnabled serves /metrics and logs a metrics snapshot every
	// MetricsInterval (MONITORING_ENABLED). true.
	MonitoringEnabled bool
	// MetricsInterval is how often the metrics snapshot is logged
	// (METRICS_INTERVAL). 1m.
	MetricsInterval time.Duration
	// HealthCheckInterval is how often the health checks run in the
	// background (HEALTH_CHECK_INTERVAL). 30s.
	HealthCheckInterval time.Duration
	// LogLevel is the lowest level logged (LOG_LEVEL). info.
	LogLevel slog.Level
	// LogFormat is "json" or "text" (LOG_FORMAT). json.
	LogFormat string
	// TracesExporter is "none" or "otlp" (OTEL_TRACES_EXPORTER): with otlp
	// every job is traced (package tracing) and spans go to the OTLP/HTTP
	// endpoint the standard OTEL_EXPORTER_OTLP_* variables name. none.
	TracesExporter string
	// DataDir holds the embedded store's file (WORKER_DATA_DIR). ./data.
	DataDir string
	// SchemaDir, when set, holds <job type>.json JSON Schemas that the
	// service's client checks payloads against at enqueue, over the
	// schemas built into the job types (WORKER_SCHEMA_DIR). None.
	SchemaDir string
	// DatabaseURL selects PostgreSQL for the accounting ledger; empty
	// means an SQLite file under DataDir (DATABASE_URL).
	DatabaseURL string
	// HTTPAddr is where /metrics, /livez, /readyz and /health are served
	// (WORKER_HTTP_ADDR). ":0" picks a free port. :8080.
	HTTPAddr string
	// MetricsTenantTop, when above 0, labels the waiting jobs of each
	// queue's MetricsTenantTop registered tenants with the most by
	// tenant_id on /metrics, the rest as "other" (WORKER_METRICS_TENANT_TOP).
	// 0: off.
	MetricsTenantTop int
	// TLSCertFile and TLSKeyFile, when set, make WORKER_HTTP_ADDR serve
	// HTTPS with this PEM certificate and key, loaded again when the files
	// change (WORKER_TLS_CERT_FILE, WORKER_TLS_KEY_FILE): both or neither.
	// None: plain HTTP.
	TLSCertFile, TLSKeyFile string
	// HTTPReadHeaderTimeout, HTTPReadTimeout, HTTPWriteTimeout and
	// HTTPIdleTimeout bound reading a request's headers, reading a whole
	// request, writing the answer and keeping an idle connection
	// (WORKER_HTTP_READ_HEADER_TIMEOUT 10s, WORKER_HTTP_READ_TIMEOUT 1m,
	// WORKER_HTTP_WRITE_TIMEOUT 1m, WORKER_HTTP_IDLE_TIMEOUT 2m).
	HTTPReadHeaderTimeout, HTTPReadTimeout, HTTPWriteTimeout, HTTPIdleTimeout time.Duration
	// HTTPMaxHeaderBytes bounds a request's headers
	// (WORKER_HTTP_MAX_HEADER_BYTES). 64 KiB.
	HTTPMaxHeaderBytes int
	// APIMaxBodyBytes bounds an API request's body, but for the enqueue
	// routes' (WORKER_API_MAX_BODY_BYTES). 1 MiB.
	APIMaxBodyBytes int
	// APIMaxEnqueueBytes bounds the body of one job's enqueue,
	// POST /api/v1/queues/{queue}/jobs (WORKER_API_MAX_ENQUEUE_BYTES). 1 MiB.
	APIMaxEnqueueBytes int
	// APIMaxBatchBytes bounds the body of a batch enqueue,
	// POST /api/v1/queues/{queue}/jobs/batch (WORKER_API_MAX_BATCH_BYTES). 16 MiB.
	APIMaxBatchBytes int
	// DrainTimeout is how long a shutdown waits for running jobs before
	// cancelling them and handing them back (WORKER_DRAIN_TIMEOUT). 30s.
	DrainTimeout time.Duration
	// AbandonGrace is how long a processor may run on past its timeout
	// (or a lost lease) before its attempt ends without it
	// (worker.ManagerConfig.AbandonGrace; WORKER_ABANDON_GRACE). 10s.
	AbandonGrace time.Duration
	// LeaseDuration is how long a fetched job stays leased without a
	// heartbeat: how soon a killed worker's jobs run elsewhere. It is no
	// setting of its own (the Manager's 30s suits deployments); a program
	// embedding the service may shorten it, as the fault suite does to keep
	// its scenarios short. Zero means the Manager's default.
	LeaseDuration time.Duration
	// MaxCrashes quarantines a job whose worker died under it this many
	// times in a row (worker.ManagerConfig.MaxCrashes has the rule and its
	// trade-off), for every queue that sets no max_crashes of its own in
	// the config file (WORKER_MAX_CRASHES). 0 turns it off. 5: in the fault
	// suite's SIGKILL scenario (a worker killed every 5 s) a healthy job
	// died under 2, 3 and 4 workers in a row about 34, 3 and 0.2 times per
	// 10,000 jobs, so 5 leaves a healthy job practically safe, and a job
	// that crashes its worker is quarantined after 5 restarts.
	MaxCrashes int
	// TestClockOffset moves the service's own clock (the cron scheduler's
	// local clock) this far from the machine's. Test-only: it is no
	// setting, serve never sets it; the fault suite's worker binary does,
	// to show that a worker whose clock is off fires nothing early (ticks
	// and due times are taken on the broker's clock).
	TestClockOffset time.Duration
	// APIEnabled serves the admin and producer API under /api/v1 on
	// HTTPAddr (WORKER_API_ENABLED). true.
	APIEnabled bool
	// AuditKey is the audit trail's HMAC key, base64 (WORKER_AUDIT_KEY);
	// AuditKeyFile a file holding it (WORKER_AUDIT_KEY_FILE). With
	// neither, the embedded store generates a key file in DataDir (and
	// warns at every start), while Redis, shared by several instances
	// that must chain with one key, refuses to start.
	AuditKey     string
	AuditKeyFile string
	// AuditRetentionDays is how long audit entries are kept before the
	// daily sweep trims them through a signed checkpoint; 0 keeps them
	// forever (WORKER_AUDIT_RETENTION_DAYS). 400: a year and a month, so
	// that a year-end review finds the whole year.
	AuditRetentionDays int
	// OIDCIssuer turns on the dashboard's single sign-on through this
	// OpenID Connect provider (WORKER_OIDC_ISSUER); OIDCClientID,
	// OIDCClientSecret and OIDCRedirectURL are the dashboard's client at
	// it, OIDCRoleClaim and OIDCTenantClaim the ID token's claims for the
	// role and the tenant scope, OIDCAllowedRoles the roles a login may
	// have (comma-separated; empty: all).
	OIDCIssuer       string
	OIDCClientID     string
	OIDCClientSecret string
	OIDCRedirectURL  string
	OIDCRoleClaim    string
	OIDCTenantClaim  string
	OIDCAllowedRoles string

	// EncryptionKeys are the payload encryption keys, "keyid:base64"
	// entries, newest last (WORKER_ENCRYPTION_KEYS). Never shown.
	EncryptionKeys string
	// EncryptionKeyFile holds the keys when EncryptionKeys is empty
	// (WORKER_ENCRYPTION_KEY_FILE).
	EncryptionKeyFile string
	// EncryptedQueues are the queues whose job data, results and errors
	// are stored encrypted (WORKER_ENCRYPTED_QUEUES): by default the
	// seed's four accounting queues, notifications (customer names and
	// e-mail addresses) and workflows (the invoice and bill workflows'
	// runs: their input, step outputs and errors).
	EncryptedQueues []string

	// SMTPHost, SMTPPort, SMTPUser, SMTPPassword, SMTPStartTLS and
	// SMTPCAFile name the SMTP server notifications are sent to
	// (SMTP_HOST, SMTP_PORT, SMTP_USER, SMTP_PASSWORD, SMTP_STARTTLS,
	// SMTP_CA_FILE; see notify.SMTPConfig and SMTPRootCAs);
	// SMTPFrom is their sender (SMTP_FROM) and SMTPTo the recipient of
	// those whose job names none (SMTP_TO). No server unless set; port
	// 587.
	SMTPHost     string
	SMTPPort     int
	SMTPUser     string
	SMTPPassword string
	SMTPStartTLS string
	SMTPCAFile   string
	SMTPFrom     string
	SMTPTo       string
	// InvoiceReminderDays are the days from an invoice's due date its
	// reminders are due, per tenant after ';' (INVOICE_REMINDER_DAYS, see
	// jobs.ParseReminderDays). -3,0,7.
	InvoiceReminderDays string

	// File is the config file the values were read from, "" for none.
	File string
	// Queues are the queues served: the seed's four unless the file lists
	// its own.
	Queues []worker.QueueConfig
	// JobTypes binds job types to processors: a Go processor registered
	// with Service.Register, or an HTTP endpoint of the application.
	JobTypes map[string]JobType
	// Schedules are the cron schedules kept in the broker. None unless the
	// file lists some.
	Schedules []Schedule
	// Callbacks, if set, is where the application is told of finished jobs.
	Callbacks *Callbacks
	// Recovery lists the strategy per error class: the seed's ErrorRecovery
	// unless the file lists its own.
	Recovery []RecoveryStrategy
	// Scaling, if set and enabled, runs the WorkerScaler.
	Scaling *Scaling
	// Sync, if set, is where data.sync pushes posted journal entries.
	Sync *Sync
	// Backup, if set, overrides where backups go and how many are kept.
	Backup *Backup

	// sources records where each setting (by environment variable name)
	// came from.
	sources map[string]Source
}

// JobType says what processes one job type: exactly one of Processor and
// HTTP is set.
type JobType struct {
	// Processor names a Go processor registered with Service.Register.
	Processor string `yaml:"processor"`
	// HTTP binds the type to an endpoint of the application.
	HTTP *Endpoint `yaml:"http"`
}

// Endpoint is an HTTP endpoint jobs are POSTed to.
type Endpoint struct {
	// URL is the endpoint's address. With Instances, only its scheme and
	// path are used (write http:///jobs/invoice) and each call goes to one
	// of the instances.
	URL string `yaml:"url"`
	// Instances lists host:port addresses of the application's instances,
	// balanced with health checks.
	Instances []string `yaml:"instances"`
	// Secret signs each request (Standard Webhooks, whsec_ + base64).
	Secret string `yaml:"secret"`
	// SecretEnv names an environment variable holding the secret, so the
	// file need not hold it.
	SecretEnv string `yaml:"secret_env"`
	// Timeout bounds one request. Defaults to the job's timeout.
	Timeout time.Duration `yaml:"timeout"`
	// Headers are sent with every request.
	Headers map[string]string `yaml:"headers"`
	// Algorithm balances over Instances: round-robin (the default),
	// least-outstanding or weighted.
	Algorithm string `yaml:"algorithm"`
	// HealthPath is each instance's health endpoint, checked every 30 s.
	// Defaults to /healthz.
	HealthPath string `yaml:"health_path"`
}

// Scaling configures the WorkerScaler, which changes the Manager's
// concurrency at run time from utilisation and queue latency. Off unless
// Enabled; zero fields take the seed's defaults (1 to 10 workers, up at
// 0.8, down at 0.2, cooldowns 5 and 10 minutes).
type Scaling struct {
	Enabled            bool          `yaml:"enabled"`
	MinWorkers         int           `yaml:"min_workers"`
	MaxWorkers         int           `yaml:"max_workers"`
	ScaleUpThreshold   float64       `yaml:"scale_up_threshold"`
	ScaleDownThreshold float64       `yaml:"scale_down_threshold"`
	ScaleUpCooldown    time.Duration `yaml:"scale_up_cooldown"`
	ScaleDownCooldown  time.Duration `yaml:"scale_down_cooldown"`
	// Interval is how often the signals are read. Defaults to 15s.
	Interval time.Duration `yaml:"interval"`
	// LatencyThreshold scales up when the oldest pending job has waited
	// longer. Defaults to 30s.
	LatencyThreshold time.Duration `yaml:"latency_threshold"`
}

// Schedule is a cron schedule enqueueing one job per tick.
type Schedule struct {
	Name     string      `yaml:"name"`
	Cron     string      `yaml:"cron"`
	TimeZone string      `yaml:"timezone"`
	Job      ScheduleJob `yaml:"job"`
}

// ScheduleJob is the job a schedule enqueues.
type ScheduleJob struct {
	Queue       string         `yaml:"queue"`
	Type        string         `yaml:"type"`
	Data        map[string]any `yaml:"data"`
	Priority    int            `yaml:"priority"`
	MaxAttempts int            `yaml:"max_attempts"`
	TenantID    string         `yaml:"tenant_id"`
	CompanyID   string         `yaml:"company_id"`
	// UniqueKey, when set, skips a tick while the previous tick's job is
	// unfinished.
	UniqueKey string `yaml:"unique_key"`
}

// Callbacks configures completion callbacks: a signed POST to URL when a
// job completes, dies or is cancelled, and when a workflow run succeeds,
// fails or is cancelled.
type Callbacks struct {
	URL       string `yaml:"url"`
	Secret    string `yaml:"secret"`
	SecretEnv string `yaml:"secret_env"`
	// Headers are sent with every delivery.
	Headers map[string]string `yaml:"headers"`
	// Timeout bounds one delivery attempt. Defaults to 30s.
	Timeout time.Duration `yaml:"timeout"`
	// MaxAttempts is how many times a delivery is tried. Defaults to 10.
	MaxAttempts int `yaml:"max_attempts"`
}

// RecoveryStrategy is one error class's strategy (see package recovery).
type RecoveryStrategy struct {
	ErrorType   string        `yaml:"error_type"`
	Action      string        `yaml:"action"`
	MaxAttempts int           `yaml:"max_attempts"`
	Delay       time.Duration `yaml:"delay"`
	Notify      bool          `yaml:"notify"`
}

// SeedQueues returns the seed's four queues with their priority and
// concurrency: invoices 1/3, bills 2/2, payments 3/5, reports 4/1. All four
// are accounting queues every tenant shares, so they serve their tenants
// fairly (worker.QueueConfig.Fair), with the tenants registry's weights
// and concurrency caps (Service keeps them in the store).
func SeedQueues() []worker.QueueConfig {
	return []worker.QueueConfig{
		{Name: "invoices", Priority: 1, Concurrency: 3, Fair: true},
		{Name: "bills", Priority: 2, Concurrency: 2, Fair: true},
		{Name: "payments", Priority: 3, Concurrency: 5, Fair: true},
		{Name: "reports", Priority: 4, Concurrency: 1, Fair: true},
	}
}

// seedFair reports whether the seed's queue of that name is fair by
// default: a config file's queue that does not say takes it.
func seedFair(name string) bool {
	for _, q := range SeedQueues() {
		if q.Name == name {
			return q.Fair
		}
	}
	return false
}

// SeedRecovery returns the service's default ErrorRecovery strategies, as
// the service's issue decided them from the seed: validation errors fail
// at once (an invalid invoice does not become valid by retrying it),
// database errors retry up to 5 attempts 2 s apart, network errors up to 3
// attempts 1 s apart, and business-logic errors fail at once and notify.
// The seed's README example (recovery.DefaultPolicy, which the library
// keeps) retries validation errors 3 times and network errors 10 times 5 s
// apart; a config file's recovery section replaces these.
func SeedRecovery() []RecoveryStrategy {
	return []RecoveryStrategy{
		{ErrorType: recovery.ValidationError, Action: string(recovery.Fail)},
		{ErrorType: recovery.DatabaseError, Action: string(recovery.Retry), MaxAttempts: 5, Delay: 2 * time.Second},
		{ErrorType: recovery.NetworkError, Action: string(recovery.Retry), MaxAttempts: 3, Delay: time.Second},
		{ErrorType: recovery.BusinessLogicError, Action: string(recovery.Fail), Notify: true},
	}
}

// Default returns the configuration with every setting at its default.
func Default() *Config {
	c := &Config{sources: map[string]Source{}}
	for _, s := range settings {
		if err := s.set(c, s.def); err != nil {
			panic(fmt.Sprintf("service: default of %s does not parse: %v", s.env, err))
		}
		c.sources[s.env] = FromDefault
	}
	c.Queues = SeedQueues()
	c.Recovery = SeedRecovery()
	return c
}

// ReportsDirName is the directory of the daily report files inside
// DataDir (package accounting/report), on every engine.
const ReportsDirName = "reports"

// ReportsDir returns the directory of the daily report files.
func (c *Config) ReportsDir() string { return filepath.Join(c.DataDir, ReportsDirName) }

// Source returns where the setting named by its environment variable came
// from.
func (c *Config) Source(env string) Source { return c.sources[env] }

// Value is one setting of the effective configuration, for display.
type Value struct {
	Env    string // the environment variable
	Flag   string // the flag, without dashes
	Key    string // the config file's key
	Value  string // the value, secrets redacted
	Source Source
}

// Values returns every setting with its value (secrets redacted) and
// source, in the order of the settings table.
func (c *Config) Values() []Value {
	out := make([]Value, 0, len(settings))
	for _, s := range settings {
		src := c.sources[s.env]
		if src == "" {
			src = FromDefault
		}
		out = append(out, Value{Env: s.env, Flag: s.flag, Key: s.key(), Value: s.show(c), Source: src})
	}
	return out
}

// JobTypeNames returns the configured job types, sorted.
func (c *Config) JobTypeNames() []string { return slices.Sorted(maps.Keys(c.JobTypes)) }

// RedactURL returns raw with any password replaced by "xxxxx": the one in
// the authority and any query parameter whose name holds "password" (a
// Sentinel URL gives the master's so). Text that does not parse as a URL
// loses everything before its last "@", where a password would be.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err == nil {
		if q := u.Query(); len(q) > 0 {
			redacted := false
			for k := range q {
				if strings.Contains(strings.ToLower(k), "password") {
					q.Set(k, "xxxxx")
					redacted = true
				}
			}
			if redacted {
				u.RawQuery = q.Encode()
			}
		}
		return u.Redacted()
	}
	if i := strings.LastIndex(raw, "@"); i >= 0 {
		scheme, _, _ := strings.Cut(raw, "://")
		if scheme == raw[:i] || strings.Contains(scheme, "@") {
			return "xxxxx" + raw[i:]
		}
		return scheme + "://xxxxx" + raw[i:]
	}
	return raw
}
