package report

import (
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"time"

	"github.com/aibos/worker/accounting"
)

// ErrNotFound reports a report file that does not exist.
var ErrNotFound = errors.New("report not found")

// Dir keeps report files under Root as
// <tenant>/<company>/<date>/<name>, ids path-escaped. It is safe for
// concurrent use, by several processes too: a file is written to a
// temporary file and renamed over the old one, so a reader sees the old
// or the new file whole, and a retried job overwrites atomically.
type Dir struct {
	Root string
}

// File is one stored report file.
type File struct {
	Date    string    `json:"date"` // YYYY-MM-DD
	Name    string    `json:"name"`
	Size    int64     `json:"size"`
	Written time.Time `json:"written"`
}

// names lists the files a day's reports consist of.
var names = []string{AgingCSV, AgingPDF, TrialBalanceCSV, TrialBalancePDF}

func (d Dir) books(b accounting.Books) (string, error) {
	if d.Root == "" {
		return "", errors.New("report directory: root is empty")
	}
	for _, id := range []string{b.Tenant, b.Company} {
		if id == "" || id == "." || id == ".." {
			return "", fmt.Errorf("report directory: id %q cannot name a directory", id)
		}
	}
	return filepath.Join(d.Root, url.PathEscape(b.Tenant), url.PathEscape(b.Company)), nil
}

func checkDate(date string) error {
	if _, err := time.Parse(time.DateOnly, date); err != nil {
		return fmt.Errorf("%w: date %q is not YYYY-MM-DD", ErrNotFound, date)
	}
	return nil
}

// Write stores the files of books' reports of date (YYYY-MM-DD), each
// replacing its earlier version atomically.
func (d Dir) Write(b accounting.Books, date string, files map[string][]byte) error {
	base, err := d.books(b)
	if err != nil {
		return err
	}
	if err := checkDate(date); err != nil {
		return err
	}
	dir := filepath.Join(base, date)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("write reports of %s/%s %s: %w", b.Tenant, b.Company, date, err)
	}
	for name, content := range files {
		if !slices.Contains(names, name) {
			return fmt.Errorf("write reports of %s/%s %s: unknown file %q", b.Tenant, b.Company, date, name)
		}
		if err := writeAtomic(filepath.Join(dir, name), content); err != nil {
			return fmt.Errorf("write reports of %s/%s %s: %w", b.Tenant, b.Company, date, err)
		}
	}
	return nil
}

func writeAtomic(path string, content []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after a successful rename, there is nothing to remove
	if _, err := f.Write(content); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// List returns books' report files, newest date first, by name within a
// date. Books without reports have none.
func (d Dir) List(b accounting.Books) ([]File, error) {
	base, err := d.books(b)
	if err != nil {
		return nil, err
	}
	dates, err := os.ReadDir(base)
	if errors.Is(err, fs.ErrNotExist) {
		return []File{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list reports of %s/%s: %w", b.Tenant, b.Company, err)
	}
	out := []File{}
	for _, dd := range dates {
		if !dd.IsDir() || checkDate(dd.Name()) != nil {
			continue
		}
		for _, n := range names {
			fi, err := os.Stat(filepath.Join(base, dd.Name(), n))
			if err != nil {
				continue
			}
			out = append(out, File{Date: dd.Name(), Name: n, Size: fi.Size(), Written: fi.ModTime().UTC()})
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Date > out[j].Date })
	return out, nil
}

// Open opens one report file of books. It returns an error wrapping
// ErrNotFound if there is none (or the date or name is not one a report
// has).
func (d Dir) Open(b accounting.Books, date, name string) (*os.File, error) {
	base, err := d.books(b)
	if err != nil {
		return nil, err
	}
	if err := checkDate(date); err != nil {
		return nil, err
	}
	if !slices.Contains(names, name) {
		return nil, fmt.Errorf("%w: %q is not a report file (want one of %v)", ErrNotFound, name, names)
	}
	f, err := os.Open(filepath.Join(base, date, name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s/%s %s %s", ErrNotFound, b.Tenant, b.Company, date, name)
	}
	if err != nil {
		return nil, fmt.Errorf("open report %s/%s %s %s: %w", b.Tenant, b.Company, date, name, err)
	}
	return f, nil
}
