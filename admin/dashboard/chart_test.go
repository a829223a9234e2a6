package dashboard

import (
	"bytes"
	"html/template"
	"net/url"
	"testing"
)

// TestQueryLink checks that a paging link keeps the filter's query as a
// query, not as text escaped into one parameter.
func TestQueryLink(t *testing.T) {
	tpl := template.Must(template.New("t").Funcs(funcs).Parse(`<a href="{{query .F "cursor" .C}}">next</a>`))
	var buf bytes.Buffer
	err := tpl.Execute(&buf, map[string]any{"F": url.Values{"queue": {"a b"}, "state": {"dead"}, "cursor": {"old"}}, "C": "x&y"})
	if err != nil {
		t.Fatal(err)
	}
	if want := `<a href="?cursor=x%26y&amp;queue=a&#43;b&amp;state=dead">next</a>`; buf.String() != want {
		t.Fatalf("got  %s\nwant %s", buf.String(), want)
	}
}
