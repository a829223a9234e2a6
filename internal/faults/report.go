package faults

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// Row is one figure of a scenario's table.
type Row struct {
	Figure  string
	Value   string
	Promise string // what the design promises, "" for a figure only stated
	Meets   string // "yes", "NO", or "" when nothing is promised
}

// Table is one scenario's result.
type Table struct {
	Name   string
	Setup  string // what was run, in a sentence
	Rows   []Row
	Notes  []string
	Took   time.Duration
	Failed string // the scenario's own error, if it could not finish
}

// add appends a figure with no promise.
func (t *Table) add(figure string, value any) {
	t.Rows = append(t.Rows, Row{Figure: figure, Value: fmt.Sprint(value)})
}

// promise appends a figure, the promise it is held to and whether ok.
func (t *Table) promise(figure string, value any, promise string, ok bool) {
	m := "yes"
	if !ok {
		m = "NO"
	}
	t.Rows = append(t.Rows, Row{Figure: figure, Value: fmt.Sprint(value), Promise: promise, Meets: m})
}

// Broken lists the figures that miss their promise.
func (t *Table) Broken() []string {
	var out []string
	for _, r := range t.Rows {
		if r.Meets == "NO" {
			out = append(out, fmt.Sprintf("%s = %s (promise: %s)", r.Figure, r.Value, r.Promise))
		}
	}
	if t.Failed != "" {
		out = append(out, "did not finish: "+t.Failed)
	}
	return out
}

// Write writes the table as Markdown.
func (t *Table) Write(w io.Writer) {
	fmt.Fprintf(w, "## %s\n\n%s Took %s.\n\n", t.Name, t.Setup, t.Took.Round(time.Second))
	if t.Failed != "" {
		fmt.Fprintf(w, "**The scenario did not finish:** %s\n\n", t.Failed)
	}
	if len(t.Rows) > 0 {
		fmt.Fprintln(w, "| figure | value | design promise | meets it |")
		fmt.Fprintln(w, "|---|--:|---|---|")
		for _, r := range t.Rows {
			p, m := r.Promise, r.Meets
			if p == "" {
				p, m = "(stated only)", "-"
			}
			fmt.Fprintf(w, "| %s | %s | %s | %s |\n", r.Figure, r.Value, p, m)
		}
		fmt.Fprintln(w)
	}
	for _, n := range t.Notes {
		fmt.Fprintf(w, "- %s\n", strings.TrimSpace(n))
	}
	if len(t.Notes) > 0 {
		fmt.Fprintln(w)
	}
}

// addCount appends the figures every scenario reports from a Count.
func (t *Table) addCount(c *Count, lostPromise bool) {
	t.add("acknowledged enqueues", c.Acked)
	t.add("completed", c.Completed)
	t.add("done, record since removed (retention, or Redis lost it)", c.Removed)
	if lostPromise {
		t.promise("lost (acknowledged, never done)", c.Lost, "0", c.Lost == 0)
	} else {
		t.add("lost (acknowledged, never done)", c.Lost)
	}
	t.promise("stuck (unfinished at the end)", c.Stuck, "0", c.Stuck == 0)
	t.add("dead (attempts used up)", c.Dead)
	t.promise("effects applied twice", c.Doubled, "0 (idempotency table)", c.Doubled == 0)
	t.add("duplicate effects absorbed by the key (a rerun reached the effect again)", c.KeyHits)
	t.add("jobs run more than once", c.Reran)
	t.add("extra runs", c.ExtraRuns)
	t.promise("stale writes (completion accepted from an old lease)", c.StaleWrites, "0 (fencing)", c.StaleWrites == 0)
}
