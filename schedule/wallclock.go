package schedule

import "time"

// A spec matches local wall-clock readings (02:30 on 30 March), not
// instants. This file maps between the two in a zone and holds the one DST
// rule every fire time follows; Spec.Next is its only user, and the
// scheduler's catch-up and tick claims go through Spec.Next.
//
// Wall readings are carried as time.Time values in UTC whose fields show the
// local reading, so the cron library matches them with no zone in play and
// cannot itself apply a DST heuristic. Offsets are found with ZoneBounds,
// which works for any shift (30 minutes on Lord Howe Island, whole-day jumps,
// changes of standard time), not only whole hours.

// maxZoneDrop bounds how far back a wall clock can jump at a transition:
// the walls shown before such a jump are still "seen" for that long after it.
// Real offsets span -12h to +14h, so no jump exceeds 26h.
const maxZoneDrop = 26 * time.Hour

// wallOf returns the wall-clock reading of t in loc, as a UTC time.
func wallOf(t time.Time, loc *time.Location) time.Time {
	_, off := t.In(loc).Zone()
	return t.UTC().Add(time.Duration(off) * time.Second)
}

// maxWallSeen returns the latest wall reading shown in loc at any instant
// up to t. It is t's own reading unless a transition shortly before t set
// the clock back, in which case it is the reading just before that jump.
func maxWallSeen(t time.Time, loc *time.Location) time.Time {
	m := wallOf(t, loc)
	p := t.In(loc)
	for range 8 { // a handful of transitions within maxZoneDrop at most
		start, _ := p.ZoneBounds()
		if start.IsZero() || t.Sub(start) > maxZoneDrop {
			break
		}
		p = start.Add(-time.Nanosecond)
		if w := wallOf(p, loc); w.After(m) {
			m = w
		}
	}
	return m
}

// firstInstant returns the first instant whose reading in loc is w or, when
// a spring-forward gap skips w, the first instant after the gap.
func firstInstant(w time.Time, loc *time.Location) time.Time {
	p := w.Add(-maxZoneDrop).In(loc) // before any instant that can read w
	limit := w.Add(maxZoneDrop)
	for n := 0; p.Before(limit) && n < 64; n++ { // n bounds the walk whatever ZoneBounds says
		_, off := p.Zone()
		start, _ := p.ZoneBounds()
		end := zoneEnd(p)
		i := w.Add(-time.Duration(off) * time.Second)
		if (start.IsZero() || !i.Before(start)) && (end.IsZero() || i.Before(end)) {
			return i.In(loc)
		}
		if end.IsZero() {
			break
		}
		// The walls from end's reading under the old offset up to its
		// reading under the new one never show: a gap that ends at end.
		if !w.Before(end.UTC().Add(time.Duration(off)*time.Second)) && w.Before(wallOf(end, loc)) {
			return end.In(loc)
		}
		p = end.In(loc)
	}
	// Unreachable with real zone data; time.Date picks one of the readings.
	return time.Date(w.Year(), w.Month(), w.Day(), w.Hour(), w.Minute(), w.Second(), w.Nanosecond(), loc)
}

// zoneEnd returns the end of the zone period holding p, zero if it never
// ends. It works around golang/go#81583: on the last UTC day of a leap year
// served by a zone file's rule footer (2040 in Europe/Berlin), ZoneBounds
// gives an end a day early, before p, which would stall a walk over the
// periods. The end is then the start of the period found in the next hours.
func zoneEnd(p time.Time) time.Time {
	_, end := p.ZoneBounds()
	if end.IsZero() || end.After(p) {
		return end
	}
	for h := time.Hour; h <= 48*time.Hour; h += time.Hour {
		if start, _ := p.Truncate(time.Hour).Add(h).ZoneBounds(); start.After(p) {
			return start
		}
	}
	return time.Time{} // unreachable with real zone data; callers then stop
}

// nextFixed is Next for a spec with fixed hours: each matching wall reading
// fires once, at its first occurrence, or after the gap that skips it.
// nextWall returns the first matching reading strictly after its argument.
func nextFixed(t time.Time, loc *time.Location, nextWall func(time.Time) time.Time) time.Time {
	// Readings up to maxWallSeen have had their first occurrence by t (or
	// their gap ended by t); a later one has its first occurrence after t,
	// and the mapping keeps order, so the next reading is the next fire.
	w := nextWall(maxWallSeen(t, loc))
	if w.IsZero() {
		return time.Time{}
	}
	return firstInstant(w, loc)
}

// nextReal is Next for a spec that follows the clock (wildcard or stepped
// hour): it fires at every instant whose reading matches, so a reading an
// overlap repeats fires at each occurrence and one a gap skips never fires.
func nextReal(t time.Time, loc *time.Location, nextWall func(time.Time) time.Time) time.Time {
	p := t.In(loc)
	from := wallOf(t, loc)
	// One zone period at a time, each with one offset. The bound only stops
	// a runaway loop: the cron library gives up within its search horizon.
	for range 1000 {
		_, off := p.Zone()
		end := zoneEnd(p)
		w := nextWall(from)
		if w.IsZero() {
			return time.Time{}
		}
		i := w.Add(-time.Duration(off) * time.Second)
		if end.IsZero() || i.Before(end) {
			return i.In(loc)
		}
		p = end.In(loc)
		from = wallOf(end, loc).Add(-time.Nanosecond) // readings from end's on
	}
	return time.Time{}
}
