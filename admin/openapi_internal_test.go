package admin

import (
	"strings"
	"testing"
	"testing/fstest"
)

func TestMergeOpenAPIRefusesClashes(t *testing.T) {
	base := `{"openapi":"3.1.0","info":{"title":"t","version":"1"},"paths":{"/a":{"get":{}}},"components":{"schemas":{"Error":{}}}}`
	for _, c := range []struct {
		name, frag, want string
	}{
		{"operation", `{"paths":{"/a":{"get":{}}}}`, "path /a get is defined by both base.json and x.json"},
		{"schema", `{"components":{"schemas":{"Error":{}}}}`, "schemas Error is defined by both base.json and x.json"},
		{"other key", `{"info":{}}`, `x.json: key "info" is not allowed`},
		{"bad json", `{"paths":`, "parse openapi/x.json"},
	} {
		t.Run(c.name, func(t *testing.T) {
			fsys := fstest.MapFS{
				"openapi/base.json": {Data: []byte(base)},
				"openapi/x.json":    {Data: []byte(c.frag)},
			}
			_, err := mergeOpenAPI(fsys)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("merge: %v, want an error containing %q", err, c.want)
			}
		})
	}
}

func TestMergeOpenAPIJoinsFragments(t *testing.T) {
	fsys := fstest.MapFS{
		"openapi/base.json": {Data: []byte(`{"openapi":"3.1.0","paths":{"/a":{"get":{}}},"components":{"schemas":{"Error":{}}}}`)},
		"openapi/x.json":    {Data: []byte(`{"paths":{"/a":{"post":{}},"/b":{"get":{}}},"components":{"schemas":{"XThing":{}},"parameters":{"XP":{}}}}`)},
	}
	b, err := mergeOpenAPI(fsys)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"post"`, `"/b"`, `"XThing"`, `"XP"`, `"Error"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("merged document lacks %s:\n%s", want, b)
		}
	}
}
