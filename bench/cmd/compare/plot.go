package main

import (
	"fmt"
	"image/color"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// stores returns the stores c has points of, Redis first.
func (c *curveResult) stores() []string {
	var out []string
	for _, s := range []string{"redis", "sqlite"} {
		if slices.ContainsFunc(c.points, func(p point) bool { return p.store == s }) {
			out = append(out, s)
		}
	}
	return out
}

// sizes returns the sizes c has points of, ascending.
func (c *curveResult) sizes() []int {
	var out []int
	for _, p := range c.points {
		out = append(out, p.size)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func (c *curveResult) hasIdle() bool {
	return slices.ContainsFunc(c.points, func(p point) bool { return p.idle })
}

// hasMid reports whether c has mid-drain rates (the managers curve).
func (c *curveResult) hasMid() bool {
	return slices.ContainsFunc(c.points, func(p point) bool { return p.midJobsS > 0 })
}

var storeTitle = map[string]string{"redis": "Redis", "sqlite": "SQLite"}

// printCurve prints c as a markdown table, one row per size.
func printCurve(w io.Writer, c *curveResult) {
	stores := c.stores()
	head := []string{c.xLabel}
	for _, s := range stores {
		head = append(head, storeTitle[s]+" jobs/s", storeTitle[s]+" probe p99 ms")
		if s == "redis" {
			head = append(head, "Redis CPU µs/job", "Redis commands/job")
		}
		head = append(head, storeTitle[s]+" Manager CPU µs/job")
	}
	idle, mid := c.hasIdle(), c.hasMid()
	if mid {
		head = append(head, "Redis jobs/s mid-drain")
	}
	if idle {
		for _, s := range stores {
			head = append(head, storeTitle[s]+" probe p99 ms without backlog", storeTitle[s]+" idle CPU ms/s")
			if s == "redis" {
				head = append(head, "Redis idle commands sent/s", "Redis commands executed/s (of which scripts)")
			}
		}
	}
	fmt.Fprintf(w, "### %s\n\n| %s |\n|%s\n", c.name, strings.Join(head, " | "), strings.Repeat("--:|", len(head)))
	for _, size := range c.sizes() {
		row := []string{groupDigits(size)}
		for _, s := range stores {
			p, ok := c.find(s, size)
			switch {
			case !ok && s == "redis":
				row = append(row, "–", "–", "–", "–", "–")
			case !ok:
				row = append(row, "–", "–", "–")
			case s == "redis":
				row = append(row, format(p.jobsS), format(p.p99), format(p.cpuUs), format(p.cmds), format(p.clientUs))
			default:
				row = append(row, format(p.jobsS), format(p.p99), format(p.clientUs))
			}
		}
		if mid {
			p, ok := c.find("redis", size)
			if !ok || p.midJobsS == 0 {
				row = append(row, "–")
			} else {
				row = append(row, format(p.midJobsS))
			}
		}
		if idle {
			for _, s := range stores {
				p, ok := c.find(s, size)
				if !ok || !p.idle {
					row = append(row, "–", "–")
					if s == "redis" {
						row = append(row, "–", "–")
					}
					continue
				}
				row = append(row, format(p.lightP99), format(p.cpuMsS))
				if s == "redis" {
					row = append(row, format(p.sentS), fmt.Sprintf("%s (%s)", format(p.serverS), format(p.scriptsS)))
				}
			}
		}
		fmt.Fprintf(w, "| %s |\n", strings.Join(row, " | "))
	}
	fmt.Fprintln(w)
}

// printBars prints issue 24's bars on the curves that were measured.
func printBars(w io.Writer, curves []*curveResult) {
	byName := map[string]*curveResult{}
	for _, c := range curves {
		byName[c.name] = c
	}
	fmt.Fprintln(w, "### bars (issue 24)")
	fmt.Fprintln(w)
	line := func(what string, v float64, ok bool, holds func(float64) bool) {
		switch {
		case !ok:
			fmt.Fprintf(w, "- %s: not measured\n", what)
		case holds(v):
			fmt.Fprintf(w, "- %s: %.2f, holds\n", what, v)
		default:
			fmt.Fprintf(w, "- %s: %.2f, MISSES\n", what, v)
		}
	}
	ratio := func(curve, store string, num, den int, f func(point) float64) (float64, bool) {
		c := byName[curve]
		if c == nil {
			return 0, false
		}
		a, ok1 := c.find(store, num)
		b, ok2 := c.find(store, den)
		if !ok1 || !ok2 || f(b) == 0 {
			return 0, false
		}
		return f(a) / f(b), true
	}
	jobs := func(p point) float64 { return p.jobsS }
	p99 := func(p point) float64 { return p.p99 }
	for _, s := range []string{"redis", "sqlite"} {
		v, ok := ratio("pending", s, 1_000_000, 1000, jobs)
		line(storeTitle[s]+": jobs/s at 1,000,000 pending / at 1,000 (≥ 0.9)", v, ok, func(v float64) bool { return v >= 0.9 })
		v, ok = ratio("queues", s, 1000, 1, p99)
		line(storeTitle[s]+": probe p99 with 1,000 queues / with 1 (≤ 2), every queue with a backlog", v, ok, func(v float64) bool { return v <= 2 })
		v, ok = ratio("queues", s, 1000, 1, func(p point) float64 { return p.lightP99 })
		line(storeTitle[s]+": probe p99 with 1,000 queues / with 1 (≤ 2), without backlog", v, ok, func(v float64) bool { return v <= 2 })
	}
	var sent float64
	var ok bool
	if c := byName["queues"]; c != nil {
		var p point
		p, ok = c.find("redis", 1000)
		ok = ok && p.idle
		sent = p.sentS
	}
	line("Redis: commands/s an idle Manager with 1,000 queues sends (≤ 20)", sent, ok, func(v float64) bool { return v <= 20 })
	v, ok := ratio("managers", "redis", 50, 10, jobs)
	line("Redis: jobs/s of 50 Manager processes / of 10 (≥ 0.9)", v, ok, func(v float64) bool { return v >= 0.9 })
	// Not the bar: the bar's jobs/s count each Manager's Start, this
	// leaves it out (see midRate).
	v, ok = ratio("managers", "redis", 50, 10, func(p point) float64 { return p.midJobsS })
	line("Redis, additional figure: mid-drain jobs/s of 50 Manager processes / of 10, Starts left out (≥ 0.9)", v, ok, func(v float64) bool { return v >= 0.9 })
	fmt.Fprintln(w)
}

var storeColor = map[string]color.Color{
	"redis":  color.RGBA{R: 0xc0, G: 0x30, B: 0x30, A: 0xff},
	"sqlite": color.RGBA{R: 0x20, G: 0x60, B: 0xb0, A: 0xff},
}

// series is one line of a panel.
type series struct {
	label string
	color color.Color
	dash  bool
	pts   plotter.XYs
}

// plotCurve writes c as a PNG at path: throughput and probe p99 against
// the size, and for the queues curve the idle Manager's commands and CPU,
// each panel with a log-scale x axis (the sizes span decades).
func plotCurve(c *curveResult, path string) error {
	perStore := func(f func(point) (float64, bool)) []series {
		var out []series
		for _, s := range c.stores() {
			var pts plotter.XYs
			for _, p := range c.points {
				if v, ok := f(p); ok && p.store == s {
					pts = append(pts, plotter.XY{X: float64(p.size), Y: v})
				}
			}
			out = append(out, series{label: storeTitle[s], color: storeColor[s], pts: pts})
		}
		return out
	}
	always := func(f func(point) float64) func(point) (float64, bool) {
		return func(p point) (float64, bool) { return f(p), true }
	}
	p99 := perStore(always(func(p point) float64 { return p.p99 }))
	if c.hasIdle() {
		for _, s := range perStore(func(p point) (float64, bool) { return p.lightP99, p.idle }) {
			s.label += " without backlog"
			s.dash = true
			p99 = append(p99, s)
		}
	}
	panels := [][]*plot.Plot{{
		panel(c, "throughput", "jobs/s", perStore(always(func(p point) float64 { return p.jobsS }))),
		panel(c, "priority-1 probe: enqueue-to-start p99", "ms", p99),
	}}
	if slices.Contains(c.stores(), "redis") {
		cpu := perStore(func(p point) (float64, bool) { return p.cpuUs, p.store == "redis" })
		panels[0] = append(panels[0], panel(c, "Redis CPU per job", "µs", cpu[:1]))
	}
	if c.hasIdle() {
		var cmds []series
		for _, s := range perStore(func(p point) (float64, bool) { return p.sentS, p.idle && p.store == "redis" }) {
			if s.label == "Redis" {
				cmds = append(cmds, series{label: "sent by the Manager", color: s.color, pts: s.pts})
			}
		}
		for _, s := range perStore(func(p point) (float64, bool) { return p.serverS, p.idle && p.store == "redis" }) {
			if s.label == "Redis" {
				cmds = append(cmds, series{label: "executed by Redis", color: s.color, dash: true, pts: s.pts})
			}
		}
		idle := []*plot.Plot{
			panel(c, "idle Manager: Redis commands", "commands/s", cmds),
			panel(c, "idle Manager: CPU", "CPU ms/s", perStore(func(p point) (float64, bool) { return p.cpuMsS, p.idle })),
		}
		for len(idle) < len(panels[0]) {
			idle = append(idle, nil) // an empty tile
		}
		panels = append(panels, idle)
	}
	const cell = 11 * vg.Centimeter
	img := vgimg.New(cell*vg.Length(len(panels[0])), cell*0.8*vg.Length(len(panels)))
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: len(panels), Cols: len(panels[0]), PadX: vg.Centimeter, PadY: vg.Centimeter,
		PadTop: vg.Centimeter / 2, PadBottom: vg.Centimeter / 2, PadLeft: vg.Centimeter / 2, PadRight: vg.Centimeter / 2}
	canvases := plot.Align(panels, tiles, dc)
	for i := range panels {
		for j, p := range panels[i] {
			if p != nil {
				p.Draw(canvases[i][j])
			}
		}
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		_ = f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}

// panel is one plot of a curve's figure: lines with points, the x axis
// logarithmic over the curve's sizes, the y axis from 0.
func panel(c *curveResult, title, yLabel string, lines []series) *plot.Plot {
	p := plot.New()
	p.Title.Text = c.name + ": " + title
	p.X.Label.Text = c.xLabel
	p.Y.Label.Text = yLabel
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = sizeTicks(c.sizes())
	sizes := c.sizes()
	// A margin of half a decade each side keeps the end points off the
	// frame, and a single size plots too.
	p.X.Min, p.X.Max = float64(sizes[0])/math.Sqrt(10), float64(sizes[len(sizes)-1])*math.Sqrt(10)
	p.Y.Min = 0
	p.Add(plotter.NewGrid())
	p.Legend.Top = true
	p.Legend.YOffs = -vg.Points(6) // below the title
	for _, s := range lines {
		if len(s.pts) == 0 {
			continue
		}
		l, sc, err := plotter.NewLinePoints(s.pts)
		if err != nil {
			continue // a NaN or infinite figure: its line is left out, the table has it
		}
		l.Color, sc.Color = s.color, s.color
		if s.dash {
			l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		}
		sc.Shape = draw.CircleGlyph{}
		p.Add(l, sc)
		p.Legend.Add(s.label, l, sc)
		for _, xy := range s.pts {
			p.Y.Max = math.Max(p.Y.Max, xy.Y*1.15)
		}
	}
	if p.Y.Max <= 0 {
		p.Y.Max = 1
	}
	return p
}

// sizeTicks marks exactly the measured sizes.
type sizeTicks []int

func (t sizeTicks) Ticks(min, max float64) []plot.Tick {
	var out []plot.Tick
	for _, s := range t {
		if float64(s) >= min && float64(s) <= max {
			out = append(out, plot.Tick{Value: float64(s), Label: groupDigits(s)})
		}
	}
	return out
}

// groupDigits writes n with a comma between groups of three digits.
func groupDigits(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
