package audit

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// MinKeyLen is the shortest key accepted: 256 bits, HMAC-SHA256's own
// strength.
const MinKeyLen = 32

// ParseKey decodes a key written as standard or URL-safe base64 (padded
// or not) and checks its length. The error never quotes the key, and
// says only what is wrong with it ("not base64", "9 bytes, fewer than
// 32"): the caller names the key.
func ParseKey(text string) ([]byte, error) {
	text = strings.TrimSpace(text)
	var key []byte
	var err error
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if key, err = enc.DecodeString(text); err == nil {
			break
		}
	}
	if err != nil {
		return nil, errors.New("not base64")
	}
	if len(key) < MinKeyLen {
		return nil, fmt.Errorf("%d bytes, fewer than %d", len(key), MinKeyLen)
	}
	return key, nil
}

// ReadKeyFile reads a key file: the key in base64, as ParseKey takes it.
func ReadKeyFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read audit key file: %w", err)
	}
	key, err := ParseKey(string(b))
	if err != nil {
		return nil, fmt.Errorf("audit key file %s: %w (want base64 of at least %d random bytes)", path, err, MinKeyLen)
	}
	return key, nil
}

// LoadOrCreateKeyFile reads the key file at path, or, if there is none,
// creates it (mode 0600) with a new random key. created reports which.
// A service on an embedded store, which is one process, uses it when no
// key is configured; it must warn that the key now sits beside the store.
func LoadOrCreateKeyFile(path string) (key []byte, created bool, err error) {
	key, err = ReadKeyFile(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return key, false, err
	}
	key = make([]byte, MinKeyLen)
	if _, err := rand.Read(key); err != nil {
		return nil, false, fmt.Errorf("make audit key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, false, fmt.Errorf("make audit key: %w", err)
	}
	// O_EXCL: two processes starting at once must not both write a key.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		key, err = ReadKeyFile(path)
		return key, false, err
	}
	if err != nil {
		return nil, false, fmt.Errorf("make audit key: %w", err)
	}
	_, err = f.WriteString(base64.StdEncoding.EncodeToString(key) + "\n")
	if serr := f.Sync(); err == nil {
		err = serr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, false, fmt.Errorf("write audit key file %s: %w", path, err)
	}
	return key, true, nil
}
