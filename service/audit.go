package service

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/aibos/worker/audit"
	"github.com/aibos/worker/broker/sqlitebroker"
)

// GeneratedAuditKeyFile is the key file the embedded store generates in
// WORKER_DATA_DIR when no audit key is configured.
const GeneratedAuditKeyFile = "audit.key"

// generatedKeyWarning is logged at every start on a generated key.
const generatedKeyWarning = "AUDIT KEY GENERATED IN THE DATA DIRECTORY: the audit trail's key sits beside the store it protects, so anyone who can read " +
	"the data directory can re-chain the trail unnoticed; set WORKER_AUDIT_KEY or WORKER_AUDIT_KEY_FILE to a key kept elsewhere " +
	"(copy this file's content there to keep the trail verifiable)"

// auditKeyNeeded is the one line Redis refuses to start with, lacking a key.
const auditKeyNeeded = "required with REDIS_URL: every instance on the store must chain the audit trail with one shared key; " +
	"set WORKER_AUDIT_KEY (base64 of 32 random bytes: openssl rand -base64 32) or WORKER_AUDIT_KEY_FILE"

// auditKey returns the audit trail's key: WORKER_AUDIT_KEY, else the file
// WORKER_AUDIT_KEY_FILE names, else, on the embedded store, the key file
// in the data directory, generated if create and there is none. generated
// reports that the key came from the data directory.
func (c *Config) auditKey(redis, create bool) (key []byte, generated bool, err error) {
	switch {
	case c.AuditKey != "":
		key, err = audit.ParseKey(c.AuditKey)
		if err != nil {
			return nil, false, &ConfigError{Name: "WORKER_AUDIT_KEY", Value: "(redacted)", Quote: true, Want: "want base64 of at least 32 random bytes (" + err.Error() + ")"}
		}
		return key, false, nil
	case c.AuditKeyFile != "":
		key, err = audit.ReadKeyFile(c.AuditKeyFile)
		if err != nil {
			return nil, false, &ConfigError{Name: "WORKER_AUDIT_KEY_FILE", Value: c.AuditKeyFile, Quote: true, Want: err.Error()}
		}
		return key, false, nil
	case redis:
		return nil, false, &ConfigError{Name: "WORKER_AUDIT_KEY", Want: auditKeyNeeded}
	}
	path := filepath.Join(c.DataDir, GeneratedAuditKeyFile)
	if !create {
		key, err = audit.ReadKeyFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, false, &ConfigError{Name: "WORKER_AUDIT_KEY", Want: fmt.Sprintf("no audit key: none is configured and %s does not exist (the service writes it at its first start)", path)}
		}
		return key, true, err
	}
	key, _, err = audit.LoadOrCreateKeyFile(path)
	return key, true, err
}

// auditHeadFile is where the trail's head is written outside the store.
func (c *Config) auditHeadFile() string { return filepath.Join(c.DataDir, audit.HeadFileName) }

// newAudit opens the audit trail the API records to.
func (s *Service) newAudit() error {
	key, generated, err := s.cfg.auditKey(s.store.kind == "redis", true)
	if err != nil {
		if IsConfigError(err) {
			return err
		}
		return fmt.Errorf("service: audit key: %w", err)
	}
	s.auditKeyGenerated = generated
	// On Redis the data directory holds nothing else, and may not exist.
	if err := os.MkdirAll(s.cfg.DataDir, 0o750); err != nil {
		return fmt.Errorf("service: create the data directory for the audit head file: %w", err)
	}
	s.audit, err = audit.New(s.store.b, audit.Config{Key: key, HeadFile: s.cfg.auditHeadFile(), Logger: s.log.With("component", "audit")})
	if err != nil {
		return fmt.Errorf("service: %w", err)
	}
	return nil
}

// sweepAudit trims the audit entries older than WORKER_AUDIT_RETENTION_DAYS
// once a day, from every process: the trail's checkpoint is written with
// compare-and-set, so concurrent sweeps trim each entry once.
func (s *Service) sweepAudit(ctx context.Context) {
	if s.audit == nil || s.cfg.AuditRetentionDays == 0 {
		return
	}
	age := time.Duration(s.cfg.AuditRetentionDays) * 24 * time.Hour
	every(ctx, 24*time.Hour, func(ctx context.Context) {
		if n, err := s.audit.TrimOlderThan(ctx, age); err != nil && ctx.Err() == nil {
			s.log.Error("trim the audit trail", "err", err)
		} else if n > 0 {
			s.log.Info("trimmed the audit trail through a signed checkpoint", "removed", n)
		}
	})
}

// warnGeneratedKey warns, at every start, that the audit key is the one
// generated beside the store. It is said at start rather than when the
// key is read, so that a configuration error is still the only line a
// failed start prints.
func (s *Service) warnGeneratedKey() {
	if s.auditKeyGenerated {
		s.log.Warn(generatedKeyWarning, "file", filepath.Join(s.cfg.DataDir, GeneratedAuditKeyFile))
	}
}

// Audit returns the audit trail the API records to, or nil when
// WORKER_API_ENABLED is false.
func (s *Service) Audit() *audit.Trail { return s.audit }

// VerifyAudit opens the store the configuration names and verifies its
// audit trail with the configured key and the head file in the data
// directory (see audit.Verify): a *audit.VerifyError names the first bad
// entry. On the embedded store it works while the service is stopped (the
// error wraps ErrServiceRunning otherwise); on Redis either way.
func VerifyAudit(ctx context.Context, cfg *Config) (*audit.Report, error) {
	if cfg == nil {
		return nil, errors.New("service: verify audit: config is nil")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	key, _, err := cfg.auditKey(cfg.RedisURL != "", false)
	if err != nil {
		return nil, err
	}
	st, err := openStore(ctx, cfg, nil)
	if errors.Is(err, sqlitebroker.ErrInUse) {
		return nil, fmt.Errorf("service: verify audit: %w (%w): stop it first, or verify a copy of the data directory", ErrServiceRunning, err)
	}
	if err != nil {
		return nil, fmt.Errorf("service: verify audit: %w", err)
	}
	defer func() { _ = st.close() }()
	return audit.Verify(ctx, st.b, key, audit.VerifyOptions{HeadFile: cfg.auditHeadFile()})
}
