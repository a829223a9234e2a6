package service

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/envelope"
)

// KeyFile is the key file the service generates in WORKER_DATA_DIR when
// the embedded store serves encrypted queues and no key is configured.
const KeyFile = "encryption.keys"

// encryption returns the Encryption for the configured encrypted queues,
// and the queues left unserved: with no key, the embedded store generates
// one next to its file (and says so loudly), while on Redis, whose data
// may be shared by many processes, a generated key would leave the others
// unable to read: the encrypted queues are not served and adds to them
// are refused, with one error line.
func encryption(c *Config, kind string, log *slog.Logger) (enc *worker.Encryption, unserved []string, err error) {
	if len(c.EncryptedQueues) == 0 {
		return nil, nil, nil
	}
	var keys []envelope.Key
	switch {
	case c.EncryptionKeys != "":
		if keys, err = envelope.ParseKeys(c.EncryptionKeys); err != nil {
			return nil, nil, &ConfigError{Name: "WORKER_ENCRYPTION_KEYS", Want: err.Error()}
		}
	case c.EncryptionKeyFile != "":
		if keys, err = envelope.LoadFile(c.EncryptionKeyFile); err != nil {
			return nil, nil, &ConfigError{Name: "WORKER_ENCRYPTION_KEY_FILE", Want: err.Error()}
		}
	case kind == "sqlite":
		path := filepath.Join(c.DataDir, KeyFile)
		var created bool
		if keys, created, err = envelope.LoadOrCreateFile(path, "generated"); err != nil {
			return nil, nil, fmt.Errorf("service: encryption key: %w", err)
		}
		if created {
			log.Warn("GENERATED AN ENCRYPTION KEY: no WORKER_ENCRYPTION_KEYS or WORKER_ENCRYPTION_KEY_FILE is set, so the jobs of the encrypted queues are sealed with a key just written to "+path+"; back it up with the store: without it they cannot be read",
				"file", path, "queues", c.EncryptedQueues)
		}
	default:
		log.Error("encrypted queues not served and adds to them refused: no encryption key; set WORKER_ENCRYPTION_KEYS or WORKER_ENCRYPTION_KEY_FILE (or WORKER_ENCRYPTED_QUEUES=none)",
			"queues", c.EncryptedQueues)
		return &worker.Encryption{Queues: slices.Clone(c.EncryptedQueues)}, slices.Clone(c.EncryptedQueues), nil
	}
	ring, err := envelope.NewRing(keys...)
	if err != nil {
		return nil, nil, &ConfigError{Name: "WORKER_ENCRYPTION_KEYS", Want: err.Error()}
	}
	return &worker.Encryption{Keys: ring, Queues: slices.Clone(c.EncryptedQueues)}, nil, nil
}
