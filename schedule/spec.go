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
// for concurrent use. The accepted syntax and the DST rule are stated in the
// package documentation.
type Spec struct {
	text  string
	loc   *time.Location
	every time.Duration
	// wall matches wall-clock readings carried as UTC times (see wallclock.go).
	wall *cron.SpecSchedule
	// followsClock marks a wildcard or stepped hour field: such a spec fires
	// at every instant whose reading matches, not once per reading.
	followsClock bool
}

// The field names of a five- and a six-field spec.
var (
	fields5 = []string{"minute", "hour", "day-of-month", "month", "day-of-week"}
	fields6 = append([]string{"second"}, fields5...)
)

var parser = cron.MustNewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow |
	cron.Descriptor | cron.Extended)

// searchYears is how far ahead Next looks for a fire time. Rare but valid
// specs need decades: Monday 29 February ("0 0 * 2 1#5") comes every 28
// years, or 40 across 2100, which is no leap year.
const searchYears = 100

// starBit is the library's mark of a wildcard field (bit 63).
const starBit = 1 << 63

// Parse parses spec in the IANA time zone tz ("" means UTC). Errors are
// *SpecError values naming the field and value at fault. It never panics.
func Parse(spec, tz string, opts ParseOptions) (*Spec, error) {
	loc, err := loadZone(spec, tz)
	if err != nil {
		return nil, err
	}
	return parseIn(spec, loc, opts)
}

// parseIn is Parse with the zone already loaded.
func parseIn(spec string, loc *time.Location, opts ParseOptions) (sp *Spec, err error) {
	defer func() {
		if r := recover(); r != nil { // the library is third-party: contain it
			sp, err = nil, &SpecError{Spec: spec, Field: "spec", Value: spec, Reason: fmt.Sprintf("cannot be parsed: %v", r)}
		}
	}()
	minInterval := opts.MinInterval
	if minInterval <= 0 {
		minInterval = DefaultMinInterval
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
		ss, ok := s.(*cron.SpecSchedule)
		if err != nil || !ok {
			return nil, bad("descriptor", text, "unknown; use @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly or @every <duration>")
		}
		return newSpec(text, loc, ss, ss.Hour&starBit != 0), nil
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
	norm := make([]string, len(parts))
	for i, p := range parts {
		n, problem := normalizeField(names[i], p)
		if problem != nil {
			return nil, bad(names[i], problem.value, "%s", problem.reason)
		}
		norm[i] = n
	}
	s, err := parser.Parse(strings.Join(norm, " "))
	if err != nil {
		return nil, fieldError(spec, parts, norm, names, err)
	}
	ss, ok := s.(*cron.SpecSchedule)
	if !ok {
		return nil, bad("spec", text, "cannot be parsed: unexpected schedule type %T", s)
	}
	ss.DowOrDom = true
	if err := checkDays(spec, parts, names, ss); err != nil {
		return nil, err
	}
	hour := parts[len(parts)-4]
	sp = newSpec(text, loc, ss, strings.ContainsAny(hour, "*/") || ss.Hour&(1<<24-1) == 1<<24-1)
	if err := sp.checkFires(spec, minInterval); err != nil {
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

func newSpec(text string, loc *time.Location, ss *cron.SpecSchedule, followsClock bool) *Spec {
	ss.Location = time.UTC // it matches wall readings, see wallclock.go
	ss.MaxSearchYears = searchYears
	return &Spec{text: text, loc: loc, wall: ss, followsClock: followsClock}
}

// fieldError finds which field the library rejected by parsing each field
// alone (in its normalized form), the others set to "*".
func fieldError(spec string, parts, norm, names []string, cause error) error {
	for i := range parts {
		probe := make([]string, len(parts))
		for j := range probe {
			probe[j] = "*"
		}
		probe[i] = norm[i]
		if _, err := parser.Parse(strings.Join(probe, " ")); err != nil {
			return &SpecError{Spec: spec, Field: names[i], Value: parts[i], Reason: rangeHint(names[i], err)}
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
// Apr 31, L-29 in February, 31W in April) when day-of-week does not widen
// the choice.
func checkDays(spec string, parts, names []string, ss *cron.SpecSchedule) error {
	if ss.Dom&starBit != 0 || ss.Dow&starBit == 0 {
		return nil
	}
	for m := 1; m <= 12; m++ {
		if ss.Month&(1<<m) != 0 && dayOccurs(ss, daysIn[m]) {
			return nil
		}
	}
	off := len(names) - 5
	return &SpecError{Spec: spec, Field: "day-of-month", Value: parts[off+2],
		Reason: fmt.Sprintf("never occurs in month %q, so the spec would never fire", parts[off+3])}
}

// dayOccurs reports whether the day-of-month field picks a day in a month
// of n days.
func dayOccurs(ss *cron.SpecSchedule, n int) bool {
	for d := 1; d <= n; d++ {
		if ss.Dom&(1<<d) != 0 {
			return true
		}
	}
	for _, c := range ss.DomConstraints {
		switch c.Type {
		case cron.DomLastOffset:
			if n-c.N >= 1 {
				return true
			}
		case cron.DomNearestWeekday:
			if c.N <= n {
				return true
			}
		default: // L and LW: every month has a last day and a last weekday
			return true
		}
	}
	return false
}

// checkFires rejects a cron spec that never fires or whose fire times come
// closer than min, judged over its first fire times from a fixed instant.
func (s *Spec) checkFires(spec string, min time.Duration) error {
	t := s.Next(time.Date(2024, 1, 1, 0, 0, 0, 0, s.loc))
	if t.IsZero() {
		return &SpecError{Spec: spec, Field: "spec", Value: s.text, Reason: fmt.Sprintf("never fires within %d years", searchYears)}
	}
	if min <= time.Second {
		return nil // a spec cannot fire more often than every second
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
// or the zero time if there is none within 100 years. Fire times follow the
// DST rule stated in the package documentation.
func (s *Spec) Next(t time.Time) time.Time {
	switch {
	case s.every > 0:
		d := int64(s.every / time.Second)
		sec := t.Unix()
		q := sec / d
		if sec%d < 0 {
			q-- // floor division before the epoch
		}
		return time.Unix((q+1)*d, 0).In(s.loc)
	case s.wall == nil: // a Spec not made by Parse
		return time.Time{}
	case s.followsClock:
		return nextReal(t, s.loc, s.wall.Next)
	default:
		return nextFixed(t, s.loc, s.wall.Next)
	}
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
