package ops

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// ErrDataDirNotEmpty: Restore refuses to write into a data directory that
// holds files, unless forced.
var ErrDataDirNotEmpty = errors.New("the data directory is not empty")

// Restore brings the backup in dir (a directory Backup made, holding a
// manifest) back into dataDir. It first checks every file against the
// manifest's hash and every SQLite database with PRAGMA integrity_check,
// and writes nothing if one fails. It refuses (ErrDataDirNotEmpty) a
// dataDir that holds anything, unless force, which replaces the files the
// backup holds (and their -wal and -shm companions) and leaves the rest.
// The service must not be running on dataDir: the caller checks that.
func Restore(ctx context.Context, dir, dataDir string, force bool) (*Manifest, error) {
	m, err := readManifest(dir)
	if err != nil {
		return nil, fmt.Errorf("restore %s: %w", dir, err)
	}
	for _, f := range m.Files {
		got, err := describe(filepath.Join(dir, f.Name))
		switch {
		case err != nil:
			return nil, fmt.Errorf("restore %s: %w", dir, err)
		case got.SHA256 != f.SHA256 || got.Bytes != f.Bytes:
			return nil, fmt.Errorf("restore %s: %s differs from the manifest (%d bytes, sha256 %s; want %d bytes, %s)", dir, f.Name, got.Bytes, got.SHA256, f.Bytes, f.SHA256)
		}
		if f.SQLite {
			if err := IntegrityCheck(ctx, filepath.Join(dir, f.Name)); err != nil {
				return nil, fmt.Errorf("restore %s: %w", dir, err)
			}
		}
	}
	entries, err := os.ReadDir(dataDir)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("restore into %s: %w", dataDir, err)
	case len(entries) > 0 && !force:
		return nil, fmt.Errorf("restore into %s: %w (it holds %d entries): restore into a new directory, or pass --force to replace the backup's files", dataDir, ErrDataDirNotEmpty, len(entries))
	}
	if err := os.MkdirAll(dataDir, 0o750); err != nil {
		return nil, fmt.Errorf("restore into %s: %w", dataDir, err)
	}
	for _, f := range m.Files {
		dst := filepath.Join(dataDir, f.Name)
		for _, companion := range []string{dst, dst + "-wal", dst + "-shm", dst + "-journal", dst + ".restore"} {
			if err := os.Remove(companion); err != nil && !errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("restore into %s: %w", dataDir, err)
			}
		}
		// Copied under a temporary name and renamed, so a crash leaves the
		// file whole or absent.
		if err := copyFile(filepath.Join(dir, f.Name), dst+".restore"); err != nil {
			return nil, fmt.Errorf("restore %s: %w", f.Name, err)
		}
		if err := os.Rename(dst+".restore", dst); err != nil {
			return nil, fmt.Errorf("restore %s: %w", f.Name, err)
		}
	}
	if err := syncDir(dataDir); err != nil {
		return nil, fmt.Errorf("restore into %s: %w", dataDir, err)
	}
	return m, nil
}

func readManifest(dir string) (*Manifest, error) {
	body, err := os.ReadFile(filepath.Join(dir, ManifestFile))
	if err != nil {
		return nil, fmt.Errorf("read the manifest (is this a backup directory?): %w", err)
	}
	var m Manifest
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, fmt.Errorf("read the manifest: %w", err)
	}
	if len(m.Files) == 0 {
		return nil, errors.New("the backup holds no files (a Redis-only backup is restored by Redis from its RDB file)")
	}
	for _, f := range m.Files {
		if f.Name == "" || f.Name != filepath.Base(f.Name) || f.Name == "." || f.Name == ".." {
			return nil, fmt.Errorf("the manifest names a file %q outside the backup", f.Name)
		}
	}
	return &m, nil
}
