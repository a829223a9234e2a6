package service

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/audit"
	"github.com/aibos/worker/envelope"
	"github.com/aibos/worker/workflow"
)

// KeyFile is the key file the service generates in WORKER_DATA_DIR when
// the embedded store serves encrypted queues and no key is configured.
const KeyFile = "encryption.keys"

// encryption returns the Encryption for the configured encrypted queues,
// the queues left unserved, and a warning for Start to log: with no key,
// the embedded store generates one next to its file (and every start says
// so loudly, once the configuration has proved valid), while on Redis, whose data
// may be shared by many processes, a generated key would leave the others
// unable to read: the encrypted queues are not served and adds to them
// are refused, with one error line.
func encryption(c *Config, kind string) (enc *worker.Encryption, unserved []string, warning func(*slog.Logger), err error) {
	if len(c.EncryptedQueues) == 0 {
		return nil, nil, nil, nil
	}
	var keys []envelope.Key
	switch {
	case c.EncryptionKeys != "":
		if keys, err = envelope.ParseKeys(c.EncryptionKeys); err != nil {
			return nil, nil, nil, &ConfigError{Name: "WORKER_ENCRYPTION_KEYS", Want: err.Error()}
		}
	case c.EncryptionKeyFile != "":
		if keys, err = envelope.LoadFile(c.EncryptionKeyFile); err != nil {
			return nil, nil, nil, &ConfigError{Name: "WORKER_ENCRYPTION_KEY_FILE", Want: err.Error()}
		}
	case kind == "sqlite":
		path := filepath.Join(c.DataDir, KeyFile)
		if keys, _, err = envelope.LoadOrCreateFile(path, "generated"); err != nil {
			return nil, nil, nil, fmt.Errorf("service: encryption key: %w", err)
		}
		queues := slices.Clone(c.EncryptedQueues)
		warning = func(log *slog.Logger) {
			log.Warn("USING A GENERATED ENCRYPTION KEY: no WORKER_ENCRYPTION_KEYS or WORKER_ENCRYPTION_KEY_FILE is set, so the jobs of the encrypted queues are sealed with the key in "+path+"; back it up with the store (without it they cannot be read) or configure keys",
				"file", path, "queues", queues)
		}
	default:
		queues := slices.Clone(c.EncryptedQueues)
		warning = func(log *slog.Logger) {
			log.Error("encrypted queues not served and adds to them refused: no encryption key; set WORKER_ENCRYPTION_KEYS or WORKER_ENCRYPTION_KEY_FILE (or WORKER_ENCRYPTED_QUEUES=none)",
				"queues", queues)
		}
		return &worker.Encryption{Queues: queues}, queues, warning, nil
	}
	ring, err := envelope.NewRing(keys...)
	if err != nil {
		return nil, nil, nil, &ConfigError{Name: "WORKER_ENCRYPTION_KEYS", Want: err.Error()}
	}
	return &worker.Encryption{Keys: ring, Queues: slices.Clone(c.EncryptedQueues)}, nil, warning, nil
}

// auditUndecryptableRun records in the audit trail a workflow run whose
// sealed values do not open; the engine fails it at the step that read
// it.
func (s *Service) auditUndecryptableRun(ctx context.Context, run *workflow.Run, reason error) {
	s.auditRefused(ctx, "workflow.undecryptable", "workflows/"+run.ID, run.TenantID,
		map[string]string{"queue": run.Queue, "workflow": run.Workflow, "reason": reason.Error()})
}

// auditUndecryptable records in the audit trail a job the Manager moved
// to dead because its data does not open: someone altered the store or a
// key is missing. Without a trail (the API is off) the Manager's log line
// is the record.
func (s *Service) auditUndecryptable(ctx context.Context, job *worker.Job, reason error) {
	s.auditRefused(ctx, "job.undecryptable", "jobs/"+job.ID, job.TenantID,
		map[string]string{"queue": job.Queue, "type": job.Type, "state": string(worker.StateDead), "reason": reason.Error()})
}

// auditRefused records a failed action on target with what it changed.
func (s *Service) auditRefused(ctx context.Context, action, target, tenant string, what map[string]string) {
	if s.audit == nil {
		return
	}
	changes, err := json.Marshal(what)
	if err == nil {
		_, err = s.audit.Record(ctx, &audit.Entry{Action: action, Target: target, Tenant: tenant, Outcome: audit.Failed, Changes: changes})
	}
	if err != nil {
		s.log.Error("record "+action+" in the audit trail", "target", target, "err", err)
	}
}
