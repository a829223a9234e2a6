package service

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/broker/redisbroker"
	"github.com/aibos/worker/broker/sqlitebroker"
)

// StoreFile is the embedded store's file name inside WORKER_DATA_DIR.
const StoreFile = "worker.db"

// NewLogger returns the logger the configuration asks for (LOG_LEVEL,
// LOG_FORMAT), writing to w, and routes the Redis client's own messages
// through it: go-redis has one process-wide logger, so this sets it.
func NewLogger(c *Config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: c.LogLevel}
	var h slog.Handler = slog.NewJSONHandler(w, opts)
	if c.LogFormat == "text" {
		h = slog.NewTextHandler(w, opts)
	}
	log := slog.New(h)
	redis.SetLogger(redisLogger{log.With("component", "redis")})
	return log
}

// redisLogger adapts slog to go-redis's logger. go-redis logs only what
// went wrong (dropped connections, failed reconnects), so at warn level.
type redisLogger struct{ log *slog.Logger }

func (l redisLogger) Printf(ctx context.Context, format string, v ...any) {
	l.log.WarnContext(ctx, strings.TrimPrefix(fmt.Sprintf(format, v...), "redis: "))
}

// store is the opened broker and what closes it.
type store struct {
	// b is the broker itself, not embedded: a wrapper would hide the
	// optional interfaces (broker.Committer, ...) the parts look for.
	b     broker.Broker
	kind  string // "redis" or "sqlite", for logs
	where string // the URL (redacted) or file
	// warnings are the store's settings that can lose jobs, logged at
	// Start.
	warnings []string
	// redis is the Redis client, nil on the embedded store.
	redis redis.UniversalClient
	close func() error
}

// openStore opens Redis when REDIS_URL is set, else the embedded store
// under WORKER_DATA_DIR. Redis is pinged (within 10s) so a wrong address
// fails here, not at the first job. log gets the Redis broker's own
// reports, such as its DATA LOSS DETECTED line, in the service's format;
// nil means slog.Default.
func openStore(ctx context.Context, c *Config, log *slog.Logger) (*store, error) {
	if c.RedisURL == "" {
		if err := os.MkdirAll(c.DataDir, 0o750); err != nil {
			return nil, fmt.Errorf("create data directory: %w", err)
		}
		path := filepath.Join(c.DataDir, StoreFile)
		b, err := sqlitebroker.Open(path, sqlitebroker.Config{})
		if err != nil {
			return nil, fmt.Errorf("open the embedded store: %w", err)
		}
		return &store{b: b, kind: "sqlite", where: path, close: b.Close}, nil
	}
	opts, err := c.redisOptions()
	if err != nil {
		return nil, err
	}
	client := opts.NewClient()
	b, err := redisbroker.New(client, redisbroker.Config{Prefix: c.QueuePrefix, Logger: log,
		DurableReplicas: c.RedisDurableReplicas, DurableTimeout: c.RedisDurableTimeout})
	if err == nil {
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err = b.Ping(pctx)
		cancel()
	}
	if err != nil {
		_ = client.Close()
		return nil, fmt.Errorf("open redis %s: %w%s", RedactURL(c.RedisURL), err, tlsHint(ctx, err, c, opts))
	}
	closeAll := func() error {
		err := b.Close()
		if cerr := client.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("close redis client: %w", cerr)
		}
		return err
	}
	where := RedactURL(c.RedisURL) + " (cluster)"
	switch opts.Topology {
	case redisbroker.Standalone:
		where = fmt.Sprintf("%s db %d", RedactURL(c.RedisURL), opts.Simple.DB)
	case redisbroker.Sentinel:
		where = fmt.Sprintf("%s db %d", RedactURL(c.RedisURL), opts.Failover.DB)
	}
	warnings := redisDurabilityWarnings(ctx, client)
	if conf := opts.TLS(); conf != nil && conf.InsecureSkipVerify {
		warnings = append(warnings, "REDIS_URL sets skip_verify: the Redis server's certificate is not checked, so anyone on the path can pose as it; give its authority in REDIS_TLS_CA_FILE instead")
	}
	return &store{b: b, kind: "redis", where: where, close: closeAll, warnings: warnings, redis: client}, nil
}

// tlsHint returns what to do about a TLS handshake the server refused for
// want of a client certificate, which its alert alone leaves unsaid.
//
// With TLS 1.3 the client's side of the handshake is done before the
// server has checked it, so the refusal may reach the client only as a
// reset of its first write ("connection reset by peer"), not as the
// server's alert. When TLS is on, no client certificate is set and the
// error does not say why, one more handshake asks the server: it reads
// without writing, so the alert, sent before the server closes, is what
// it gets.
func tlsHint(ctx context.Context, err error, c *Config, opts *redisbroker.ClientOptions) string {
	const hint = " (the server requires a client certificate: set REDIS_TLS_CERT_FILE and REDIS_TLS_KEY_FILE)"
	conf := opts.TLS()
	if conf == nil || c.RedisTLSCertFile != "" {
		return ""
	}
	if strings.Contains(err.Error(), "tls: certificate required") {
		return hint
	}
	addr := opts.FirstAddr()
	if addr != "" && refusedForWantOfCertificate(ctx, addr, conf) {
		return hint
	}
	return ""
}

// refusedForWantOfCertificate reports whether the TLS server at addr
// refuses a client that presents no certificate: its handshake or the
// first read after it fails with the "certificate required" alert. It
// waits at most 5s in all: long enough for a busy server to answer, and it
// runs only when the service is already failing to start. A server that
// takes the client says nothing, so that case waits the whole time.
func refusedForWantOfCertificate(ctx context.Context, addr string, conf *tls.Config) bool {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	d := tls.Dialer{Config: conf.Clone()}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return strings.Contains(err.Error(), "certificate required")
	}
	defer conn.Close()
	if deadline, ok := ctx.Deadline(); ok {
		_ = conn.SetReadDeadline(deadline)
	}
	_, err = conn.Read(make([]byte, 1))
	return err != nil && strings.Contains(err.Error(), "certificate required")
}

// redisOptions returns the Redis client options: REDIS_URL's, with
// REDIS_DB and REDIS_MAX_CONNECTIONS where the URL names no database or
// pool size. A value written in the URL wins: it is the more specific.
func (c *Config) redisOptions() (*redisbroker.ClientOptions, error) {
	opts, err := redisbroker.ParseURL(c.RedisURL)
	if err != nil {
		return nil, &ConfigError{Name: "REDIS_URL", Value: RedactURL(c.RedisURL), Quote: true, Want: reason(err)}
	}
	u, err := url.Parse(c.RedisURL)
	if err != nil {
		return nil, &ConfigError{Name: "REDIS_URL", Value: RedactURL(c.RedisURL), Quote: true, Want: reason(err)}
	}
	if err := c.applyRedisTLS(opts); err != nil {
		return nil, err
	}
	q := u.Query()
	pool := 0
	if !q.Has("pool_size") {
		pool = c.RedisMaxConnections
	}
	switch opts.Topology {
	case redisbroker.Standalone:
		if strings.Trim(u.Path, "/") == "" {
			opts.Simple.DB = c.RedisDB
		}
		if pool > 0 {
			opts.Simple.PoolSize = pool
		}
	case redisbroker.Sentinel:
		if !q.Has("db") {
			opts.Failover.DB = c.RedisDB
		}
		if pool > 0 {
			opts.Failover.PoolSize = pool
		}
	case redisbroker.Cluster:
		// REDIS_DB does not apply: Validate refuses one set to another
		// database than 0.
		if pool > 0 {
			opts.Cluster.PoolSize = pool // per node
		}
	}
	return opts, nil
}

// Redis returns the Redis client the broker runs on, or nil on the
// embedded store: for operations Redis offers beside the broker, such as
// the backup job's BGSAVE. The service owns it.
func (s *Service) Redis() redis.UniversalClient { return s.store.redis }
