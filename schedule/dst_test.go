package schedule

import (
	"archive/zip"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestDSTEveryZone checks the DST rule as a property over every zone in Go's
// tzdata (the zoneinfo.zip shipped with Go, so the machine's own zone files
// do not matter): for each change of UTC offset in 2026-2028, a daily spec at
// each wall time at the edges of and inside the gap or overlap (and one
// minute either side) fires exactly once for each local day from three days
// before the change to the day after, never zero times, never twice: at the
// first instant showing its time or, when a gap skips it, at the first
// instant after the gap.
//
// Transitions are found by sampling offsets every six hours and bisecting,
// independently of the ZoneBounds the code under test uses.
func TestDSTEveryZone(t *testing.T) {
	zones := tzdataZones(t)
	from := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	to := time.Date(2029, 1, 1, 0, 0, 0, 0, time.UTC)
	transitions, specs := 0, 0
	for _, loc := range zones {
		for _, tr := range offsetChanges(loc, from, to) {
			transitions++
			for _, w := range wallsNear(tr) {
				specs++
				checkDailyAround(t, loc, tr, w)
			}
		}
	}
	t.Logf("%d zones (aliases folded), %d offset changes, %d daily specs checked", len(zones), transitions, specs)
	if transitions < 500 {
		t.Fatalf("found only %d offset changes in 2026-2028; the zone scan is broken", transitions)
	}
}

// tzdataZones loads every zone of Go's zoneinfo.zip, one per distinct
// content (links such as US/Eastern repeat America/New_York).
func tzdataZones(t *testing.T) []*time.Location {
	t.Helper()
	out, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		t.Fatalf("find GOROOT for zoneinfo.zip: %v", err)
	}
	zr, err := zip.OpenReader(filepath.Join(strings.TrimSpace(string(out)), "lib", "time", "zoneinfo.zip"))
	if err != nil {
		t.Fatalf("open Go's zoneinfo.zip: %v", err)
	}
	defer zr.Close()
	seen := map[string]bool{}
	var zones []*time.Location
	for _, f := range zr.File {
		if strings.HasSuffix(f.Name, "/") {
			continue
		}
		rc, err := f.Open()
		if err != nil {
			t.Fatalf("read %s from zoneinfo.zip: %v", f.Name, err)
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatalf("read %s from zoneinfo.zip: %v", f.Name, err)
		}
		if seen[string(data)] {
			continue
		}
		seen[string(data)] = true
		loc, err := time.LoadLocationFromTZData(f.Name, data)
		if err != nil {
			t.Fatalf("load zone %s: %v", f.Name, err)
		}
		zones = append(zones, loc)
	}
	if len(zones) < 300 {
		t.Fatalf("zoneinfo.zip holds only %d distinct zones", len(zones))
	}
	return zones
}

// offsetChange is a change of a zone's UTC offset at instant at.
type offsetChange struct {
	at          time.Time
	before, now int // offsets in seconds east of UTC
}

// offsetChanges finds the changes of loc's offset in [from, to).
func offsetChanges(loc *time.Location, from, to time.Time) []offsetChange {
	const step = 6 * time.Hour
	var out []offsetChange
	prev := offsetAt(from, loc)
	for s := from; s.Before(to); s = s.Add(step) {
		next := offsetAt(s.Add(step), loc)
		if next == prev {
			continue
		}
		lo, hi := s, s.Add(step) // offset(lo) == prev, offset(hi) != prev
		for hi.Sub(lo) > time.Second {
			mid := lo.Add(hi.Sub(lo) / 2).Truncate(time.Second)
			if offsetAt(mid, loc) == prev {
				lo = mid
			} else {
				hi = mid
			}
		}
		out = append(out, offsetChange{at: hi, before: prev, now: offsetAt(hi, loc)})
		prev = next
	}
	return out
}

func offsetAt(t time.Time, loc *time.Location) int {
	_, off := t.In(loc).Zone()
	return off
}

// wallsNear returns the wall times (as UTC readings, whole minutes) to test
// around a change: the edges of the skipped or repeated span, one minute
// either side of each, and a few inside.
func wallsNear(c offsetChange) []time.Time {
	a := c.at.Add(time.Duration(c.before) * time.Second)
	b := c.at.Add(time.Duration(c.now) * time.Second)
	if b.Before(a) {
		a, b = b, a
	}
	span := b.Sub(a)
	var walls []time.Time
	for _, w := range []time.Time{a.Add(-time.Minute), a, a.Add(time.Minute),
		a.Add(span / 4), a.Add(span / 2), a.Add(3 * span / 4),
		b.Add(-time.Minute), b, b.Add(time.Minute)} {
		w = w.Truncate(time.Minute)
		if !slices.ContainsFunc(walls, w.Equal) {
			walls = append(walls, w)
		}
	}
	return walls
}

// checkDailyAround checks the daily spec at w's hour and minute around c:
// from three days before the change to the day after it, the spec fires
// once for each local day, at the instant expectedFire gives, and at no
// other instant.
func checkDailyAround(t *testing.T, loc *time.Location, c offsetChange, w time.Time) {
	t.Helper()
	spec := fmt.Sprintf("%d %d * * *", w.Minute(), w.Hour())
	sp, err := parseIn(spec, loc, ParseOptions{})
	if err != nil {
		t.Fatalf("%s: parse %q: %v", loc, spec, err)
	}
	start := c.at.Add(-3 * 24 * time.Hour)
	last := localDate(c.at.Add(-time.Second).In(loc))
	if d := localDate(c.at.In(loc)); d.After(last) {
		last = d
	}
	last = last.AddDate(0, 0, 1)
	var want []time.Time
	for d := localDate(start.In(loc)); !d.After(last); d = d.AddDate(0, 0, 1) {
		if e := expectedFire(loc, d, w); e.After(start) {
			want = append(want, e)
		}
	}
	var got []time.Time
	for f := sp.Next(start); !f.After(want[len(want)-1]); f = sp.Next(f) {
		if f.IsZero() {
			t.Fatalf("%s %q: no fire after a time near %s", loc, spec, c.at)
		}
		got = append(got, f)
	}
	if !slices.EqualFunc(got, want, time.Time.Equal) {
		t.Errorf("%s %q (offset %+ds → %+ds at %s):\n fires at %s\n want     %s", loc, spec,
			c.before, c.now, c.at.Format(time.RFC3339), formatIn(got, loc), formatIn(want, loc))
		return
	}
	// Asked from inside the gap or overlap, Next gives the next fire too:
	// a scheduler may wake there (the first occurrence has then passed).
	span := time.Duration(abs(c.now-c.before)) * time.Second
	for _, x := range []time.Time{c.at.Add(-time.Second), c.at, c.at.Add(span / 2), c.at.Add(span), c.at.Add(span + time.Minute)} {
		i, _ := slices.BinarySearchFunc(want, x, func(e, x time.Time) int {
			if e.After(x) {
				return 1
			}
			return -1
		})
		if i == len(want) {
			continue
		}
		if n := sp.Next(x); !n.Equal(want[i]) {
			t.Errorf("%s %q: Next(%s) = %s; want %s", loc, spec, x.In(loc).Format(time.RFC3339),
				n.In(loc).Format(time.RFC3339), want[i].In(loc).Format(time.RFC3339))
		}
	}
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

func formatIn(ts []time.Time, loc *time.Location) string {
	s := make([]string, len(ts))
	for i, t := range ts {
		s[i] = t.In(loc).Format(time.RFC3339)
	}
	return strings.Join(s, " ")
}

// localDate is the local calendar date of t, as midnight UTC.
func localDate(t time.Time) time.Time {
	y, m, d := t.Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// expectedFire states the DST rule for the daily time w on local date d,
// from offsets alone: the earliest instant whose local reading is d at w's
// time, or, if none has it, the first instant after the gap that skips it.
// That instant can fall on the next local day: America/Scoresbysund springs
// from 23:00 to 00:00, so its 23:30 fires at 00:00 the next day.
func expectedFire(loc *time.Location, d, w time.Time) time.Time {
	reading := time.Date(d.Year(), d.Month(), d.Day(), w.Hour(), w.Minute(), 0, 0, time.UTC)
	var first time.Time
	offsets := map[int]bool{}
	for h := -30; h <= 30; h++ {
		offsets[offsetAt(reading.Add(time.Duration(h)*time.Hour), loc)] = true
	}
	for off := range offsets {
		i := reading.Add(-time.Duration(off) * time.Second)
		if offsetAt(i, loc) == off && (first.IsZero() || i.Before(first)) {
			first = i
		}
	}
	if !first.IsZero() {
		return first
	}
	// Skipped: the gap ends at the first instant whose reading is past it.
	lo, hi := reading.Add(-30*time.Hour), reading.Add(30*time.Hour)
	for hi.Sub(lo) > time.Second {
		mid := lo.Add(hi.Sub(lo) / 2).Truncate(time.Second)
		if mid.Add(time.Duration(offsetAt(mid, loc)) * time.Second).After(reading) {
			hi = mid
		} else {
			lo = mid
		}
	}
	return hi
}
