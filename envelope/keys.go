package envelope

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"
)

// ParseKeys parses keys written as comma-separated "keyid:base64" entries,
// oldest first (the WORKER_ENCRYPTION_KEYS format; a key file holds the
// same, with newlines allowed between entries and '#' comment lines).
// Errors name the entry by id or position, never the secret.
func ParseKeys(s string) ([]Key, error) {
	var keys []Key
	n := 0
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		for _, entry := range strings.Split(line, ",") {
			entry = strings.TrimSpace(entry)
			if entry == "" {
				continue
			}
			n++
			id, secret, ok := strings.Cut(entry, ":")
			if !ok {
				return nil, fmt.Errorf("parse encryption keys: entry %d is not keyid:base64", n)
			}
			if err := validID(id); err != nil {
				return nil, fmt.Errorf("parse encryption keys: entry %d: %w", n, err)
			}
			raw, err := decodeSecret(secret)
			if err != nil {
				return nil, fmt.Errorf("parse encryption keys: key %q is not base64", id)
			}
			if len(raw) != KeySize {
				return nil, fmt.Errorf("parse encryption keys: key %q is %d bytes, want %d", id, len(raw), KeySize)
			}
			keys = append(keys, Key{ID: id, Secret: raw})
		}
	}
	if len(keys) == 0 {
		return nil, errors.New("parse encryption keys: no keys given")
	}
	return keys, nil
}

func decodeSecret(s string) ([]byte, error) {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, nil
		}
	}
	return nil, errors.New("not base64")
}

// FormatKeys writes keys in the ParseKeys format.
func FormatKeys(keys []Key) string {
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k.ID + ":" + base64.StdEncoding.EncodeToString(k.Secret)
	}
	return strings.Join(parts, ",")
}

// NewKey returns a fresh random key with the given id.
func NewKey(id string) (Key, error) {
	if err := validID(id); err != nil {
		return Key{}, fmt.Errorf("new key: %w", err)
	}
	secret := make([]byte, KeySize)
	if _, err := rand.Read(secret); err != nil {
		return Key{}, fmt.Errorf("new key %q: %w", id, err)
	}
	return Key{ID: id, Secret: secret}, nil
}

// LoadOrCreateFile reads keys from path; if the file does not exist it
// writes one fresh key there (mode 0600, created exclusively so that two
// processes starting at once keep one key) and reports created. A file
// readable by others is refused.
func LoadOrCreateFile(path, id string) (keys []Key, created bool, err error) {
	keys, err = LoadFile(path)
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		return keys, false, err
	}
	k, err := NewKey(id)
	if err != nil {
		return nil, false, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		keys, err = LoadFile(path)
		return keys, false, err
	}
	if err != nil {
		return nil, false, fmt.Errorf("create key file: %w", err)
	}
	if _, err := f.WriteString(FormatKeys([]Key{k}) + "\n"); err != nil {
		f.Close()
		return nil, false, fmt.Errorf("write key file %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return nil, false, fmt.Errorf("write key file %s: %w", path, err)
	}
	return []Key{k}, true, nil
}

// LoadFile reads keys in the ParseKeys format from path. A file that
// group or others may read is refused.
func LoadFile(path string) ([]Key, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("read key file: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("read key file %s: mode %v lets others read it; chmod 600", path, st.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read key file: %w", err)
	}
	keys, err := ParseKeys(string(b))
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	return keys, nil
}
