// Package observability_test checks the ready-made Grafana dashboard and
// Prometheus alert rules of this directory.
package observability_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/promql/parser"

	"github.com/aibos/worker/internal/promtooltest"
)

// TestAlertRules runs promtool check rules on the alert rules and promtool
// test rules on their unit tests (alerts_test.yaml).
func TestAlertRules(t *testing.T) {
	bin := promtooltest.Path(t)
	for _, args := range [][]string{{"check", "rules", "alerts.yaml"}, {"test", "rules", "alerts_test.yaml"}} {
		out, err := exec.Command(bin, args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

type panel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource *struct {
		UID string `json:"uid"`
	} `json:"datasource"`
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
}

// grafanaVars stand in for the dashboard's variables, which PromQL does
// not know, before a query is parsed.
var grafanaVars = strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "1h", "$queue", "invoices")

// TestDashboardQueriesParse parses every query of the dashboard with
// Prometheus' own PromQL parser, and checks each panel has a data source
// and a unique id.
func TestDashboardQueriesParse(t *testing.T) {
	raw, err := os.ReadFile("dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Title  string  `json:"title"`
		UID    string  `json:"uid"`
		Panels []panel `json:"panels"`
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("dashboard.json is not valid JSON: %v", err)
	}
	if d.Title == "" || d.UID == "" {
		t.Errorf("dashboard title %q, uid %q: both are needed to import it", d.Title, d.UID)
	}
	ids, queries := map[int]bool{}, 0
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel %q: id %d is used twice", p.Title, p.ID)
		}
		ids[p.ID] = true
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q does not use the dashboard's data source variable", p.Title)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			queries++
			if _, err := parser.ParseExpr(grafanaVars.Replace(tg.Expr)); err != nil {
				t.Errorf("panel %q, query %s: %v\n%s", p.Title, tg.RefID, err, tg.Expr)
			}
		}
	}
	if queries == 0 {
		t.Error("the dashboard has no queries")
	}
}
