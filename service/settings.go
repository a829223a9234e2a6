package service

import (
	"fmt"
	"net"
	"net/mail"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/aibos/worker/accounting/jobs"
	"github.com/aibos/worker/admin"
	"github.com/aibos/worker/audit"
	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/broker/redisbroker"
	"github.com/aibos/worker/envelope"
)

// setting is one scalar of the configuration: an environment variable of
// the seed (or of the service), the flag and the file key that set the same
// value, its default and how it parses.
type setting struct {
	env     string // environment variable
	flag    string // flag name; the file key is the flag with '_' for '-'
	def     string // default, as text
	allowed string // what a valid value looks like, for error messages
	help    string // one-line meaning, for flags and the README table
	secret  bool   // redact in output
	hidden  bool   // never shown at all, not even in part (keys)
	set     func(c *Config, v string) error
	get     func(c *Config) string
}

// key returns the setting's config file key.
func (s *setting) key() string { return strings.ReplaceAll(s.flag, "-", "_") }

// show returns the setting's value for display, secrets redacted.
func (s *setting) show(c *Config) string {
	v := s.get(c)
	if s.hidden && v != "" {
		return "(set, redacted)"
	}
	if s.secret {
		return RedactURL(v)
	}
	return v
}

// Settings lists every setting, for docs and flags: env, flag, default and
// meaning.
func Settings() []SettingDoc {
	out := make([]SettingDoc, len(settings))
	for i, s := range settings {
		out[i] = SettingDoc{Env: s.env, Flag: s.flag, Key: s.key(), Default: s.def, Allowed: s.allowed, Help: s.help}
	}
	return out
}

// SettingDoc describes one setting.
type SettingDoc struct {
	Env, Flag, Key, Default, Allowed, Help string
}

const msAllowed = "milliseconds (e.g. 1000) or a Go duration (e.g. 1s), above 0"

var settings = []*setting{
	intSetting("WORKER_CONCURRENCY", "concurrency", "5", 1, 10000, "most jobs run at once over all queues",
		func(c *Config) *int { return &c.Concurrency }),
	intSetting("WORKER_RETRY_ATTEMPTS", "retry-attempts", "3", 1, 1000, "attempts a job gets when it names none",
		func(c *Config) *int { return &c.RetryAttempts }),
	msSetting("WORKER_RETRY_DELAY", "retry-delay", "1000", "base delay of the exponential backoff between attempts (ms)",
		func(c *Config) *time.Duration { return &c.RetryDelay }),
	msSetting("WORKER_TIMEOUT", "timeout", "300000", "time limit of one attempt of a job that sets none (ms)",
		func(c *Config) *time.Duration { return &c.Timeout }),
	{
		env: "REDIS_URL", flag: "redis-url", def: "", secret: true,
		allowed: "empty (the embedded store) or a redis://, rediss://, redis+sentinel:// or redis+cluster:// URL",
		help:    "Redis to use; unset means the embedded SQLite store under WORKER_DATA_DIR",
		set: func(c *Config, v string) error {
			if v != "" {
				if _, err := redisbroker.ParseURL(v); err != nil {
					return err
				}
			}
			c.RedisURL = v
			return nil
		},
		get: func(c *Config) string { return c.RedisURL },
	},
	intSetting("REDIS_DB", "redis-db", "2", 0, 1<<20, "Redis database, unless REDIS_URL names one (which wins); a Redis Cluster has only 0",
		func(c *Config) *int { return &c.RedisDB }),
	intSetting("REDIS_MAX_CONNECTIONS", "redis-max-connections", "10", 1, 10000, "size of the Redis connection pool",
		func(c *Config) *int { return &c.RedisMaxConnections }),
	intSetting("REDIS_DURABLE_REPLICAS", "redis-durable-replicas", "0", 0, 100, "replicas that must confirm each enqueue (Redis WAIT) before it succeeds; 0: the master's acknowledgement",
		func(c *Config) *int { return &c.RedisDurableReplicas }),
	msSetting("REDIS_DURABLE_TIMEOUT", "redis-durable-timeout", "1000", "how long (ms) an enqueue waits for REDIS_DURABLE_REPLICAS before it fails",
		func(c *Config) *time.Duration { return &c.RedisDurableTimeout }),
	textSetting("REDIS_TLS_CA_FILE", "redis-tls-ca-file", "", "empty or a PEM file path", "authorities (PEM) a rediss:// server's certificate must be signed by, instead of the system's",
		func(c *Config) *string { return &c.RedisTLSCAFile }, optionalPath),
	textSetting("REDIS_TLS_CERT_FILE", "redis-tls-cert-file", "", "empty or a PEM file path", "client certificate (PEM) presented to a rediss:// server that requires one; with REDIS_TLS_KEY_FILE",
		func(c *Config) *string { return &c.RedisTLSCertFile }, optionalPath),
	textSetting("REDIS_TLS_KEY_FILE", "redis-tls-key-file", "", "empty or a PEM file path", "private key (PEM) of REDIS_TLS_CERT_FILE",
		func(c *Config) *string { return &c.RedisTLSKeyFile }, optionalPath),
	textSetting("REDIS_TLS_SERVER_NAME", "redis-tls-server-name", "", "empty or a host name", "name the rediss:// server's certificate must carry, when not REDIS_URL's host",
		func(c *Config) *string { return &c.RedisTLSServerName },
		func(v string) bool { return !strings.ContainsAny(v, " \t\n/") }),
	textSetting("QUEUE_PREFIX", "queue-prefix", "aibos:worker", "non-empty text without braces or spaces", "start of every Redis key",
		func(c *Config) *string { return &c.QueuePrefix },
		func(v string) bool { return v != "" && !strings.ContainsAny(v, "{} \t\n") }),
	msSetting("QUEUE_DEFAULT_TTL", "queue-default-ttl", "3600000", "how long a completed job's record is kept (ms); never drops unprocessed work",
		func(c *Config) *time.Duration { return &c.QueueDefaultTTL }),
	intSetting("QUEUE_MAX_LENGTH", "queue-max-length", "10000", 1, 1<<30, "waiting (pending + scheduled) jobs per queue before adds fail with ErrQueueFull",
		func(c *Config) *int { return &c.QueueMaxLength }),
	boolSetting("MONITORING_ENABLED", "monitoring-enabled", "true", "serve /metrics and log a metrics snapshot every METRICS_INTERVAL",
		func(c *Config) *bool { return &c.MonitoringEnabled }),
	msSetting("METRICS_INTERVAL", "metrics-interval", "60000", "how often the metrics snapshot is logged (ms)",
		func(c *Config) *time.Duration { return &c.MetricsInterval }),
	intSetting("WORKER_METRICS_TENANT_TOP", "metrics-tenant-top", "0", 0, 100, "on /metrics, the waiting jobs of each queue's N registered tenants with the most, by tenant_id, the rest as \"other\"; 0: off",
		func(c *Config) *int { return &c.MetricsTenantTop }),
	msSetting("HEALTH_CHECK_INTERVAL", "health-check-interval", "30000", "how often the health checks run in the background (ms)",
		func(c *Config) *time.Duration { return &c.HealthCheckInterval }),
	{
		env: "LOG_LEVEL", flag: "log-level", def: "info",
		allowed: "debug, info, warn or error",
		help:    "lowest level logged",
		set: func(c *Config, v string) error {
			switch strings.ToLower(v) {
			case "debug", "info", "warn", "error":
				return c.LogLevel.UnmarshalText([]byte(v))
			}
			return fmt.Errorf("unknown level")
		},
		get: func(c *Config) string { return strings.ToLower(c.LogLevel.String()) },
	},
	textSetting("LOG_FORMAT", "log-format", "json", "json or text", "log line format",
		func(c *Config) *string { return &c.LogFormat },
		func(v string) bool { return v == "json" || v == "text" }),
	textSetting("OTEL_TRACES_EXPORTER", "traces-exporter", "none", "none or otlp", "where job traces go: none, or OTLP over HTTP configured by the standard OTEL_EXPORTER_OTLP_* variables",
		func(c *Config) *string { return &c.TracesExporter },
		func(v string) bool { return v == "none" || v == "otlp" }),
	textSetting("WORKER_DATA_DIR", "data-dir", "./data", "a directory path", "directory of the embedded store (used when REDIS_URL is unset)",
		func(c *Config) *string { return &c.DataDir },
		func(v string) bool { return strings.TrimSpace(v) != "" }),
	textSetting("WORKER_SCHEMA_DIR", "schema-dir", "", "empty or a directory path", "directory of <job type>.json JSON Schemas checked at enqueue, over the built-in accounting ones",
		func(c *Config) *string { return &c.SchemaDir },
		optionalPath),
	{
		env: "DATABASE_URL", flag: "database-url", def: "", secret: true,
		allowed: "empty (the embedded accounting ledger) or a postgres:// URL",
		help:    "PostgreSQL database of the accounting ledger; unset means an SQLite file under WORKER_DATA_DIR",
		set: func(c *Config, v string) error {
			if v != "" && !strings.HasPrefix(v, "postgres://") && !strings.HasPrefix(v, "postgresql://") {
				return fmt.Errorf("not a postgres URL")
			}
			c.DatabaseURL = v
			return nil
		},
		get: func(c *Config) string { return c.DatabaseURL },
	},
	{
		env: "WORKER_ENCRYPTION_KEYS", flag: "encryption-keys", def: "", hidden: true,
		allowed: "comma-separated keyid:base64-of-32-bytes, newest last",
		help:    "keys that encrypt the data, results and errors of WORKER_ENCRYPTED_QUEUES (the last seals, all open); never shown",
		set: func(c *Config, v string) error {
			if v != "" {
				if _, err := envelope.ParseKeys(v); err != nil {
					return err
				}
			}
			c.EncryptionKeys = v
			return nil
		},
		get: func(c *Config) string { return c.EncryptionKeys },
	},
	textSetting("WORKER_ENCRYPTION_KEY_FILE", "encryption-key-file", "", "a file path (mode 0600)", "file holding the keys in the WORKER_ENCRYPTION_KEYS format, one or more per line, used when that is unset",
		func(c *Config) *string { return &c.EncryptionKeyFile },
		optionalPath),
	{
		env: "WORKER_ENCRYPTED_QUEUES", flag: "encrypted-queues", def: "invoices,bills,payments,reports,notifications,workflows",
		allowed: "comma-separated queue names, or none",
		help:    "queues whose job data, results and errors are stored encrypted (workflows: the runs' input, step outputs and errors); with no key, the embedded store generates one in WORKER_DATA_DIR and Redis leaves these queues unserved",
		set: func(c *Config, v string) error {
			c.EncryptedQueues = nil
			if v == "none" || v == "" {
				return nil
			}
			for _, q := range strings.Split(v, ",") {
				q = strings.TrimSpace(q)
				if err := broker.ValidateQueueName(q); err != nil {
					return err
				}
				c.EncryptedQueues = append(c.EncryptedQueues, q)
			}
			return nil
		},
		get: func(c *Config) string {
			if len(c.EncryptedQueues) == 0 {
				return "none"
			}
			return strings.Join(c.EncryptedQueues, ",")
		},
	},
	textSetting("WORKER_HTTP_ADDR", "http-addr", ":8080", "host:port or :port (:0 picks a free port)", "address of /metrics, /livez, /readyz and /health",
		func(c *Config) *string { return &c.HTTPAddr },
		func(v string) bool {
			_, port, err := net.SplitHostPort(v)
			n, perr := strconv.Atoi(port)
			return err == nil && perr == nil && n >= 0 && n <= 65535
		}),
	textSetting("WORKER_TLS_CERT_FILE", "tls-cert-file", "", "empty or a PEM file path", "certificate (PEM) that makes WORKER_HTTP_ADDR serve HTTPS, loaded again when the file changes; with WORKER_TLS_KEY_FILE",
		func(c *Config) *string { return &c.TLSCertFile }, optionalPath),
	textSetting("WORKER_TLS_KEY_FILE", "tls-key-file", "", "empty or a PEM file path", "private key (PEM) of WORKER_TLS_CERT_FILE",
		func(c *Config) *string { return &c.TLSKeyFile }, optionalPath),
	msSetting("WORKER_HTTP_READ_HEADER_TIMEOUT", "http-read-header-timeout", "10000", "how long (ms) a client may take to send a request's headers",
		func(c *Config) *time.Duration { return &c.HTTPReadHeaderTimeout }),
	msSetting("WORKER_HTTP_READ_TIMEOUT", "http-read-timeout", "60000", "how long (ms) a client may take to send a whole request",
		func(c *Config) *time.Duration { return &c.HTTPReadTimeout }),
	msSetting("WORKER_HTTP_WRITE_TIMEOUT", "http-write-timeout", "60000", "how long (ms) answering a request may take, from the end of its headers; keep it above the API's 30s request limit",
		func(c *Config) *time.Duration { return &c.HTTPWriteTimeout }),
	msSetting("WORKER_HTTP_IDLE_TIMEOUT", "http-idle-timeout", "120000", "how long (ms) an idle keep-alive connection stays open",
		func(c *Config) *time.Duration { return &c.HTTPIdleTimeout }),
	intSetting("WORKER_HTTP_MAX_HEADER_BYTES", "http-max-header-bytes", "65536", 4096, 16<<20, "largest request header block; larger is refused with 431",
		func(c *Config) *int { return &c.HTTPMaxHeaderBytes }),
	intSetting("WORKER_API_MAX_BODY_BYTES", "api-max-body-bytes", "1048576", 1024, 1<<30, "largest API request body but for the enqueue routes; larger is refused with 413 too_large",
		func(c *Config) *int { return &c.APIMaxBodyBytes }),
	intSetting("WORKER_API_MAX_ENQUEUE_BYTES", "api-max-enqueue-bytes", "1048576", 1024, 1<<30, "largest body of POST /api/v1/queues/{queue}/jobs (one job)",
		func(c *Config) *int { return &c.APIMaxEnqueueBytes }),
	intSetting("WORKER_API_MAX_BATCH_BYTES", "api-max-batch-bytes", "16777216", 1024, 1<<30, "largest body of POST /api/v1/queues/{queue}/jobs/batch",
		func(c *Config) *int { return &c.APIMaxBatchBytes }),
	msSetting("WORKER_DRAIN_TIMEOUT", "drain-timeout", "30000", "how long shutdown waits for running jobs before handing them back (ms)",
		func(c *Config) *time.Duration { return &c.DrainTimeout }),
	msSetting("WORKER_ABANDON_GRACE", "abandon-grace", "10000", "how long (ms) a processor may run on past its timeout before its attempt ends without it (failed, retried); it keeps its slot until it returns",
		func(c *Config) *time.Duration { return &c.AbandonGrace }),
	intSetting("WORKER_MAX_CRASHES", "max-crashes", "5", 0, broker.MaxAttemptHistory, "quarantine (move to dead) a job whose worker died under it this many times in a row, for queues that set no max_crashes; 0 turns it off",
		func(c *Config) *int { return &c.MaxCrashes }),
	boolSetting("WORKER_API_ENABLED", "api-enabled", "true", "serve the admin and producer API under /api/v1 (bearer tokens: aibos-worker tokens create)",
		func(c *Config) *bool { return &c.APIEnabled }),
	{
		env: "WORKER_AUDIT_KEY", flag: "audit-key", def: "", hidden: true,
		allowed: "base64 of at least 32 random bytes (openssl rand -base64 32)",
		help:    "HMAC key chaining the audit trail, shared by every instance on one store; never stored or logged (prefer the env or WORKER_AUDIT_KEY_FILE to the flag)",
		set: func(c *Config, v string) error {
			if v != "" {
				if _, err := audit.ParseKey(v); err != nil {
					return err
				}
			}
			c.AuditKey = v
			return nil
		},
		get: func(c *Config) string { return c.AuditKey },
	},
	textSetting("WORKER_AUDIT_KEY_FILE", "audit-key-file", "", "a file path", "file holding WORKER_AUDIT_KEY; unset with neither: the embedded store generates one in WORKER_DATA_DIR, Redis refuses to start",
		func(c *Config) *string { return &c.AuditKeyFile },
		optionalPath),
	intSetting("WORKER_AUDIT_RETENTION_DAYS", "audit-retention-days", "400", 0, 100*365, "days audit entries are kept before trimming through a signed checkpoint; 0 keeps them forever",
		func(c *Config) *int { return &c.AuditRetentionDays }),
	textSetting("WORKER_OIDC_ISSUER", "oidc-issuer", "", "an http or https URL", "OpenID Connect issuer for the dashboard's single sign-on; empty: token login only",
		func(c *Config) *string { return &c.OIDCIssuer }, webURL),
	textSetting("WORKER_OIDC_CLIENT_ID", "oidc-client-id", "", "a client id", "the dashboard's client id at the OpenID Connect provider",
		func(c *Config) *string { return &c.OIDCClientID }, notBlank),
	{
		env: "WORKER_OIDC_CLIENT_SECRET", flag: "oidc-client-secret", def: "", hidden: true, allowed: "a client secret",
		help: "the dashboard's client secret at the OpenID Connect provider; never logged",
		set: func(c *Config, v string) error {
			if !notBlank(v) {
				return fmt.Errorf("only spaces")
			}
			c.OIDCClientSecret = v
			return nil
		},
		get: func(c *Config) string { return c.OIDCClientSecret },
	},
	textSetting("WORKER_OIDC_REDIRECT_URL", "oidc-redirect-url", "", "an http or https URL", "the dashboard's /login/sso/callback URL registered at the provider; empty: on the host the browser used",
		func(c *Config) *string { return &c.OIDCRedirectURL }, webURL),
	textSetting("WORKER_OIDC_ROLE_CLAIM", "oidc-role-claim", "role", "a claim name", "ID token claim holding viewer, operator or admin",
		func(c *Config) *string { return &c.OIDCRoleClaim }, notBlank),
	textSetting("WORKER_OIDC_TENANT_CLAIM", "oidc-tenant-claim", "tenant", "a claim name", "ID token claim holding the tenant a login is scoped to; absent: every tenant",
		func(c *Config) *string { return &c.OIDCTenantClaim }, notBlank),
	textSetting("WORKER_OIDC_ALLOWED_ROLES", "oidc-allowed-roles", "", "comma-separated viewer, operator, admin", "roles an SSO login may have; empty: all",
		func(c *Config) *string { return &c.OIDCAllowedRoles }, func(v string) bool {
			for _, r := range strings.Split(v, ",") {
				if r = strings.TrimSpace(r); r != "" && !admin.Role(r).Valid() {
					return false
				}
			}
			return true
		}),
	textSetting("SMTP_HOST", "smtp-host", "", "empty or a host name", "SMTP server the email.notification jobs are sent to; unset: the notifications queue is not served (its jobs wait)",
		func(c *Config) *string { return &c.SMTPHost },
		func(v string) bool { return !strings.ContainsAny(v, " \t\n/:@") }),
	intSetting("SMTP_PORT", "smtp-port", "587", 1, 65535, "port of SMTP_HOST (587: submission)",
		func(c *Config) *int { return &c.SMTPPort }),
	textSetting("SMTP_USER", "smtp-user", "", "empty or a user name", "user name for SMTP AUTH; unset: no authentication",
		func(c *Config) *string { return &c.SMTPUser },
		func(v string) bool { return !strings.ContainsAny(v, "\r\n") }),
	{
		env: "SMTP_PASSWORD", flag: "smtp-password", def: "", hidden: true,
		allowed: "text without line breaks", help: "password of SMTP_USER; never shown",
		set: func(c *Config, v string) error {
			if strings.ContainsAny(v, "\r\n") {
				return fmt.Errorf("a line break")
			}
			c.SMTPPassword = v
			return nil
		},
		get: func(c *Config) string { return c.SMTPPassword },
	},
	textSetting("SMTP_FROM", "smtp-from", "", "empty or an address (Books <books@example.com>)", "sender of the notifications; its domain ends every Message-ID; required with SMTP_HOST",
		func(c *Config) *string { return &c.SMTPFrom },
		func(v string) bool { _, err := mail.ParseAddress(v); return v == "" || err == nil }),
	textSetting("SMTP_TO", "smtp-to", "", "empty or an address", "recipient of notifications whose job names none (the payload's to)",
		func(c *Config) *string { return &c.SMTPTo },
		func(v string) bool { _, err := mail.ParseAddress(v); return v == "" || err == nil }),
	textSetting("INVOICE_REMINDER_DAYS", "invoice-reminder-days", "-3,0,7", "days from the due date, comma-separated, or none; then ;tenant=days overrides",
		"when a posted invoice's reminders are due, in days from its due date (09:00 UTC), per tenant after ';' (-3,0,7;acme=-1,14;globex=none); with SMTP_HOST",
		func(c *Config) *string { return &c.InvoiceReminderDays },
		func(v string) bool { _, err := jobs.ParseReminderDays(v); return err == nil }),
	textSetting("SMTP_STARTTLS", "smtp-starttls", "", "empty, opportunistic, mandatory or none", "STARTTLS policy; unset: mandatory with SMTP_USER (no password in the clear), else opportunistic",
		func(c *Config) *string { return &c.SMTPStartTLS },
		func(v string) bool { return v == "" || v == "opportunistic" || v == "mandatory" || v == "none" }),
	textSetting("SMTP_CA_FILE", "smtp-ca-file", "", "empty or a PEM file path", "authorities (PEM) the STARTTLS certificate of SMTP_HOST must be signed by, instead of the system's (a relay with a private authority)",
		func(c *Config) *string { return &c.SMTPCAFile }, optionalPath),
}

// notBlank refuses a value of only spaces.
func notBlank(v string) bool { return v == "" || strings.TrimSpace(v) != "" }

// webURL accepts an absolute http or https URL.
func webURL(v string) bool {
	if v == "" {
		return true
	}
	u, err := url.Parse(v)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

// optionalPath accepts empty or a path that is not only spaces.
func optionalPath(v string) bool { return v == "" || strings.TrimSpace(v) != "" }

// boolSetting is a setting holding true or false.
func boolSetting(env, flag, def, help string, field func(*Config) *bool) *setting {
	return &setting{
		env: env, flag: flag, def: def, help: help, allowed: "true or false",
		set: func(c *Config, v string) error {
			b, err := strconv.ParseBool(v)
			*field(c) = b
			return err
		},
		get: func(c *Config) string { return strconv.FormatBool(*field(c)) },
	}
}

// textSetting is a setting holding text that ok accepts.
func textSetting(env, flag, def, allowed, help string, field func(*Config) *string, ok func(string) bool) *setting {
	return &setting{
		env: env, flag: flag, def: def, allowed: allowed, help: help,
		set: func(c *Config, v string) error {
			if !ok(v) {
				return fmt.Errorf("not allowed")
			}
			*field(c) = v
			return nil
		},
		get: func(c *Config) string { return *field(c) },
	}
}

// intSetting is a setting holding an integer in [lo, hi].
func intSetting(env, flag, def string, lo, hi int, help string, field func(*Config) *int) *setting {
	return &setting{
		env: env, flag: flag, def: def, help: help,
		allowed: fmt.Sprintf("an integer from %d to %d", lo, hi),
		set: func(c *Config, v string) error {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil || n < lo || n > hi {
				return fmt.Errorf("out of range")
			}
			*field(c) = n
			return nil
		},
		get: func(c *Config) string { return strconv.Itoa(*field(c)) },
	}
}

// msSetting is a positive duration given in milliseconds, as the seed's
// variables are, or as a Go duration.
func msSetting(env, flag, def, help string, field func(*Config) *time.Duration) *setting {
	return &setting{
		env: env, flag: flag, def: def, help: help, allowed: msAllowed,
		set: func(c *Config, v string) error {
			d, err := parseMillis(v)
			if err != nil {
				return err
			}
			*field(c) = d
			return nil
		},
		get: func(c *Config) string { return strconv.FormatInt(field(c).Milliseconds(), 10) },
	}
}

// maxDuration bounds durations so that no arithmetic on them overflows.
const maxDuration = 100 * 365 * 24 * time.Hour

// parseMillis parses whole milliseconds or a Go duration; it must be above
// zero.
func parseMillis(v string) (time.Duration, error) {
	v = strings.TrimSpace(v)
	var d time.Duration
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n > int64(maxDuration/time.Millisecond) {
			return 0, fmt.Errorf("too large")
		}
		d = time.Duration(n) * time.Millisecond
	} else if d, err = time.ParseDuration(v); err != nil {
		return 0, err
	}
	if d <= 0 || d > maxDuration {
		return 0, fmt.Errorf("out of range")
	}
	return d, nil
}
