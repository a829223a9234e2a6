package sqlitebroker

import (
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"
)

// openOldStore builds a store of schema version in a fresh file, as a
// release of that version left it: its migrations, its version marks and
// rows (SQL statements, run in order). It then opens it with Open, which
// migrates it; the broker is closed when the test ends.
func openOldStore(t *testing.T, version int, rows ...string) *Broker {
	t.Helper()
	path := filepath.Join(t.TempDir(), fmt.Sprintf("v%d.db", version))
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	scripts, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	stmts := append(scripts[:version:version], fmt.Sprintf("PRAGMA user_version = %d", version),
		fmt.Sprintf("PRAGMA application_id = %d", applicationID))
	for _, st := range append(stmts, rows...) {
		if _, err := db.Exec(st); err != nil {
			t.Fatalf("build a version %d store: %v\n%s", version, err, st)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := Open(path, Config{})
	if err != nil {
		t.Fatalf("open the version %d store: %v", version, err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}
