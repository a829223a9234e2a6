package httpproc_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/httpproc"
)

// nodeRecipe returns the node:crypto recipe of the package documentation,
// as it is printed there.
func nodeRecipe(t *testing.T) string {
	t.Helper()
	src, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	in := false
	for _, line := range strings.Split(string(src), "\n") {
		code, ok := strings.CutPrefix(line, "//\t")
		if ok && strings.HasPrefix(code, `import { createHmac`) {
			in = true
		}
		if in {
			out = append(out, code)
			if code == "}" {
				return strings.Join(out, "\n") + "\n"
			}
		}
	}
	t.Fatal("doc.go has no node:crypto recipe")
	return ""
}

// driver runs the recipe on each case of the JSON file named by its
// argument and prints one verdict per case: "ok" or the error.
const driver = `
import { readFileSync } from "node:fs";
import { verifyWorkerCall } from "./recipe.mjs";
for (const c of JSON.parse(readFileSync(process.argv[2], "utf8"))) {
  try { verifyWorkerCall(c.secret, c.headers, c.body); console.log("ok"); }
  catch (e) { console.log(e.message); }
}
`

// TestTypeScriptRecipe runs the documented node:crypto recipe under node
// on a call the Processor really made: it accepts it, and rejects it with
// a tampered body, a wrong secret or a stale timestamp.
func TestTypeScriptRecipe(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed: the TypeScript recipe is not checked")
	}
	calls := make(chan call, 1)
	srv := newServer(t, testSecret, func(_ int, body []byte, w http.ResponseWriter, r *http.Request) {
		calls <- call{header: r.Header.Clone(), body: body}
		answer(w, http.StatusNoContent, "")
	})
	p, err := httpproc.New(httpproc.EndpointConfig{URL: srv.URL, Secret: testSecret, Client: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	job := &worker.Job{ID: "j1", Queue: "invoices", Type: "invoice.processing", Attempt: 1, MaxAttempts: 3,
		Data: json.RawMessage(`{"amount":"12.50","note":"ünïcode ✓"}`)}
	if err := p.Process(context.Background(), job); err != nil {
		t.Fatal(err)
	}
	c := <-calls
	headers := func(h http.Header) map[string]string {
		return map[string]string{"webhook-id": h.Get(httpproc.HeaderID), "webhook-timestamp": h.Get(httpproc.HeaderTimestamp),
			"webhook-signature": h.Get(httpproc.HeaderSignature)}
	}
	stale := c.header.Clone()
	old := time.Now().Add(-10 * time.Minute)
	sig, _ := httpproc.Sign(testSecret, stale.Get(httpproc.HeaderID), old, c.body)
	stale.Set(httpproc.HeaderTimestamp, strconv.FormatInt(old.Unix(), 10))
	stale.Set(httpproc.HeaderSignature, sig)
	type recipeCase struct {
		Secret  string            `json:"secret"`
		Headers map[string]string `json:"headers"`
		Body    string            `json:"body"`
	}
	cases := []recipeCase{
		{testSecret, headers(c.header), string(c.body)},
		{testSecret, headers(c.header), strings.Replace(string(c.body), "12.50", "99.50", 1)},
		{otherSecret, headers(c.header), string(c.body)},
		{testSecret, headers(stale), string(c.body)},
	}
	want := []string{"ok", "no matching webhook signature", "no matching webhook signature", "webhook timestamp outside tolerance"}

	dir := t.TempDir()
	casesJSON, _ := json.Marshal(cases)
	for name, text := range map[string]string{"recipe.mjs": nodeRecipe(t), "driver.mjs": driver, "cases.json": string(casesJSON)} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	out, err := exec.Command(node, filepath.Join(dir, "driver.mjs"), filepath.Join(dir, "cases.json")).CombinedOutput()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, out)
	}
	got := strings.Split(strings.TrimSpace(string(out)), "\n")
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("the recipe's verdicts:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
