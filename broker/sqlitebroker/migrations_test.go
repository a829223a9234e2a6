package sqlitebroker

import (
	"fmt"
	"io/fs"
	"sort"
	"testing"
)

// The schema version stored in a file is the number of migrations it has
// run, so migration files must be numbered 0001, 0002, … without gaps and
// never renumbered: a gap would make a new file's version disagree with
// what older files recorded.
func TestMigrationsAreNumberedWithoutGaps(t *testing.T) {
	names, err := fs.Glob(migrationFS, "migrations/*.sql")
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(names)
	if len(names) == 0 {
		t.Fatal("no migrations embedded")
	}
	for i, n := range names {
		want := fmt.Sprintf("migrations/%04d_", i+1)
		if len(n) < len(want) || n[:len(want)] != want {
			t.Errorf("migration %d is %s, want a name starting %s", i+1, n, want)
		}
	}
}
