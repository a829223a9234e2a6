package schedule

import (
	"fmt"
	"strings"
	"time"

	cron "github.com/netresearch/go-cron"
)

// DefaultMinInterval is the shortest interval a spec may fire at unless
// ParseOptions.MinInterval says otherwise.
const DefaultMinInterval = time.Second

// ParseOptions tunes Parse. The zero value works.
type ParseOptions struct {
	// MinInterval rejects specs that fire more often than this (an "@every"
	// below it, or a cron spec with two fire times closer than it).
	// Defaults to DefaultMinInterval (1s), the finest a spec can express.
	MinInterval time.Duration
}

// SpecError reports a spec or time zone that Parse rejects, naming the
// field and the value at fault.
type SpecError struct {
	Spec   string // the whole spec
	Field  string // "spec", "second", "minute", "hour", "day-of-month", "month", "day-of-week", "descriptor", "@every", "interval" or "time zone"
	Value  string // the offending text
	Reason string
}

func (e *SpecError) Error() string {
	return fmt.Sprintf("cron spec %q: %s %q: %s", e.Spec, e.Field, e.Value, e.Reason)
}

// Spec is a parsed cron spec bound to a time zone. It is immutable and safe
// for concurrent use.
//
// Accepted: five fields (minute hour day-of-month month day-of-week), six
// with a leading seconds field, and the descriptors @yearly (@annually),
// @monthly, @weekly, @daily (@midnight), @hourly and @every <duration>.
// When both day-of-month and day-of-week are restricted, a day matching
// either fires (as in Vixie cron).
//
// Time zones and DST, in the spec's zone:
//   - A wall time that a spring-forward transition skips fires once, shifted
//     by the gap: 02:30 on the day Berlin jumps from 02:00 to 03:00 fires at
//     03:30 CEST.
//   - A wall time that a fall-back transition repeats fires once, at its
//     first occurrence (01:30 EDT, not again at 01:30 EST), unless the spec
//     fires in every hour (hour field "*"): such a spec follows real hours
//     and fires in both.
//
// "@every d" ticks at the multiples of d since the Unix epoch, whatever the
// zone, so every scheduler instance computes the same ticks; d must be a
// whole number of seconds. Use @daily, not @every 24h, for local midnight.
type Spec struct {
	text     string
	loc      *time.Location
	every    time.Duration
	sched    cron.Schedule
	allHours bool
}

// The field names of a five- and a six-field spec.
var (
	fields5 = []string{"minute", "hour", "day-of-month", "month", "day-of-week"}
	fields6 = append([]string{"second"}, fields5...)
)

var parser = cron.MustNewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// starBit is the library's mark of a wildcard field (bit 63).
const starBit = 1 << 63

// Parse parses spec in the IANA time zone tz ("" means UTC). Errors are
// *SpecError values naming the field and value at fault. It never panics.
func Parse(spec, tz string, opts ParseOptions) (sp *Spec, err error) {
	defer func() {
		if r := recover(); r != nil { // the library is third-party: contain it
			sp, err = nil, &SpecError{Spec: spec, Field: "spec", Value: spec, Reason: fmt.Sprintf("cannot be parsed: %v", r)}
		}
	}()
	minInterval := opts.MinInterval
	if minInterval <= 0 {
		minInterval = DefaultMinInterval
	}
	loc, err := loadZone(spec, tz)
	if err != nil {
		return nil, err
	}
	text := strings.TrimSpace(spec)
	bad := func(field, value, format string, args ...any) error {
		return &SpecError{Spec: spec, Field: field, Value: value, Reason: fmt.Sprintf(format, args...)}
	}
	switch {
	case text == "":
		return nil, bad("spec", spec, "is empty")
	case len(text) > cron.MaxSpecLength:
		return nil, bad("spec", text[:32]+"…", "is %d bytes long, the limit is %d", len(text), cron.MaxSpecLength)
	case strings.HasPrefix(text, "TZ=") || strings.HasPrefix(text, "CRON_TZ="):
		return nil, bad("spec", strings.Fields(text)[0], "set the time zone separately, not in the spec")
	case strings.HasPrefix(text, "@every"):
		return parseEvery(spec, text, loc, minInterval)
	case strings.HasPrefix(text, "@"):
		s, err := parser.Parse(text)
		if err != nil {
			return nil, bad("descriptor", text, "unknown; use @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly or @every <duration>")
		}
		return newSpec(text, loc, s), nil
	}
	parts := strings.Fields(text)
	var names []string
	switch len(parts) {
	case 5:
		names = fields5
	case 6:
		names = fields6
	default:
		return nil, bad("spec", text, "has %d fields, want 5 (minute hour day-of-month month day-of-week) or 6 (with a leading second)", len(parts))
	}
	s, err := parser.Parse(text)
	if err != nil {
		return nil, fieldError(spec, parts, names, err)
	}
	if ss, ok := s.(*cron.SpecSchedule); ok {
		ss.DowOrDom = true
		ss.Location = loc
		if err := checkDays(spec, parts, names, ss); err != nil {
			return nil, err
		}
	}
	sp = newSpec(text, loc, s)
	if err := sp.checkInterval(spec, minInterval); err != nil {
		return nil, err
	}
	return sp, nil
}

// loadZone resolves an IANA zone name.
func loadZone(spec, tz string) (*time.Location, error) {
	if tz == "" || tz == "UTC" {
		return time.UTC, nil
	}
	if len(tz) > 256 || strings.ContainsAny(tz, "\x00\\") || strings.HasPrefix(tz, "/") {
		return nil, &SpecError{Spec: spec, Field: "time zone", Value: tz, Reason: "is not an IANA time zone name"}
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		return nil, &SpecError{Spec: spec, Field: "time zone", Value: tz, Reason: "unknown IANA time zone (e.g. Europe/Berlin, America/New_York)"}
	}
	return loc, nil
}

// parseEvery parses "@every <duration>".
func parseEvery(spec, text string, loc *time.Location, minInterval time.Duration) (*Spec, error) {
	arg := strings.TrimSpace(strings.TrimPrefix(text, "@every"))
	bad := func(format string, args ...any) error {
		return &SpecError{Spec: spec, Field: "@every", Value: arg, Reason: fmt.Sprintf(format, args...)}
	}
	d, err := time.ParseDuration(arg)
	switch {
	case err != nil:
		return nil, bad("is not a duration such as 15m or 1h30m")
	case d <= 0:
		return nil, bad("must be positive")
	case d%time.Second != 0:
		return nil, bad("must be a whole number of seconds")
	case d < minInterval:
		return nil, &SpecError{Spec: spec, Field: "interval", Value: arg, Reason: fmt.Sprintf("is below the minimum interval %v", minInterval)}
	}
	return &Spec{text: text, loc: loc, every: d}, nil
}

func newSpec(text string, loc *time.Location, s cron.Schedule) *Spec {
	sp := &Spec{text: text, loc: loc, sched: s}
	if ss, ok := s.(*cron.SpecSchedule); ok {
		ss.Location = loc
		const hours = 1<<24 - 1
		sp.allHours = ss.Hour&hours == hours
	}
	return sp
}

// fieldError finds which field the library rejected by parsing each field
// alone, the others set to "*".
func fieldError(spec string, parts, names []string, cause error) error {
	for i, p := range parts {
		probe := make([]string, len(parts))
		for j := range probe {
			probe[j] = "*"
		}
		probe[i] = p
		if _, err := parser.Parse(strings.Join(probe, " ")); err != nil {
			return &SpecError{Spec: spec, Field: names[i], Value: p, Reason: rangeHint(names[i], err)}
		}
	}
	return &SpecError{Spec: spec, Field: "spec", Value: strings.Join(parts, " "), Reason: cause.Error()}
}

// rangeHint explains a field's error with its allowed range.
func rangeHint(field string, err error) string {
	ranges := map[string]string{"second": "0-59", "minute": "0-59", "hour": "0-23", "day-of-month": "1-31",
		"month": "1-12 or jan-dec", "day-of-week": "0-7 or sun-sat"}
	return fmt.Sprintf("%v (allowed: %s)", err, ranges[field])
}

// daysIn is the most days each month can have (February in a leap year).
var daysIn = [13]int{0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}

// checkDays rejects a day-of-month that no selected month has (Feb 30,
// Apr 31) when day-of-week does not widen the choice.
func checkDays(spec string, parts, names []string, ss *cron.SpecSchedule) error {
	if ss.Dom&starBit != 0 || ss.Dow&starBit == 0 || len(ss.DomConstraints) > 0 {
		return nil
	}
	for m := 1; m <= 12; m++ {
		if ss.Month&(1<<m) == 0 {
			continue
		}
		for d := 1; d <= daysIn[m]; d++ {
			if ss.Dom&(1<<d) != 0 {
				return nil
			}
		}
	}
	off := len(names) - 5
	return &SpecError{Spec: spec, Field: "day-of-month", Value: parts[off+2],
		Reason: fmt.Sprintf("never occurs in month %q, so the spec would never fire", parts[off+3])}
}

// checkInterval rejects a cron spec whose fire times come closer than min,
// judged over its first fire times from a fixed instant.
func (s *Spec) checkInterval(spec string, min time.Duration) error {
	if min <= time.Second {
		return nil // a spec cannot fire more often than every second
	}
	t := s.Next(time.Date(2024, 1, 1, 0, 0, 0, 0, s.loc))
	if t.IsZero() {
		return &SpecError{Spec: spec, Field: "spec", Value: s.text, Reason: "never fires"}
	}
	for range 64 {
		n := s.Next(t)
		if n.IsZero() {
			return nil
		}
		if gap := n.Sub(t); gap < min {
			return &SpecError{Spec: spec, Field: "interval", Value: gap.String(),
				Reason: fmt.Sprintf("fires %v apart (at %s and %s), below the minimum interval %v", gap, t.Format(time.DateTime), n.Format(time.DateTime), min)}
		}
		t = n
	}
	return nil
}

// String returns the spec as parsed (trimmed).
func (s *Spec) String() string { return s.text }

// Location returns the spec's time zone.
func (s *Spec) Location() *time.Location { return s.loc }

// Next returns the first fire time strictly after t, in the spec's zone,
// or the zero time if there is none within the library's search horizon.
func (s *Spec) Next(t time.Time) time.Time {
	if s.every > 0 {
		d := int64(s.every / time.Second)
		sec := t.Unix()
		q := sec / d
		if sec%d < 0 {
			q-- // floor division before the epoch
		}
		return time.Unix((q+1)*d, 0).In(s.loc)
	}
	cur := t.In(s.loc)
	for range 4 {
		n := s.sched.Next(cur)
		if n.IsZero() || s.allHours || !repeatedWallTime(n) {
			return n
		}
		cur = n // the second occurrence of a wall time: it fired already
	}
	return time.Time{}
}

// repeatedWallTime reports whether t's wall clock also showed at an earlier
// instant because a fall-back transition in the last three hours repeated it.
func repeatedWallTime(t time.Time) bool {
	_, off := t.Zone()
	_, before := t.Add(-3 * time.Hour).Zone()
	if before <= off {
		return false
	}
	e := t.Add(-time.Duration(before-off) * time.Second)
	y1, m1, d1 := t.Date()
	y2, m2, d2 := e.Date()
	return y1 == y2 && m1 == m2 && d1 == d2 && t.Hour() == e.Hour() && t.Minute() == e.Minute() && t.Second() == e.Second()
}

// NextN returns the next n fire times after t.
func (s *Spec) NextN(t time.Time, n int) []time.Time {
	out := make([]time.Time, 0, n)
	for range n {
		t = s.Next(t)
		if t.IsZero() {
			break
		}
		out = append(out, t)
	}
	return out
}
