package jobschema_test

import (
	"testing"
	"testing/fstest"

	"github.com/aibos/worker/jobschema"
)

func TestFilesByJobType(t *testing.T) {
	fsys := fstest.MapFS{
		"schemas/a.b.json":   {Data: []byte(`{"type":"object"}`)},
		"schemas/c.json":     {Data: []byte(`{}`)},
		"schemas/notes.txt":  {Data: []byte("x")},
		"other/d.json":       {Data: []byte(`{}`)},
		"schemas/sub/e.json": {Data: []byte(`{}`)},
	}
	got := jobschema.Files(fsys, "schemas")
	if len(got) != 2 || string(got["a.b"]) != `{"type":"object"}` || string(got["c"]) != `{}` {
		t.Errorf("Files = %v, want a.b and c", got)
	}
}
