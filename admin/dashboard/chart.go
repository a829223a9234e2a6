package dashboard

import (
	"encoding/json"
	"fmt"
	"html/template"
	"net/url"
	"strings"
	"time"
)

// chart is a bar chart drawn as SVG by the template.
type chart struct {
	Title string
	Class string
	Max   float64
	Total float64
	Bars  []bar
}

type bar struct {
	X, Y, W, H float64
	Label      string
}

// Chart geometry, in SVG user units.
const (
	chartW = 600.0
	chartH = 120.0
)

// barChart draws one bar per value, scaled to the largest.
func barChart(title string, values []float64, class string) *chart {
	c := &chart{Title: title, Class: class}
	for _, v := range values {
		c.Max = max(c.Max, v)
		c.Total += v
	}
	w := chartW / float64(len(values))
	for i, v := range values {
		h := 0.0
		if c.Max > 0 {
			h = v / c.Max * (chartH - 10)
		}
		c.Bars = append(c.Bars, bar{X: float64(i) * w, Y: chartH - h, W: w * 0.8, H: h,
			Label: fmt.Sprintf("%d min ago: %g", len(values)-1-i, v)})
	}
	return c
}

// graph is a workflow's step graph laid out in columns by depth.
type graph struct {
	W, H  float64
	Nodes []node
	Edges []edge
}

type node struct {
	X, Y      float64
	Step      Step
	Failing   bool
	StateText string
}

type edge struct{ X1, Y1, X2, Y2 float64 }

const (
	nodeW = 230.0 // run.html draws the boxes this wide
	nodeH = 56.0
	gapX  = 50.0
	gapY  = 20.0
)

// stepGraph places each step in the column after its deepest dependency.
func stepGraph(r *Run) *graph {
	depth := map[string]int{}
	byName := map[string]Step{}
	for _, s := range r.Steps {
		byName[s.Name] = s
	}
	var level func(name string, seen map[string]bool) int
	level = func(name string, seen map[string]bool) int {
		if d, ok := depth[name]; ok {
			return d
		}
		if seen[name] {
			return 0 // a cycle cannot be stored; draw it flat rather than loop
		}
		seen[name] = true
		d := 0
		for _, dep := range byName[name].DependsOn {
			d = max(d, level(dep, seen)+1)
		}
		depth[name] = d
		return d
	}
	rows := map[int]int{}
	pos := map[string][2]float64{}
	g := &graph{}
	for _, s := range r.Steps {
		col := level(s.Name, map[string]bool{})
		row := rows[col]
		rows[col]++
		x, y := 10+float64(col)*(nodeW+gapX), 10+float64(row)*(nodeH+gapY)
		pos[s.Name] = [2]float64{x, y}
		text := s.State
		if s.CompensationState != "" {
			text += " · compensation " + s.CompensationState
		}
		g.Nodes = append(g.Nodes, node{X: x, Y: y, Step: s, Failing: s.Name == r.FailedStep, StateText: text})
		g.W, g.H = max(g.W, x+nodeW+10), max(g.H, y+nodeH+10)
	}
	for _, s := range r.Steps {
		to := pos[s.Name]
		for _, dep := range s.DependsOn {
			from, ok := pos[dep]
			if !ok {
				continue
			}
			g.Edges = append(g.Edges, edge{X1: from[0] + nodeW, Y1: from[1] + nodeH/2, X2: to[0], Y2: to[1] + nodeH/2})
		}
	}
	return g
}

var funcs = template.FuncMap{
	// when renders a time the script shows in the browser's zone, with
	// UTC in its title; without script it reads as UTC.
	"when": func(v any) template.HTML {
		var t time.Time
		switch x := v.(type) {
		case time.Time:
			t = x
		case *time.Time:
			if x == nil {
				return ""
			}
			t = *x
		case string:
			p, err := time.Parse(time.RFC3339Nano, x)
			if err != nil {
				return template.HTML(template.HTMLEscapeString(x))
			}
			t = p
		default:
			return ""
		}
		if t.IsZero() {
			return ""
		}
		u := t.UTC().Format("2006-01-02 15:04:05 UTC")
		return template.HTML(fmt.Sprintf(`<time datetime="%s" title="%s">%s</time>`,
			t.UTC().Format(time.RFC3339), u, u))
	},
	// query is the link "?" + v's query with the key, value pairs kv
	// set over it. It is written here, not in the template, which would
	// escape the '&' and '=' of an encoded query as data.
	"query": func(v url.Values, kv ...string) template.URL {
		out := url.Values{}
		for k, vs := range v {
			out[k] = vs
		}
		for i := 0; i+1 < len(kv); i += 2 {
			out.Set(kv[i], kv[i+1])
		}
		return template.URL("?" + out.Encode())
	},
	// inputTime is an RFC 3339 filter time as a datetime-local field's
	// value, in UTC (the script shows it in the browser's zone); an
	// unreadable time is left out rather than sent back as typed.
	"inputTime": func(s string) string {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return ""
		}
		return t.UTC().Format("2006-01-02T15:04")
	},
	// jsonText shows a decoded JSON value (an audit entry's changes) as
	// compact JSON.
	"jsonText": func(v any) string {
		if v == nil {
			return ""
		}
		b, err := json.Marshal(v)
		if err != nil {
			return fmt.Sprint(v)
		}
		return string(b)
	},
	"stateClass": func(s string) string { return "state-" + strings.ToLower(s) },
	"pct": func(v any) string {
		f, _ := v.(float64)
		return fmt.Sprintf("%.0f%%", f*100)
	},
	"add":    func(a, b float64) float64 { return a + b },
	"states": func() []string { return states },
	"slice4": func(v ...string) []string { return v },
}
