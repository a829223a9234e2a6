package audit

import (
	"crypto/hmac"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// HeadFileName is the head file's name in the service's data directory.
const HeadFileName = "audit-head.json"

// headFile is the head file's content: the newest entry's number and
// chain value when it was written, signed.
type headFile struct {
	Seq   int64  `json:"seq"`
	Chain string `json:"chain"`
	MAC   string `json:"mac"`
}

// WriteHeadFile replaces the head file at path with seq and chain, signed
// with key: written to a temporary file in the same directory, synced, and
// renamed over the old one, so a reader sees the old or the new head,
// never a part.
func WriteHeadFile(path string, key []byte, seq int64, chain string) error {
	b, err := json.Marshal(headFile{Seq: seq, Chain: chain, MAC: hex.EncodeToString(mac(key, "head", seq, chain))})
	if err != nil {
		return fmt.Errorf("encode the audit head file: %w", err)
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write the audit head file: %w", err)
	}
	_, err = tmp.Write(append(b, '\n'))
	if serr := tmp.Sync(); err == nil {
		err = serr
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("write the audit head file: %w", err)
	}
	return nil
}

// ReadHeadFile reads the head file at path and checks its signature. It
// returns ok false, and no error, if there is no file.
func ReadHeadFile(path string, key []byte) (seq int64, chain string, ok bool, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, "", false, nil
	}
	if err != nil {
		return 0, "", false, fmt.Errorf("read the audit head file: %w", err)
	}
	var h headFile
	if err := json.Unmarshal(b, &h); err != nil {
		return 0, "", false, fmt.Errorf("audit head file %s: %w", path, err)
	}
	got, err := hex.DecodeString(h.MAC)
	if err != nil || !hmac.Equal(got, mac(key, "head", h.Seq, h.Chain)) {
		return 0, "", false, fmt.Errorf("audit head file %s: signature mismatch (edited, or written with another key)", path)
	}
	return h.Seq, h.Chain, true, nil
}
