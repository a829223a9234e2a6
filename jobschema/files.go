package jobschema

import (
	"io/fs"
	"path"
	"strings"
)

// Files returns the schemas in the <job type>.json files of dir in fsys, by
// job type: how a package of job types ships its schemas embedded (an
// embed.FS) for a Registry to Add. A file that cannot be read is left out.
func Files(fsys fs.FS, dir string) map[string][]byte {
	out := map[string][]byte{}
	names, _ := fs.Glob(fsys, path.Join(dir, "*.json")) // the pattern is valid
	for _, n := range names {
		if b, err := fs.ReadFile(fsys, n); err == nil {
			out[strings.TrimSuffix(path.Base(n), ".json")] = b
		}
	}
	return out
}
