package service

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/broker/redisbroker"
	"github.com/aibos/worker/internal/redistest"
	"github.com/aibos/worker/recovery"
)

// TestMain stops the package's redis-server (the API tests run on both
// brokers) and checks for leaked goroutines.
func TestMain(m *testing.M) { os.Exit(redistest.Main(m)) }

// env returns a LookupEnv over vars given as "NAME=value".
func env(vars ...string) func(string) (string, bool) {
	m := map[string]string{}
	for _, v := range vars {
		k, val, _ := strings.Cut(v, "=")
		m[k] = val
	}
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// value returns the displayed value and source of one setting.
func value(t *testing.T, c *Config, name string) (string, Source) {
	t.Helper()
	for _, v := range c.Values() {
		if v.Env == name {
			return v.Value, v.Source
		}
	}
	t.Fatalf("no setting %s", name)
	return "", ""
}

// TestEnvVars covers every environment variable: its default, a good
// value read back, and a bad value's one-line error.
func TestEnvVars(t *testing.T) {
	cases := []struct {
		env, def, good, goodShown, bad, badErr string
	}{
		{"WORKER_CONCURRENCY", "5", "12", "12", "abc", `WORKER_CONCURRENCY="abc": want an integer from 1 to 10000`},
		{"WORKER_RETRY_ATTEMPTS", "3", "7", "7", "0", `WORKER_RETRY_ATTEMPTS="0": want an integer from 1 to 1000`},
		{"WORKER_RETRY_DELAY", "1000", "2s", "2000", "-1", `WORKER_RETRY_DELAY="-1": want ` + msAllowed},
		{"WORKER_TIMEOUT", "300000", "60000", "60000", "-5", `WORKER_TIMEOUT="-5": want ` + msAllowed},
		{"REDIS_URL", "", "redis://:hunter2@redis.example:6380/4", "redis://:xxxxx@redis.example:6380/4", "http://u:hunter2@h:1/0",
			`REDIS_URL="http://u:xxxxx@h:1/0": want empty (the embedded store) or a redis://, rediss://, redis+sentinel:// or redis+cluster:// URL (scheme "http" is none of redis, rediss, redis+sentinel, rediss+sentinel, redis+cluster, rediss+cluster)`},
		{"REDIS_DB", "2", "0", "0", "two", `REDIS_DB="two": want an integer from 0 to 1048576`},
		{"REDIS_MAX_CONNECTIONS", "10", "50", "50", "0", `REDIS_MAX_CONNECTIONS="0": want an integer from 1 to 10000`},
		{"REDIS_DURABLE_REPLICAS", "0", "1", "1", "-1", `REDIS_DURABLE_REPLICAS="-1": want an integer from 0 to 100`},
		{"REDIS_DURABLE_TIMEOUT", "1000", "2s", "2000", "0", `REDIS_DURABLE_TIMEOUT="0": want ` + msAllowed},
		{"REDIS_TLS_CA_FILE", "", "/etc/aibos/redis-ca.pem", "/etc/aibos/redis-ca.pem", " ", `REDIS_TLS_CA_FILE=" ": want empty or a PEM file path`},
		{"REDIS_TLS_CERT_FILE", "", "/etc/aibos/redis.crt", "/etc/aibos/redis.crt", " ", `REDIS_TLS_CERT_FILE=" ": want empty or a PEM file path`},
		{"REDIS_TLS_KEY_FILE", "", "/etc/aibos/redis.key", "/etc/aibos/redis.key", " ", `REDIS_TLS_KEY_FILE=" ": want empty or a PEM file path`},
		{"REDIS_TLS_SERVER_NAME", "", "redis.internal", "redis.internal", "a b", `REDIS_TLS_SERVER_NAME="a b": want empty or a host name`},
		{"QUEUE_PREFIX", "aibos:worker", "acme:jobs", "acme:jobs", "a{b}", `QUEUE_PREFIX="a{b}": want non-empty text without braces or spaces`},
		{"QUEUE_DEFAULT_TTL", "3600000", "1h30m", "5400000", "soon", `QUEUE_DEFAULT_TTL="soon": want ` + msAllowed},
		{"QUEUE_MAX_LENGTH", "10000", "500", "500", "-1", `QUEUE_MAX_LENGTH="-1": want an integer from 1 to 1073741824`},
		{"MONITORING_ENABLED", "true", "false", "false", "yes please", `MONITORING_ENABLED="yes please": want true or false`},
		{"METRICS_INTERVAL", "60000", "15000", "15000", "0", `METRICS_INTERVAL="0": want ` + msAllowed},
		{"WORKER_METRICS_TENANT_TOP", "0", "10", "10", "101", `WORKER_METRICS_TENANT_TOP="101": want an integer from 0 to 100`},
		{"HEALTH_CHECK_INTERVAL", "30000", "5s", "5000", "1e3", `HEALTH_CHECK_INTERVAL="1e3": want ` + msAllowed},
		{"LOG_LEVEL", "info", "debug", "debug", "loud", `LOG_LEVEL="loud": want debug, info, warn or error`},
		{"LOG_FORMAT", "json", "text", "text", "xml", `LOG_FORMAT="xml": want json or text`},
		{"OTEL_TRACES_EXPORTER", "none", "otlp", "otlp", "jaeger", `OTEL_TRACES_EXPORTER="jaeger": want none or otlp`},
		{"WORKER_DATA_DIR", "./data", "/var/lib/aibos", "/var/lib/aibos", " ", `WORKER_DATA_DIR=" ": want a directory path`},
		{"WORKER_SCHEMA_DIR", "", "/etc/aibos/schemas", "/etc/aibos/schemas", " ", `WORKER_SCHEMA_DIR=" ": want empty or a directory path`},
		{"DATABASE_URL", "", "postgres://app:hunter2@db:5432/books", "postgres://app:xxxxx@db:5432/books", "mysql://app:hunter2@db/books",
			`DATABASE_URL="mysql://app:xxxxx@db/books": want empty (the embedded accounting ledger) or a postgres:// URL (not a postgres URL)`},
		{"WORKER_HTTP_ADDR", ":8080", "127.0.0.1:0", "127.0.0.1:0", "8080", `WORKER_HTTP_ADDR="8080": want host:port or :port (:0 picks a free port)`},
		{"WORKER_TLS_CERT_FILE", "", "/etc/aibos/tls.crt", "/etc/aibos/tls.crt", " ", `WORKER_TLS_CERT_FILE=" ": want empty or a PEM file path`},
		{"WORKER_TLS_KEY_FILE", "", "/etc/aibos/tls.key", "/etc/aibos/tls.key", " ", `WORKER_TLS_KEY_FILE=" ": want empty or a PEM file path`},
		{"WORKER_HTTP_READ_HEADER_TIMEOUT", "10000", "5s", "5000", "0", `WORKER_HTTP_READ_HEADER_TIMEOUT="0": want ` + msAllowed},
		{"WORKER_HTTP_READ_TIMEOUT", "60000", "30000", "30000", "-1", `WORKER_HTTP_READ_TIMEOUT="-1": want ` + msAllowed},
		{"WORKER_HTTP_WRITE_TIMEOUT", "60000", "2m", "120000", "never", `WORKER_HTTP_WRITE_TIMEOUT="never": want ` + msAllowed},
		{"WORKER_HTTP_IDLE_TIMEOUT", "120000", "1m", "60000", "0", `WORKER_HTTP_IDLE_TIMEOUT="0": want ` + msAllowed},
		{"WORKER_HTTP_MAX_HEADER_BYTES", "65536", "8192", "8192", "100", `WORKER_HTTP_MAX_HEADER_BYTES="100": want an integer from 4096 to 16777216`},
		{"WORKER_API_MAX_BODY_BYTES", "1048576", "2048", "2048", "1", `WORKER_API_MAX_BODY_BYTES="1": want an integer from 1024 to 1073741824`},
		{"WORKER_API_MAX_ENQUEUE_BYTES", "1048576", "65536", "65536", "x", `WORKER_API_MAX_ENQUEUE_BYTES="x": want an integer from 1024 to 1073741824`},
		{"WORKER_API_MAX_BATCH_BYTES", "16777216", "1048576", "1048576", "0", `WORKER_API_MAX_BATCH_BYTES="0": want an integer from 1024 to 1073741824`},
		{"WORKER_DRAIN_TIMEOUT", "30000", "90000", "90000", "forever", `WORKER_DRAIN_TIMEOUT="forever": want ` + msAllowed},
		{"WORKER_API_ENABLED", "true", "false", "false", "maybe", `WORKER_API_ENABLED="maybe": want true or false`},
		{"WORKER_ABANDON_GRACE", "10000", "2000", "2000", "soon", `WORKER_ABANDON_GRACE="soon": want ` + msAllowed},
		{"WORKER_MAX_CRASHES", "5", "0", "0", "21", `WORKER_MAX_CRASHES="21": want an integer from 0 to 20`},
		{"WORKER_AUDIT_KEY", "", testAuditKey, "(set, redacted)", "c2hvcnQta2V5",
			`WORKER_AUDIT_KEY="(redacted)": want base64 of at least 32 random bytes (openssl rand -base64 32) (9 bytes, fewer than 32)`},
		{"WORKER_AUDIT_KEY_FILE", "", "/etc/aibos/audit.key", "/etc/aibos/audit.key", " ", `WORKER_AUDIT_KEY_FILE=" ": want a file path`},
		{"WORKER_OIDC_ISSUER", "", "https://id.example.com", "https://id.example.com", "id.example.com", `WORKER_OIDC_ISSUER="id.example.com": want an http or https URL`},
		{"WORKER_OIDC_CLIENT_ID", "", "dash", "dash", " ", `WORKER_OIDC_CLIENT_ID=" ": want a client id`},
		{"WORKER_OIDC_CLIENT_SECRET", "", "s3cret", "(set, redacted)", " ", `WORKER_OIDC_CLIENT_SECRET="(redacted)": want a client secret (only spaces)`},
		{"WORKER_OIDC_REDIRECT_URL", "", "https://ops.example.com/login/sso/callback", "https://ops.example.com/login/sso/callback", "/login/sso/callback",
			`WORKER_OIDC_REDIRECT_URL="/login/sso/callback": want an http or https URL`},
		{"WORKER_OIDC_ROLE_CLAIM", "role", "groups", "groups", " ", `WORKER_OIDC_ROLE_CLAIM=" ": want a claim name`},
		{"WORKER_OIDC_TENANT_CLAIM", "tenant", "org", "org", " ", `WORKER_OIDC_TENANT_CLAIM=" ": want a claim name`},
		{"WORKER_OIDC_ALLOWED_ROLES", "", "operator,admin", "operator,admin", "root", `WORKER_OIDC_ALLOWED_ROLES="root": want comma-separated viewer, operator, admin`},
		{"WORKER_AUDIT_RETENTION_DAYS", "400", "0", "0", "-1", `WORKER_AUDIT_RETENTION_DAYS="-1": want an integer from 0 to 36500`},
		{"WORKER_ENCRYPTION_KEYS", "", "old:" + testKeySecret + ",new:" + testKeySecret, "(set, redacted)", "k1:aHVudGVyMg==",
			`WORKER_ENCRYPTION_KEYS="(redacted)": want comma-separated keyid:base64-of-32-bytes, newest last (parse encryption keys: key "k1" is 7 bytes, want 32)`},
		{"WORKER_ENCRYPTION_KEY_FILE", "", "/etc/aibos/keys", "/etc/aibos/keys", " ", `WORKER_ENCRYPTION_KEY_FILE=" ": want a file path (mode 0600)`},
		{"SMTP_HOST", "", "mail.example.com", "mail.example.com", "smtp://mail", `SMTP_HOST="smtp://mail": want empty or a host name`},
		{"SMTP_PORT", "587", "2525", "2525", "0", `SMTP_PORT="0": want an integer from 1 to 65535`},
		{"SMTP_USER", "", "mailer", "mailer", "a\nb", `SMTP_USER="a\nb": want empty or a user name`},
		{"SMTP_PASSWORD", "", "hunter2", "(set, redacted)", "hunter2\n", `SMTP_PASSWORD="(redacted)": want text without line breaks (a line break)`},
		{"SMTP_FROM", "", "Books <books@example.com>", "Books <books@example.com>", "books", `SMTP_FROM="books": want empty or an address (Books <books@example.com>)`},
		{"SMTP_TO", "", "ops@example.com", "ops@example.com", "ops", `SMTP_TO="ops": want empty or an address`},
		{"INVOICE_REMINDER_DAYS", "-3,0,7", "-1,14;acme=none", "-1,14;acme=none", "-3,soon", `INVOICE_REMINDER_DAYS="-3,soon": want days from the due date, comma-separated, or none; then ;tenant=days overrides`},
		{"SMTP_STARTTLS", "", "mandatory", "mandatory", "always", `SMTP_STARTTLS="always": want empty, opportunistic, mandatory or none`},
		{"SMTP_CA_FILE", "", "/etc/aibos/smtp-ca.pem", "/etc/aibos/smtp-ca.pem", " ", `SMTP_CA_FILE=" ": want empty or a PEM file path`},
		{"WORKER_ENCRYPTED_QUEUES", "invoices,bills,payments,reports,notifications,workflows", "invoices, payments", "invoices,payments", "a b", `WORKER_ENCRYPTED_QUEUES="a b": want comma-separated queue names, or none`},
	}
	covered := map[string]bool{}
	for _, tc := range cases {
		covered[tc.env] = true
		t.Run(tc.env, func(t *testing.T) {
			c, err := Load(LoadInput{LookupEnv: env()})
			if err != nil {
				t.Fatal(err)
			}
			if v, src := value(t, c, tc.env); v != tc.def || src != FromDefault {
				t.Errorf("default = %q from %s, want %q from default", v, src, tc.def)
			}
			c, err = Load(LoadInput{LookupEnv: env(tc.env + "=" + tc.good)})
			if err != nil {
				t.Fatalf("good value %q: %v", tc.good, err)
			}
			if v, src := value(t, c, tc.env); v != tc.goodShown || src != FromEnv {
				t.Errorf("with %s=%q: %q from %s, want %q from env", tc.env, tc.good, v, src, tc.goodShown)
			}
			_, err = Load(LoadInput{LookupEnv: env(tc.env + "=" + tc.bad)})
			if err == nil || err.Error() != tc.badErr || !IsConfigError(err) {
				t.Errorf("with %s=%q:\n got  %v\n want %s", tc.env, tc.bad, err, tc.badErr)
			}
			if err != nil && strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error shows the password: %v", err)
			}
		})
	}
	for _, s := range Settings() {
		if !covered[s.Env] {
			t.Errorf("setting %s has no row in this table", s.Env)
		}
	}
}

// TestSettingsReachConfig checks good values land in the fields the
// service wires, not only in the displayed text.
func TestSettingsReachConfig(t *testing.T) {
	c, err := Load(LoadInput{LookupEnv: env(
		"WORKER_CONCURRENCY=12", "WORKER_RETRY_ATTEMPTS=7", "WORKER_RETRY_DELAY=250", "WORKER_TIMEOUT=2s",
		"REDIS_DB=4", "REDIS_MAX_CONNECTIONS=33", "QUEUE_PREFIX=acme", "QUEUE_DEFAULT_TTL=60000", "QUEUE_MAX_LENGTH=9",
		"MONITORING_ENABLED=false", "METRICS_INTERVAL=1500", "HEALTH_CHECK_INTERVAL=700", "WORKER_DRAIN_TIMEOUT=5000",
		"WORKER_API_ENABLED=false", "WORKER_MAX_CRASHES=7",
	)})
	if err != nil {
		t.Fatal(err)
	}
	got := []any{c.Concurrency, c.RetryAttempts, c.RetryDelay, c.Timeout, c.RedisDB, c.RedisMaxConnections, c.QueuePrefix,
		c.QueueDefaultTTL, c.QueueMaxLength, c.MonitoringEnabled, c.MetricsInterval, c.HealthCheckInterval, c.DrainTimeout, c.APIEnabled, c.MaxCrashes}
	want := []any{12, 7, 250 * time.Millisecond, 2 * time.Second, 4, 33, "acme",
		time.Minute, 9, false, 1500 * time.Millisecond, 700 * time.Millisecond, 5 * time.Second, false, 7}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("field %d = %v, want %v", i, got[i], want[i])
		}
	}
}

func writeFile(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "aibos-worker.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestPrecedence: flags > env > file > defaults, each source recorded.
func TestPrecedence(t *testing.T) {
	file := writeFile(t, "concurrency: 2\nretry_attempts: 4\nredis_db: 6\n")
	c, err := Load(LoadInput{
		File:      file,
		LookupEnv: env("WORKER_CONCURRENCY=3", "WORKER_RETRY_ATTEMPTS=8"),
		Flags:     map[string]string{"concurrency": "9"},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []struct {
		env, value string
		src        Source
	}{
		{"WORKER_CONCURRENCY", "9", FromFlag},
		{"WORKER_RETRY_ATTEMPTS", "8", FromEnv},
		{"REDIS_DB", "6", FromFile},
		{"QUEUE_MAX_LENGTH", "10000", FromDefault},
	} {
		if v, src := value(t, c, w.env); v != w.value || src != w.src {
			t.Errorf("%s = %q from %s, want %q from %s", w.env, v, src, w.value, w.src)
		}
	}
}

func TestFileErrors(t *testing.T) {
	cases := []struct{ name, text, want string }{
		{"unknown top-level key", "concurrency: 2\nconcurency: 3\n", "line 2: concurency: unknown key (known: queues"},
		{"unknown nested key", "queues:\n  - name: a\n    prio: 2\n", "line 3: prio: unknown key"},
		{"bad setting", "timeout: -1\n", `line 1: timeout="-1": want ` + msAllowed},
		{"setting not a scalar", "concurrency: [1]\n", "line 1: concurrency: want an integer"},
		{"bad queue", "queues:\n  - {name: 'a b'}\n", "queues[0].name"},
		{"duplicate queue", "queues:\n  - {name: a}\n  - {name: a}\n", `queues[1].name: queue "a" is listed twice`},
		{"job type with neither", "job_types:\n  x: {}\n", "job_types.x: set processor"},
		{"job type bad url", "job_types:\n  x: {http: {url: 'ftp://h/x'}}\n", `job_types.x: http.url: "ftp://h/x" is not an absolute http or https URL`},
		{"job type bad secret", "job_types:\n  x: {http: {url: 'http://h/x', secret: hunter2}}\n", "job_types.x: http.secret: want whsec_"},
		{"job type without secret", "job_types:\n  x: {http: {url: 'http://h/x'}}\n", "job_types.x: http.secret: want secret (whsec_ followed by base64) or secret_env"},
		{"bad cron", "schedules:\n  - {name: s, cron: '61 * * * *', job: {queue: invoices, type: t}}\n", "schedules.s.cron"},
		{"schedule on unserved queue", "schedules:\n  - {name: s, cron: '@daily', job: {queue: nope, type: t}}\n", `schedules.s.job.queue: "nope" is not a served queue`},
		{"bad recovery", "recovery:\n  - {error_type: X, action: explode}\n", `recovery: recovery policy: strategy "X": unknown action "explode"`},
		{"bad callback url", "callbacks: {url: 'h/cb'}\n", `callbacks.url: "h/cb" is not an absolute http or https URL`},
		{"bad balancer", "job_types:\n  x: {http: {url: 'http://h/x', instances: ['a:1'], algorithm: random, secret: whsec_c2VjcmV0}}\n", `job_types.x: http.algorithm: "random" is not round-robin`},
		{"bad scaling", "scaling: {enabled: true, min_workers: 8, max_workers: 4}\n", "scaling: min_workers 8 is above max_workers 4"},
		{"max crashes out of range", "queues:\n  - {name: a, max_crashes: 21}\n", `queues.a.max_crashes="21": want an integer from 0 (off) to 20`},
		{"unknown scaling key", "scaling: {enabled: true, max: 4}\n", "line 1: max: unknown key"},
		{"not yaml", "queues: [\n", "YAML: "},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(LoadInput{File: writeFile(t, tc.text), LookupEnv: env()})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !IsConfigError(err) {
				t.Fatalf("got %v, want a config error containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans lines: %q", err)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error shows the secret: %v", err)
			}
		})
	}
}

// TestFileMaxCrashes: a queue's max_crashes replaces WORKER_MAX_CRASHES
// for it (0 turning the rule off there); a queue without takes the
// setting, 5 by default.
func TestFileMaxCrashes(t *testing.T) {
	c, err := Load(LoadInput{File: writeFile(t, "queues:\n  - {name: a, max_crashes: 0}\n  - {name: b, max_crashes: 2}\n  - {name: c}\n"), LookupEnv: env()})
	if err != nil {
		t.Fatal(err)
	}
	if got := []int{c.Queues[0].MaxCrashes, c.Queues[1].MaxCrashes, c.Queues[2].MaxCrashes, c.MaxCrashes}; !reflect.DeepEqual(got, []int{-1, 2, 0, 5}) {
		t.Fatalf("queue max crashes a, b, c and the setting = %v; want [-1 2 0 5] (-1: off, 0: the setting's)", got)
	}
	if _, err := Load(LoadInput{LookupEnv: env("WORKER_MAX_CRASHES=21")}); err == nil || !strings.Contains(err.Error(), "WORKER_MAX_CRASHES") {
		t.Fatalf("WORKER_MAX_CRASHES=21: %v; want an error naming it", err)
	}
}

// TestFileSections reads the shipped example file.
func TestFileSections(t *testing.T) {
	c, err := Load(LoadInput{File: "../aibos-worker.yaml", LookupEnv: env("AIBOS_WEBHOOK_SECRET=whsec_c2VjcmV0")})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Queues) != 4 || c.Queues[0].Name != "invoices" || c.Queues[0].Priority != 1 || c.Queues[0].Concurrency != 3 {
		t.Errorf("queues = %+v, want the seed's four", c.Queues)
	}
	if len(c.Schedules) != 2 || c.Schedules[0].Cron != "*/15 * * * *" || c.Schedules[1].Cron != "0 0 1 * *" {
		t.Errorf("schedules = %+v, want daily-reports (every quarter hour: 02:00 per tenant zone) and monthly-cleanup", c.Schedules)
	}
	// Every seed job type is a Go processor serve registers: the example
	// binds none (it shows how, commented out).
	if len(c.JobTypes) != 0 {
		t.Errorf("job types = %v, want none bound in the example file", c.JobTypeNames())
	}
}

// TestDefaultsWithoutFile: the seed's queues and recovery, no schedules.
func TestDefaultsWithoutFile(t *testing.T) {
	c, err := Load(LoadInput{LookupEnv: env()})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Queues) != 4 || len(c.Schedules) != 0 || len(c.JobTypes) != 0 {
		t.Errorf("queues %d, schedules %d, job types %d; want 4, 0, 0", len(c.Queues), len(c.Schedules), len(c.JobTypes))
	}
	p, err := c.RecoveryPolicy()
	if err != nil {
		t.Fatal(err)
	}
	want := []recovery.Strategy{
		{ErrorType: "ValidationError", Action: recovery.Fail},
		{ErrorType: "DatabaseError", Action: recovery.Retry, MaxAttempts: 5, Delay: 2 * time.Second},
		{ErrorType: "NetworkError", Action: recovery.Retry, MaxAttempts: 3, Delay: time.Second},
		{ErrorType: "BusinessLogicError", Action: recovery.Fail, Notify: true},
	}
	if !reflect.DeepEqual(p.Strategies, want) {
		t.Errorf("recovery = %+v, want the service's four strategies %+v", p.Strategies, want)
	}
}

// TestRedisOptions: REDIS_DB and REDIS_MAX_CONNECTIONS reach the client,
// and a database or pool size written in REDIS_URL wins; through Sentinel
// the same, and on a Cluster (database 0 only) the pool size per node.
func TestRedisOptions(t *testing.T) {
	cases := []struct {
		url        string
		db, pool   int
		wantDB     int
		wantPoolSz int
	}{
		{"redis://h:6379", 2, 10, 2, 10},
		{"redis://h:6379/", 3, 10, 3, 10},
		{"redis://h:6379/5", 2, 10, 5, 10},
		{"redis://h:6379/0", 2, 10, 0, 10},
		{"redis://h:6379?pool_size=4", 2, 10, 2, 4},
		{"redis+sentinel://s1:26379,s2:26379/mymaster", 3, 10, 3, 10},
		{"redis+sentinel://s1:26379/mymaster?db=5&pool_size=4", 2, 10, 5, 4},
		{"redis+cluster://h1:7000,h2:7001", 2, 10, 0, 10},
		{"redis+cluster://h1:7000?pool_size=4", 2, 10, 0, 4},
	}
	for _, tc := range cases {
		c := Default()
		c.RedisURL, c.RedisDB, c.RedisMaxConnections = tc.url, tc.db, tc.pool
		o, err := c.redisOptions()
		if err != nil {
			t.Fatalf("%s: %v", tc.url, err)
		}
		var db, pool int
		switch {
		case o.Simple != nil:
			db, pool = o.Simple.DB, o.Simple.PoolSize
		case o.Failover != nil:
			db, pool = o.Failover.DB, o.Failover.PoolSize
		default:
			pool = o.Cluster.PoolSize
		}
		if db != tc.wantDB || pool != tc.wantPoolSz {
			t.Errorf("%s with REDIS_DB %d, REDIS_MAX_CONNECTIONS %d: db %d pool %d, want %d and %d",
				tc.url, tc.db, tc.pool, db, pool, tc.wantDB, tc.wantPoolSz)
		}
	}
}

// TestRedisDBOnCluster: REDIS_DB set to a database other than 0 with a
// Cluster REDIS_URL is refused in one line naming both; its default, and 0,
// are fine.
func TestRedisDBOnCluster(t *testing.T) {
	load := func(env map[string]string) error {
		_, err := Load(LoadInput{LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }})
		return err
	}
	const u = "redis+cluster://h1:7000,h2:7001"
	err := load(map[string]string{"REDIS_URL": u, "REDIS_DB": "3"})
	if !IsConfigError(err) || !strings.Contains(err.Error(), "REDIS_DB") || !strings.Contains(err.Error(), "only database 0") ||
		strings.Contains(err.Error(), "\n") {
		t.Errorf("REDIS_DB=3 on a cluster: %v, want one config error naming REDIS_DB and database 0", err)
	}
	for _, env := range []map[string]string{{"REDIS_URL": u}, {"REDIS_URL": u, "REDIS_DB": "0"},
		{"REDIS_URL": "redis+sentinel://s:26379/m", "REDIS_DB": "3"}} {
		if err := load(env); err != nil {
			t.Errorf("%v: %v", env, err)
		}
	}
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"":                          "",
		"redis://h:1/2":             "redis://h:1/2",
		"redis://:pw@h:1/2":         "redis://:xxxxx@h:1/2",
		"redis://u:pw@h:x/2":        "redis://xxxxx@h:x/2",
		"redis://u:p@w:d@h:bad:1/2": "redis://u:xxxxx@h:bad:1/2",
		"redis+sentinel://s:pw@h:1/m?db=1&password=mpw&sentinel_password=spw": "redis+sentinel://s:xxxxx@h:1/m?db=1&password=xxxxx&sentinel_password=xxxxx",
		"rediss://h:1/0?Password=x&pool_size=3":                               "rediss://h:1/0?Password=xxxxx&pool_size=3",
	} {
		if got := RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestREADMEListsEverySetting keeps the README's table of variables in step
// with the settings: each has a row with its flag and default.
func TestREADMEListsEverySetting(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range Settings() {
		def := "`" + s.Default + "`"
		if s.Default == "" {
			def = "unset"
		}
		row := fmt.Sprintf("| `%s` | `--%s` | %s |", s.Env, s.Flag, def)
		if !strings.Contains(string(readme), row) {
			t.Errorf("README has no row starting %q", row)
		}
	}
}

// TestRedisDurableReplicas: REDIS_DURABLE_REPLICAS reaches the broker the
// service opens: on a server with no replica an enqueue fails, naming the
// replicas, instead of being acknowledged.
func TestRedisDurableReplicas(t *testing.T) {
	c, err := Load(LoadInput{LookupEnv: env("REDIS_URL="+redistest.URL(t), "QUEUE_PREFIX="+redistest.Prefix(t),
		"REDIS_DURABLE_REPLICAS=1", "REDIS_DURABLE_TIMEOUT=50")})
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	st, err := openStore(t.Context(), c, nil)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	defer st.close()
	_, err = st.b.JobInsert(t.Context(), &broker.JobInsertParams{ID: "j1", Queue: "q", Type: "t", MaxAttempts: 1})
	if !errors.Is(err, redisbroker.ErrNotReplicated) {
		t.Fatalf("enqueue with REDIS_DURABLE_REPLICAS=1 and no replica: %v, want ErrNotReplicated", err)
	}
}
